"""The index's upkeep: the tail (gaps from commit order, bulk writes), saved copies, sliding windows."""

from __future__ import annotations

import datetime as dt
import threading
import time

import numpy as np
import pytest
from django.db import connection, connections, transaction
from pyroaring import BitMap

from siyu.core.clock import advance, frozen_at
from siyu.customers.behaviour import record_behaviour
from siyu.customers.models import Customer, Event
from siyu.customers.services import RelationImport, import_relations
from siyu.segments import engine
from siyu.segments.index import CorpIndex, DenseMap
from siyu.segments.maintenance import SETTLE_AFTER_SECONDS, catch_up, load_snapshot, rebuild, save_snapshot
from siyu.segments.models import IndexSnapshot
from siyu.segments.services import evaluate, parse_expression
from siyu.tags.services import delete_tag, tag_customers
from tests import factories

NOW = dt.datetime(2025, 3, 15, 4, 0, tzinfo=dt.UTC)


def _members(corp, text: str) -> BitMap:  # type: ignore[no-untyped-def]
    return evaluate(corp=corp, expression=parse_expression(corp=corp, text=text))


def test_a_tag_change_is_visible_in_the_next_count(world, settings) -> None:  # type: ignore[no-untyped-def]
    # given: an index already loaded
    settings.SIYU = {**settings.SIYU, "SEGMENT_FRESH_SECONDS": 0}
    vip = factories.make_tag(world.corp, "VIP")
    customer = factories.make_customer(world.corp)
    factories.follow(customer, world.wang)
    assert _members(world.corp, "tag:VIP") == BitMap()
    # when
    tag_customers(actor=world.admin, customer_ids=[customer.pk], add_tag_ids=[vip.pk], source="console")
    # then
    assert _members(world.corp, "tag:VIP") == BitMap([customer.pk])


def test_a_row_committed_after_a_later_one_is_still_applied(world) -> None:  # type: ignore[no-untyped-def]
    # given: two purchases; the first one's transaction "commits" after the index has read the second
    first = factories.make_customer(world.corp, name="先")
    second = factories.make_customer(world.corp, name="后")
    index = rebuild(world.corp)
    with frozen_at(NOW):
        early = record_behaviour(customer=first, kind="purchased", payload={"amount": 1})
        record_behaviour(customer=second, kind="purchased", payload={"amount": 1})
        assert early is not None
        hidden = Event.objects.filter(pk=early.pk)
        row = hidden.values().get()
        hidden.delete()  # not visible yet: its transaction is still open
        # when: the tail reads past it, then it shows up
        catch_up(index)
        assert early.pk in BitMap.union(BitMap(), *(g.ids for g in index.event_gaps))
        Event.objects.create(**row)
        catch_up(index)
        # then: both purchases are counted, once
        day = index.day_of(NOW)
        levels = index.behaviour["purchased"][day]
        assert len(levels) == 1
        assert index.dense.to_pks(levels[0]) == BitMap([first.pk, second.pk])
        assert all(early.pk not in g.ids for g in index.event_gaps)


def test_gaps_are_given_up_after_the_horizon(world, settings) -> None:  # type: ignore[no-untyped-def]
    # given: an id that never commits (a rolled-back insert)
    settings.SIYU = {**settings.SIYU, "SEGMENT_GAP_SECONDS": 0}
    customer = factories.make_customer(world.corp)
    index = rebuild(world.corp)
    lost = record_behaviour(customer=customer, kind="visited")
    record_behaviour(customer=customer, kind="visited")
    assert lost is not None
    Event.objects.filter(pk=lost.pk).delete()
    # when
    catch_up(index)
    # then
    assert index.event_gaps == []


