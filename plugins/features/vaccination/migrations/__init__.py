"""The vaccination plugin's Alembic branch, labelled vaccination: see docs/plugins.md."""
