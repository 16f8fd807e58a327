"""The campaigns plugin's Alembic branch, labelled campaigns: see docs/plugins.md."""
