"""What gunicorn and ``flask --app wsgi`` load: ``gunicorn wsgi:app``."""

from core.app import create_app, long_lived

app = long_lived(create_app())
