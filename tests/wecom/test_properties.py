"""Property: however WeCom's callbacks arrive — shuffled, repeated, worked between arrivals — Siyu ends in the
state it reaches from in-order, once-only delivery, which is WeCom's own state as a full sync reads it.

Each example starts a fresh simulator whose corp Siyu has synced, lets hypothesis play a scenario of
client-side actions in it (adds with a channel state, remarks, client tagging, deletions by either side,
re-adds, group joins, leaves and dismissals, tag creation, renaming and deletion) with the simulator's clock
moving 0–2 s between actions, and captures the encrypted callbacks the simulator posts. The callbacks are
then delivered through the real receiver three ways, each from the same database state (savepoints rolled
back): in order, once; in a hypothesis-chosen order with each callback 1–4 times and the worker draining at
hypothesis-chosen moments; and not at all, a full sync reading WeCom instead.
"""

from __future__ import annotations

import collections
import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest
from django.db import transaction
from django.test import Client, override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siyu.corps.models import Corp, Staff
from siyu.corps.services import create_corp
from siyu.customers.models import Customer, Event, FollowRelation
from siyu.groups.models import GroupChat, GroupMember
from siyu.simulator.actions import ActionError
from siyu.simulator.app import Simulator
from siyu.simulator.delivery import Delivery
from siyu.simulator.testing import CallbackReceiver, running_simulator
from siyu.tags.models import RelationTag, Tag, TagGroup
from siyu.wecom import tokens
from siyu.wecom.inbox import drain_inbox
from siyu.wecom.models import InboxEvent, SyncRun
from siyu.wecom.sync import run_sync, start_sync

pytestmark = pytest.mark.django_db

# A small corp keeps an example to about a second of CPU: a few members, customers and groups are enough for
# every collision (two members of one customer, a customer in two groups, a tag on several relations).
CORP_SIZE: dict[str, Any] = {"staff": 3, "customers": 5, "groups": 2}
REMARKS = ["", "老客户", "张总", "VIP 回访"]
STATES = ["", "web-home", "expo-2024"]
TAG_NAMES = ["高意向", "已成交", "待跟进"]

# --- the scenario -----------------------------------------------------------------------------------------

index = st.integers(min_value=0, max_value=50)
step = st.one_of(
    st.tuples(st.just("add_new"), index, st.sampled_from(STATES)),
    st.tuples(st.just("add_existing"), index, index),
    st.tuples(st.just("remark"), index, st.sampled_from(REMARKS)),
    st.tuples(st.just("tag"), index, st.lists(index, max_size=2), st.lists(index, max_size=2)),
    st.tuples(st.just("staff_deletes"), index),
    st.tuples(st.just("customer_deletes"), index),
    st.tuples(st.just("readd"), index),
    st.tuples(st.just("group_join"), index, st.lists(index, min_size=1, max_size=2)),
    st.tuples(st.just("group_leave"), index, index),
    st.tuples(st.just("group_create"), index, st.lists(index, max_size=2)),
    st.tuples(st.just("group_dismiss"), index),
    st.tuples(st.just("tag_create"), index, st.sampled_from(TAG_NAMES), st.booleans()),
    st.tuples(st.just("tag_rename"), index, st.sampled_from(TAG_NAMES)),
    st.tuples(st.just("tag_delete"), index),
)
# Seconds the simulator's clock moves before each action: 0 puts two changes in one second, as WeCom can.
gap = st.sampled_from([0, 1, 1, 2])
scenario = st.lists(st.tuples(step, gap), min_size=3, max_size=10)


def _pick(items: list[Any], i: int) -> Any:
    return items[i % len(items)] if items else None


