"""The outbox plugin's Alembic branch, labelled outbox: see docs/plugins.md."""
