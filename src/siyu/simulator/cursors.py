"""Opaque paging cursors (§8.7): the client must not read or build them; a tampered one is rejected.

A cursor carries a position, not an offset into a snapshot, so paging stays correct while data changes:
relations are paged by their creation sequence number, which never moves.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

from siyu.simulator.errors import ApiError


class Cursors:
    """Signs and reads cursors for one simulated corp."""

    def __init__(self, key: str):
        # Derived from the corp and seed, so a restarted simulator with the same seed accepts old cursors.
        self._key = hashlib.sha256(key.encode()).digest()

    def encode(self, kind: str, position: Any) -> str:
        payload = json.dumps([kind, position], separators=(",", ":")).encode()
        mac = hmac.new(self._key, payload, hashlib.sha256).digest()[:8]
        return base64.urlsafe_b64encode(mac + payload).decode().rstrip("=")

    def decode(self, kind: str, cursor: str) -> Any:
        """The position of a cursor of ``kind``; 40058 if it is not one of ours."""
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            mac, payload = raw[:8], raw[8:]
            if not hmac.compare_digest(mac, hmac.new(self._key, payload, hashlib.sha256).digest()[:8]):
                raise ValueError("bad mac")
            found_kind, position = json.loads(payload)
        except (ValueError, binascii.Error, TypeError) as exc:
            raise ApiError(40058, "invalid cursor") from exc
        if found_kind != kind:
            raise ApiError(40058, "invalid cursor")
        return position