@dataclass
class Player:
    """Plays abstract steps on the simulator; steps that cannot happen in the corp's state are skipped."""

    sim: Simulator
    deleted: list[tuple[str, str]]

    @property
    def state(self) -> Any:
        return self.sim.state

    def staff(self) -> list[str]:
        return sorted(self.state.follow_users())

    def customers(self) -> list[str]:
        return sorted(self.state.customers)

    def relations(self) -> list[tuple[str, str]]:
        return sorted((c.external_userid, u) for c in self.state.customers.values() for u in c.follows)

    def groups(self) -> list[str]:
        return sorted(chat_id for chat_id, chat in self.state.groups.items() if not chat.dismissed)

    def tags(self) -> list[str]:
        return sorted(t.id for t in self.state.tags.values() if not t.deleted)

    def tag_groups(self) -> list[str]:
        return sorted(g.group_id for g in self.state.tag_groups.values() if not g.deleted)

    def play(self, kind: str, *args: Any) -> None:
        actions = self.sim.actions
        relation = None
        if kind in ("remark", "tag", "staff_deletes", "customer_deletes"):
            relation = _pick(self.relations(), args[0])
            if relation is None:
                return
        if kind == "add_new":
            actions.add_customer(userid=_pick(self.staff(), args[0]), state=args[1])
        elif kind == "add_existing":
            actions.add_customer(
                external_userid=_pick(self.customers(), args[0]), userid=_pick(self.staff(), args[1])
            )
        elif kind == "readd":
            gone = _pick(self.deleted, args[0])
            if gone is not None:
                actions.add_customer(external_userid=gone[0], userid=gone[1])
        elif kind == "remark" and relation is not None:
            actions.edit_remark(external_userid=relation[0], userid=relation[1], remark=args[1])
        elif kind == "tag" and relation is not None:
            tags = self.tags()
            add = sorted({_pick(tags, i) for i in args[1]} - {None})
            remove = sorted({_pick(tags, i) for i in args[2]} - {None} - set(add))
            actions.tag_in_client(
                external_userid=relation[0], userid=relation[1], add_tag=add, remove_tag=remove
            )
        elif kind == "staff_deletes" and relation is not None:
            actions.staff_deletes_customer(external_userid=relation[0], userid=relation[1])
            self.deleted.append(relation)
        elif kind == "customer_deletes" and relation is not None:
            actions.customer_deletes_staff(external_userid=relation[0], userid=relation[1])
            self.deleted.append(relation)
        elif kind == "group_join":
            chat_id = _pick(self.groups(), args[0])
            joining = sorted({_pick(self.customers(), i) for i in args[1]})
            if chat_id is not None:
                actions.group_join(chat_id=chat_id, external_userids=joining)
        elif kind == "group_leave":
            chat_id = _pick(self.groups(), args[0])
            if chat_id is not None:
                members = sorted(
                    u for u in self.state.groups[chat_id].members if u != self.state.groups[chat_id].owner
                )
                leaving = _pick(members, args[1])
                if leaving is not None:
                    actions.group_leave(chat_id=chat_id, userids=[leaving])
        elif kind == "group_create":
            joining = sorted({_pick(self.customers(), i) for i in args[1]})
            actions.group_create(owner=_pick(self.staff(), args[0]), external_userids=joining)
        elif kind == "group_dismiss":
            chat_id = _pick(self.groups(), args[0])
            if chat_id is not None:
                actions.group_dismiss(chat_id=chat_id)
        elif kind == "tag_create":
            in_new_group = args[2] or not self.tag_groups()
            if in_new_group:
                actions.console_create_tag(name=args[1], group_name=f"分组{args[0] % 3}")
            else:
                actions.console_create_tag(name=args[1], group_id=_pick(self.tag_groups(), args[0]))
        elif kind == "tag_rename":
            target = _pick(self.tags() + self.tag_groups(), args[0])
            if target is not None:
                actions.console_rename_tag(id=target, name=args[1])
        elif kind == "tag_delete":
            target = _pick(self.tags() + self.tag_groups(), args[0])
            if target is not None:
                actions.console_delete_tag(id=target)


def trim_tags(sim: Simulator) -> None:
    """Keep two of the generated tag groups (deleted through the API, so without callbacks): every tag event
    re-reads the whole tag list, and two groups give every case at a fraction of the cost."""
    groups = sorted(g.group_id for g in sim.state.tag_groups.values() if not g.deleted)
    assert sim.call("externalcontact/del_corp_tag", {"group_id": groups[2:]})["errcode"] == 0


