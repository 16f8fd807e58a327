"""The messaging plugin's Alembic branch, labelled messaging: see docs/plugins.md."""
