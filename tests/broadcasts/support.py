"""Helpers for the mass-message tests: a Siyu corp synced from the WeCom simulator, and the worker's steps."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from siyu.broadcasts.execution import execute_broadcast, poll_broadcast
from siyu.broadcasts.models import Broadcast
from siyu.corps.access import Actor, actor_for_user
from siyu.corps.models import Role
from siyu.corps.services import create_console_user
from siyu.wecom.models import SyncRun
from siyu.wecom.outbox import send_due
from siyu.wecom.sync import run_sync, start_sync
from tests.wecom.inbound_support import WeComEnv, simulated_wecom


@dataclass
class Loop:
    """A simulated corp synced into Siyu, an operator, and the steps a worker would take."""

    env: WeComEnv
    operator: Actor

    @property
    def sim(self) -> Any:
        return self.env.sim

    @property
    def corp(self) -> Any:
        return self.env.corp

    def execute(self, broadcast: Broadcast) -> str:
        return execute_broadcast(broadcast_id=broadcast.pk)

    def send_outbox(self) -> None:
        send_due(budget=30)

    def poll(self, broadcast: Broadcast) -> Broadcast:
        poll_broadcast(broadcast_id=broadcast.pk)
        broadcast.refresh_from_db()
        return broadcast

    def confirm_all(self, broadcast: Broadcast) -> None:
        """Every sender confirms in their client (the simulated staff)."""
        for part in broadcast.parts.exclude(msgid=""):
            self.sim.actions.confirm_msg(msgid=part.msgid, userid=part.userid)


@contextlib.contextmanager
def synced_loop(settings: Any, **overrides: Any) -> Iterator[Loop]:
    """A simulated corp, fully synced into Siyu, with an operator console user."""
    with simulated_wecom(settings, **{"customers": 40, "staff": 4, "groups": 3, **overrides}) as env:
        run = start_sync(corp=env.corp, kind=SyncRun.Kind.FULL, enqueue=False)
        while run.status not in (SyncRun.Status.DONE, SyncRun.Status.FAILED):
            run = run_sync(run.pk).run
        assert run.status == SyncRun.Status.DONE, run.error
        user = create_console_user(corp=env.corp, username="ops", password="x" * 12, role=Role.OPERATOR)
        yield Loop(env=env, operator=actor_for_user(user.pk, env.corp))