def play_scenario(sim: Simulator, steps: list[tuple[tuple[Any, ...], int]]) -> list[Delivery]:
    """Play the steps, the simulator's clock frozen and moved by each step's gap; returns its callbacks."""
    sim.clock.freeze()
    player = Player(sim=sim, deleted=[])
    for (kind, *args), seconds in steps:
        sim.clock.advance(seconds)
        with contextlib.suppress(ActionError):
            player.play(kind, *args)
    assert sim.sender.wait_idle(timeout=15)
    return sorted(sim.sender.log, key=lambda d: d.id)


# --- Siyu's state -----------------------------------------------------------------------------------------


def domain_state(corp: Corp) -> dict[str, Any]:
    """Everything callbacks may change, by WeCom's ids (never Siyu's primary keys)."""
    active = FollowRelation.objects.for_corp(corp).filter(status=FollowRelation.Status.ACTIVE)
    tags: dict[int, set[str]] = collections.defaultdict(set)
    for relation_id, wecom_tag_id in (
        RelationTag.objects.for_corp(corp)
        .filter(relation__in=active)
        .values_list("relation_id", "tag__wecom_tag_id")
    ):
        tags[relation_id].add(wecom_tag_id)
    relations = sorted(
        (
            r.customer.external_userid,
            r.staff.userid,
            r.remark,
            r.description,
            r.state,
            r.added_at.timestamp(),
            tuple(sorted(tags[r.pk])),
        )
        for r in active.select_related("customer", "staff")
    )
    customers = sorted(
        Customer.objects.for_corp(corp)
        .filter(relations__status=FollowRelation.Status.ACTIVE)
        .distinct()
        .values_list("external_userid", "name")
    )
    groups = sorted(
        GroupChat.objects.for_corp(corp)
        .filter(status=GroupChat.Status.ACTIVE)
        .values_list("chat_id", "name", "owner_userid", "member_version")
    )
    # A stay names its customer; one left without any relation is not a customer a full sync can know.
    known = {external_userid for external_userid, _name in customers}
    members = sorted(
        (m.group.chat_id, m.userid, m.customer.external_userid in known if m.customer else False)
        for m in GroupMember.objects.for_corp(corp)
        .filter(left_at=None, group__status=GroupChat.Status.ACTIVE)
        .select_related("group", "customer")
    )
    tag_groups = list(
        TagGroup.objects.for_corp(corp)
        .exclude(wecom_group_id="")
        .order_by("order", "id")
        .values_list("wecom_group_id", "name")
    )
    tag_list = list(
        Tag.objects.for_corp(corp)
        .exclude(wecom_tag_id="")
        .order_by("group__order", "group_id", "order", "id")
        .values_list("group__wecom_group_id", "wecom_tag_id", "name")
    )
    staff = sorted(Staff.objects.for_corp(corp).values_list("userid", "status"))
    return {
        "customers": customers,
        "relations": relations,
        "groups": groups,
        "members": members,
        "tag_groups": tag_groups,
        "tags": tag_list,
        "staff": staff,
    }


def assert_no_doubled_events(corp: Corp) -> None:
    """Every fact is on the timeline once: one ``added`` per relation, at most one deletion per relation, one
    join and at most one leave per group stay, and tagging of a relation alternates tagged/untagged."""
    events = list(Event.objects.for_corp(corp).order_by("id").values_list("kind", "payload"))
    added = collections.Counter(p.get("relation_id") for k, p in events if k == Event.Kind.ADDED)
    relations = dict(FollowRelation.objects.for_corp(corp).values_list("pk", "status"))
    assert {pk: added[pk] for pk in relations} == dict.fromkeys(relations, 1)
    ended = collections.Counter(
        p.get("relation_id")
        for k, p in events
        if k in (Event.Kind.DELETED_BY_STAFF, Event.Kind.DELETED_BY_CUSTOMER)
    )
    for pk, status in relations.items():
        assert ended[pk] == (0 if status == FollowRelation.Status.ACTIVE else 1), (pk, status)
    stays = collections.Counter(
        (k, p.get("stay_id")) for k, p in events if k in ("group_joined", "group_left")
    )
    assert all(count == 1 for count in stays.values()), stays
    tagging: dict[tuple[int, int], list[str]] = collections.defaultdict(list)
    for kind, payload in events:
        if kind in (Event.Kind.TAGGED, Event.Kind.UNTAGGED):
            tagging[(payload["relation_id"], payload["tag_id"])].append(kind)
    for key, kinds in tagging.items():
        expected = [Event.Kind.TAGGED if i % 2 == 0 else Event.Kind.UNTAGGED for i in range(len(kinds))]
        assert kinds == expected, (key, kinds)


