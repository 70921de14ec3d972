"""The periodic beat: each job once per interval across workers; failures recorded, others still run."""

from __future__ import annotations

import datetime as dt

import pytest

from siyu.core import clock, scheduler
from siyu.core.models import PeriodicJob

pytestmark = pytest.mark.django_db


@pytest.fixture
def jobs(monkeypatch):
    registry: dict[str, scheduler.PeriodicSpec] = {}
    monkeypatch.setattr(scheduler, "_registry", registry)
    return registry


def test_a_job_runs_once_per_interval_whatever_the_number_of_workers(jobs):
    # given a job every minute
    calls = []
    scheduler.register("count", dt.timedelta(minutes=1), lambda: calls.append(clock.now()))
    start = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
    with clock.frozen_at(start):
        # when two workers' beats tick at the same moment
        first = scheduler.run_due()
        second = scheduler.run_due()
        # then only one ran it
        assert (first, second, len(calls)) == (["count"], [], 1)
        # and it is due again a minute later, not before
        clock.advance(dt.timedelta(seconds=59))
        assert scheduler.run_due() == []
        clock.advance(dt.timedelta(seconds=1))
        assert scheduler.run_due() == ["count"]
    assert len(calls) == 2
    row = PeriodicJob.objects.get(name="count")
    assert row.next_run_at == start + dt.timedelta(minutes=2)


def test_a_failing_job_is_recorded_and_does_not_stop_the_others(jobs):
    def broken() -> None:
        raise RuntimeError("boom")

    ran = []
    scheduler.register("a_broken", dt.timedelta(minutes=1), broken)
    scheduler.register("b_fine", dt.timedelta(minutes=1), lambda: ran.append(1))
    assert scheduler.run_due() == ["a_broken", "b_fine"]
    assert ran == [1]
    assert PeriodicJob.objects.get(name="a_broken").last_error == "RuntimeError: boom"
    assert PeriodicJob.objects.get(name="b_fine").last_error == ""


def test_the_wecom_sweeps_are_registered():
    names = {spec.name for spec in scheduler.registered()}
    assert {"wecom.inbox_sweep", "wecom.outbox_sweep", "wecom.sync_sweep"} <= names


def test_beat_thread_stops(jobs):
    # an empty registry: the thread's first tick must not enqueue real jobs on a connection of its own, whose
    # commits the test's rollback would not undo (later tests would find the tasks queued)
    beat = scheduler.Beat(tick=0.05)
    beat.start()
    beat.stop()
    beat.join(timeout=5)
    assert not beat.is_alive()


def test_a_job_that_can_wait_gives_way_while_busy_but_not_for_longer_than_allowed(jobs, monkeypatch):
    # given a job every 10 s that may wait up to a minute, and one that may not wait
    busy = [False]
    monkeypatch.setattr(scheduler, "_busy", lambda: busy[0])
    scheduler.register(
        "rollup", dt.timedelta(seconds=10), lambda: None, defer_when_busy=dt.timedelta(minutes=1)
    )
    scheduler.register("sweep", dt.timedelta(seconds=10), lambda: None)
    start = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)
    with clock.frozen_at(start):
        assert scheduler.run_due() == ["rollup", "sweep"]
        # when urgent work is under way
        busy[0] = True
        clock.advance(dt.timedelta(seconds=10))
        # then the job that can wait is put off, the other runs on time
        assert scheduler.run_due() == ["sweep"]
        clock.advance(dt.timedelta(seconds=40))
        assert scheduler.run_due() == ["sweep"]
        # and once it last ran a minute ago it runs, busy or not
        clock.advance(dt.timedelta(seconds=10))
        assert scheduler.run_due() == ["rollup", "sweep"]
        # when the urgent work is done it runs on its own interval again
        busy[0] = False
        clock.advance(dt.timedelta(seconds=10))
        assert scheduler.run_due() == ["rollup", "sweep"]


def test_the_rollup_and_segment_upkeep_give_way_to_adds():
    deferrable = {spec.name for spec in scheduler.registered() if spec.defer_when_busy is not None}
    assert {"channels.stats", "segments.refresh", "segments.save_indexes"} <= deferrable
    assert scheduler._busy is not None
