"""A mass message end to end against the WeCom simulator: plan, send through the outbox, staff confirm,
per-customer results, timeline events, caps; and the ways it must not go wrong (double submit, a worker dying
mid-send, reminders over WeCom's limit, cancel, paging, quiet hours)."""

from __future__ import annotations

import datetime as dt
from unittest import mock

import pytest
from pyroaring import BitMap

from siyu.broadcasts import caps
from siyu.broadcasts import execution as ex
from siyu.broadcasts import services as svc
from siyu.broadcasts.models import Broadcast, BroadcastPart, BroadcastSkip, CapPolicy, Delivery
from siyu.core import clock
from siyu.core.errors import ErrorCode, Invalid
from siyu.customers.models import Customer, Event, FollowRelation
from siyu.wecom import mass
from siyu.wecom.models import Outbox
from tests.broadcasts.support import Loop, synced_loop

pytestmark = pytest.mark.django_db


def _everyone(loop: Loop) -> list[int]:
    return list(Customer.objects.for_corp(loop.corp).values_list("pk", flat=True))


def _compose(loop: Loop, customer_ids: list[int] | None = None, **values) -> Broadcast:
    fields = {
        "kind": Broadcast.Kind.CUSTOMERS,
        "name": "双十一预热",
        "text": "亲，双十一预售开始啦",
        "audience": {"type": "customers", "customer_ids": customer_ids or _everyone(loop)},
        **values,
    }
    return svc.create_broadcast(actor=loop.operator, **fields)


def _active_senders(corp) -> dict[int, set[int]]:
    found: dict[int, set[int]] = {}
    for customer_id, staff_id in (
        FollowRelation.objects.for_corp(corp).filter(status="active").values_list("customer_id", "staff_id")
    ):
        found.setdefault(customer_id, set()).add(staff_id)
    return found


def test_the_whole_loop_from_compose_to_deliveries(settings) -> None:
    with synced_loop(settings) as loop:
        # given a message to every customer Siyu has
        broadcast = _compose(loop)
        svc.send_broadcast(actor=loop.operator, broadcast_id=broadcast.pk)
        # when the worker plans and sends it
        assert loop.execute(broadcast) == "sent"
        loop.send_outbox()
        broadcast = loop.poll(broadcast)
        # then one WeCom task per staff member, each to customers that staff member follows
        parts = list(broadcast.parts.all())
        senders = _active_senders(loop.corp)
        assert parts and all(p.status == BroadcastPart.Status.WAITING and p.msgid for p in parts)
        assert len({p.staff_id for p in parts}) == len(parts)
        for part in parts:
            members = BitMap.deserialize(bytes(part.members))
            assert all(part.staff_id in senders[c] for c in members)
            template = loop.sim.state.msg_templates[part.msgid]
            assert template.sender == part.userid and template.text == {"content": "亲，双十一预售开始啦"}
        planned = sum(p.size for p in parts)
        assert planned == broadcast.plan["recipients"] == len(senders)
        assert broadcast.status == Broadcast.Status.TRACKING
        # when the staff confirm in their clients and the worker polls
        loop.confirm_all(broadcast)
        broadcast = loop.poll(broadcast)
        # then every customer's outcome is in, each delivered one is on their timeline, and it is done
        assert broadcast.status == Broadcast.Status.DONE
        deliveries = Delivery.objects.for_corp(loop.corp).filter(broadcast=broadcast)
        assert deliveries.count() == planned
        delivered = deliveries.filter(status=Delivery.Status.SENT)
        events = Event.objects.for_corp(loop.corp).filter(kind=Event.Kind.BROADCAST_RECEIVED)
        assert events.count() == delivered.count() > 0
        assert set(events.values_list("customer_id", flat=True)) == set(
            delivered.values_list("customer_id", flat=True)
        )
        assert all(p.status == BroadcastPart.Status.SENT and p.results_done for p in broadcast.parts.all())
        # and the ledger counts exactly the customers WeCom reached
        counted = caps.contacts_on(corp=loop.corp, day=caps.wecom_day(broadcast.ledger_at))
        assert set(counted) == set(delivered.values_list("customer_id", flat=True))
        # and polling again adds nothing
        before = (deliveries.count(), events.count())
        loop.poll(broadcast)
        assert (deliveries.count(), events.count()) == before


