"""ASGI entry point of the asynchronous callback receiver (``siyu receiver``; uvicorn
siyu.config.receiver_asgi:application). The console, the API and everything else stay with ``siyu serve``."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "siyu.config.settings")
django.setup(set_prefix=False)

from siyu.wecom.receiver_app import ReceiverApp  # noqa: E402 - needs the apps loaded

application = ReceiverApp()
