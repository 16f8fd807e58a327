"""Forgets to say which kind of plugin it is."""
