"""Plugins that must not load: each one breaks a rule of the plugin contract."""
