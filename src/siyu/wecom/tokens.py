"""Access tokens: cached per corp and app secret, refreshed early, one refresh at a time everywhere.

Three layers: a per-process cache (no database read for most calls), the ``AccessToken`` row (shared by
every process) and ``gettoken``. Within a process a lock per corp+secret lets one thread refresh while the
others wait for its result; across processes the row's refresh lease (claimed with an atomic conditional
UPDATE, which works the same on PostgreSQL and SQLite) lets one process call ``gettoken`` while the others
poll the row.

A token counts as expired ``EARLY_REFRESH`` before WeCom's ``expires_in`` runs out (wecom-api.md §1). A
caller whose token WeCom refused (40014/42001) passes it as ``stale``: if another thread or process already
replaced it the new one is used, otherwise it is fetched again — so a burst of refusals costs one
``gettoken``.

Configuration errors from ``gettoken`` (40001 invalid secret, 40013 invalid corpid) are remembered on the
row for ``CONFIG_ERROR_BACKOFF`` and raised again without calling WeCom: repeated wrong secrets get the
server's IP blocked for an hour. Changing the corp's secret starts afresh (the row is keyed by the secret's
digest).
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q

from siyu.core import crypto
from siyu.core.clock import now
from siyu.wecom import errors
from siyu.wecom.models import AccessToken

# Treat a token as expired this long before WeCom says it expires (wecom-api.md §1; wechatpy does the same).
EARLY_REFRESH = timedelta(seconds=60)
# How long one process may hold the refresh lease; longer than a gettoken call with its retries.
REFRESH_LEASE = timedelta(seconds=30)
# How long a configuration error from gettoken is answered from memory before WeCom is asked again.
CONFIG_ERROR_BACKOFF = timedelta(minutes=5)
# Poll interval while another process refreshes.
POLL = 0.05
# A caller gives up waiting for another process's refresh after this long (the lease will have expired).
MAX_WAIT = REFRESH_LEASE.total_seconds() + 5

#: fetch(corpid, secret) -> (access_token, expires_in seconds); raises WeComError.
Fetcher = Callable[[str, str], tuple[str, int]]


@dataclass(frozen=True)
class _Cached:
    token: str
    expires_at: datetime


_cache: dict[tuple[int, str], _Cached] = {}
_locks: dict[tuple[int, str], threading.Lock] = {}
_locks_guard = threading.Lock()


def secret_digest(secret: str) -> str:
    """The key a secret's token is stored under; the secret itself is never stored with the token."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _lock(key: tuple[int, str]) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


def _fresh(token: str, expires_at: datetime | None, stale: str | None, at: datetime) -> bool:
    return bool(token) and expires_at is not None and expires_at - EARLY_REFRESH > at and token != stale


def forget_cached() -> None:
    """Drop this process's cache (tests use it to act as another process)."""
    _cache.clear()


def access_token(*, corp_id: int, corpid: str, secret: str, fetch: Fetcher, stale: str | None = None) -> str:
    """A valid access token for the corp's app ``secret``; ``stale`` is a token WeCom just refused."""
    if not secret:
        raise errors.InvalidCredential(40001, "the corp has no app secret configured", "gettoken")
    key = (corp_id, secret_digest(secret))
    cached = _cache.get(key)
    if cached is not None and _fresh(cached.token, cached.expires_at, stale, now()):
        return cached.token
    with _lock(key):
        cached = _cache.get(key)
        if cached is not None and _fresh(cached.token, cached.expires_at, stale, now()):
            return cached.token
        token, expires_at = _shared_token(
            corp_id=corp_id, digest=key[1], corpid=corpid, secret=secret, fetch=fetch, stale=stale
        )
        _cache[key] = _Cached(token, expires_at)
        return token


def configuration_error(*, corp_id: int, secret: str) -> str | None:
    """What gettoken last said was wrong with the corp's app secret, while that is remembered (for pages)."""
    row = (
        AccessToken.objects.filter(
            corp_id=corp_id, secret_digest=secret_digest(secret), error_until__gt=now()
        )
        .only("last_error")
        .first()
    )
    return row.last_error if row is not None else None


def invalidate(*, corp_id: int, secret: str, token: str) -> None:
    """Forget ``token`` everywhere (WeCom said the credential behind it is wrong)."""
    key = (corp_id, secret_digest(secret))
    cached = _cache.get(key)
    if cached is not None and cached.token == token:
        del _cache[key]
    AccessToken.objects.filter(corp_id=corp_id, secret_digest=key[1]).update(
        token_encrypted="", expires_at=None
    )


def _shared_token(
    *, corp_id: int, digest: str, corpid: str, secret: str, fetch: Fetcher, stale: str | None
) -> tuple[str, datetime]:
    row, _ = AccessToken.objects.get_or_create(corp_id=corp_id, secret_digest=digest)
    owner = str(uuid.uuid4())
    deadline = time.monotonic() + MAX_WAIT
    while True:
        row.refresh_from_db()
        at = now()
        if row.error_until is not None and row.error_until > at:
            raise _remembered_error(row.last_error)
        token = crypto.decrypt(row.token_encrypted)
        if _fresh(token, row.expires_at, stale, at):
            assert row.expires_at is not None
            return token, row.expires_at
        claimed = (
            AccessToken.objects.filter(pk=row.pk)
            .filter(Q(refresh_until__isnull=True) | Q(refresh_until__lt=at))
            .update(refresh_owner=owner, refresh_until=at + REFRESH_LEASE)
        )
        if claimed:
            return _refresh(row_id=row.pk, owner=owner, corpid=corpid, secret=secret, fetch=fetch)
        if time.monotonic() > deadline:
            raise errors.WeComUnavailable(
                "gettoken", "another process holds the token refresh lease too long"
            )
        time.sleep(POLL)


def _remembered_error(text: str) -> errors.WeComError:
    """Rebuild the error stored as ``errcode N: errmsg`` by ``_refresh``."""
    head, _, errmsg = text.partition(": ")
    try:
        errcode = int(head.removeprefix("errcode "))
    except ValueError:
        errcode = 40001
    return errors.for_code(errcode, errmsg, "gettoken")


def _refresh(*, row_id: int, owner: str, corpid: str, secret: str, fetch: Fetcher) -> tuple[str, datetime]:
    mine = AccessToken.objects.filter(pk=row_id, refresh_owner=owner)
    try:
        token, expires_in = fetch(corpid, secret)
    except (errors.ConfigurationError, errors.InvalidRequest) as exc:
        # Only errcode and WeCom's errmsg are kept: neither contains the secret.
        mine.update(
            last_error=f"errcode {exc.errcode}: {exc.errmsg}",
            error_until=now() + CONFIG_ERROR_BACKOFF,
            refresh_owner="",
            refresh_until=None,
        )
        raise
    except BaseException:
        mine.update(refresh_owner="", refresh_until=None)
        raise
    at = now()
    expires_at = at + timedelta(seconds=expires_in)
    with transaction.atomic():
        mine.update(
            token_encrypted=crypto.encrypt(token),
            expires_at=expires_at,
            fetched_at=at,
            refresh_owner="",
            refresh_until=None,
            last_error="",
            error_until=None,
        )
    return token, expires_at
