"""Messaging: the public module other features may use (none does yet)."""
