"""WSGI entry point (gunicorn siyu.config.wsgi).

WeCom's callback URL and the health check are served without the middleware stack: they use no session, user,
language, CSRF token or message, and the stack costs more CPU than the health check itself (about 200 µs a
request, bench/callbacks.py). Everything else gets the full stack.
"""

import os
from collections.abc import Iterable
from typing import Any
from wsgiref.types import StartResponse, WSGIEnvironment

from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIHandler
from django.core.wsgi import get_wsgi_application
from django.http import HttpRequest
from django.http.response import HttpResponseBase

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "siyu.config.settings")
full = get_wsgi_application()

BARE_PREFIXES = ("/wecom/callback/", "/healthz")


class BareWSGIHandler(WSGIHandler):
    """Django's handler without middleware: URL resolution, the view, the request signals (connections)."""

    def load_middleware(self, is_async: bool = False) -> None:
        # What BaseHandler.load_middleware builds from an empty MIDDLEWARE setting.
        self._view_middleware: list[Any] = []
        self._template_response_middleware: list[Any] = []
        self._exception_middleware: list[Any] = []
        self._middleware_chain = convert_exception_to_response(self._get_response)  # type: ignore[attr-defined]

    def get_response(self, request: HttpRequest) -> HttpResponseBase:
        response = super().get_response(request)
        # What CommonMiddleware does for everything else: without a length, a keep-alive answer is chunked.
        if not response.streaming and not response.has_header("Content-Length"):
            response.headers["Content-Length"] = str(len(response.content))  # type: ignore[attr-defined]
        return response


bare = BareWSGIHandler()


def application(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """Route the bare paths to the bare handler, the rest to the full one."""
    if environ.get("PATH_INFO", "").startswith(BARE_PREFIXES):
        return bare(environ, start_response)
    return full(environ, start_response)
