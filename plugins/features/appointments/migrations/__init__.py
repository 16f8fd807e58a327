"""The appointments plugin's Alembic branch, labelled appointments: see docs/plugins.md."""
