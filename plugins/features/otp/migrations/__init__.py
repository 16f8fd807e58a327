"""The otp plugin's Alembic branch, labelled otp: see docs/plugins.md."""
