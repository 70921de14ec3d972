"""``siyu receiver`` as production runs it: its own processes (uvicorn, two workers) on the test database.

PostgreSQL only: the processes need the test database on a server.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from urllib.parse import urlencode

import httpx
import pytest
from django.db import connection

from siyu.core import crypto as field_crypto
from siyu.corps.models import Corp
from siyu.wecom.asynccommit import APPLICATION_NAME
from siyu.wecom.crypto import CallbackCrypto
from siyu.wecom.inbox import dedupe_key
from siyu.wecom.models import InboxEvent
from tests.wecom.inbound_support import A_CORPID, callback_corp, envelope, event_xml

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="other processes need the test database"),
]

START_SECONDS = 60.0  # each worker process starts Django; CI machines can be slow


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _database_url() -> str:
    db = connection.settings_dict
    host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    return f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{host}/{db['NAME']}"


@pytest.fixture
def receiver_process() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": _database_url(), "DJANGO_SETTINGS_MODULE": "siyu.config.settings"}
    process = subprocess.Popen(
        [sys.executable, "-m", "siyu.config.cli", "receiver", "--port", str(port), "--workers", "2"], env=env
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_SECONDS
    while True:
        assert process.poll() is None, "siyu receiver exited"
        assert time.monotonic() < deadline, "siyu receiver did not answer /healthz"
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield process, url
    if process.poll() is None:
        process.kill()
        process.wait(timeout=10)


def _post(url: str, crypto: CallbackCrypto, plaintext: bytes) -> int:
    query, body = envelope(crypto, plaintext)
    response = httpx.post(
        f"{url}/wecom/callback/{crypto.receive_id}/?{urlencode(query)}", content=body, timeout=30
    )
    return response.status_code


def _event(n: int) -> bytes:
    return event_xml(
        "change_external_contact",
        "add_external_contact",
        create_time=1700000000,
        ExternalUserID=f"wmCmd{n:04d}",
    ).encode()


def _sessions() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = %s",
            [APPLICATION_NAME],
        )
        return int(cursor.fetchone()[0])


def test_the_receiver_command_stores_callbacks_once_applies_changes_and_stops_cleanly(receiver_process):
    process, url = receiver_process
    corp, crypto = callback_corp()
    # given 60 distinct callbacks and redeliveries of 15 of them, sent at once to both worker processes
    events = [_event(n) for n in range(60)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(lambda p: _post(url, crypto, p), events + events[:15]))
    # then every delivery is acknowledged and each callback is stored exactly once
    assert statuses == [200] * 75
    assert sorted(InboxEvent.objects.for_corp(corp).values_list("dedupe_key", flat=True)) == sorted(
        dedupe_key(e) for e in events
    )

    # when the corp's Token is changed (another process: the receiver only sees it through its cache)
    Corp.objects.filter(corpid=A_CORPID).update(token_encrypted=field_crypto.encrypt("NewToken1"))
    renewed = CallbackCrypto(token="NewToken1", encoding_aes_key=crypto.encoding_aes_key, receive_id=A_CORPID)
    # then within the cache time (a second) both processes verify with the new Token, and not the old one
    deadline = time.monotonic() + 10
    while _post(url, renewed, _event(100)) != 200 or _post(url, renewed, _event(101)) != 200:
        assert time.monotonic() < deadline, "the new Token never applied"
        time.sleep(0.2)
    time.sleep(1.1)  # every process's copy is now at most a second old
    assert [_post(url, crypto, _event(102 + n)) for n in range(4)] == [403] * 4

    # when it is asked to stop
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    # then its database sessions are closed
    deadline = time.monotonic() + 10
    while _sessions():
        assert time.monotonic() < deadline, "a receiver session outlived the process"
        time.sleep(0.05)
