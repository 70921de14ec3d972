"""Helpers for tests: a simulator on a free port in this process, and a tiny callback receiver.

    with running_simulator(customers=50) as sim:
        client = WeComClient(api_base=sim.api_base, corpid=sim.config.corpid, secret=sim.config.secret)
        sim.actions.scan_contact_way(state="web-home")

A pytest fixture is three lines on top (see tests/simulator/conftest.py).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from defusedxml import ElementTree

from siyu.simulator.app import Simulator
from siyu.simulator.config import SimulatorConfig
from siyu.wecom.crypto import CallbackCrypto

# Small and fast by default: tests ask for more when they need it.
TEST_DEFAULTS: dict[str, Any] = {
    "host": "127.0.0.1",
    "port": 0,
    "staff": 6,
    "customers": 60,
    "groups": 4,
    "callback_timeout": 2.0,
    "callback_retry_interval": 0.05,
    "callback_workers": 4,
    "msg_confirm_delay": 3600.0,  # tests confirm explicitly (actions.confirm_msg or moving the clock)
    "moment_job_delay": 0.0,
}


@contextlib.contextmanager
def running_simulator(config: SimulatorConfig | None = None, **overrides: Any) -> Iterator[Simulator]:
    """A started simulator on a free port (unless told otherwise); stopped, sockets closed, after."""
    values = {**TEST_DEFAULTS, **overrides} if config is None else overrides
    sim = Simulator(config, **values)
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


@dataclass
class Received:
    """One request a CallbackReceiver got."""

    method: str
    path: str
    query: dict[str, str]
    body: bytes
    at: float


@dataclass
class CallbackReceiver:
    """A minimal HTTP endpoint that records every request and answers as told.

    ``behaviour`` is a list consumed one per request (the last one repeats): ``"ok"`` (200, empty),
    ``"slow"`` (sleep ``slow_seconds`` then 200), ``"500"`` (HTTP 500), ``"drop"`` (close unanswered),
    or ``"echo"`` (GET URL check: answer the ``reply`` callable's result).
    """

    behaviour: list[str] = field(default_factory=lambda: ["ok"])
    slow_seconds: float = 3.0
    reply: Any = None
    received: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/wecom/callback/"

    def _next(self) -> str:
        with self._lock:
            if len(self.behaviour) > 1:
                return self.behaviour.pop(0)
            return self.behaviour[0]

    def start(self) -> CallbackReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _do(self, method: str) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                record = Received(method, parts.path, dict(parse_qsl(parts.query)), body, time.monotonic())
                with receiver._lock:
                    receiver.received.append(record)
                what = receiver._next()
                if what == "drop":
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if what == "slow":
                    receiver._stop.wait(receiver.slow_seconds)
                status, payload = (500, b"error") if what == "500" else (200, b"")
                if what == "echo" and receiver.reply is not None:
                    payload = receiver.reply(record)
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                with contextlib.suppress(OSError):
                    self.wfile.write(payload)

            def do_GET(self) -> None:
                self._do("GET")

            def do_POST(self) -> None:
                self._do("POST")

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def posts(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.method == "POST"]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Wait until ``count`` POSTs arrived; returns them (fewer on timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            posts = self.posts()
            if len(posts) >= count:
                return posts
            time.sleep(0.01)
        return self.posts()

    def __enter__(self) -> CallbackReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def open_callback(record: Received, crypto: CallbackCrypto) -> str:
    """Verify and decrypt one received callback POST; returns the message XML."""
    envelope = ElementTree.fromstring(record.body)
    encrypted = envelope.findtext("Encrypt") or ""
    query = record.query
    return crypto.verify_and_decrypt(
        query["msg_signature"], query["timestamp"], query["nonce"], encrypted
    ).decode()


def event_fields(xml: str) -> dict[str, Any]:
    """A message's elements by name: text, or the list of ``<Item>`` texts for list elements."""
    root = ElementTree.fromstring(xml)
    fields: dict[str, Any] = {}
    for child in root:
        items = list(child)
        fields[child.tag] = [i.text or "" for i in items] if items else (child.text or "")
    return fields


def sim_crypto(sim: Simulator) -> CallbackCrypto:
    """The callback cipher a receiver configured for ``sim`` would use."""
    return CallbackCrypto(sim.config.token, sim.config.aes_key, sim.config.corpid)