def test_double_submit_and_double_send_make_one_send(settings) -> None:
    with synced_loop(settings) as loop:
        # given the same form submitted twice
        first = _compose(loop, request_key="form-123")
        second = _compose(loop, request_key="form-123")
        assert first.pk == second.pk
        # when send is pressed twice and two workers both pick it up
        svc.send_broadcast(actor=loop.operator, broadcast_id=first.pk)
        svc.send_broadcast(actor=loop.operator, broadcast_id=first.pk)
        assert loop.execute(first) == "sent"
        assert loop.execute(first) == "not scheduled"
        loop.send_outbox()
        loop.send_outbox()
        # then each part reached WeCom once
        parts = BroadcastPart.objects.for_corp(loop.corp).filter(broadcast=first)
        keys = set(parts.values_list("idempotency_key", flat=True))
        assert Outbox.objects.for_corp(loop.corp).filter(idempotency_key__in=keys).count() == parts.count()
        assert len(loop.sim.state.msg_templates) == parts.count()


def test_a_worker_that_dies_mid_send_never_sends_twice(settings) -> None:
    with synced_loop(settings) as loop:
        broadcast = _compose(loop)
        svc.send_broadcast(actor=loop.operator, broadcast_id=broadcast.pk)
        loop.execute(broadcast)
        # given a worker that sent the first task to WeCom and died before recording the answer
        killed = mock.patch("siyu.wecom.outbox._record", side_effect=SystemExit("worker killed"))
        with killed, pytest.raises(SystemExit):
            loop.send_outbox()
        assert len(loop.sim.state.msg_templates) == 1
        # when its lease runs out and another worker takes over
        with clock.frozen_at(clock.now() + dt.timedelta(minutes=10)):
            loop.send_outbox()
            broadcast = loop.poll(broadcast)
        # then WeCom got every part once, and the part whose answer was lost shows "outcome unknown"
        parts = broadcast.parts.all()
        assert len(loop.sim.state.msg_templates) == parts.count()
        unknown = parts.filter(status=BroadcastPart.Status.UNKNOWN)
        assert unknown.count() == 1
        assert "outcome unknown" in unknown.get().error


def test_splitting_per_staff_member_and_per_ten_thousand(settings, monkeypatch) -> None:
    with synced_loop(settings) as loop:
        # given WeCom's 10,000 per call shrunk to 4, so this corp's staff need several tasks each
        monkeypatch.setattr(mass, "MAX_CUSTOMERS_PER_TASK", 4)
        broadcast = _compose(loop)
        svc.send_broadcast(actor=loop.operator, broadcast_id=broadcast.pk)
        # when
        loop.execute(broadcast)
        loop.send_outbox()
        # then no task has more than 4, each staff member's chunks are numbered, none overlap
        parts = list(BroadcastPart.objects.for_corp(loop.corp).filter(broadcast=broadcast))
        assert max(p.size for p in parts) == 4
        by_staff: dict[int, list[int]] = {}
        seen = BitMap()
        for part in parts:
            by_staff.setdefault(part.staff_id, []).append(part.seq)
            members = BitMap.deserialize(bytes(part.members))
            assert not members & seen
            seen |= members
        assert all(sorted(seqs) == list(range(len(seqs))) for seqs in by_staff.values())
        assert len(loop.sim.state.msg_templates) == len(parts)
        assert all(len(t.recipients[t.sender]) <= 4 for t in loop.sim.state.msg_templates.values())


def test_results_come_page_by_page_across_polls(settings, monkeypatch) -> None:
    with synced_loop(settings, customers=60, staff=2) as loop:
        # given pages of 5 results and 2 pages per poll
        monkeypatch.setattr(mass, "RESULTS_PAGE", 5)
        monkeypatch.setattr(ex, "PAGES_PER_POLL", 2)
        broadcast = _compose(loop)
        svc.send_broadcast(actor=loop.operator, broadcast_id=broadcast.pk)
        loop.execute(broadcast)
        loop.send_outbox()
        loop.poll(broadcast)
        loop.confirm_all(broadcast)
        # when polled until done
        polls = 0
        while broadcast.status != Broadcast.Status.DONE and polls < 50:
            broadcast = loop.poll(broadcast)
            polls += 1
        # then it took several polls, and every outcome arrived once
        assert polls > 1
        total = sum(p.size for p in broadcast.parts.all())
        assert Delivery.objects.for_corp(loop.corp).filter(broadcast=broadcast).count() == total


