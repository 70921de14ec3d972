"""A traffic driver that keeps the simulated corp alive: adds over channels, deletions, tag edits, groups.

``rate`` is adds per minute; other activity follows in proportion (a day in a real corp has about one
deletion per ten adds, a tag edit per four). Events come as a Poisson process, so bursts and lulls happen.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from typing import TYPE_CHECKING

from siyu.simulator.actions import ActionError

if TYPE_CHECKING:
    from siyu.simulator.app import Simulator

# Activity per add: (kind, share). Adds split further inside _add.
ACTIVITY = [
    ("add", 1.0),
    ("customer_deletes_staff", 0.05),
    ("staff_deletes_customer", 0.03),
    ("tag_in_client", 0.25),
    ("edit_remark", 0.10),
    ("group_join", 0.15),
    ("group_leave", 0.05),
    ("group_create", 0.01),
]
UNKNOWN_STATES = ["ad-legacy-2023", "poster-old", "live-0520"]  # channels whose contact way is long gone


class TrafficDriver:
    """A background thread running client-side actions at a configurable rate."""

    def __init__(self, sim: Simulator, *, seed: int = 0):
        self.sim = sim
        self.rng = random.Random(seed)  # noqa: S311 - simulated activity, not security
        self.counts: Counter[str] = Counter()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def rate(self) -> float:
        return self.sim.config.traffic

    def set_rate(self, rate: float) -> None:
        self.sim.config.traffic = max(0.0, rate)
        self._wake.set()
        if rate > 0:
            self.start()

    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="sim-traffic", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        total_share = sum(share for _, share in ACTIVITY)
        while not self._stop.is_set():
            rate = self.rate
            if rate <= 0:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            per_second = rate * total_share / 60.0
            if self._wake.wait(self.rng.expovariate(per_second)):
                self._wake.clear()
                continue
            if self._stop.is_set():
                return
            kind = self.rng.choices([k for k, _ in ACTIVITY], weights=[s for _, s in ACTIVITY])[0]
            self.step(kind)

    def step(self, kind: str) -> bool:
        """Do one activity of ``kind``; False when it had nothing to act on."""
        try:
            getattr(self, f"_{kind}")()
        except (ActionError, IndexError, ValueError):
            self.counts["skipped"] += 1
            return False
        self.counts[kind] += 1
        return True

    # --- activities --------------------------------------------------------------------------------------

    def _random_relation(self) -> tuple[str, str]:
        state = self.sim.state
        with state.lock:
            for _ in range(20):
                customer = state.customers[self.rng.choice(state.customer_ids)]
                follows = [f for f in customer.follows.values() if state.active_staff(f.userid) is not None]
                if follows:
                    follow = self.rng.choice(follows)
                    return follow.userid, follow.external_userid
        raise ActionError("no relation found")

    def _add(self) -> None:
        state = self.sim.state
        roll = self.rng.random()
        with state.lock:
            ways = [w.config_id for w in state.contact_ways.values() if w.state]
        if roll < 0.7 and ways:
            self.sim.actions.scan_contact_way(config_id=self.rng.choice(ways))
        elif roll < 0.9:
            self.sim.actions.add_customer(state="")
        else:
            self.sim.actions.add_customer(state=self.rng.choice(UNKNOWN_STATES), add_way=1)

    def _customer_deletes_staff(self) -> None:
        userid, external_userid = self._random_relation()
        self.sim.actions.customer_deletes_staff(external_userid=external_userid, userid=userid)

    def _staff_deletes_customer(self) -> None:
        userid, external_userid = self._random_relation()
        self.sim.actions.staff_deletes_customer(userid=userid, external_userid=external_userid)

    def _tag_in_client(self) -> None:
        userid, external_userid = self._random_relation()
        state = self.sim.state
        with state.lock:
            live = [t.id for t in state.tags.values() if not t.deleted]
            current = list(state.customers[external_userid].follows[userid].tag_ids)
        if current and self.rng.random() < 0.3:
            self.sim.actions.tag_in_client(
                userid=userid, external_userid=external_userid, remove_tag=[current[0]]
            )
        else:
            self.sim.actions.tag_in_client(
                userid=userid, external_userid=external_userid, add_tag=[self.rng.choice(live)]
            )

    def _edit_remark(self) -> None:
        userid, external_userid = self._random_relation()
        state = self.sim.state
        with state.lock:
            name = state.customers[external_userid].name
        suffix = self.rng.choice(["总", "经理", "老师", "(已报价)", "(VIP)"])
        self.sim.actions.edit_remark(
            userid=userid, external_userid=external_userid, remark=(name + suffix)[:20]
        )

    def _group_join(self) -> None:
        state = self.sim.state
        with state.lock:
            chats = [c.chat_id for c in state.groups.values() if not c.dismissed]
            if chats:
                chat_id = self.rng.choice(chats)
                customer_id = self.rng.choice(state.customer_ids)
        if not chats:  # a corp without groups (e.g. loaded from a state file) gets one first
            self._group_create()
            return
        self.sim.actions.group_join(
            chat_id=chat_id, external_userids=[customer_id], join_scene=self.rng.choice((0, 3))
        )

    def _group_leave(self) -> None:
        state = self.sim.state
        with state.lock:
            chats = [c for c in state.groups.values() if not c.dismissed and len(c.members) > 2]
            chat = self.rng.choice(chats)
            customers = [m.userid for m in chat.members.values() if m.type == 2]
            leaving = self.rng.choice(customers)
        self.sim.actions.group_leave(
            chat_id=chat.chat_id, userids=[leaving], quit_scene=self.rng.choice((0, 0, 1))
        )

    def _group_create(self) -> None:
        """A member starts a group with a few of their own customers."""
        state = self.sim.state
        with state.lock:
            owners = [u for u in state.follow_users() if state.staff[u].follow_list]
            owner = self.rng.choice(owners)
            own = [f.external_userid for f in state.staff[owner].follow_list]
            invited = self.rng.sample(own, k=min(len(own), self.rng.randint(2, 6)))
        self.sim.actions.group_create(owner=owner, external_userids=invited)
