"""The asynchronous callback receiver: WeCom's callback URL as a bare ASGI application (``siyu receiver``).

Why a process of its own: a callback is ~60 µs of work (envelope, signature, AES, message; ``receiver``) and
one row of a group commit, but a synchronous, threaded WSGI server spends ~300 µs of CPU per request around
it, and its threads need a hand-off to share commits. Here one event loop (uvicorn with uvloop and httptools:
~20 µs per request) verifies, decrypts and queues the row for ``asynccommit``, which commits every row that
arrived together in one transaction on one asynchronous PostgreSQL connection; each callback is acknowledged
once its batch has committed. bench/callbacks.py measures both fronts.

It answers exactly as ``views.callback`` does, from the same code (``receiver``): GET verifies the URL, POST
verifies, decrypts and stores (size limit, safe XML), 200 with an empty body once stored, 403/400/404/413 for
what is not WeCom's, 503 when it cannot store (WeCom delivers again). ``/healthz`` answers an empty 200.

The corp's configuration comes from the same per-process cache as the view's (one query a second per corp at
most); queries through Django's ORM run on a small thread pool, off the event loop. So do wake-ups of the
inbox worker: at most one drain task per corp and second, planned on the loop. On a database other than
PostgreSQL (the embedded SQLite mode) rows are stored by the view's own code on that thread pool instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qsl

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection, connections

from siyu.wecom import groupcommit
from siyu.wecom.asynccommit import AsyncGroupCommitter
from siyu.wecom.inbox import Stored, plan_wake_up, send_wake_up
from siyu.wecom.receiver import (
    PLAIN_TEXT,
    TOO_LARGE,
    CallbackConfig,
    cached_config,
    decode_event,
    load_config,
    log_stored,
    refusal_for,
    store_event,
    verify_url,
)

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
T = TypeVar("T")

# The view's URL (siyu.wecom.urls: callback/<str:corpid>/ under /wecom/): a corpid is anything but a slash.
CALLBACK_PATH = re.compile(r"/wecom/callback/([^/]+)/")
HEALTH_PATH = "/healthz"
# Threads for Django ORM work on PostgreSQL: configuration lookups (one a second per corp) and wake-ups (two a
# second per corp at most), so that a slow one does not hold the others up. Elsewhere one: SQLite takes one
# writer at a time, and that thread stores the rows too.
ORM_THREADS = 4


class InboxStore(Protocol):
    """Where the receiver's callbacks are stored: returns once the row is durable, raises a DatabaseError
    when it is not."""

    async def store(self, *, corp_id: int, plaintext: bytes) -> Stored: ...

    async def stop(self) -> None: ...


def _with_connection(fn: Callable[..., T], *args: Any) -> T:
    """Run ORM work on a pool thread as a request would: a connection that failed or outlived its age is
    replaced first, and one that just failed is closed so the next call connects again."""
    close_old_connections()
    try:
        return fn(*args)
    except DatabaseError:
        connection.close()
        raise


class ThreadedStore:
    """Off PostgreSQL: the view's own storing (``receiver.store_event``) on the pool thread."""

    def __init__(self, executor: ThreadPoolExecutor) -> None:
        self.executor = executor

    async def store(self, *, corp_id: int, plaintext: bytes) -> Stored:
        loop = asyncio.get_running_loop()
        store = functools.partial(store_event, corp_id=corp_id, plaintext=plaintext)
        return await loop.run_in_executor(self.executor, _with_connection, store)

    async def stop(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self.executor, groupcommit.shutdown)


class _Slots:
    """Wake-up slots taken in this process (``inbox.plan_wake_up``), forgotten after a few seconds."""

    def __init__(self) -> None:
        self._taken: dict[str, float] = {}

    def claim(self, key: str) -> bool:
        moment = time.monotonic()
        if len(self._taken) > 1000:  # slots name a second: old ones are useless
            self._taken = {k: t for k, t in self._taken.items() if t > moment}
        if self._taken.get(key, 0.0) > moment:
            return False
        self._taken[key] = moment + 5.0
        return True


