"""The reminders plugin's Alembic branch, labelled reminders: see docs/plugins.md."""
