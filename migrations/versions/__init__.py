"""The core's Alembic revisions (a package, so that a built wheel carries them)."""
