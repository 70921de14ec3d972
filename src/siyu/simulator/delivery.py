"""Encrypted callback delivery as WeCom does it (§2.4, §2.5): sign, POST, wait ≤ 5 s, redeliver on failure.

Deliveries go through a bounded queue to a pool of sender threads, so a slow receiver slows delivery but
never the API. A delivery is retried on timeout or connection error (and, if configured, on a non-200
answer) up to ``callback_retries`` more times with the very same request.
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import httpx

from siyu.simulator import events
from siyu.simulator.clock import SimClock
from siyu.simulator.config import SimulatorConfig
from siyu.wecom.crypto import CallbackCrypto


@dataclass
class Delivery:
    """One callback and what became of it."""

    id: int
    label: str
    plaintext: str
    body: bytes
    params: dict[str, str]
    created: float
    status: str = "queued"  # queued, sending, delivered, failed, dropped
    attempts: int = 0
    errors: list[str] = field(default_factory=list)
    http_status: int | None = None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "status": self.status,
            "attempts": self.attempts,
            "errors": self.errors,
            "http_status": self.http_status,
            "created": self.created,
        }


class CallbackSender:
    """A pool of threads POSTing encrypted callbacks to the configured URL."""

    def __init__(self, config: SimulatorConfig, clock: SimClock):
        self.config = config
        self.clock = clock
        self._queue: queue.Queue[Delivery | None] = queue.Queue(maxsize=config.callback_queue_size)
        self._ids = itertools.count(1)
        self._rng = random.Random()  # noqa: S311 - nonces need not be secret (WeCom's are plain digits)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._idle = threading.Condition()
        self._pending = 0
        self.log: deque[Delivery] = deque(maxlen=10000)
        self.counts = {"queued": 0, "delivered": 0, "failed": 0, "dropped": 0, "attempts": 0}
        self._counts_lock = threading.Lock()
        self._client: httpx.Client | None = None
        self._client_lock = threading.Lock()

    def _count(self, name: str) -> None:
        with self._counts_lock:
            self.counts[name] += 1

    # --- life cycle ------------------------------------------------------------------------------------

    def start(self) -> None:
        for index in range(max(1, self.config.callback_workers)):
            thread = threading.Thread(target=self._run, name=f"sim-callback-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for _ in self._threads:
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(None)
        for thread in self._threads:
            thread.join(timeout=self.config.callback_timeout + 1)
        self._threads.clear()
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def crypto(self) -> CallbackCrypto:
        return CallbackCrypto(self.config.token, self.config.aes_key, self.config.corpid)

    # --- sending ---------------------------------------------------------------------------------------

    def send(self, plaintext: str, label: str) -> Delivery | None:
        """Encrypt and queue one callback message; ``None`` when no callback URL is configured."""
        if not self.config.callback_url:
            return None
        crypto = self.crypto()
        encrypted = crypto.encrypt(plaintext.encode())
        timestamp = str(self.clock.now())
        nonce = str(self._rng.randint(100000000, 9999999999))
        params = {
            "msg_signature": crypto.sign(timestamp, nonce, encrypted),
            "timestamp": timestamp,
            "nonce": nonce,
        }
        body = events.envelope(self.config.corpid, encrypted, self.config.agentid).encode()
        delivery = Delivery(
            id=next(self._ids),
            label=label,
            plaintext=plaintext,
            body=body,
            params=params,
            created=time.time(),
        )
        self.log.append(delivery)
        with self._idle:
            self._pending += 1
        try:
            # Back-pressure for bursts; a queue still full after 5 s means the receiver is far behind.
            self._queue.put(delivery, timeout=5)
            self._count("queued")
        except queue.Full:
            delivery.status = "dropped"
            self._count("dropped")
            self._done()
        return delivery

    def _http(self) -> httpx.Client:
        # One pooled client for all sender threads, made on first use (an SSL context is not free).
        with self._client_lock:
            if self._client is None:
                workers = max(1, self.config.callback_workers)
                self._client = httpx.Client(
                    trust_env=False,
                    limits=httpx.Limits(max_connections=workers, max_keepalive_connections=workers),
                )
            return self._client

    def _run(self) -> None:
        while not self._stop.is_set():
            delivery = self._queue.get()
            if delivery is None:
                return
            try:
                self._deliver(self._http(), delivery)
            finally:
                self._done()

    def _deliver(self, client: httpx.Client, delivery: Delivery) -> None:
        delivery.status = "sending"
        retries = max(0, self.config.callback_retries)
        for attempt in range(retries + 1):
            if attempt and self._stop.wait(self.config.callback_retry_interval):
                break
            url = self.config.callback_url
            if not url:
                break
            delivery.attempts += 1
            self._count("attempts")
            retry = True
            try:
                response = client.post(
                    url,
                    params=delivery.params,
                    content=delivery.body,
                    headers={
                        "Content-Type": "text/xml; charset=utf-8",
                        "User-Agent": "Mozilla/5.0 (WeCom sim)",
                    },
                    timeout=self.config.callback_timeout,
                )
                delivery.http_status = response.status_code
                if response.status_code == 200:
                    delivery.status = "delivered"
                    self._count("delivered")
                    return
                delivery.errors.append(f"HTTP {response.status_code}")
                retry = self.config.callback_retry_on_non_200
            except httpx.TimeoutException:
                delivery.errors.append("timeout")
            except httpx.TransportError as exc:
                delivery.errors.append(f"connection error: {type(exc).__name__}")
            if not retry:
                break
        delivery.status = "failed"
        self._count("failed")

    def _done(self) -> None:
        with self._idle:
            self._pending -= 1
            if self._pending <= 0:
                self._idle.notify_all()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until every queued callback is delivered or given up (tests)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    @property
    def pending(self) -> int:
        return self._pending

    # --- URL verification ------------------------------------------------------------------------------

    def verify_url(self) -> dict[str, Any]:
        """Do WeCom's GET check of the callback URL (§2.3): the receiver must echo the decrypted echostr."""
        url = self.config.callback_url
        if not url:
            return {"ok": False, "error": "no callback URL configured"}
        crypto = self.crypto()
        echo = str(self._rng.randint(10**17, 10**19))
        echostr = crypto.encrypt(echo.encode())
        timestamp = str(self.clock.now())
        nonce = str(self._rng.randint(100000000, 9999999999))
        params = {
            "msg_signature": crypto.sign(timestamp, nonce, echostr),
            "timestamp": timestamp,
            "nonce": nonce,
            "echostr": echostr,
        }
        try:
            response = httpx.get(url, params=params, timeout=self.config.callback_timeout, trust_env=False)
        except httpx.HTTPError as exc:
            return {"ok": False, "error": f"{type(exc).__name__}"}
        ok = response.status_code == 200 and response.content == echo.encode()
        return {
            "ok": ok,
            "http_status": response.status_code,
            "error": None if ok else "reply is not the echo",
        }
