"""The asynchronous callback receiver over real HTTP: uvicorn (uvloop, httptools) serving ``ReceiverApp`` on a
loopback port, as ``siyu receiver`` does, against the test database.

The server runs in a thread of the test process, so it reaches the test database on SQLite too (where its
rows are stored on its thread pool) as on PostgreSQL (where its own asynchronous connection group-commits
them). Data must be committed for the server to see it: ``transaction=True``. The same answers as the Django
view's (tests/wecom/test_receiver.py), from the same code.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any
from unittest import mock
from urllib.parse import urlencode

import httpx
import pytest
import uvicorn
from django.db import OperationalError, connection, connections
from django.db.backends.utils import CursorWrapper
from django_tasks_db.models import DBTaskResult

from siyu.core import crypto as field_crypto
from siyu.corps.models import Corp
from siyu.wecom import receiver
from siyu.wecom.asynccommit import APPLICATION_NAME
from siyu.wecom.crypto import CallbackCrypto
from siyu.wecom.inbox import dedupe_key
from siyu.wecom.models import InboxEvent
from siyu.wecom.receiver_app import ReceiverApp
from tests.wecom.inbound_support import A_CORPID, callback_corp, envelope, event_xml
from tests.wecom.test_receiver import A1, A1_ECHOSTR_URLENCODED, A1_REPLY, A2_BODY, A2_QUERY

pytestmark = pytest.mark.django_db(transaction=True)

POSTGRES = connection.vendor == "postgresql"
URL = f"/wecom/callback/{A_CORPID}/"


@pytest.fixture(autouse=True)
def _no_cached_configs() -> Iterator[None]:
    # Each test's corp is new: start from an empty configuration cache, as a fresh process does.
    receiver.forget_configs()
    yield
    receiver.forget_configs()


class RunningReceiver:
    """A receiver serving on a loopback port in a thread of this process; ``stop`` shuts it down cleanly."""

    def __init__(self) -> None:
        self.app = ReceiverApp()
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        config = uvicorn.Config(
            self.app,
            loop="uvloop",
            http="httptools",
            lifespan="on",
            log_config=None,
            log_level="warning",
            access_log=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def start(self) -> RunningReceiver:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "the receiver did not start"
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.http.close()
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.socket.close()

    def post(
        self, crypto: CallbackCrypto, plaintext: str | bytes, *, corpid: str | None = None
    ) -> httpx.Response:
        """POST one encrypted callback, as WeCom would."""
        data = plaintext.encode() if isinstance(plaintext, str) else plaintext
        query, body = envelope(crypto, data)
        return self.http.post(
            f"/wecom/callback/{corpid or crypto.receive_id}/?{urlencode(query)}",
            content=body,
            headers={"Content-Type": "text/xml"},
        )


@pytest.fixture
def server() -> Iterator[RunningReceiver]:
    running = RunningReceiver().start()
    yield running
    running.stop()


def _event(external_userid: str = "wmCustomer0001", create_time: int = 1700000000) -> str:
    return event_xml(
        "change_external_contact",
        "add_external_contact",
        create_time=create_time,
        UserID="wangfang",
        ExternalUserID=external_userid,
        State="web-home",
        WelcomeCode="WELCOMECODE",
    )


def _rows(corp: Corp) -> list[InboxEvent]:
    return list(InboxEvent.objects.for_corp(corp).order_by("pk"))


# --- URL verification --------------------------------------------------------------------------------------


def test_get_answers_url_verification_with_vector_a1(server):
    # given the official sample's corp and its URL-encoded echostr, exactly as WeCom sends it
    callback_corp()
    # when WeCom verifies the URL
    response = server.http.get(f"{URL}?{urlencode(A1)}&echostr={A1_ECHOSTR_URLENCODED}")
    # then the answer is the decrypted echostr and nothing else
    assert response.status_code == 200
    assert response.content == A1_REPLY
    assert response.headers["content-type"].startswith("text/plain")


def test_get_tolerates_an_unencoded_plus_in_echostr(server):
    callback_corp()
    raw = A1_ECHOSTR_URLENCODED.replace("%2B", "+")
    response = server.http.get(f"{URL}?{urlencode(A1)}&echostr={raw}")
    assert (response.status_code, response.content) == (200, A1_REPLY)


def test_get_with_a_wrong_signature_is_refused(server):
    callback_corp()
    response = server.http.get(
        f"{URL}?{urlencode({**A1, 'msg_signature': '0' * 40})}&echostr={A1_ECHOSTR_URLENCODED}"
    )
    assert response.status_code == 403
    assert A1_REPLY not in response.content


# --- storing -----------------------------------------------------------------------------------------------


def test_post_of_vector_a2_is_stored_once_without_its_contents(server):
    # given the official POST sample, a text message sent to the app
    corp, _crypto = callback_corp()
    # when WeCom delivers it, then redelivers it
    first = server.http.post(f"{URL}?{A2_QUERY}", content=A2_BODY)
    again = server.http.post(f"{URL}?{A2_QUERY}", content=A2_BODY)
    # then both are acknowledged with an empty 200, and one row records it, without the chat text
    assert (first.status_code, first.content) == (200, b"")
    assert (again.status_code, again.content) == (200, b"")
    [row] = _rows(corp)
    assert (row.event, row.status, row.message) == ("text", InboxEvent.Status.IGNORED, "")


def test_an_event_is_stored_before_the_acknowledgement(server):
    # given
    corp, crypto = callback_corp()
    # when
    response = server.post(crypto, _event())
    # then the row is committed by the time the answer arrives, pending for the worker
    assert (response.status_code, response.content) == (200, b"")
    [row] = _rows(corp)
    assert row.status == InboxEvent.Status.PENDING
    assert (row.event, row.change_type) == ("change_external_contact", "add_external_contact")
    assert row.ordering_key == "contact:wmCustomer0001"
    assert int(row.event_time.timestamp()) == 1700000000
    assert "wmCustomer0001" in row.message


def test_redeliveries_are_stored_once_and_a_worked_row_is_queued_again(server):
    # given an event stored and worked
    corp, crypto = callback_corp()
    assert server.post(crypto, _event()).status_code == 200
    InboxEvent.objects.for_corp(corp).update(status=InboxEvent.Status.DONE, attempts=1)
    # when WeCom delivers it twice more, each encrypted afresh
    statuses = [server.post(crypto, _event()).status_code for _ in range(2)]
    # then both are acknowledged, there is still one row, and it is pending again (see inbox.work_again)
    assert statuses == [200, 200]
    [row] = _rows(corp)
    assert (row.status, row.attempts) == (InboxEvent.Status.PENDING, 0)


def test_concurrent_deliveries_are_each_stored_once(server):
    # given 40 distinct events, 10 of them delivered twice at the same moment
    corp, crypto = callback_corp()
    events = [_event(external_userid=f"wmTogether{n:03d}") for n in range(40)]
    deliveries = events + events[:10]
    # when all arrive at once
    with concurrent.futures.ThreadPoolExecutor(max_workers=25) as pool:
        statuses = list(pool.map(lambda plaintext: server.post(crypto, plaintext).status_code, deliveries))
    # then every delivery is acknowledged and every event stored exactly once
    assert statuses == [200] * len(deliveries)
    keys = [row.dedupe_key for row in _rows(corp)]
    assert sorted(keys) == sorted(dedupe_key(e.encode()) for e in events)
    if POSTGRES:  # callbacks arriving together share transactions
        assert server.app.store.batches < len(deliveries)  # type: ignore[union-attr]


def test_a_burst_of_events_wakes_the_worker_once_per_second_not_once_per_event(server):
    # given
    _corp, crypto = callback_corp()
    # when a burst of events arrives
    started = time.time()
    for n in range(8):
        assert server.post(crypto, _event(external_userid=f"wmBurst{n}")).status_code == 200
    ended = time.time()
    # then a drain is queued for this second (and perhaps one for the next), not one per event
    deadline = time.monotonic() + 10
    while not DBTaskResult.objects.exists():
        assert time.monotonic() < deadline, "no drain was queued"
        time.sleep(0.02)
    time.sleep(0.2)  # a wake-up for the next second may still be on its way
    tasks = list(DBTaskResult.objects.values_list("task_path", flat=True))
    seconds = int(ended) - int(started) + 1
    assert 1 <= len(tasks) <= seconds + 1 < 8
    assert set(tasks) == {"siyu.wecom.inbox.drain_inbox_task"}


# --- refusals ----------------------------------------------------------------------------------------------


def test_a_bad_signature_is_refused_and_nothing_is_stored(server):
    corp, crypto = callback_corp()
    query, body = envelope(crypto, _event().encode())
    query["msg_signature"] = "0" * 40
    response = server.http.post(f"{URL}?{urlencode(query)}", content=body)
    assert response.status_code == 403
    assert not _rows(corp)


def test_an_event_for_another_corp_is_refused(server):
    # given an event encrypted with our corp's key but for another receiveid
    corp, crypto = callback_corp()
    foreign = CallbackCrypto(
        token=crypto.token, encoding_aes_key=crypto.encoding_aes_key, receive_id="wwOther"
    )
    response = server.post(foreign, _event(), corpid=A_CORPID)
    assert response.status_code == 403
    assert not _rows(corp)


def test_unknown_corps_and_corps_without_a_callback_configuration_are_404(server):
    callback_corp(corpid="wwNoConfig", token="", aes_key="")
    assert server.http.get(f"/wecom/callback/wwNobody/?{urlencode(A1)}&echostr=x").status_code == 404
    assert server.http.get(f"/wecom/callback/wwNoConfig/?{urlencode(A1)}&echostr=x").status_code == 404


def test_an_oversized_body_is_413_whether_announced_or_streamed(server, settings):
    # given a small limit
    settings.SIYU = {**settings.SIYU, "WECOM_CALLBACK_MAX_BYTES": 1024}
    server.app.max_bytes = 1024  # read at startup, as settings are
    corp, crypto = callback_corp()
    query, _body = envelope(crypto, _event().encode())
    url = f"{URL}?{urlencode(query)}"
    # when a body larger than the limit arrives with its length, or chunked without one
    announced = server.http.post(url, content=b"<xml>" + b" " * 2000 + b"</xml>")
    streamed = server.http.post(url, content=iter([b"<xml>", b" " * 800, b" " * 800, b"</xml>"]))
    # then both are refused and nothing is stored
    assert (announced.status_code, streamed.status_code) == (413, 413)
    assert not _rows(corp)


def test_entity_expansion_and_malformed_envelopes_are_400(server):
    corp, crypto = callback_corp()
    query, _body = envelope(crypto, _event().encode())
    url = f"{URL}?{urlencode(query)}"
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;">]>'
        b"<xml><Encrypt>&b;</Encrypt></xml>"
    )
    assert server.http.post(url, content=bomb).status_code == 400
    assert server.http.post(url, content=b"<xml><Encrypt>").status_code == 400
    assert server.http.post(url, content=b"<xml><NoEncrypt/></xml>").status_code == 400
    assert not _rows(corp)


def test_only_get_and_post_are_allowed_and_other_paths_are_404(server):
    callback_corp()
    refused = server.http.put(URL)
    assert (refused.status_code, refused.headers["allow"]) == (405, "GET, POST")
    assert server.http.get("/wecom/callback/").status_code == 404
    assert server.http.get("/login/").status_code == 404
    assert server.http.get(URL.rstrip("/")).status_code == 404  # the view's URL has its trailing slash
    health = server.http.get("/healthz")
    assert (health.status_code, health.content) == (200, b"")


# --- the configuration -------------------------------------------------------------------------------------


def test_a_changed_token_applies_within_the_cache_time(server, monkeypatch):
    # given a verified configuration, cached for 0.2 s
    monkeypatch.setattr(receiver, "CONFIG_CACHE_SECONDS", 0.2)
    callback_corp()
    url = f"{URL}?{urlencode(A1)}&echostr={A1_ECHOSTR_URLENCODED}"
    assert server.http.get(url).status_code == 200
    # when another process changes the Token (an UPDATE: no signal reaches the receiver)
    Corp.objects.filter(corpid=A_CORPID).update(token_encrypted=field_crypto.encrypt("NewToken1"))
    # then the receiver answers from its copy for at most the cache time, then with the new Token
    time.sleep(0.25)
    assert server.http.get(url).status_code == 403


def test_a_corp_saved_in_the_receivers_process_applies_at_once(server):
    # given a verified configuration
    corp, _crypto = callback_corp()
    url = f"{URL}?{urlencode(A1)}&echostr={A1_ECHOSTR_URLENCODED}"
    assert server.http.get(url).status_code == 200
    # when the corp is saved in the same process (the signal clears the cache, as for the view)
    corp.token_encrypted = field_crypto.encrypt("NewToken1")
    corp.save(update_fields=["token_encrypted"])
    # then the old signature no longer verifies
    assert server.http.get(url).status_code == 403


# --- the database down -------------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def database_down() -> Iterator[None]:
    """The database is unreachable for the receiver (as tests/wecom/test_faults.py makes it for the view).

    PostgreSQL: the receiver's sessions are terminated (as by a restart) and new connections are refused by a
    closed port. SQLite: every statement of the process fails as when the file cannot be opened.
    """
    if POSTGRES:
        shared = connections.settings["default"]
        saved = (shared["HOST"], shared["PORT"])
        shared["HOST"], shared["PORT"] = "127.0.0.1", _closed_port()
        with connection.cursor() as cursor:  # the test's own connection stays
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        try:
            yield
        finally:
            shared["HOST"], shared["PORT"] = saved
        return
    refused = OperationalError("unable to open database file")
    with mock.patch.object(CursorWrapper, "_execute_with_wrappers", side_effect=refused):
        yield


def test_database_down_answers_503_and_nothing_is_lost_after_recovery(server):
    # given a corp whose configuration the receiver has cached, and one callback stored while all is well
    corp, crypto = callback_corp()
    assert server.post(crypto, _event("wmBefore")).status_code == 200
    events = [_event(f"wmDuring{n}") for n in range(5)]
    # when the database goes down while callbacks arrive
    with database_down():
        down = [server.post(crypto, e).status_code for e in events]
    # then none is acknowledged: WeCom will deliver them again
    assert down == [503] * len(events)
    # when WeCom redelivers them once the database is back
    again = [server.post(crypto, e).status_code for e in events]
    # then each is stored, once
    assert again == [200] * len(events)
    assert sorted(r.dedupe_key for r in _rows(corp)) == sorted(
        dedupe_key(e.encode()) for e in [_event("wmBefore"), *events]
    )


@pytest.mark.skipif(not POSTGRES, reason="needs a lock that makes the receiver's writer wait")
def test_a_batch_that_does_not_commit_in_time_is_503_and_its_redelivery_is_stored(server, settings):
    # given a receiver that waits at most half a second for a commit
    server.app.store.timeout = 0.5  # type: ignore[union-attr]
    corp, crypto = callback_corp()
    assert server.post(crypto, _event("wmWarm")).status_code == 200  # connected
    # when a lock holds its writer back past that
    with connection.cursor() as cursor:
        cursor.execute("BEGIN")
        cursor.execute(f"LOCK TABLE {InboxEvent._meta.db_table} IN EXCLUSIVE MODE")
        try:
            held = server.post(crypto, _event("wmHeld"))
        finally:
            cursor.execute("ROLLBACK")
    # then the callback is not acknowledged, and the abandoned batch did not commit behind its back
    assert held.status_code == 503
    assert [r.ordering_key for r in _rows(corp)] == ["contact:wmWarm"]
    # and WeCom's redelivery is stored, once
    assert server.post(crypto, _event("wmHeld")).status_code == 200
    assert [r.ordering_key for r in _rows(corp)] == ["contact:wmWarm", "contact:wmHeld"]


@pytest.mark.skipif(not POSTGRES, reason="the receiver's own PostgreSQL session")
def test_the_receiver_names_its_database_session(server):
    _corp, crypto = callback_corp()
    assert server.post(crypto, _event()).status_code == 200
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = %s",
            [APPLICATION_NAME],
        )
        assert cursor.fetchone()[0] == 1


def _sessions() -> Any:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


@pytest.mark.skipif(not POSTGRES, reason="PostgreSQL sessions")
def test_stopping_the_receiver_closes_its_database_sessions():
    running = RunningReceiver().start()
    try:
        # given a receiver that stored a callback and looked up a corp: its own session and a pool thread's
        _corp, crypto = callback_corp()
        assert running.post(crypto, _event()).status_code == 200
        deadline = time.monotonic() + 10
        while _sessions() < 2:
            assert time.monotonic() < deadline, "the receiver has fewer sessions than expected"
            time.sleep(0.05)
    finally:
        # when it stops
        running.stop()
    # then it leaves no session behind
    deadline = time.monotonic() + 10
    while _sessions():
        assert time.monotonic() < deadline, "a receiver session outlived it"
        time.sleep(0.05)
