"""Rotation: who a channel's contact way lists, with schedules, caps and backups, as the clock moves; and the
contact way is pushed to WeCom only when what it should say changes."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from siyu.channels.contact_way import UPDATE, refresh_corp
from siyu.channels.models import Channel
from siyu.channels.rotation import Candidate, Mode, Window, decide
from siyu.channels.services import (
    ChannelInput,
    MemberInput,
    ScheduleInput,
    create_channel,
    pause_channel,
    resume_channel,
)
from siyu.core import clock
from siyu.core.timewindows import weekdays_mask
from siyu.wecom.models import Outbox
from siyu.wecom.outbox import send_due
from tests.channels.support import channel_with_way, operator_of, staff_like_sim, way_users
from tests.wecom.inbound_support import simulated_wecom

SHANGHAI = ZoneInfo("Asia/Shanghai")
MONDAY = dt.date(2024, 1, 1)  # a Monday
WORKDAYS = weekdays_mask(range(5))


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=SHANGHAI)


# --- the decision alone -------------------------------------------------------------------------------------


def test_round_robin_lists_everyone_available():
    members = [Candidate("a"), Candidate("b"), Candidate("c", is_backup=True)]
    decision = decide(members, "round_robin", at(MONDAY, 10))
    assert decision.userids == ("a", "b")
    assert decision.mode == Mode.PRIMARY


def test_caps_hand_over_to_backups_then_overflow():
    # given a and b at their caps
    members = [
        Candidate("a", daily_cap=3, today_channel=3),
        Candidate("b", daily_cap=2, today_channel=2),
        Candidate("c", is_backup=True, daily_cap=1, today_channel=0),
    ]
    decision = decide(members, "round_robin", at(MONDAY, 10))
    assert decision.userids == ("c",)
    assert decision.mode == Mode.BACKUP
    assert decision.capped == ("a", "b")
    # when the backup is capped too, the channel overflows to the backups: a QR code must lead somewhere
    members[2] = Candidate("c", is_backup=True, daily_cap=1, today_channel=1)
    decision = decide(members, "round_robin", at(MONDAY, 10))
    assert decision.userids == ("c",)
    assert decision.mode == Mode.OVERFLOW


def test_schedules_including_overnight():
    night = Window(weekdays_mask([4]), dt.time(22, 0), dt.time(2, 0))  # Friday 22:00–02:00
    day = Window(WORKDAYS, dt.time(9, 0), dt.time(18, 0))
    members = [Candidate("day", schedules=(day,)), Candidate("night", schedules=(night,))]
    friday, saturday = MONDAY + dt.timedelta(days=4), MONDAY + dt.timedelta(days=5)
    assert decide(members, "round_robin", at(friday, 10)).userids == ("day",)
    assert decide(members, "round_robin", at(friday, 23)).userids == ("night",)
    assert decide(members, "round_robin", at(saturday, 1)).userids == ("night",)
    # Saturday 10:00: nobody scheduled, no backups: everyone is listed, flagged as overflow
    late = decide(members, "round_robin", at(saturday, 10))
    assert late.mode == Mode.OVERFLOW
    assert late.off_schedule == ("day", "night")


def test_weighted_keeps_each_member_near_their_share():
    # given weights 3:1, and adds going to whoever is listed (the first listed, the worst case)
    counts = {"a": 0, "b": 0}
    for _ in range(40):
        members = [
            Candidate("a", weight=3, today_channel=counts["a"]),
            Candidate("b", weight=1, today_channel=counts["b"]),
        ]
        listed = decide(members, "weighted", at(MONDAY, 10)).userids
        counts[listed[0]] += 1
    # then the split is 3:1 within the slack
    assert abs(counts["a"] - 30) <= 2
    assert abs(counts["b"] - 10) <= 2


def test_fewest_today_counts_adds_through_every_channel():
    members = [Candidate("a", today_all=9, today_channel=0), Candidate("b", today_all=2, today_channel=5)]
    assert decide(members, "fewest_today", at(MONDAY, 10)).userids == ("b",)


# --- the contact way in WeCom, as the clock moves ---------------------------------------------------------


def update_rows(env) -> int:
    return Outbox.objects.for_corp(env.corp).filter(api=UPDATE).count()


@pytest.mark.django_db
def test_schedules_push_only_when_the_list_changes(settings):
    with simulated_wecom(settings) as env:
        staff = staff_like_sim(env)
        day_shift, anytime = staff[0], staff[1]
        # given a member on weekdays 9–18 and one always
        with clock.frozen_at(at(MONDAY, 10)):
            channel = create_channel(
                actor=operator_of(env.corp),
                data=ChannelInput(
                    name="官网",
                    members=[
                        MemberInput(
                            staff_id=day_shift.pk,
                            schedules=[ScheduleInput(WORKDAYS, dt.time(9), dt.time(18))],
                        ),
                        MemberInput(staff_id=anytime.pk),
                    ],
                ),
            )
            send_due()
            channel.refresh_from_db()
            assert sorted(way_users(env, channel)) == sorted([day_shift.userid, anytime.userid])
            # when nothing changes, nothing is pushed
            assert refresh_corp(env.corp) == 0
            assert update_rows(env) == 0
        # when the day shift ends
        with clock.frozen_at(at(MONDAY, 18, 1)):
            assert refresh_corp(env.corp) == 1
            send_due()
            assert way_users(env, channel) == [anytime.userid]
            # and again nothing more while it stays so
            assert refresh_corp(env.corp) == 0
        with clock.frozen_at(at(MONDAY, 23)):
            assert refresh_corp(env.corp) == 0
        assert update_rows(env) == 1
        # the next morning the day shift is back
        with clock.frozen_at(at(MONDAY + dt.timedelta(days=1), 9)):
            assert refresh_corp(env.corp) == 1
            send_due()
            assert sorted(way_users(env, channel)) == sorted([day_shift.userid, anytime.userid])


@pytest.mark.django_db
def test_caps_and_backups_with_a_new_day(settings, django_capture_on_commit_callbacks):
    with simulated_wecom(settings) as env:
        staff = staff_like_sim(env)
        a, b, backup = staff[0], staff[1], staff[2]
        channel = channel_with_way(env, [a, b], backups=[backup], caps={a.userid: 1, b.userid: 1})
        assert sorted(way_users(env, channel)) == sorted([a.userid, b.userid])
        # when each primary member takes their one customer of the day
        with django_capture_on_commit_callbacks(execute=True):
            first = env.act("scan_contact_way", config_id=channel.config_id)
            send_due()
            second = env.act("scan_contact_way", config_id=channel.config_id)
            send_due()
        assert {first["userid"], second["userid"]} == {a.userid, b.userid}
        # then the backup receives
        assert way_users(env, channel) == [backup.userid]
        channel.refresh_from_db()
        assert channel.pushed["mode"] == "backup"
        # and the next day the caps start again
        with clock.frozen_at(clock.now() + dt.timedelta(days=1)):
            assert refresh_corp(env.corp) == 1
            send_due()
        assert sorted(way_users(env, channel)) == sorted([a.userid, b.userid])


@pytest.mark.django_db
def test_skip_verify_window_flips_in_wecom(settings):
    with simulated_wecom(settings) as env:
        staff = staff_like_sim(env)
        with clock.frozen_at(at(MONDAY, 10)):
            channel = channel_with_way(
                env, staff[:1], skip_verify_start=dt.time(9), skip_verify_end=dt.time(18)
            )
            assert env.sim.state.contact_ways[channel.config_id].skip_verify is True
        with clock.frozen_at(at(MONDAY, 19)):
            refresh_corp(env.corp)
            send_due()
            assert env.sim.state.contact_ways[channel.config_id].skip_verify is False


@pytest.mark.django_db
def test_pause_turns_auto_accept_off_and_resume_restores(settings):
    with simulated_wecom(settings) as env:
        staff = staff_like_sim(env)
        channel = channel_with_way(env, staff[:2])
        operator = operator_of(env.corp)
        channel = pause_channel(actor=operator, channel=channel)
        send_due()
        way = env.sim.state.contact_ways[channel.config_id]
        assert way.skip_verify is False
        assert sorted(way.user) == sorted(s.userid for s in staff[:2])
        resume_channel(actor=operator, channel=channel)
        send_due()
        assert env.sim.state.contact_ways[channel.config_id].skip_verify is True
        assert Channel.objects.get(pk=channel.pk).status == Channel.Status.ACTIVE
