"""Access tokens, frequency limits (45009), concurrency limits (45033) and injected faults.

Frequency limits follow §6: per corp and per API, a per-minute and a per-hour budget; going over blocks that
API for the window's length (a minute → 60 s, an hour → 60 min). Faults are rules a test or the demo sets:
answer an errcode, hold the request past the client's timeout, answer HTTP 5xx, or drop the connection.
"""

from __future__ import annotations

import itertools
import random
import secrets
import threading
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

from siyu.simulator.clock import SimClock
from siyu.simulator.config import SimulatorConfig
from siyu.simulator.errors import ApiError

FAULT_KINDS = ("errcode", "timeout", "http", "disconnect", "latency")


class Tokens:
    """access_token per secret: the same token until it expires (§1), revocable early on demand."""

    def __init__(self, clock: SimClock, config: SimulatorConfig):
        self.clock = clock
        self.config = config
        self._lock = threading.Lock()
        self._current: dict[str, tuple[str, float]] = {}  # secret → (token, expires_at)
        self._known: dict[str, float] = {}  # every token ever issued → expires_at (for 42001 vs 40014)
        self._revoked: dict[str, str] = {}  # token → "expired" | "invalid"
        self.issued = 0

    def issue(self, secret: str) -> tuple[str, int]:
        now = self.clock.time()
        with self._lock:
            current = self._current.get(secret)
            if current is not None and current[1] > now and current[0] not in self._revoked:
                return current[0], int(current[1] - now)
            token = secrets.token_urlsafe(96)  # real tokens are long and opaque; clients reserve 512 bytes
            ttl = self.config.token_ttl
            expires_at = now + ttl
            self._current[secret] = (token, expires_at)
            self._known[token] = expires_at
            self.issued += 1
            return token, ttl

    def check(self, token: str | None) -> None:
        if not token:
            raise ApiError(41001)
        with self._lock:
            expires_at = self._known.get(token)
            revoked = self._revoked.get(token)
        if expires_at is None or revoked == "invalid":
            raise ApiError(40014)
        if revoked == "expired" or expires_at <= self.clock.time():
            raise ApiError(42001)

    def revoke_all(self, mode: str = "expired") -> int:
        """WeCom "可能会出于运营需要，提前使access_token失效": end every live token now."""
        if mode not in ("expired", "invalid"):
            raise ValueError("mode must be 'expired' or 'invalid'")
        with self._lock:
            for token in self._known:
                self._revoked.setdefault(token, mode)
            count = len(self._current)
            self._current.clear()
        return count


@dataclass
class Fault:
    """An injected failure for one API path (relative to /cgi-bin/, ``*`` for all, ``prefix*`` for some)."""

    id: int
    api: str
    kind: str
    errcode: int = -1
    status: int = 503
    seconds: float = 30.0
    probability: float = 1.0
    remaining: int | None = None
    hits: int = 0

    def matches(self, api: str) -> bool:
        if self.api == "*":
            return True
        if self.api.endswith("*"):
            return api.startswith(self.api[:-1])
        return api == self.api

    def public(self) -> dict[str, Any]:
        return asdict(self)


class Limits:
    """Frequency and concurrency budgets per API, and the fault rules."""

    def __init__(self, config: SimulatorConfig, clock: SimClock):
        self.config = config
        self.clock = clock
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, int], int] = defaultdict(int)
        self._blocked: dict[str, float] = {}
        self._in_flight: dict[str, int] = defaultdict(int)
        self.overrides: dict[str, tuple[int | None, int | None]] = {}
        self.faults: list[Fault] = []
        self._fault_ids = itertools.count(1)
        self._rng = random.Random()  # noqa: S311 - fault probabilities, not security
        self.calls: dict[str, int] = defaultdict(int)
        self.rejected: dict[str, int] = defaultdict(int)

    # --- frequency ---------------------------------------------------------------------------------------

    def set_limit(self, api: str, per_minute: int | None, per_hour: int | None) -> None:
        with self._lock:
            self.overrides[api] = (per_minute, per_hour)

    def _budget(self, api: str) -> tuple[int | None, int | None]:
        per_minute, per_hour = self.overrides.get(api, (None, None))
        return (
            per_minute if per_minute is not None else self.config.rate_per_minute,
            per_hour if per_hour is not None else self.config.rate_per_hour,
        )

    def count_call(self, api: str) -> None:
        """Count one call; 45009 when the API is blocked or this call goes over a budget."""
        now = self.clock.time()
        with self._lock:
            self.calls[api] += 1
            blocked_until = self._blocked.get(api)
            if blocked_until is not None:
                if blocked_until > now:
                    self.rejected[api] += 1
                    raise ApiError(45009)
                del self._blocked[api]
            per_minute, per_hour = self._budget(api)
            for window, length, limit in (("m", 60, per_minute), ("h", 3600, per_hour)):
                key = (api, window, int(now // length))
                self._counts[key] += 1
                if limit is not None and self._counts[key] > limit:
                    self._blocked[api] = now + length  # §6: blocked for the window's length
                    self.rejected[api] += 1
                    raise ApiError(45009)
            if len(self._counts) > 50000:  # forget windows long gone
                current_minute, current_hour = int(now // 60), int(now // 3600)
                for stale in [
                    k
                    for k in self._counts
                    if k[2] < (current_minute - 1 if k[1] == "m" else current_hour - 1)
                ]:
                    del self._counts[stale]

    def unblock(self) -> None:
        with self._lock:
            self._blocked.clear()
            self._counts.clear()

    # --- concurrency ---------------------------------------------------------------------------------------

    def enter(self, api: str) -> None:
        with self._lock:
            limit = self.config.concurrency_limit
            if limit is not None and self._in_flight[api] >= limit:
                self.rejected[api] += 1
                raise ApiError(45033)
            self._in_flight[api] += 1

    def leave(self, api: str) -> None:
        with self._lock:
            self._in_flight[api] -= 1

    # --- faults ------------------------------------------------------------------------------------------

    def add_fault(self, **values: Any) -> Fault:
        kind = values.get("kind", "errcode")
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(FAULT_KINDS)}")
        allowed = {"api", "kind", "errcode", "status", "seconds", "probability", "remaining"}
        unknown = set(values) - allowed
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        fault = Fault(id=next(self._fault_ids), api=str(values.get("api", "*")).strip("/"), kind=kind)
        if fault.api.startswith("cgi-bin/"):
            fault.api = fault.api[len("cgi-bin/") :]
        for name in ("errcode", "status"):
            if values.get(name) is not None:
                setattr(fault, name, int(values[name]))
        for name in ("seconds", "probability"):
            if values.get(name) is not None:
                setattr(fault, name, float(values[name]))
        if values.get("remaining") is not None:
            fault.remaining = int(values["remaining"])
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def pick_fault(self, api: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if not fault.matches(api):
                    continue
                if fault.probability < 1.0 and self._rng.random() >= fault.probability:
                    continue
                fault.hits += 1
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self.faults.remove(fault)
                return fault
        return None


def parse_fault_spec(spec: str) -> dict[str, Any]:
    """``API:KIND[:key=value,…]`` from the command line.

    E.g. ``externalcontact/get:errcode:errcode=-1,probability=0.1``.
    """
    parts = spec.split(":", 2)
    if len(parts) < 2:
        raise ValueError("fault spec is API:KIND[:key=value,...]")
    values: dict[str, Any] = {"api": parts[0], "kind": parts[1]}
    if len(parts) == 3 and parts[2]:
        for pair in parts[2].split(","):
            key, _, value = pair.partition("=")
            values[key.strip()] = value.strip()
    return values