def differences(left: dict[str, Any], right: dict[str, Any]) -> dict[str, Any]:
    """What differs between two ``domain_state`` answers, by part: (only left, only right)."""
    found = {}
    for part in left:
        if left[part] != right[part]:
            found[part] = (
                [x for x in left[part] if x not in right[part]],
                [x for x in right[part] if x not in left[part]],
            )
    return found


def inbox_settled(corp: Corp) -> bool:
    return (
        not InboxEvent.objects.for_corp(corp)
        .exclude(status__in=[InboxEvent.Status.DONE, InboxEvent.Status.IGNORED])
        .exists()
    )


# --- running one example ----------------------------------------------------------------------------------


@contextlib.contextmanager
def rolled_back() -> Iterator[None]:
    """A savepoint undone at the end: the next delivery starts from the same database state."""
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


def full_sync(corp: Corp) -> None:
    run = start_sync(corp=corp, kind=SyncRun.Kind.FULL, enqueue=False)
    turn = run_sync(run.pk)
    assert turn.run.status == SyncRun.Status.DONE, turn.run.error


def deliver(client: Client, corp: Corp, delivery: Delivery) -> None:
    response = client.post(
        f"/wecom/callback/{corp.corpid}/?{urlencode(delivery.params)}",
        data=delivery.body,
        content_type="text/xml",
    )
    assert response.status_code == 200


@pytest.fixture(scope="module")
def sink() -> Iterator[str]:
    """Where the simulators post their callbacks (its URL); the test delivers them from their logs."""
    with CallbackReceiver() as receiver:
        yield receiver.url


@settings(
    max_examples=int(os.environ.get("SIYU_PROPERTY_EXAMPLES", "25")),
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(steps=scenario, data=st.data())
def test_any_interleaving_of_redeliveries_ends_in_the_same_state(
    sink: str, steps: list[tuple[tuple[Any, ...], int]], data: st.DataObject
) -> None:
    tokens.forget_cached()
    with (
        running_simulator(callback_url=sink, **CORP_SIZE) as sim,
        override_settings(WECOM_API_BASE=sim.api_base),
        rolled_back(),
    ):
        trim_tags(sim)
        config = sim.config
        corp = create_corp(
            name=config.corp_name,
            corpid=config.corpid,
            secret=config.secret,
            token=config.token,
            aes_key=config.aes_key,
        )
        client = Client()
        with rolled_back():
            # given Siyu in step with WeCom, then a burst of changes made in WeCom's clients and console
            full_sync(corp)
            callbacks = play_scenario(sim, steps)
            # when each callback arrives once, in order
            with rolled_back():
                for delivery in callbacks:
                    deliver(client, corp, delivery)
                drain_inbox(corp_id=corp.pk)
                assert inbox_settled(corp)
                in_order = domain_state(corp)
                assert_no_doubled_events(corp)
            # when they arrive in any order, each one 1–4 times, with the worker running between arrivals
            copies = data.draw(st.lists(st.integers(1, 4), min_size=len(callbacks), max_size=len(callbacks)))
            order = data.draw(st.permutations([i for i, n in enumerate(copies) for _ in range(n)]))
            drains = data.draw(st.sets(st.integers(0, max(0, len(order) - 1))))
            with rolled_back():
                for position, i in enumerate(order):
                    deliver(client, corp, callbacks[i])
                    if position in drains:
                        drain_inbox(corp_id=corp.pk)
                drain_inbox(corp_id=corp.pk)
                assert inbox_settled(corp)
                shuffled = domain_state(corp)
                assert_no_doubled_events(corp)
        # and when Siyu, knowing nothing, reads WeCom with a full sync
        full_sync(corp)
        synced = domain_state(corp)
    # then all three agree
    assert shuffled == in_order, differences(shuffled, in_order)
    assert in_order == synced, differences(in_order, synced)
