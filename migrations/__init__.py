"""Alembic migrations (Flask-Migrate), one linear history for the core and the built-ins.

Revision ids are four digits in order (``0001``, ``0002``...) and files are named
``<revision>_<slug>.py``; tests check it.
"""
