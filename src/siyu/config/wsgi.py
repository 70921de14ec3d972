"""WSGI entry point (gunicorn siyu.config.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "siyu.config.settings")
application = get_wsgi_application()
