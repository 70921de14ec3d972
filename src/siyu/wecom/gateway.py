"""The gateway: how one call reaches WeCom.

For each call: wait for a limiter slot at the caller's priority (``limits.py``), add the access token
(``tokens.py``), send it with httpx, and read ``errcode``:

- 40014/42001 (token refused): fetch a new token and replay the call once.
- 40001: a configuration error; the cached token is dropped and the error raised, never retried here.
- -1, 45033, 41063/41096, network failures: retried up to ``WECOM_BUSY_RETRIES`` times with exponential
  backoff (tenacity). A write that is not idempotent is not retried when its request may have reached WeCom
  (a timeout after sending): sending it again could create a second mass message.
- 45009: opens the API's penalty window for every process; the call is tried once more if the window closes
  within the caller's ``max_wait``, otherwise ``ApiFrequencyLimited`` carries ``retry_at``.

A gateway with a ``deadline`` (a welcome message's code lasts 20 s) never waits for an answer, or retries,
beyond it: each request's timeout is cut to the time left, and no retry starts after it.

Nothing here logs a token, a secret or a request body: URLs carry the token, so only API paths and errcodes
are logged (httpx's own request log is silenced in settings).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from django.conf import settings
from tenacity import Retrying, retry_if_exception, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_exponential_jitter

from siyu.wecom import errors, tokens
from siyu.wecom.limits import DEFAULT_MAX_WAIT, Limiter, Priority, siyu_setting

if TYPE_CHECKING:
    from siyu.corps.models import Corp

log = logging.getLogger(__name__)

TOKEN_REFUSED = (40014, 42001)
# Backoff between retries of a busy answer: 0.5 s, 1 s, 2 s … capped at 8 s, with jitter so that processes
# retrying the same busy API do not come back in step.
BACKOFF = wait_exponential_jitter(multiplier=0.5, max=8.0, jitter=0.5)

_http: httpx.Client | None = None
_http_guard = threading.Lock()


def http_client() -> httpx.Client:
    """The process's HTTP client: one connection pool shared by every thread."""
    global _http
    with _http_guard:
        if _http is None:
            timeout = float(siyu_setting("WECOM_HTTP_TIMEOUT"))
            _http = httpx.Client(
                timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
                limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
                headers={"User-Agent": "siyu"},
            )
        return _http


def api_url(api: str) -> str:
    """The URL of ``api`` under ``settings.WECOM_API_BASE`` (WeCom, or the simulator)."""
    return f"{settings.WECOM_API_BASE.rstrip('/')}/{api.lstrip('/')}"


def _errcode(data: dict[str, Any]) -> int:
    try:
        return int(data.get("errcode") or 0)
    except (TypeError, ValueError):
        return -1


def _read(api: str, send: Callable[[], httpx.Response]) -> dict[str, Any]:
    """Send a request and parse WeCom's JSON answer; transport failures become ``WeComUnavailable``."""
    try:
        response = send()
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise errors.WeComUnavailable(api, type(exc).__name__, sent=False) from None
    except httpx.HTTPError as exc:
        raise errors.WeComUnavailable(api, type(exc).__name__, sent=True) from None
    if response.status_code != 200:
        raise errors.WeComUnavailable(api, f"HTTP {response.status_code}", sent=True)
    try:
        data = response.json()
    except ValueError:
        raise errors.WeComUnavailable(api, "the answer is not JSON", sent=True) from None
    if not isinstance(data, dict):
        raise errors.WeComUnavailable(api, "the answer is not a JSON object", sent=True)
    return data


def _busy_retries() -> int:
    return int(siyu_setting("WECOM_BUSY_RETRIES"))


def fetch_token(corpid: str, secret: str) -> tuple[str, int]:
    """Call ``gettoken``: returns (access_token, expires_in). Retried with the call that needed it."""
    data = _read(
        "gettoken",
        lambda: http_client().get(api_url("gettoken"), params={"corpid": corpid, "corpsecret": secret}),
    )
    code = _errcode(data)
    if code:
        log.warning("WeCom gettoken failed: errcode %d", code)
        raise errors.for_code(code, str(data.get("errmsg", "")), "gettoken")
    return str(data["access_token"]), int(data.get("expires_in") or 7200)


@dataclass(frozen=True)
class Upload:
    """A file sent to a media API (``media/upload``, ``media/upload_attachment``)."""

    filename: str
    content: bytes
    content_type: str = "application/octet-stream"


