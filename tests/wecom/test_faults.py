"""Fault tests: the database down under the receiver, workers killed mid-batch, a 45009 storm.

Each fault is made as it happens in production where a test can: connections refused by a closed port, a
worker process killed with SIGKILL, the simulator's own rate limits. Where a test database cannot be shared
with another process (SQLite's in-memory test database), the kill is made inside the process instead, at the
same point: an exception no handler catches, like the process stopping there.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import pytest
from django.db import OperationalError, connection, connections
from django.db.backends.utils import CursorWrapper

from siyu.core import clock
from siyu.corps.services import create_corp
from siyu.customers.models import Customer, Event, FollowRelation
from siyu.simulator.app import Simulator
from siyu.simulator.testing import running_simulator
from siyu.wecom import groupcommit, outbox, tokens
from siyu.wecom import schemas as s
from siyu.wecom.inbox import claim_batch, drain_inbox, process_row
from siyu.wecom.mirror import Mirror
from siyu.wecom.models import InboxEvent, Outbox
from siyu.wecom.outbox import claim_due, enqueue_write, send_claimed, send_due
from tests.conftest import run_tasks
from tests.wecom.inbound_support import simulated_wecom
from tests.wecom.test_properties import assert_no_doubled_events, domain_state, rolled_back

pytestmark = pytest.mark.django_db

postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="another process needs the test database on a server"
)


@pytest.fixture(autouse=True)
def _no_committer_left() -> Iterator[None]:
    """Callbacks stored outside a test transaction go through the process's group committer (PostgreSQL),
    whose connection would outlive the test and keep the test database from being dropped."""
    yield
    groupcommit.shutdown()


class Killed(BaseException):
    """The process stops here: no ``except Exception`` in the code under test catches it."""


# Generous: a worker process starts Django first, and CI machines can be slow.
WAIT_SECONDS = 60.0


def wait_until(condition: Callable[[], Any], timeout: float = WAIT_SECONDS, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what or condition}")


def wecom_relations(sim: Simulator, customers: set[str]) -> set[tuple[str, str, str, tuple[str, ...]]]:
    """WeCom's relations with these customers: (customer, member, remark, tag ids)."""
    return {
        (c.external_userid, f.userid, f.remark, tuple(sorted(f.tag_ids)))
        for c in sim.state.customers.values()
        if c.external_userid in customers
        for f in c.follows.values()
    }


def customers_of(corp: Any) -> set[str]:
    return set(Customer.objects.for_corp(corp).values_list("external_userid", flat=True))


def siyu_relations(corp: Any) -> set[tuple[str, str, str, tuple[str, ...]]]:
    return {
        (ext, userid, remark, tags)
        for ext, userid, remark, _d, _s, _at, tags in domain_state(corp)["relations"]
    }


def timeline(corp: Any) -> list[tuple[str, str, str]]:
    """The timeline's facts without Siyu's ids: (kind, customer, member), sorted."""
    return sorted(
        (e.kind, e.customer.external_userid if e.customer else "", e.staff.userid if e.staff else "")
        for e in Event.objects.for_corp(corp).select_related("customer", "staff")
    )


def sim_corp(sim: Simulator) -> Any:
    config = sim.config
    return create_corp(
        name=config.corp_name,
        corpid=config.corpid,
        secret=config.secret,
        token=config.token,
        aes_key=config.aes_key,
    )


WORKER_APP = "siyu-test-worker"  # the worker process's database sessions, by application_name


def worker_env(sim: Simulator) -> dict[str, str]:
    """The environment of a worker process on the test database, talking to the simulator."""
    db = connection.settings_dict
    host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    url = f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{host}/{db['NAME']}?application_name={WORKER_APP}"
    return {
        **os.environ,
        "DATABASE_URL": url,
        "WECOM_API_BASE": sim.api_base,
        "DJANGO_SETTINGS_MODULE": "siyu.config.settings",
    }


def start_worker(sim: Simulator, code: str) -> subprocess.Popen[bytes]:
    program = f"import django\ndjango.setup()\n{code}\n"
    return subprocess.Popen([sys.executable, "-c", program], env=worker_env(sim))


