"""The receiver's hot path: the health check, the WSGI entry without middleware, the cached corp lookup."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from siyu.config.wsgi import application
from siyu.corps.models import Corp
from siyu.wecom import groupcommit, receiver
from siyu.wecom.models import InboxEvent
from tests.wecom.inbound_support import A_CORPID, callback_corp, envelope, event_xml, post_callback

# Vector A1 (wecom-api.md §2.6), as in test_receiver.
A1_QUERY = (
    "msg_signature=5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3&timestamp=1409659589&nonce=263014780&echostr="
    "P9nAzCzyDtyTWESHep1vC5X9xho%2FqYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp%2B4RPcs8TgAE7OaBO%2BFZXvnaqQ%3D%3D"
)


@pytest.fixture(autouse=True)
def _no_cached_configs() -> None:
    # A test's rolled-back corp sends no signal: start from an empty cache, as a fresh process does.
    receiver.forget_configs()


def _event(n: int) -> bytes:
    return event_xml(
        "change_external_contact", "add_external_contact", create_time=1700000000, ExternalUserID=f"wmFast{n}"
    ).encode()


def _wsgi(method: str, path: str, query: str = "", body: bytes = b"") -> tuple[str, dict[str, str], bytes]:
    """One request through the production WSGI entry point (what gunicorn calls)."""
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "HTTP_HOST": "testserver",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_TYPE": "text/xml",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": io.StringIO(),
    }
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        answer["status"], answer["headers"] = status, dict(headers)

    content = b"".join(application(environ, start_response))
    return answer["status"], answer["headers"], content


@pytest.mark.django_db
def test_the_health_check_answers_without_touching_the_database(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert (response.status_code, response.content) == (200, b"")


@pytest.mark.django_db(transaction=True)
class TestWsgiEntry:
    """Through ``siyu.config.wsgi.application``: callbacks and the health check skip the middleware."""

    @pytest.fixture(autouse=True)
    def _stop_committer(self) -> Iterator[None]:
        yield
        groupcommit.shutdown()  # on PostgreSQL the callback went through this process's committer

    def test_a_callback_is_stored_and_answered_with_a_length(self):
        # given
        corp, crypto = callback_corp()
        query, body = envelope(crypto, _event(1))
        # when
        status, headers, content = _wsgi("POST", f"/wecom/callback/{A_CORPID}/", urlencode(query), body)
        # then: an empty 200 with its length, so a kept-alive connection needs no chunked encoding
        assert (status, content) == ("200 OK", b"")
        assert headers["Content-Length"] == "0"
        assert InboxEvent.objects.for_corp(corp).count() == 1
        # and none of the console's middleware ran: no session, no language negotiation, no frame policy
        assert not {"Set-Cookie", "Vary", "X-Frame-Options", "Content-Language"} & set(headers)

    def test_url_verification_works_through_the_bare_handler(self):
        callback_corp()
        status, _headers, content = _wsgi("GET", f"/wecom/callback/{A_CORPID}/", A1_QUERY)
        assert (status, content) == ("200 OK", b"1616140317555161061")

    def test_the_health_check_is_bare_and_the_console_is_not(self):
        status, headers, content = _wsgi("GET", "/healthz")
        assert (status, content, headers["Content-Length"]) == ("200 OK", b"", "0")
        assert "X-Frame-Options" not in headers
        status, headers, _content = _wsgi("GET", "/login/")
        assert headers["X-Frame-Options"] == "DENY"  # the full middleware stack


@pytest.mark.django_db
def test_the_corp_is_looked_up_once_for_a_burst_of_callbacks(client):
    # given
    _corp, crypto = callback_corp()
    # when three callbacks arrive within a second
    with CaptureQueriesContext(connection) as queries:
        statuses = [post_callback(client, crypto, _event(n)).status_code for n in range(3)]
    # then the corp's configuration was read once
    assert statuses == [200, 200, 200]
    assert sum(1 for q in queries if 'FROM "corps_corp"' in q["sql"]) == 1


@pytest.mark.django_db
def test_a_configuration_changed_by_another_process_applies_within_the_cache_time(client, monkeypatch):
    # given a verified configuration, cached for 0.2 s
    monkeypatch.setattr(receiver, "CONFIG_CACHE_SECONDS", 0.2)
    callback_corp()
    url = f"/wecom/callback/{A_CORPID}/?{A1_QUERY}"
    assert client.get(url).status_code == 200
    # when another process changes the Token (an UPDATE this process sends no signal for)
    from siyu.core import crypto as field_crypto

    Corp.objects.filter(corpid=A_CORPID).update(token_encrypted=field_crypto.encrypt("NewToken1"))
    # then this process answers from its copy for at most the cache time, then with the new Token
    assert client.get(url).status_code == 200
    time.sleep(0.25)
    assert client.get(url).status_code == 403


@pytest.mark.django_db
def test_a_corp_created_in_this_process_is_found_at_once_after_an_unknown_answer(client):
    # given a callback for a corpid not yet known (the negative answer is cached too)
    assert client.get(f"/wecom/callback/{A_CORPID}/?{A1_QUERY}").status_code == 404
    # when the corp is created here
    callback_corp()
    # then the next callback finds it
    assert client.get(f"/wecom/callback/{A_CORPID}/?{A1_QUERY}").status_code == 200
