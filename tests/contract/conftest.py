"""Contract fixtures: a tiny callback receiver and a simulator that delivers to it quickly."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from siyu.simulator.app import Simulator
from siyu.simulator.testing import CallbackReceiver, running_simulator


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    with CallbackReceiver(slow_seconds=1.0) as rx:
        yield rx


@pytest.fixture
def sim(receiver: CallbackReceiver) -> Iterator[Simulator]:
    with running_simulator(
        callback_url=receiver.url, callback_timeout=0.3, callback_retry_interval=0.02
    ) as s:
        yield s
