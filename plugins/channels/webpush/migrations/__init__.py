"""The webpush plugin's Alembic branch, labelled webpush: see docs/plugins.md."""
