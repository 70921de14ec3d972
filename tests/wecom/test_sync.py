"""Full sync and reconciliation against the simulator: counts match, resumable, missed changes repaired."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db.models import Prefetch

from siyu.core import clock
from siyu.corps.models import Department, Staff
from siyu.customers.models import Customer, Event, FollowRelation
from siyu.customers.services import build_search_text
from siyu.groups.models import GroupChat, GroupMember
from siyu.tags.models import CustomerTag, RelationTag, Tag, TagGroup
from siyu.wecom.client import client_for
from siyu.wecom.limits import Priority
from siyu.wecom.models import InboxEvent, SyncRun
from siyu.wecom.sync import run_sync, start_sync, sync_progress
from tests.wecom.inbound_support import simulated_wecom

pytestmark = pytest.mark.django_db


def _wecom_counts(state) -> dict[str, int]:
    relations = [f for c in state.customers.values() for f in c.follows.values()]
    live_tags = [t for t in state.tags.values() if not t.deleted]
    live_groups = [g for g in state.groups.values() if not g.dismissed]
    return {
        "departments": len(state.departments),
        "staff": sum(1 for m in state.staff.values() if m.status != 5),
        "customers": sum(1 for c in state.customers.values() if c.follows),
        "relations": len(relations),
        "relation_tags": sum(
            len([t for t in f.tag_ids if t in state.tags and not state.tags[t].deleted]) for f in relations
        ),
        "tag_groups": sum(1 for g in state.tag_groups.values() if not g.deleted),
        "tags": len(live_tags),
        "groups": len(live_groups),
        "group_members": sum(len(g.members) for g in live_groups),
    }


def _siyu_counts(corp) -> dict[str, int]:
    active = FollowRelation.objects.for_corp(corp).filter(status=FollowRelation.Status.ACTIVE)
    return {
        "departments": Department.objects.for_corp(corp).count(),
        "staff": Staff.objects.for_corp(corp).exclude(status=Staff.Status.RESIGNED).count(),
        "customers": Customer.objects.for_corp(corp).filter(relations__status="active").distinct().count(),
        "relations": active.count(),
        "relation_tags": RelationTag.objects.for_corp(corp).filter(relation__in=active).count(),
        "tag_groups": TagGroup.objects.for_corp(corp).exclude(wecom_group_id="").count(),
        "tags": Tag.objects.for_corp(corp).exclude(wecom_tag_id="").count(),
        "groups": GroupChat.objects.for_corp(corp).filter(status=GroupChat.Status.ACTIVE).count(),
        "group_members": GroupMember.objects.for_corp(corp)
        .filter(left_at=None, group__status="active")
        .count(),
    }


def test_full_sync_matches_the_simulator(settings):
    with simulated_wecom(settings, customers=250, staff=8, groups=5) as env:
        # given a simulated corp with more relations than one batch/get_by_user page
        expected = _wecom_counts(env.sim.state)
        assert expected["relations"] > 100
        # when
        run = start_sync(corp=env.corp, kind=SyncRun.Kind.FULL, enqueue=False)
        turn = run_sync(run.pk)
        # then
        assert turn.run.status == SyncRun.Status.DONE, turn.run.error
        assert _siyu_counts(env.corp) == expected
        assert turn.run.counts["relations"] == expected["relations"]
        assert sync_progress(turn.run).percent == 100
        # and the set-based import left what the one-at-a-time services would: an ``added`` event per
        # relation, a ``tagged`` event per tag, and the list's denormalised columns
        events = Event.objects.for_corp(env.corp)
        assert events.filter(kind=Event.Kind.ADDED, source=Event.Source.SYNC).count() == expected["relations"]
        assert events.filter(kind=Event.Kind.TAGGED).count() == expected["relation_tags"]
        assert CustomerTag.objects.for_corp(env.corp).count() == len(
            set(RelationTag.objects.for_corp(env.corp).values_list("customer_id", "tag_id"))
        )
        by_id = Prefetch("relations", queryset=FollowRelation.objects.order_by("id"))
        for customer in Customer.objects.for_corp(env.corp).prefetch_related(by_id):
            relations = list(customer.relations.all())
            assert customer.search_text == build_search_text(customer, relations)
            assert customer.last_added_at == max(r.added_at for r in relations)


def test_a_full_sync_marks_who_has_customer_contact(settings):
    with simulated_wecom(settings, customers=20, staff=6) as env:
        # given a member WeCom gives no customer contact, and one Siyu wrongly thinks has none
        members = sorted(env.sim.state.staff.values(), key=lambda m: m.userid)
        members[0].customer_contact = False
        run = start_sync(corp=env.corp, kind=SyncRun.Kind.FULL, enqueue=False)
        assert run_sync(run.pk).run.status == SyncRun.Status.DONE
        Staff.objects.for_corp(env.corp).filter(userid=members[1].userid).update(has_contact_permission=False)
        # when the corp is synced again
        run = start_sync(corp=env.corp, kind=SyncRun.Kind.FULL, enqueue=False)
        assert run_sync(run.pk).run.status == SyncRun.Status.DONE
        # then Siyu's flags are WeCom's follow-user list
        flagged = set(
            Staff.objects.for_corp(env.corp)
            .filter(has_contact_permission=True)
            .values_list("userid", flat=True)
        )
        assert flagged == set(env.sim.state.follow_users())
        assert members[0].userid not in flagged and members[1].userid in flagged


def _run_to_end(run_id: int, **kwargs) -> SyncRun:
    while True:
        turn = run_sync(run_id, **kwargs)
        if turn.run.status in (SyncRun.Status.DONE, SyncRun.Status.FAILED):
            return turn.run


def test_a_second_full_sync_repairs_nothing(settings):
    with simulated_wecom(settings, customers=60) as env:
        first = _run_to_end(start_sync(corp=env.corp, kind=SyncRun.Kind.FULL, enqueue=False).pk)
        events = Event.objects.for_corp(env.corp).count()
        # when the corp is synced again with nothing changed in WeCom
        second = _run_to_end(start_sync(corp=env.corp, kind=SyncRun.Kind.FULL, enqueue=False).pk)
        # then nothing needed repair and the timeline did not grow
        assert first.repairs["relations_added"] == first.counts["relations"]
        assert second.status == SyncRun.Status.DONE
        assert second.repairs == {}
        assert Event.objects.for_corp(env.corp).count() == events


def test_a_sync_resumes_from_its_checkpoint(settings):
    with simulated_wecom(settings, customers=250, staff=8) as env:
        expected = _wecom_counts(env.sim.state)
        run = start_sync(corp=env.corp, kind=SyncRun.Kind.FULL, enqueue=False)
        # when the worker stops after two pages of customers (as when its time budget ends): one step per
        # member's customer list, then one per page
        first = run_sync(run.pk, max_steps=len(env.sim.state.follow_users()) + 2)
        # then the run is still going, part way through the customers
        assert first.continue_at is not None
        assert first.run.status == SyncRun.Status.RUNNING
        assert first.run.stage == "customers"
        assert first.run.checkpoint["chunk"] == 0 and first.run.checkpoint["cursor"]
        partial = first.run.counts["relations"]
        assert 0 < partial < expected["relations"]
        assert 10 < sync_progress(first.run).percent < 100
        assert first.run.checkpoint["expected"] == expected["relations"]
        # when a WeCom failure interrupts it next (the app's permission is withdrawn) and it is resumed
        env.sim.limits.add_fault(api="externalcontact/batch/get_by_user", kind="errcode", errcode=48002)
        failed = run_sync(run.pk).run
        assert failed.status == SyncRun.Status.FAILED
        assert "48002" in failed.error
        env.sim.limits.clear_faults()
        from siyu.wecom.sync import resume_sync

        resume_sync(run=failed)
        done = _run_to_end(run.pk)
        # then it finished where it stopped: every relation once, the counts of WeCom
        assert done.status == SyncRun.Status.DONE
        assert done.counts["relations"] == expected["relations"]
        assert _siyu_counts(env.corp) == expected


def test_a_transient_failure_continues_later_from_the_checkpoint(settings):
    with simulated_wecom(settings, customers=40) as env:
        run = start_sync(corp=env.corp, kind=SyncRun.Kind.RECONCILE, enqueue=False)
        # given WeCom answers 45009 to the customer list: the gateway closes the API for the penalty window,
        # longer than this worker may wait
        env.sim.limits.add_fault(api="externalcontact/batch/get_by_user", kind="errcode", errcode=45009)

        def impatient(corp):
            return client_for(corp, priority=Priority.SYNC, max_wait=0)

        turn = run_sync(run.pk, client_factory=impatient)
        # then the run waits for the window, still running, with the reason and its checkpoint
        assert turn.run.status == SyncRun.Status.RUNNING
        assert turn.continue_at is not None and turn.continue_at > clock.now()
        assert turn.run.error
        assert turn.run.checkpoint.get("chunk", 0) == 0 and turn.run.checkpoint["failures"] == 1
        # when WeCom serves again and the run continues after the window
        env.sim.limits.clear_faults()
        with clock.frozen_at(turn.continue_at + dt.timedelta(seconds=1)):
            done = _run_to_end(run.pk)
        assert done.status == SyncRun.Status.DONE
        keys = (
            "customers",
            "relations",
            "relation_tags",
            "tag_groups",
            "tags",
        )  # what a reconciliation covers
        siyu, wecom = _siyu_counts(env.corp), _wecom_counts(env.sim.state)
        assert {k: siyu[k] for k in keys} == {k: wecom[k] for k in keys}


def test_only_one_sync_at_a_time(settings):
    from siyu.core.errors import Conflict

    with simulated_wecom(settings, customers=10) as env:
        start_sync(corp=env.corp, kind=SyncRun.Kind.FULL, enqueue=False)
        with pytest.raises(Conflict):
            start_sync(corp=env.corp, kind=SyncRun.Kind.RECONCILE, enqueue=False)


def test_reconciliation_repairs_missed_adds_deletes_and_tags(settings):
    with simulated_wecom(settings, customers=60) as env:
        # given a synced corp
        _run_to_end(start_sync(corp=env.corp, kind=SyncRun.Kind.FULL, enqueue=False).pk)
        state = env.sim.state
        relations = [(c, f) for c in state.customers.values() for f in c.follows.values()]
        deleted_customer, deleted_follow = relations[0]
        tagged_customer, tagged_follow = relations[1]
        tag_id = next(
            t.id for t in state.tags.values() if not t.deleted and t.id not in tagged_follow.tag_ids
        )
        # when changes happen in WeCom whose callbacks never reach Siyu
        added = env.sim.actions.add_customer()
        env.sim.actions.staff_deletes_customer(
            userid=deleted_follow.userid, external_userid=deleted_customer.external_userid
        )
        env.sim.actions.tag_in_client(
            userid=tagged_follow.userid, external_userid=tagged_customer.external_userid, add_tag=[tag_id]
        )
        # and a reconciliation runs
        run = _run_to_end(start_sync(corp=env.corp, kind=SyncRun.Kind.RECONCILE, enqueue=False).pk)
        # then Siyu matches WeCom again
        assert run.status == SyncRun.Status.DONE
        assert _siyu_counts(env.corp) == _wecom_counts(state)
        assert run.repairs == {"relations_added": 1, "relations_ended": 1, "tags_added": 1}
        # and each repair is on the timeline, marked reconciled, from the sync
        repaired = Event.objects.for_corp(env.corp).filter(payload__reconciled=True)
        assert sorted((e.kind, e.customer.external_userid) for e in repaired) == sorted(
            [
                (Event.Kind.ADDED, added["external_userid"]),
                (Event.Kind.DELETED_BY_STAFF, deleted_customer.external_userid),
                (Event.Kind.TAGGED, tagged_customer.external_userid),
            ]
        )
        assert {e.source for e in repaired} == {Event.Source.SYNC}


def test_a_relation_added_while_the_list_is_read_is_not_ended(settings):
    from siyu.core import clock
    from siyu.customers.services import add_follow_relation, upsert_customer

    with simulated_wecom(settings, customers=20) as env:
        _run_to_end(start_sync(corp=env.corp, kind=SyncRun.Kind.FULL, enqueue=False).pk)
        # given a relation Siyu recorded a moment ago that WeCom's list does not show yet
        staff = Staff.objects.for_corp(env.corp).get(userid=env.sim.state.follow_users()[0])
        customer = upsert_customer(corp=env.corp, external_userid="wmJustNow", name="刚加", source="wecom")
        add_follow_relation(customer=customer, staff=staff, source="wecom", added_at=clock.now())
        # when a reconciliation runs
        run = _run_to_end(start_sync(corp=env.corp, kind=SyncRun.Kind.RECONCILE, enqueue=False).pk)
        # then it is left alone (the next run decides)
        assert "relations_ended" not in run.repairs
        assert FollowRelation.objects.for_corp(env.corp).get(customer=customer).status == "active"


def test_groups_no_longer_listed_are_dismissed_by_a_full_sync(settings):
    with simulated_wecom(settings, customers=30, groups=3) as env:
        _run_to_end(start_sync(corp=env.corp, kind=SyncRun.Kind.FULL, enqueue=False).pk)
        chat_id = next(iter(env.sim.state.groups))
        env.sim.actions.group_dismiss(chat_id=chat_id)  # its callback is lost
        run = _run_to_end(start_sync(corp=env.corp, kind=SyncRun.Kind.FULL, enqueue=False).pk)
        assert run.repairs.get("groups_dismissed") == 1
        assert GroupChat.objects.for_corp(env.corp).get(chat_id=chat_id).status == GroupChat.Status.DISMISSED


def test_a_finished_sync_schedules_the_next_reconciliation(settings):
    from siyu.wecom.reconcile import next_reconciliation

    settings.SIYU = {**settings.SIYU, "SYNC_RECONCILE_HOURS": 6}
    with simulated_wecom(settings, customers=10) as env:
        run = _run_to_end(start_sync(corp=env.corp, kind=SyncRun.Kind.FULL, enqueue=False).pk)
        scheduled = next_reconciliation(env.corp)
        assert scheduled is not None and scheduled.kind == SyncRun.Kind.RECONCILE
        hours = (scheduled.scheduled_for - run.finished_at).total_seconds() / 3600
        assert 5.99 < hours < 6.01
        # a sync started by hand replaces the scheduled one, which is planned anew when that one ends
        start_sync(corp=env.corp, kind=SyncRun.Kind.RECONCILE, enqueue=False)
        assert not SyncRun.objects.filter(pk=scheduled.pk).exists()


def test_siyu_sync_command_runs_a_full_sync(settings, capsys):
    from siyu.config.cli import main

    with simulated_wecom(settings, customers=15) as env:
        code = main(["sync", "--corp", env.corp.corpid, "--full"])
        out = capsys.readouterr().out
        assert code == 0
        assert "100%" in out
        assert SyncRun.objects.for_corp(env.corp).filter(kind="full", status="done").count() == 1
        assert main(["sync", "--corp", "wwnobody"]) == 2


def test_a_sync_gives_way_while_a_customers_add_is_waiting(settings, caplog):
    from siyu.wecom.inbox import store_message
    from tests.wecom.inbound_support import event_xml

    with simulated_wecom(settings, customers=250, staff=8) as env:
        settings.SIYU = {**settings.SIYU, "SYNC_YIELD_SECONDS": 0.05, "SYNC_YIELD_BEHIND_SECONDS": 0.1}
        # given a customer's add waiting in the inbox (its welcome code runs out in 20 s)
        store_message(
            corp_id=env.corp.pk,
            plaintext=event_xml(
                "change_external_contact", "add_external_contact", UserID="u1", ExternalUserID="wmwaiting"
            ).encode(),
        )
        # when a full sync runs
        caplog.set_level("INFO", logger="siyu.wecom.sync")
        run = start_sync(corp=env.corp, kind=SyncRun.Kind.FULL, enqueue=False)
        turn = run_sync(run.pk)
        # then it paused for the add after its batches, and still finished with everything
        assert turn.run.status == SyncRun.Status.DONE, turn.run.error
        assert _siyu_counts(env.corp) == _wecom_counts(env.sim.state)
        paused = [r for r in caplog.records if "paused" in r.getMessage()]
        assert len(paused) == 1
        seconds = float(paused[0].args[1])
        assert seconds >= 0.05
        # and with the add worked, a second sync does not pause at all
        InboxEvent.objects.for_corp(env.corp).update(status=InboxEvent.Status.DONE)
        caplog.clear()
        second = run_sync(start_sync(corp=env.corp, kind=SyncRun.Kind.FULL, enqueue=False).pk)
        assert second.run.status == SyncRun.Status.DONE
        assert not [r for r in caplog.records if "paused" in r.getMessage()]