def test_reminders_at_most_three_per_day(settings) -> None:
    with synced_loop(settings) as loop:
        broadcast = _compose(loop)
        svc.send_broadcast(actor=loop.operator, broadcast_id=broadcast.pk)
        loop.execute(broadcast)
        loop.send_outbox()
        loop.poll(broadcast)
        part = broadcast.parts.first()
        start = clock.now()
        with clock.frozen_at(start):
            # when an operator reminds three times (a minute apart) and clicks twice in a row once
            for _ in range(3):
                svc.remind_part(actor=loop.operator, part_id=part.pk)
                svc.remind_part(actor=loop.operator, part_id=part.pk)  # the same click, arriving twice
                clock.advance(dt.timedelta(minutes=1))
            # then the fourth within 24 hours is refused before it reaches WeCom
            with pytest.raises(Invalid) as refused:
                svc.remind_part(actor=loop.operator, part_id=part.pk)
            assert refused.value.code == ErrorCode.REMINDER_LIMIT
            loop.send_outbox()
            assert len(loop.sim.state.msg_templates[part.msgid].reminds) == 3
            # and a day later reminding works again
            clock.advance(dt.timedelta(hours=24))
            svc.remind_part(actor=loop.operator, part_id=part.pk)
        part.refresh_from_db()
        assert len(part.reminders) == 4


def test_cancel_stops_unsent_parts_and_gives_the_caps_back(settings) -> None:
    with synced_loop(settings) as loop:
        # given a message whose first part was sent by its staff member, the others not yet
        broadcast = _compose(loop)
        svc.send_broadcast(actor=loop.operator, broadcast_id=broadcast.pk)
        loop.execute(broadcast)
        loop.send_outbox()
        loop.poll(broadcast)
        parts = list(broadcast.parts.order_by("pk"))
        assert len(parts) >= 2
        loop.sim.actions.confirm_msg(msgid=parts[0].msgid)
        # when the operator cancels
        svc.cancel_broadcast(actor=loop.operator, broadcast_id=broadcast.pk)
        loop.send_outbox()
        broadcast = loop.poll(broadcast)
        # then WeCom cancelled the unsent tasks, the sent one stands, and the broadcast is done
        statuses = {p.pk: p.status for p in broadcast.parts.all()}
        assert statuses[parts[0].pk] == BroadcastPart.Status.SENT
        assert all(statuses[p.pk] == BroadcastPart.Status.CANCELLED for p in parts[1:])
        assert all(loop.sim.state.msg_templates[p.msgid].cancelled for p in parts[1:])
        assert broadcast.status == Broadcast.Status.DONE
        # and only customers who received it still count against their caps
        counted = set(caps.contacts_on(corp=loop.corp, day=caps.wecom_day(broadcast.ledger_at)))
        reached = set(
            Delivery.objects.for_corp(loop.corp)
            .filter(broadcast=broadcast, status=Delivery.Status.SENT)
            .values_list("customer_id", flat=True)
        )
        assert counted == reached


def test_caps_skip_customers_and_the_preview_says_why(settings) -> None:
    with synced_loop(settings) as loop:
        # given 1 message per day, and half the customers already reached today
        policy = caps.policy_for(loop.corp)
        policy.wecom_quota = CapPolicy.WeComQuota.ONE_PER_DAY
        policy.save()
        everyone = sorted(_active_senders(loop.corp))
        half = BitMap(everyone[::2])
        caps.reserve(corp=loop.corp, customer_ids=half, at=clock.now())
        broadcast = _compose(
            loop,
            customer_ids=everyone,
            audience={"type": "customers", "customer_ids": everyone, "exclude_customer_ids": everyone[1:3]},
        )
        # when previewed
        preview = svc.preview_broadcast(actor=loop.operator, broadcast=broadcast)
        # then
        assert preview.skipped[BroadcastSkip.Reason.WECOM_QUOTA] == len(half - BitMap(everyone[1:3]))
        assert preview.skipped[BroadcastSkip.Reason.EXCLUDED] == 2
        assert preview.recipients == len(everyone) - preview.skipped_total
        assert sum(s.count for s in preview.staff) == preview.recipients
        # and the send skips the same customers, and stores who and why
        svc.send_broadcast(actor=loop.operator, broadcast_id=broadcast.pk)
        loop.execute(broadcast)
        broadcast.refresh_from_db()
        assert broadcast.plan["skipped"][BroadcastSkip.Reason.WECOM_QUOTA] == preview.skipped["wecom_quota"]
        skip = broadcast.skips.get(reason=BroadcastSkip.Reason.WECOM_QUOTA)
        assert BitMap.deserialize(bytes(skip.members)) == half - BitMap(everyone[1:3])