class Gateway:
    """Sends one corp's API calls at one priority (the client's transport)."""

    def __init__(
        self,
        corp: Corp,
        *,
        priority: Priority = Priority.EVENT,
        max_wait: float | None = None,
        limiter: Limiter | None = None,
        sleep: Callable[[float], None] = time.sleep,
        deadline: float | None = None,
    ) -> None:
        self.corp_id: int = corp.pk
        self.corpid: str = corp.corpid
        self._corp = corp
        self._secret: str | None = None
        self.priority = priority
        self.max_wait = DEFAULT_MAX_WAIT[priority] if max_wait is None else max_wait
        self.limiter = limiter or Limiter(sleep=sleep)
        self.sleep = sleep
        self.deadline = deadline  # time.monotonic() after which nothing more is tried

    def _time_left(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    @property
    def secret(self) -> str:
        if self._secret is None:
            self._secret = self._corp.secret
        return self._secret

    def call(
        self,
        api: str,
        *,
        method: str,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        idempotent: bool = True,
        upload: Upload | None = None,
    ) -> dict[str, Any]:
        """Send one call and return WeCom's answer (errcode 0), or raise a ``WeComError``/``RateLimited``.

        ``upload`` sends a file as the multipart form field ``media`` instead of a JSON body (media APIs)."""

        def retryable(exc: BaseException) -> bool:
            left = self._time_left()
            if left is not None and left <= 0:
                return False
            if isinstance(exc, errors.WeComUnavailable):
                return idempotent or not exc.sent
            return isinstance(
                exc, errors.SystemBusy | errors.ApiConcurrencyLimited | errors.DistributionInProgress
            )

        busy = Retrying(
            retry=retry_if_exception(retryable),
            stop=stop_after_attempt(1 + _busy_retries()),
            wait=BACKOFF,
            sleep=self.sleep,
            reraise=True,
        )
        # After a 45009 the next attempt waits in the limiter for the penalty window (or raises RateLimited
        # when that is longer than max_wait): one more try, no extra pause here.
        throttled = Retrying(
            retry=retry_if_exception_type(errors.ApiFrequencyLimited),
            stop=stop_after_attempt(2),
            sleep=self.sleep,
            reraise=True,
        )
        return throttled(lambda: busy(self._attempt, api, method, params, body, upload))

    def _token(self, stale: str | None = None) -> str:
        return tokens.access_token(
            corp_id=self.corp_id,
            corpid=self.corpid,
            secret=self.secret,
            fetch=fetch_token,
            stale=stale,
        )

    def _send(
        self,
        api: str,
        method: str,
        params: dict[str, Any] | None,
        body: dict[str, Any] | None,
        token: str,
        upload: Upload | None = None,
    ) -> dict[str, Any]:
        query = {**(params or {}), "access_token": token}
        url = api_url(api)
        left = self._time_left()
        if left is not None:
            if left <= 0:
                raise errors.WeComUnavailable(api, "no time left before the deadline", sent=False)
            # httpx's default timeout unless the deadline is nearer.
            timeout: Any = httpx.Timeout(min(left, float(siyu_setting("WECOM_HTTP_TIMEOUT"))))
        else:
            timeout = httpx.USE_CLIENT_DEFAULT
        if method == "GET":
            return _read(api, lambda: http_client().get(url, params=query, timeout=timeout))
        if upload is not None:
            files = {"media": (upload.filename, upload.content, upload.content_type)}
            return _read(api, lambda: http_client().post(url, params=query, files=files, timeout=timeout))
        content = json.dumps(body or {}, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json; charset=utf-8"}
        return _read(
            api,
            lambda: http_client().post(url, params=query, content=content, headers=headers, timeout=timeout),
        )

    def _attempt(
        self,
        api: str,
        method: str,
        params: dict[str, Any] | None,
        body: dict[str, Any] | None,
        upload: Upload | None = None,
    ) -> dict[str, Any]:
        max_wait = self.max_wait
        left = self._time_left()
        if left is not None:
            max_wait = max(0.0, min(max_wait, left))
        with self.limiter.slot(corp_id=self.corp_id, api=api, priority=self.priority, max_wait=max_wait):
            token = self._token()
            data = self._send(api, method, params, body, token, upload)
            code = _errcode(data)
            if code in TOKEN_REFUSED:
                log.info("WeCom %s refused the access token (errcode %d): fetching a new one", api, code)
                token = self._token(stale=token)
                data = self._send(api, method, params, body, token, upload)
                code = _errcode(data)
            if code == 0:
                return data
            exc = errors.for_code(code, str(data.get("errmsg", "")), api)
            if isinstance(exc, errors.ApiFrequencyLimited):
                exc.retry_at = self.limiter.penalize(corp_id=self.corp_id, api=api)
            elif isinstance(exc, errors.ApiConcurrencyLimited):
                self.limiter.lower_concurrency(corp_id=self.corp_id, api=api)
            elif isinstance(exc, errors.InvalidCredential):
                tokens.invalidate(corp_id=self.corp_id, secret=self.secret, token=token)
            log.warning("WeCom %s failed: errcode %d", api, code)
            raise exc