class ReceiverApp:
    """The ASGI application: the callback URL, a health check, 404 for anything else."""

    def __init__(self) -> None:
        self.executor: ThreadPoolExecutor | None = None
        self.threads = 1
        self.store: InboxStore | None = None
        self._loading: dict[str, asyncio.Future[CallbackConfig]] = {}
        self._slots = _Slots()
        self.max_bytes = 0

    # --- lifespan ------------------------------------------------------------------------------------------

    async def startup(self) -> None:
        """Make the thread pool and the store (no connection yet: the first batch connects, so the receiver
        starts, and answers 503, while the database is down)."""
        self.max_bytes = int(str(settings.SIYU["WECOM_CALLBACK_MAX_BYTES"]))
        postgres = connection.vendor == "postgresql"
        self.threads = ORM_THREADS if postgres else 1
        self.executor = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="receiver-orm")
        if postgres:
            self.store = AsyncGroupCommitter(
                max_rows=int(str(settings.SIYU["WECOM_GROUP_COMMIT_MAX_ROWS"])),
                timeout=float(str(settings.SIYU["WECOM_CALLBACK_STORE_SECONDS"])),
            )
        else:
            self.store = ThreadedStore(self.executor)

    async def shutdown(self) -> None:
        """Commit what waits, close the connection, let queued wake-ups finish."""
        if self.store is not None:
            await self.store.stop()
        if self.executor is not None:
            executor, self.executor = self.executor, None
            await asyncio.get_running_loop().run_in_executor(None, _close_and_join, executor, self.threads)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    logger.exception("wecom receiver: startup failed")
                    await send({"type": "lifespan.startup.failed", "message": type(exc).__name__})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # --- requests ------------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        if path == HEALTH_PATH:
            await _answer(send, 200, b"")
            return
        match = CALLBACK_PATH.fullmatch(path)
        if match is None:
            await _answer(send, 404, b"not found", PLAIN_TEXT)
            return
        method: str = scope["method"]
        if method not in ("GET", "POST"):
            await _answer(send, 405, b"", extra=[(b"allow", b"GET, POST")])
            return
        if self.store is None:
            await self.startup()  # a server run without the lifespan protocol
        corpid = match.group(1)
        # As Django's QueryDict: blank values kept, the last of a repeated name wins.
        params = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
        signature = {
            "msg_signature": params.get("msg_signature", ""),
            "timestamp": params.get("timestamp", ""),
            "nonce": params.get("nonce", ""),
        }
        body = b""
        if method == "POST":
            try:
                read = await _read_body(scope, receive, self.max_bytes)
            except _Disconnected:
                return  # nobody to answer; WeCom delivers again
            if read is None:
                await _answer(send, TOO_LARGE.status, TOO_LARGE.text.encode(), PLAIN_TEXT)
                return
            body = read
        try:
            config = cached_config(corpid) or await self._load_config(corpid)
            if method == "GET":
                echo = verify_url(config, echostr=params.get("echostr", ""), **signature)
                # The decrypted echostr exactly: no quotes, no BOM, no newline (wecom-api.md §2.3).
                await _answer(send, 200, echo, "text/plain")
                return
            plaintext = decode_event(config, body=body, **signature)
            assert self.store is not None
            stored = await self.store.store(corp_id=config.corp_id, plaintext=plaintext)
        except Exception as exc:
            refusal = refusal_for(exc, corpid)
            if refusal is None:
                logger.exception("wecom callback for %s failed", corpid)
                await _answer(send, 500, b"internal error", PLAIN_TEXT)
                return
            await _answer(send, refusal.status, refusal.text.encode(), PLAIN_TEXT)
            return
        log_stored(config.corp_id, stored)
        if stored.pending:  # new, or an identical message that makes the stored row worked again
            self._wake(config.corp_id)
        await _answer(send, 200, b"")

    async def _load_config(self, corpid: str) -> CallbackConfig:
        """Read a corp's configuration on a pool thread; callbacks of one corp arriving meanwhile share the
        query."""
        pending = self._loading.get(corpid)
        if pending is None:
            loop = asyncio.get_running_loop()
            pending = asyncio.ensure_future(
                loop.run_in_executor(self.executor, _with_connection, load_config, corpid)
            )
            self._loading[corpid] = pending
            pending.add_done_callback(lambda _done: self._loading.pop(corpid, None))
        return await asyncio.shield(pending)

    def _wake(self, corp_id: int) -> None:
        wake_up = plan_wake_up(corp_id, self._slots.claim)
        if wake_up is not None and self.executor is not None:
            future = self.executor.submit(_with_connection, send_wake_up, wake_up)
            future.add_done_callback(_log_failure)


def _log_failure(future: Any) -> None:
    if future.exception() is not None:  # send_wake_up logs its own; this is the connection's
        logger.error("wecom receiver: a wake-up failed: %s", type(future.exception()).__name__)


def _close_and_join(executor: ThreadPoolExecutor, threads: int) -> None:
    """Close every pool thread's database connections, then end the threads.

    Each closing task waits at a barrier until all have started, so each runs on a thread of its own and
    every thread (Django keeps a connection per thread) closes its connections.
    """
    barrier = threading.Barrier(threads)

    def close_here() -> None:
        with contextlib.suppress(threading.BrokenBarrierError):  # a thread still busy: close what is here
            barrier.wait(timeout=10)
        connections.close_all()

    for _ in executor.map(lambda _n: close_here(), range(threads)):
        pass
    executor.shutdown(wait=True)


class _Disconnected(Exception):
    """The client went away before its body arrived."""


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes | None:
    """The request body, or None when it is larger than ``limit`` (read no further than that)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            if value.isdigit() and int(value) > limit:
                return None
            break
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _answer(
    send: Send,
    status: int,
    body: bytes,
    content_type: str | None = None,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [(b"content-length", str(len(body)).encode())]
    if content_type:
        headers.append((b"content-type", content_type.encode()))
    if extra:
        headers += extra
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def run(*, host: str, port: int, workers: int) -> None:
    """Serve the receiver with uvicorn (uvloop, httptools) until SIGINT/SIGTERM: requests in flight are
    answered, rows waiting are committed, then each worker process exits."""
    import uvicorn

    uvicorn.run(
        "siyu.config.receiver_asgi:application",
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,  # a line per callback costs more CPU than the callback; the inbox is the record
        log_config=None,  # Django's LOGGING, as every other process
        server_header=False,
        # Nothing here reads the client's address: no X-Forwarded-For rewriting (a middleware per request).
        proxy_headers=False,
        # In-flight callbacks wait at most WECOM_CALLBACK_STORE_SECONDS for their commit.
        timeout_graceful_shutdown=10,
    )


__all__ = ["CALLBACK_PATH", "ReceiverApp", "ThreadedStore", "run"]