def test_quiet_hours_hold_a_scheduled_send_until_they_end(settings) -> None:
    with synced_loop(settings) as loop:
        # given quiet hours 22:00–08:00 Shanghai and a send scheduled at 23:00
        caps.update_policy(
            corp=loop.corp,
            wecom_quota="days_in_month",
            business_cap_count=0,
            business_cap_days=7,
            quiet_start=dt.time(22),
            quiet_end=dt.time(8),
            quiet_action=CapPolicy.QuietAction.WAIT,
            sender_policy=CapPolicy.SenderPolicy.RECENT,
        )
        night = dt.datetime(2027, 1, 5, 23, tzinfo=caps.WECOM_TIME_ZONE)
        with clock.frozen_at(night - dt.timedelta(hours=1)):
            broadcast = _compose(loop, scheduled_at=night)
            preview = svc.preview_broadcast(actor=loop.operator, broadcast=broadcast)
            assert preview.held and preview.quiet_until == night.replace(day=6, hour=8)
            svc.send_broadcast(actor=loop.operator, broadcast_id=broadcast.pk)
            # when the clock reaches the schedule: the send waits
            clock.advance(dt.timedelta(hours=1))
            assert loop.execute(broadcast) == "held"
            clock.advance(dt.timedelta(hours=8, minutes=59))
            assert loop.execute(broadcast) == "not due"
            assert ex.due_executions() == []
            # then it goes out when quiet hours end
            clock.advance(dt.timedelta(minutes=1))
            assert ex.due_executions() == [broadcast.pk]
            assert ex.due_executions() == []  # claimed: the next sweep does not queue it again
            assert loop.execute(broadcast) == "sent"


def test_quiet_hours_can_skip_instead(settings) -> None:
    with synced_loop(settings) as loop:
        policy = caps.policy_for(loop.corp)
        policy.quiet_start, policy.quiet_end = dt.time(22), dt.time(8)
        policy.quiet_action = CapPolicy.QuietAction.SKIP
        policy.save()
        with clock.frozen_at(dt.datetime(2027, 2, 1, 23, 30, tzinfo=caps.WECOM_TIME_ZONE)):
            broadcast = _compose(loop)
            preview = svc.preview_broadcast(actor=loop.operator, broadcast=broadcast)
            assert preview.recipients == 0 and preview.skipped[BroadcastSkip.Reason.QUIET_HOURS] > 0
            svc.send_broadcast(actor=loop.operator, broadcast_id=broadcast.pk)
            assert loop.execute(broadcast) == "skipped"
        broadcast.refresh_from_db()
        assert broadcast.status == Broadcast.Status.SKIPPED
        assert not broadcast.parts.exists() and not loop.sim.state.msg_templates


def test_a_tag_deleted_after_sending_fails_the_send_before_wecom(settings) -> None:
    with synced_loop(settings) as loop:
        from siyu.tags.models import CustomerTag, Tag
        from siyu.tags.services import delete_tag

        tag = Tag.objects.for_corp(loop.corp).filter(pk__in=CustomerTag.objects.values("tag_id")).first()
        broadcast = _compose(loop, audience={"type": "tags", "tag_ids": [tag.pk]})
        svc.send_broadcast(actor=loop.operator, broadcast_id=broadcast.pk)
        # when the tag is deleted before the worker gets to it
        tag_id = tag.pk
        delete_tag(tag=tag, source=Event.Source.SYNC)
        assert loop.execute(broadcast) == "failed"
        # then nothing reached the outbox, and the reason is on the broadcast
        broadcast.refresh_from_db()
        assert broadcast.status == Broadcast.Status.FAILED and str(tag_id) in broadcast.error
        assert not broadcast.parts.exists()
        assert not Outbox.objects.for_corp(loop.corp).filter(api=mass.ADD_MSG_TEMPLATE).exists()


