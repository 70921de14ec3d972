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