def kill(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the worker, then wait for the database server to notice its connection is gone."""
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)

    def gone() -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [WORKER_APP])
            return cursor.fetchone()[0] == 0

    wait_until(gone, what="the killed worker's database session to end")


# --- 1. the database down under the receiver ------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def database_down() -> Iterator[None]:
    """The database is unreachable for the web server.

    PostgreSQL: the server's open connections are terminated (as by a restart) and new ones go to a closed
    port and are refused. SQLite (the live server's threads have their own connections to the shared in-memory
    test database): every statement of the process fails the way it does when the file cannot be opened.
    """
    if connection.vendor == "postgresql":
        shared = connections.settings["default"]  # the dict every thread's connection is made from
        saved = (shared["HOST"], shared["PORT"])
        shared["HOST"], shared["PORT"] = "127.0.0.1", _closed_port()
        with connection.cursor() as cursor:  # the test's own connection stays
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        try:
            yield
        finally:
            shared["HOST"], shared["PORT"] = saved
        return

    refused = OperationalError("unable to open database file")
    with mock.patch.object(CursorWrapper, "_execute_with_wrappers", side_effect=refused):
        yield


@pytest.mark.django_db(transaction=True)
def test_callbacks_refused_while_the_database_is_down_are_redelivered_stored_once_and_worked(
    live_server, settings
):
    # WeCom's 90238 rule: any answer but 200 is delivered again. A sender per callback, so each is refused
    # while the database is down (one sender would use up one callback's redeliveries first).
    with running_simulator(
        staff=3,
        customers=5,
        groups=1,
        callback_workers=5,
        callback_retry_on_non_200=True,
        callback_retries=3,
        callback_retry_interval=1.0,
    ) as sim:
        settings.WECOM_API_BASE = sim.api_base
        tokens.forget_cached()
        corp = sim_corp(sim)
        sim.config.callback_url = f"{live_server.url}/wecom/callback/{corp.corpid}/"
        # given a callback stored while all is well (the server has its database connections)
        added = [sim.actions.add_customer(state="web")["external_userid"]]
        assert sim.sender.wait_idle(timeout=30)
        assert [d.status for d in sim.sender.log] == ["delivered"]
        # and the database down while customers add members in WeCom
        with database_down():
            added += [sim.actions.add_customer(state="expo")["external_userid"] for _ in range(4)]
            member = next(iter(sim.state.customers[added[1]].follows))
            sim.actions.edit_remark(userid=member, external_userid=added[1], remark="先到")
            deliveries = sorted(sim.sender.log, key=lambda d: d.id)[1:]
            assert len(deliveries) == 5
            # when every callback has been refused once
            wait_until(lambda: all(d.errors for d in deliveries), what="a refusal of every callback")
        # and WeCom delivers them again after the database is back
        assert sim.sender.wait_idle(timeout=30)
        # then each was answered 5xx first, then stored, once
        for delivery in deliveries:
            assert delivery.status == "delivered", delivery.public()
            assert delivery.errors[0].startswith("HTTP 5"), delivery.errors
            assert delivery.attempts >= 2
        assert InboxEvent.objects.for_corp(corp).count() == 6
        # and the real worker makes every change of them: nothing lost
        run_tasks()
        assert set(InboxEvent.objects.for_corp(corp).values_list("status", flat=True)) == {
            InboxEvent.Status.DONE
        }
        assert siyu_relations(corp) == wecom_relations(sim, set(added))
        assert_no_doubled_events(corp)


# --- 2. a worker killed mid-batch -------------------------------------------------------------------------


def _burst(env: Any) -> int:
    """Changes to several customers in WeCom (adds, tags, a remark, a deletion); the number of callbacks."""
    actions, state = env.sim.actions, env.sim.state
    staff = sorted(state.follow_users())
    tags = sorted(t.id for t in state.tags.values() if not t.deleted)
    added = [actions.add_customer(userid=staff[i % 3], state="web")["external_userid"] for i in range(6)]
    actions.tag_in_client(userid=staff[0], external_userid=added[0], add_tag=tags[:2])
    actions.edit_remark(userid=staff[1], external_userid=added[1], remark="老客户")
    actions.add_customer(userid=staff[2], external_userid=added[0])
    actions.customer_deletes_staff(userid=staff[2], external_userid=added[5])
    return 10


def test_an_inbox_worker_killed_mid_batch_leaves_the_rest_to_the_next_without_doubling(settings):
    # one sender: the callbacks arrive in the order they were made, so the batch is known
    with simulated_wecom(settings, staff=4, customers=4, groups=1, callback_workers=1) as env:
        # given a burst of callbacks, stored
        env.deliver(_burst(env))
        corp = env.corp
        # and what one worker that is never interrupted makes of them
        with rolled_back():
            drain_inbox(corp_id=corp.pk)
            expected_state, expected_timeline = domain_state(corp), timeline(corp)
        # when a worker claims a batch, closes two rows, and dies inside the third row's handler after its
        # first writes (the customer is saved, its relation is not)
        _token, batch = claim_batch(corp_id=corp.pk, size=10)
        assert len(batch) >= 4
        for row in batch[:2]:
            assert process_row(row) == InboxEvent.Status.DONE
        with mock.patch.object(Mirror, "relation", side_effect=Killed), pytest.raises(Killed):
            process_row(batch[2])
        # then its rows wait out its lease: another worker leaves them (and works what is not behind them)
        drain_inbox(corp_id=corp.pk)
        assert {InboxEvent.objects.get(pk=r.pk).status for r in batch[2:]} == {InboxEvent.Status.PROCESSING}
        # when the lease has run out, the next worker takes them over
        later = clock.now() + dt.timedelta(seconds=settings.SIYU["INBOX_LEASE_SECONDS"] + 1)
        with clock.frozen_at(later):
            drain_inbox(corp_id=corp.pk)
        # then every row is done, those of the dead worker on their second try, and the outcome is the
        # uninterrupted worker's: same state, each fact once on the timeline
        rows = {r.pk: r for r in InboxEvent.objects.for_corp(corp)}
        assert {r.status for r in rows.values()} == {InboxEvent.Status.DONE}
        assert [rows[r.pk].attempts for r in batch[2:]] == [2] * len(batch[2:])
        assert domain_state(corp) == expected_state
        assert timeline(corp) == expected_timeline
        assert_no_doubled_events(corp)


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_an_inbox_worker_process_killed_mid_batch_is_taken_over_without_doubling(settings):
    with simulated_wecom(settings, staff=4, customers=4, groups=1) as env:
        # given a burst of callbacks stored, and WeCom answering slowly (each handler takes a while)
        env.deliver(_burst(env))
        corp = env.corp
        env.sim.config.latency_ms = 300
        rows = InboxEvent.objects.for_corp(corp)
        # when a worker process claiming batches of ten is killed with SIGKILL in the middle of its batch
        worker = start_worker(
            env.sim,
            "from django.conf import settings\nfrom siyu.wecom.inbox import drain_inbox\n"
            f"settings.SIYU['INBOX_BATCH_SIZE'] = 10\ndrain_inbox(corp_id={corp.pk})",
        )
        try:
            wait_until(lambda: rows.filter(status=InboxEvent.Status.DONE).count() >= 2, what="two rows done")
        finally:
            kill(worker)
        env.sim.config.latency_ms = 0
        left = list(rows.filter(status=InboxEvent.Status.PROCESSING).values_list("pk", flat=True))
        assert left, "the worker was killed after its batch, not during it"
        # and another worker runs after the dead one's lease
        later = clock.now() + dt.timedelta(seconds=settings.SIYU["INBOX_LEASE_SECONDS"] + 1)
        with clock.frozen_at(later):
            drain_inbox(corp_id=corp.pk)
        # then every change is made once: WeCom's state, each fact once on the timeline
        assert set(rows.values_list("status", flat=True)) == {InboxEvent.Status.DONE}
        assert siyu_relations(corp) == wecom_relations(env.sim, customers_of(corp))
        assert_no_doubled_events(corp)
        added = collections.Counter(fact for fact in timeline(corp) if fact[0] == Event.Kind.ADDED)
        assert set(added.values()) == {1}


def _mass_message(env: Any) -> s.MsgTemplateRequest:
    relation = FollowRelation.objects.for_corp(env.corp).select_related("customer", "staff").first()
    assert relation is not None
    return s.MsgTemplateRequest(
        external_userid=[relation.customer.external_userid],
        sender=relation.staff.userid,
        text=s.Text(content="周末到店有礼"),
    )


def _remark(env: Any, remark: str) -> s.RemarkRequest:
    relation = FollowRelation.objects.for_corp(env.corp).select_related("customer", "staff").last()
    assert relation is not None
    return s.RemarkRequest(
        userid=relation.staff.userid, external_userid=relation.customer.external_userid, remark=remark
    )


def test_an_outbox_worker_killed_after_sending_sends_an_unsafe_write_never_again(settings):
    with simulated_wecom(settings, staff=3, customers=4, groups=1) as env:
        env.act("add_customer")
        env.act("add_customer")
        mass = enqueue_write(
            corp=env.corp,
            api="externalcontact/add_msg_template",
            payload=_mass_message(env),
            idempotency_key="m1",
        )
        remark = enqueue_write(
            corp=env.corp, api="externalcontact/remark", payload=_remark(env, "回访过"), idempotency_key="r1"
        )
        calls = env.sim.limits.calls
        # when a worker sends both and dies before recording either answer
        claimed = claim_due()
        assert {pk for pk, _lease in claimed} == {mass.pk, remark.pk}
        with mock.patch.object(outbox, "_record", side_effect=Killed):
            for pk, lease in claimed:
                with pytest.raises(Killed):
                    send_claimed(pk, lease)
        assert calls["externalcontact/add_msg_template"] == calls["externalcontact/remark"] == 1
        # and another worker runs once the lease is over
        with clock.frozen_at(clock.now() + outbox.CLAIM_LEASE + dt.timedelta(seconds=1)):
            send_due()
        # then the mass message, which WeCom may have, is not sent again: it waits for a person to check
        mass.refresh_from_db()
        assert mass.status == Outbox.Status.FAILED
        assert mass.last_error.startswith("outcome unknown")
        assert calls["externalcontact/add_msg_template"] == 1
        assert len(env.sim.state.msg_templates) == 1
        # and the remark, which is the same however often it is sent, is sent again and done
        remark.refresh_from_db()
        assert remark.status == Outbox.Status.DONE
        assert calls["externalcontact/remark"] == 2


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_an_outbox_worker_process_killed_mid_send_sends_an_unsafe_write_never_again(settings):
    with simulated_wecom(settings, staff=3, customers=4, groups=1) as env:
        env.act("add_customer")
        mass = enqueue_write(
            corp=env.corp,
            api="externalcontact/add_msg_template",
            payload=_mass_message(env),
            idempotency_key="m2",
        )
        api = "externalcontact/add_msg_template"
        # given WeCom takes two seconds to answer the mass message (and makes it all the same)
        env.sim.limits.add_fault(api=api, kind="latency", seconds=2.0)
        # when the worker process sending it is killed while it waits for the answer
        worker = start_worker(env.sim, "from siyu.wecom.outbox import send_due\nsend_due()")
        try:
            wait_until(lambda: env.sim.limits.calls[api] >= 1, what="the mass message sent")
        finally:
            kill(worker)
        wait_until(lambda: env.sim.state.msg_templates, what="WeCom to make the mass message")
        env.sim.limits.clear_faults()
        # and another worker runs after the dead one's lease
        with clock.frozen_at(clock.now() + outbox.CLAIM_LEASE + dt.timedelta(seconds=1)):
            send_due()
        # then it is not sent again: failed with "outcome unknown", one mass message in WeCom
        mass.refresh_from_db()
        assert (mass.status, mass.last_error[:15]) == (Outbox.Status.FAILED, "outcome unknown")
        assert env.sim.limits.calls[api] == 1
        assert len(env.sim.state.msg_templates) == 1


# --- 3. a 45009 storm ------------------------------------------------------------------------------------


def test_a_45009_storm_is_survived_with_every_write_applied_once(settings):
    with simulated_wecom(settings, staff=4, customers=110, groups=1) as env:
        sim, corp = env.sim, env.corp
        relations = sorted((c.external_userid, u) for c in sim.state.customers.values() for u in c.follows)[
            :100
        ]
        assert len(relations) == 100
        tag = sorted(t.id for t in sim.state.tags.values() if not t.deleted)[0]
        # given WeCom allows 40 remark and 40 mark_tag calls a minute (then 45009 for the rest of the minute)
        for api in ("externalcontact/remark", "externalcontact/mark_tag"):
            sim.limits.set_limit(api, per_minute=40, per_hour=None)
        sim.clock.freeze()
        start = clock.now()
        with clock.frozen_at(start):
            # when 200 writes are queued at once
            for n, (external_userid, userid) in enumerate(relations):
                enqueue_write(
                    corp=corp,
                    api="externalcontact/remark",
                    payload=s.RemarkRequest(
                        userid=userid, external_userid=external_userid, remark=f"批量{n}"
                    ),
                    idempotency_key=f"storm:remark:{n}",
                )
                enqueue_write(
                    corp=corp,
                    api="externalcontact/mark_tag",
                    payload=s.MarkTagRequest(userid=userid, external_userid=external_userid, add_tag=[tag]),
                    idempotency_key=f"storm:tag:{n}",
                )
            # and the worker runs minute after minute (both clocks moved together) until nothing is left
            rounds = 0
            rows = Outbox.objects.for_corp(corp)
            while rows.exclude(status=Outbox.Status.DONE).exists():
                rounds += 1
                assert rounds <= 12, list(rows.values_list("status", "last_error").distinct())
                send_due()
                clock.advance(dt.timedelta(seconds=61))
                sim.clock.advance(61)
        # then WeCom refused calls (there was a storm), yet every write is done, none failed
        assert sum(sim.limits.rejected.values()) > 0
        assert rounds >= 3
        assert rows.filter(status=Outbox.Status.DONE).count() == 200
        # and each was applied once: accepted calls are exactly the writes, and WeCom has every change
        for api in ("externalcontact/remark", "externalcontact/mark_tag"):
            assert sim.limits.calls[api] - sim.limits.rejected[api] == 100
        for n, (external_userid, userid) in enumerate(relations):
            follow = sim.state.customers[external_userid].follows[userid]
            assert follow.remark == f"批量{n}"
            assert tag in follow.tag_ids
