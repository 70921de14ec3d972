"""The simulator's own clock: wall time plus an offset that tests and the admin interface can move.

It is separate from ``siyu.core.clock`` because the simulator runs without Django and stands for a remote
server whose time a test moves on purpose (welcome codes expiring, transfers completing, quota windows).
"""

from __future__ import annotations

import threading
import time


class SimClock:
    """Seconds since the epoch as the simulated WeCom sees them; thread-safe, movable, freezable."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0
        self._frozen: float | None = None

    def time(self) -> float:
        with self._lock:
            if self._frozen is not None:
                return self._frozen
            return time.time() + self._offset

    def now(self) -> int:
        """Whole seconds, as WeCom's timestamps are."""
        return int(self.time())

    def advance(self, seconds: float) -> None:
        with self._lock:
            if self._frozen is not None:
                self._frozen += seconds
            else:
                self._offset += seconds

    def freeze(self) -> None:
        with self._lock:
            if self._frozen is None:
                self._frozen = time.time() + self._offset

    def unfreeze(self) -> None:
        with self._lock:
            if self._frozen is not None:
                self._offset = self._frozen - time.time()
                self._frozen = None

    @property
    def frozen(self) -> bool:
        return self._frozen is not None