def test_groups_get_one_task_per_owner(settings) -> None:
    with synced_loop(settings, groups=4) as loop:
        from siyu.groups.models import GroupChat

        owners = list(
            GroupChat.objects.for_corp(loop.corp).exclude(owner=None).values_list("owner_id", flat=True)
        )
        broadcast = svc.create_broadcast(
            actor=loop.operator,
            kind=Broadcast.Kind.GROUPS,
            name="群公告",
            text="本周六闭店盘点",
            audience={"type": "groups", "staff_ids": sorted(set(owners))},
        )
        svc.send_broadcast(actor=loop.operator, broadcast_id=broadcast.pk)
        loop.execute(broadcast)
        loop.send_outbox()
        loop.poll(broadcast)
        loop.confirm_all(broadcast)
        broadcast = loop.poll(broadcast)
        assert broadcast.status == Broadcast.Status.DONE
        templates = list(loop.sim.state.msg_templates.values())
        assert {t.chat_type for t in templates} == {"group"}
        assert len(templates) == len(set(owners))
        assert Delivery.objects.for_corp(loop.corp).filter(broadcast=broadcast).count() == len(owners)


def test_moments_poll_the_job_and_the_publishers(settings) -> None:
    with synced_loop(settings) as loop:
        from siyu.corps.models import Staff

        staff = list(Staff.objects.for_corp(loop.corp).filter(has_contact_permission=True)[:2])
        png = b"\x89PNG\r\n\x1a\n" + bytes(512)
        image = svc.store_media(
            actor=loop.operator, kind="image", filename="新品.png", content_type="", content=png
        )
        broadcast = svc.create_broadcast(
            actor=loop.operator,
            kind=Broadcast.Kind.MOMENTS,
            name="新品朋友圈",
            text="春季新品上市",
            attachments=[{"msgtype": "image", "image": {"siyu_media": image.pk}}],
            audience={"type": "moments", "staff_ids": [s.pk for s in staff]},
        )
        svc.send_broadcast(actor=loop.operator, broadcast_id=broadcast.pk)
        loop.execute(broadcast)
        loop.send_outbox()
        broadcast = loop.poll(broadcast)
        part = broadcast.parts.get()
        assert part.moment_id and broadcast.plan["published"] == {s.userid: False for s in staff}
        # the image went up as a moment attachment (media/upload_attachment) and the moment names it
        image.refresh_from_db()
        assert image.for_moment and image.media_id in loop.sim.state.media
        assert loop.sim.state.moments[part.moment_id].attachments == [
            {"msgtype": "image", "image": {"media_id": image.media_id}}
        ]
        loop.sim.actions.publish_moment(moment_id=part.moment_id)
        broadcast = loop.poll(broadcast)
        assert broadcast.status == Broadcast.Status.DONE
        assert broadcast.plan["published"] == {s.userid: True for s in staff}


def test_a_worker_dying_while_planning_leaves_nothing_behind(settings, monkeypatch) -> None:
    with synced_loop(settings) as loop:
        broadcast = _compose(loop)
        svc.send_broadcast(actor=loop.operator, broadcast_id=broadcast.pk)
        # given a worker that dies after queueing the first part's write, before its transaction commits
        real = mass.send_msg_template
        calls = []

        def dies_on_the_second(**kwargs):
            calls.append(kwargs["idempotency_key"])
            if len(calls) == 2:
                raise SystemExit("worker killed")
            return real(**kwargs)

        monkeypatch.setattr(mass, "send_msg_template", dies_on_the_second)
        with pytest.raises(SystemExit):
            loop.execute(broadcast)
        # then nothing of it stays: no parts, no writes, no contacts counted, still scheduled
        broadcast.refresh_from_db()
        assert broadcast.status == Broadcast.Status.SCHEDULED
        assert not broadcast.parts.exists()
        assert not Outbox.objects.for_corp(loop.corp).exists()
        assert not caps.contacts_on(corp=loop.corp, day=caps.wecom_day(clock.now()))
        # and the next worker sends it, once
        monkeypatch.setattr(mass, "send_msg_template", real)
        assert loop.execute(broadcast) == "sent"
        loop.send_outbox()
        assert len(loop.sim.state.msg_templates) == broadcast.parts.count()