@pytest.mark.django_db(transaction=True)
def test_concurrent_transactions_committing_out_of_order_lose_nothing() -> None:
    """Real concurrency (PostgreSQL): a transaction holding a lower event id commits after the tail read a
    higher one."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has one writer at a time: ids commit in order")
    corp = factories.make_corp()
    vip = factories.make_tag(corp, "VIP")
    staff = factories.make_staff(corp)
    slow_customer = factories.make_customer(corp, name="慢")
    fast_customer = factories.make_customer(corp, name="快")
    for c in (slow_customer, fast_customer):
        factories.follow(c, staff)
    index = rebuild(corp)
    holding = threading.Event()
    release = threading.Event()

    def slow() -> None:
        from siyu.corps.access import Actor
        from siyu.corps.models import Role

        try:
            with transaction.atomic():
                tag_customers(
                    actor=Actor(corp=corp, role=Role.ADMIN),
                    customer_ids=[slow_customer.pk],
                    add_tag_ids=[vip.pk],
                    source="console",
                )
                holding.set()
                release.wait(10)
        finally:
            connections.close_all()

    thread = threading.Thread(target=slow)
    thread.start()
    assert holding.wait(10)
    from siyu.corps.access import Actor
    from siyu.corps.models import Role

    tag_customers(
        actor=Actor(corp=corp, role=Role.ADMIN),
        customer_ids=[fast_customer.pk],
        add_tag_ids=[vip.pk],
        source="api",
    )
    catch_up(index)
    assert index.dense.to_pks(index.tags[vip.pk]) == BitMap([fast_customer.pk])
    release.set()
    thread.join(10)
    catch_up(index)
    assert index.dense.to_pks(index.tags[vip.pk]) == BitMap([slow_customer.pk, fast_customer.pk])

    # and an id that never commits (a rolled-back insert) is settled once no older transaction runs
    with transaction.atomic():
        rolled = record_behaviour(customer=fast_customer, kind="visited")
        transaction.set_rollback(True)
    assert rolled is not None
    record_behaviour(customer=fast_customer, kind="visited")
    catch_up(index)
    assert any(rolled.pk in g.ids for g in index.event_gaps)
    time.sleep(SETTLE_AFTER_SECONDS + 0.1)
    catch_up(index)
    assert not any(rolled.pk in g.ids for g in index.event_gaps)


def test_bulk_imports_reach_the_index(world) -> None:  # type: ignore[no-untyped-def]
    # given
    index = rebuild(world.corp)
    # when: a sync's set-based import (core.bulk, no record_event one at a time)
    import_relations(
        corp=world.corp,
        items=[
            RelationImport(
                external_userid=f"wmbulk{i}", staff=world.wang, name=f"批量{i}", state="expo", gender=2
            )
            for i in range(5)
        ],
        source="sync",
        dedupe_prefix="sync:test",
    )
    catch_up(index)
    # then
    imported = BitMap(
        Customer.objects.filter(external_userid__startswith="wmbulk").values_list("pk", flat=True)
    )
    assert index.dense.to_pks(index.states["expo"]) == imported
    assert index.dense.to_pks(index.genders[2]) & imported == imported


def test_a_deleted_tag_leaves_the_index(world) -> None:  # type: ignore[no-untyped-def]
    # given
    vip = factories.make_tag(world.corp, "VIP")
    customer = factories.make_customer(world.corp)
    factories.follow(customer, world.wang)
    tag_customers(actor=world.admin, customer_ids=[customer.pk], add_tag_ids=[vip.pk], source="console")
    index = rebuild(world.corp)
    assert vip.pk in index.tags
    # when
    delete_tag(tag=vip, source="console")
    catch_up(index)
    # then
    assert vip.pk not in index.tags


def test_a_saved_copy_loads_with_its_position(world) -> None:  # type: ignore[no-untyped-def]
    # given
    vip = factories.make_tag(world.corp, "VIP")
    customers = [factories.make_customer(world.corp) for _ in range(3)]
    for c in customers:
        factories.follow(c, world.wang, state="web")
    tag_customers(actor=world.admin, customer_ids=[customers[0].pk], add_tag_ids=[vip.pk], source="console")
    with frozen_at(NOW):
        record_behaviour(customer=customers[1], kind="purchased", payload={"amount": "9.9"})
        index = rebuild(world.corp)
        # when
        save_snapshot(index)
        loaded = load_snapshot(world.corp)
    # then
    assert loaded is not None
    assert loaded.event_cursor == index.event_cursor
    assert loaded.universe == index.universe
    assert loaded.tags == index.tags
    assert loaded.states == index.states
    assert loaded.behaviour == index.behaviour
    assert list(loaded.dense.pks) == list(index.dense.pks)
    assert IndexSnapshot.objects.for_corp(world.corp).count() == 1


def test_a_process_starts_from_the_saved_copy_and_reads_only_what_came_after(world) -> None:  # type: ignore[no-untyped-def]
    # given: a saved copy
    vip = factories.make_tag(world.corp, "VIP")
    early, late = factories.make_customer(world.corp), factories.make_customer(world.corp)
    for c in (early, late):
        factories.follow(c, world.wang)
    tag_customers(actor=world.admin, customer_ids=[early.pk], add_tag_ids=[vip.pk], source="console")
    save_snapshot(rebuild(world.corp))
    tag_customers(actor=world.admin, customer_ids=[late.pk], add_tag_ids=[vip.pk], source="console")
    engine.reset()  # a new process
    # when
    members = _members(world.corp, "tag:VIP")
    # then
    assert members == BitMap([early.pk, late.pk])


def test_a_window_slides_at_midnight_without_any_event(world) -> None:  # type: ignore[no-untyped-def]
    # given: a purchase at 10:00 Shanghai time, 7 days ago
    customer = factories.make_customer(world.corp)
    with frozen_at(NOW):
        record_behaviour(
            customer=customer,
            kind="purchased",
            occurred_at=NOW - dt.timedelta(days=6, hours=2),
            payload={"amount": 5},
        )
        assert _members(world.corp, "purchased(7d)") == BitMap([customer.pk])
        # when: the clock passes the next local midnight (16:00 UTC)
        advance(dt.timedelta(hours=12))
        # then
        assert _members(world.corp, "purchased(7d)") == BitMap()
        assert _members(world.corp, "purchased(8d)") == BitMap([customer.pk])


def test_dense_numbers_follow_ids_and_convert_back() -> None:
    # given
    dense = DenseMap()
    # when: ids arrive out of order, some twice (a batch is numbered in id order)
    first = dense.assign([50, 10, 30]).tolist()
    again = dense.assign([30, 70, 10]).tolist()
    # then
    assert first == [2, 0, 1]
    assert again == [1, 3, 0]
    assert dense.to_pks(BitMap([0, 3])) == BitMap([10, 70])
    assert dense.lookup([99, 70]).tolist() == [-1, 3]


def test_index_bytes_round_trip() -> None:
    # given
    index = CorpIndex(corp_id=7, time_zone="Asia/Shanghai")
    index.dense.assign([3, 5, 8])
    index.universe = BitMap([0, 1, 2])
    index.tags = {1: BitMap([0, 2])}
    index.fields = {("region", "北京"): BitMap([1])}
    index.add_occurrences("chatted", [0, 0, 2], [739000, 739000, 739001])
    # when
    loaded = CorpIndex.deserialize(index.serialize())
    # then
    assert loaded.tags == index.tags
    assert loaded.fields == index.fields
    assert loaded.behaviour == {"chatted": {739000: [BitMap([0]), BitMap([0])], 739001: [BitMap([2])]}}


def test_consecutive_ids_convert_by_a_shift_and_stop_when_the_run_breaks() -> None:
    # given: ids in one run
    dense = DenseMap(np.array([5, 6, 7], dtype=np.int64))
    assert dense.to_pks(BitMap([0, 2])) == BitMap([5, 7])
    # when: the run goes on, then breaks
    dense.assign([8])
    extended = dense.to_pks(BitMap([3]))
    dense.assign([20])
    # then
    assert extended == BitMap([8])
    assert dense.to_pks(BitMap([0, 3, 4])) == BitMap([5, 8, 20])
