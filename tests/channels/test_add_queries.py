"""The statements one add costs the worker: what stands between a customer's callback and their welcome
message (P12: within 2 s during a full sync), pinned so that a change adding queries to the add path fails."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from siyu.channels.handlers import automate_waiting
from siyu.channels.models import Channel, ChannelAdd
from siyu.customers.models import Event
from siyu.tags.models import RelationTag, Tag
from tests.channels.support import automated_channel
from tests.conftest import run_tasks
from tests.wecom.inbound_support import simulated_wecom

pytestmark = pytest.mark.django_db

# Statements of one add worked end to end, transaction control (BEGIN, COMMIT, savepoints) aside: the
# inbox claim, externalcontact/get through the gateway, the customer and the relation with its event, the add
# and its welcome queued, the channel analytics' rollup marks, the welcome sent and its outcome recorded, the
# channel's remark and auto-tag with their events and WeCom writes, the channel's rotation check, the row
# closed. 65 before the add path was cut down, 57 after (3 more since the rollup marks came: 60).
MAX_STATEMENTS_PER_ADD = 61

_TRANSACTION_CONTROL = re.compile(r"^(SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK TO SAVEPOINT|BEGIN|COMMIT)\b")


def _tables(sql: str) -> str:
    verb = sql.split(None, 1)[0].upper()
    table = re.search(r'(?:FROM|INTO|UPDATE)\s+"?([a-z_]+)"?', sql)
    return f"{verb} {table.group(1) if table else '?'}"


def _automated_channel(env) -> tuple[Channel, Tag]:
    return automated_channel(env, welcome_text="您好{customer_name}")


def test_one_add_through_a_channel_stays_within_its_statement_budget(
    settings, django_capture_on_commit_callbacks
):
    with simulated_wecom(settings) as env:
        # given a channel with its own welcome message, a remark template and an auto-tag, and one add worked
        # already (the corp's API limits and tokens in place, as on any busy day)
        channel, tag = _automated_channel(env)
        with django_capture_on_commit_callbacks(execute=True):
            env.act("scan_contact_way", config_id=channel.config_id)
        # when another customer scans the code and the worker handles their callback
        added = env.sim.actions.scan_contact_way(config_id=channel.config_id)
        env.deliver()
        with CaptureQueriesContext(connection) as captured, django_capture_on_commit_callbacks(execute=True):
            env.work()
        # then the add is complete: welcomed, remarked, tagged, each once on the timeline
        add = ChannelAdd.objects.for_corp(env.corp).get(customer__external_userid=added["external_userid"])
        assert add.welcome_status == ChannelAdd.Welcome.SENT
        assert env.sim.state.welcome_codes[added["welcome_code"]].used
        assert add.automated_at is not None
        assert RelationTag.objects.filter(relation_id=add.relation_id, tag=tag).exists()
        kinds = Counter(
            Event.objects.for_corp(env.corp).filter(customer=add.customer).values_list("kind", flat=True)
        )
        assert kinds == {
            Event.Kind.ADDED: 1,
            Event.Kind.WELCOMED: 1,
            Event.Kind.REMARK_CHANGED: 1,
            Event.Kind.TAGGED: 1,
        }
        # and it took no more statements than the budget
        statements = [q["sql"] for q in captured.captured_queries]
        work = [sql for sql in statements if not _TRANSACTION_CONTROL.match(sql)]
        breakdown = Counter(_tables(sql) for sql in work)
        assert len(work) <= MAX_STATEMENTS_PER_ADD, (len(work), breakdown.most_common())


@pytest.mark.django_db(transaction=True)  # handlers run on the drain's commits, as in a worker
def test_in_a_burst_each_add_is_welcomed_before_the_adds_ahead_of_it_are_remarked_and_tagged(settings):
    with simulated_wecom(settings) as env:
        # given a channel with a welcome message, a remark template and an auto-tag
        channel, tag = _automated_channel(env)
        # when three customers scan the code together and one drain works their callbacks
        scans = [env.sim.actions.scan_contact_way(config_id=channel.config_id) for _ in range(3)]
        env.deliver(minimum=3)
        env.work()
        adds = [
            ChannelAdd.objects.for_corp(env.corp).get(customer__external_userid=scan["external_userid"])
            for scan in scans
        ]
        # then every add is welcomed; only the last one worked, with no add waiting behind it, is automated
        assert [add.welcome_status for add in adds] == [ChannelAdd.Welcome.SENT] * 3
        last = max(adds, key=lambda add: add.welcome_sent_at)
        assert [add.automated_at is not None for add in adds] == [add is last for add in adds]
        # and the automation task, once the inbox is empty, finishes them
        run_tasks()
        for add in adds:
            add.refresh_from_db()
        # then every add is complete: welcomed, remarked and tagged, once each
        for add, scan in zip(adds, scans, strict=True):
            assert add.welcome_status == ChannelAdd.Welcome.SENT
            assert env.sim.state.welcome_codes[scan["welcome_code"]].used
            assert add.automated_at is not None
            assert RelationTag.objects.filter(relation_id=add.relation_id, tag=tag).count() == 1
            kinds = Counter(
                Event.objects.for_corp(env.corp).filter(customer=add.customer).values_list("kind", flat=True)
            )
            assert kinds[Event.Kind.REMARK_CHANGED] == 1 and kinds[Event.Kind.TAGGED] == 1
        # and no add's remark and tags were applied before the last add of the burst was welcomed
        assert adds[-1].welcome_sent_at is not None
        last_welcome = max(add.welcome_sent_at for add in adds if add.welcome_sent_at is not None)
        assert all(add.automated_at >= last_welcome for add in adds[:-1])


@pytest.mark.django_db(transaction=True)  # handlers run on the drain's commits, as in a worker
def test_the_automation_task_gives_way_while_an_add_waits_and_finishes_once_none_does(settings):
    settings.SIYU = {**settings.SIYU, "INBOX_BATCH_SIZE": 1}
    with simulated_wecom(settings) as env:
        # given an add whose automation was put off (another add waited behind it)
        channel, tag = _automated_channel(env)
        _first, _second = (env.sim.actions.scan_contact_way(config_id=channel.config_id) for _ in range(2))
        env.deliver(minimum=2)
        env.work()
        put_off = ChannelAdd.objects.for_corp(env.corp).get(automated_at=None)
        # and a new add waiting in the inbox
        env.sim.actions.scan_contact_way(config_id=channel.config_id)
        env.deliver()
        # when the automation task runs, it leaves the put-off add for later
        assert automate_waiting(env.corp.pk) == (0, True)
        put_off.refresh_from_db()
        assert put_off.automated_at is None
        # when the waiting add has been worked, the task finishes the put-off one: remarked and tagged, once
        env.work()
        assert automate_waiting(env.corp.pk) == (1, False)
        put_off.refresh_from_db()
        assert put_off.automated_at is not None
        assert RelationTag.objects.filter(relation_id=put_off.relation_id, tag=tag).count() == 1
        assert automate_waiting(env.corp.pk) == (0, False)