def test_the_periodic_sweep_runs_and_follows_a_broadcast(settings) -> None:
    from siyu.broadcasts.periodic import sweep_broadcasts
    from siyu.core.scheduler import registered
    from tests.conftest import run_tasks

    assert "broadcasts.sweep" in {spec.name for spec in registered()}
    with synced_loop(settings) as loop:
        broadcast = _compose(loop)
        svc.send_broadcast(actor=loop.operator, broadcast_id=broadcast.pk)
        # when the beat sweeps (the deferred task of the send is the normal path; the sweep covers its loss)
        sweep_broadcasts()
        run_tasks()
        broadcast.refresh_from_db()
        assert broadcast.status == Broadcast.Status.SENDING
        loop.send_outbox()
        loop.confirm_all(broadcast)  # nothing yet: the parts have no msgid until a poll reads the outbox
        with clock.frozen_at(clock.now() + dt.timedelta(seconds=11)):
            sweep_broadcasts()
            run_tasks()
        broadcast.refresh_from_db()
        loop.confirm_all(broadcast)
        with clock.frozen_at(clock.now() + dt.timedelta(seconds=30)):
            sweep_broadcasts()
            run_tasks()
        # then it was followed to the end by the periodic job alone
        broadcast.refresh_from_db()
        assert broadcast.status == Broadcast.Status.DONE
        assert (
            Delivery.objects.for_corp(loop.corp).filter(broadcast=broadcast).count()
            == broadcast.plan["recipients"]
        )


def test_a_task_still_being_dispatched_is_looked_at_again_later(settings) -> None:
    settings.SIYU = {**settings.SIYU, "WECOM_BUSY_RETRIES": 0}
    with synced_loop(settings) as loop:
        # given WeCom answering 41063 ("being dispatched") to reads of a new mass message
        loop.sim.config.update({"msg_dispatch_delay": 3600.0})
        broadcast = _compose(loop)
        svc.send_broadcast(actor=loop.operator, broadcast_id=broadcast.pk)
        loop.execute(broadcast)
        loop.send_outbox()
        loop.confirm_all(broadcast)
        broadcast = loop.poll(broadcast)
        loop.confirm_all(broadcast)
        # when polled while WeCom still dispatches: nothing breaks, nothing is recorded yet
        broadcast = loop.poll(broadcast)
        assert broadcast.status == Broadcast.Status.TRACKING
        assert all(p.status == BroadcastPart.Status.WAITING for p in broadcast.parts.all())
        # then once WeCom answers, the results arrive
        loop.sim.config.update({"msg_dispatch_delay": 0.0})
        broadcast = loop.poll(broadcast)
        assert broadcast.status == Broadcast.Status.DONE


def test_an_uploaded_image_goes_to_wecom_as_media(settings) -> None:
    with synced_loop(settings) as loop:
        # given a message with an image kept in Siyu
        png = b"\x89PNG\r\n\x1a\n" + bytes(2048)
        image = svc.store_media(
            actor=loop.operator, kind="image", filename="海报.png", content_type="image/png", content=png
        )
        broadcast = _compose(loop, attachments=[{"msgtype": "image", "image": {"siyu_media": image.pk}}])
        svc.send_broadcast(actor=loop.operator, broadcast_id=broadcast.pk)
        # when sent
        assert loop.execute(broadcast) == "sent"
        loop.send_outbox()
        # then WeCom got the file once (media/upload), and every task names it by WeCom's media id
        image.refresh_from_db()
        assert image.media_id in loop.sim.state.media
        assert loop.sim.state.media[image.media_id] == {
            "type": "image",
            "filename": "海报.png",
            "size": len(png),
        }
        for template in loop.sim.state.msg_templates.values():
            assert template.attachments == [{"msgtype": "image", "image": {"media_id": image.media_id}}]
        # and a second message within the media's life reuses the upload
        again = _compose(
            loop, attachments=[{"msgtype": "image", "image": {"siyu_media": image.pk}}], request_key="2"
        )
        svc.send_broadcast(actor=loop.operator, broadcast_id=again.pk)
        loop.execute(again)
        assert len(loop.sim.state.media) == 1
