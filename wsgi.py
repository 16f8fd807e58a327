"""What gunicorn and ``flask --app wsgi`` load: ``gunicorn wsgi:app``."""

from core.app import create_app

app = create_app()
