"""Dynamic segments re-evaluated by the worker: entered / exited events, the count trend, the upkeep jobs."""

from __future__ import annotations

from siyu.core.scheduler import registered
from siyu.customers.models import Event
from siyu.segments.models import IndexSnapshot, SegmentCount
from siyu.segments.services import SegmentInput, create_segment, refresh_segment
from siyu.segments.upkeep import rebuild_indexes, refresh_all, save_changed_indexes
from siyu.tags.services import tag_customers
from tests import factories
from tests.conftest import run_tasks


def test_customers_entering_and_leaving_are_timeline_events(world) -> None:  # type: ignore[no-untyped-def]
    # given: a segment whose baseline is one customer
    vip = factories.make_tag(world.corp, "VIP")
    stays, comes = factories.make_customer(world.corp, "留"), factories.make_customer(world.corp, "来")
    for c in (stays, comes):
        factories.follow(c, world.wang)
    tag_customers(actor=world.admin, customer_ids=[stays.pk], add_tag_ids=[vip.pk], source="console")
    segment = create_segment(corp=world.corp, data=SegmentInput(name="VIP", text="tag:VIP"))
    baseline = refresh_segment(segment=segment)
    # when: one comes, the other goes
    tag_customers(actor=world.admin, customer_ids=[comes.pk], add_tag_ids=[vip.pk], source="console")
    tag_customers(actor=world.admin, customer_ids=[stays.pk], remove_tag_ids=[vip.pk], source="console")
    result = refresh_segment(segment=segment)
    again = refresh_segment(segment=segment)
    # then
    assert (baseline.count, baseline.entered, baseline.exited) == (1, 0, 0)
    assert (result.count, result.entered, result.exited) == (1, 1, 1)
    assert (again.entered, again.exited) == (0, 0)
    events = Event.objects.for_corp(world.corp).filter(kind__startswith="segment_")
    assert {(e.kind, e.customer_id) for e in events} == {
        ("segment_entered", comes.pk),
        ("segment_exited", stays.pk),
    }
    assert all(e.payload["segment_id"] == segment.pk for e in events)
    assert SegmentCount.objects.for_corp(world.corp).filter(segment=segment).count() == 1


def test_a_segment_that_cannot_be_evaluated_does_not_stop_the_others(world) -> None:  # type: ignore[no-untyped-def]
    # given
    gone = factories.make_tag(world.corp, "旧")
    factories.make_customer(world.corp)
    broken = create_segment(corp=world.corp, data=SegmentInput(name="旧", text="tag:旧"))
    fine = create_segment(corp=world.corp, data=SegmentInput(name="女", text="gender:female"))
    from siyu.tags.services import delete_tag

    delete_tag(tag=gone, source="console")
    SegmentCount.objects.all().delete()
    # when
    done = refresh_all(corp_id=world.corp.pk)
    # then
    assert done == 1
    assert SegmentCount.objects.filter(segment=fine).exists()
    assert not SegmentCount.objects.filter(segment=broken).exists()


def test_the_worker_saves_and_rebuilds_indexes(world) -> None:  # type: ignore[no-untyped-def]
    # given
    factories.make_customer(world.corp)
    # when
    saved = save_changed_indexes()
    rebuilt = rebuild_indexes(corp_id=world.corp.pk)
    # then
    assert saved == 1 and rebuilt == 1
    assert IndexSnapshot.objects.for_corp(world.corp).count() == 1


def test_segment_jobs_are_registered_and_their_tasks_run(world) -> None:  # type: ignore[no-untyped-def]
    # given
    factories.make_customer(world.corp)
    segment = create_segment(corp=world.corp, data=SegmentInput(name="女", text="gender:female"))
    names = {spec.name: spec for spec in registered()}
    # when
    names["segments.refresh"].run()
    run_tasks()
    # then
    assert {"segments.refresh", "segments.save_indexes", "segments.rebuild"} <= set(names)
    assert SegmentCount.objects.filter(segment=segment).exists()
