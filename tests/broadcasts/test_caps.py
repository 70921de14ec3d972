"""The contact-cap ledger: WeCom quota rules, business cap, release, quiet hours, concurrent reservations."""

from __future__ import annotations

import datetime as dt

import pytest
from pyroaring import BitMap

from siyu.broadcasts import caps
from siyu.broadcasts.models import CapPolicy, LedgerDay
from siyu.core import clock
from tests import factories

pytestmark = pytest.mark.django_db

CHINA = caps.WECOM_TIME_ZONE
OTHER = LedgerDay.Channel.OTHER


def _at(year: int, month: int, day: int, hour: int = 12) -> dt.datetime:
    return dt.datetime(year, month, day, hour, tzinfo=CHINA)


def _policy(corp, **values) -> CapPolicy:
    current = caps.policy_for(corp)
    fields = {
        "wecom_quota": current.wecom_quota,
        "business_cap_count": current.business_cap_count,
        "business_cap_days": current.business_cap_days,
        "quiet_start": current.quiet_start,
        "quiet_end": current.quiet_end,
        "quiet_action": current.quiet_action,
        "sender_policy": current.sender_policy,
        **values,
    }
    return caps.update_policy(corp=corp, **fields)


@pytest.fixture
def corp():
    return factories.make_corp("配额测试")


def test_days_in_month_allows_as_many_as_the_month_has_days(corp) -> None:
    # given February 2026 (28 days): one customer reached every day, another never
    customers = BitMap([1, 2])
    for day in range(1, 29):
        with clock.frozen_at(_at(2026, 2, day)):
            assert caps.reserve(corp=corp, customer_ids=BitMap([1]), at=_at(2026, 2, day)).granted == BitMap(
                [1]
            )
    # when the month is over its 28
    outcome = caps.check(corp=corp, customer_ids=customers, at=_at(2026, 2, 28, 20))
    # then
    assert outcome.granted == BitMap([2])
    assert outcome.refused == {caps.WECOM_QUOTA: BitMap([1])}
    # and March starts afresh
    assert caps.check(corp=corp, customer_ids=customers, at=_at(2026, 3, 1, 0)).granted == customers


def test_one_per_day_and_seven_per_week(corp) -> None:
    # given one per day
    _policy(corp, wecom_quota=CapPolicy.WeComQuota.ONE_PER_DAY)
    assert caps.reserve(corp=corp, customer_ids=BitMap([7]), at=_at(2026, 3, 2, 9)).granted == BitMap([7])
    # then a second the same (China) day is refused, the next day allowed
    assert caps.reserve(corp=corp, customer_ids=BitMap([7]), at=_at(2026, 3, 2, 23)).refused == {
        caps.WECOM_QUOTA: BitMap([7])
    }
    assert caps.check(corp=corp, customer_ids=BitMap([7]), at=_at(2026, 3, 3, 0)).granted == BitMap([7])
    # given seven per week (Monday 2 March 2026 starts the week): two more this week make 7 with 5 others
    _policy(corp, wecom_quota=CapPolicy.WeComQuota.SEVEN_PER_WEEK)
    for day in (3, 4, 5):
        caps.reserve(corp=corp, customer_ids=BitMap([7]), at=_at(2026, 3, day))
    for _ in range(3):
        caps.reserve(corp=corp, customer_ids=BitMap([7]), at=_at(2026, 3, 6))
    assert sum(caps.contacts_on(corp=corp, day=dt.date(2026, 3, d)).get(7, 0) for d in range(2, 9)) == 7
    # then the 8th this week is refused, and the next Monday is a new week
    assert caps.check(corp=corp, customer_ids=BitMap([7]), at=_at(2026, 3, 8, 23)).granted == BitMap()
    assert caps.check(corp=corp, customer_ids=BitMap([7]), at=_at(2026, 3, 9, 0)).granted == BitMap([7])


def test_legacy_four_per_month(corp) -> None:
    _policy(corp, wecom_quota=CapPolicy.WeComQuota.FOUR_PER_MONTH)
    granted = [
        len(caps.reserve(corp=corp, customer_ids=BitMap([3]), at=_at(2026, 4, d)).granted)
        for d in range(1, 7)
    ]
    assert granted == [1, 1, 1, 1, 0, 0]


def test_wecom_days_are_china_days(corp) -> None:
    # given 1 per day, and a send at 23:30 UTC on 1 May, which is 07:30 on 2 May in China
    _policy(corp, wecom_quota=CapPolicy.WeComQuota.ONE_PER_DAY)
    caps.reserve(corp=corp, customer_ids=BitMap([5]), at=dt.datetime(2026, 5, 1, 23, 30, tzinfo=dt.UTC))
    # then 2 May (China) is spent, 1 May (China, until 16:00 UTC) is not
    assert caps.check(corp=corp, customer_ids=BitMap([5]), at=_at(2026, 5, 2, 20)).granted == BitMap()
    assert caps.check(corp=corp, customer_ids=BitMap([5]), at=_at(2026, 5, 1, 20)).granted == BitMap([5])


def test_business_cap_counts_every_channel_over_a_rolling_window(corp) -> None:
    # given at most 2 messages in any 3 days, across mass messages and other outbound
    _policy(corp, business_cap_count=2, business_cap_days=3)
    caps.reserve(corp=corp, customer_ids=BitMap([1, 2]), at=_at(2026, 6, 1))
    caps.reserve(corp=corp, customer_ids=BitMap([1]), at=_at(2026, 6, 2), channel=OTHER)
    # when
    on_the_3rd = caps.check(corp=corp, customer_ids=BitMap([1, 2]), at=_at(2026, 6, 3))
    on_the_4th = caps.check(corp=corp, customer_ids=BitMap([1, 2]), at=_at(2026, 6, 4))
    # then customer 1 has 2 in 1–3 June; on the 4th the window 2–4 June holds only 1
    assert on_the_3rd.refused == {caps.BUSINESS_CAP: BitMap([1])}
    assert on_the_4th.granted == BitMap([1, 2])
    # and other outbound is not held to WeCom's quota, only to the business cap
    assert caps.check(corp=corp, customer_ids=BitMap([1]), at=_at(2026, 6, 3), channel=OTHER).refused == {
        caps.BUSINESS_CAP: BitMap([1])
    }


def test_wecom_quota_is_the_reason_when_both_caps_refuse(corp) -> None:
    _policy(corp, wecom_quota=CapPolicy.WeComQuota.ONE_PER_DAY, business_cap_count=1, business_cap_days=7)
    caps.reserve(corp=corp, customer_ids=BitMap([9]), at=_at(2026, 7, 1))
    outcome = caps.check(corp=corp, customer_ids=BitMap([9]), at=_at(2026, 7, 1, 18))
    assert outcome.refused == {caps.WECOM_QUOTA: BitMap([9])}


def test_release_gives_one_contact_back_on_its_day(corp) -> None:
    # given 1 per day and customers 1, 2 reached on 1 August
    _policy(corp, wecom_quota=CapPolicy.WeComQuota.ONE_PER_DAY)
    at = _at(2026, 8, 1)
    caps.reserve(corp=corp, customer_ids=BitMap([1, 2]), at=at)
    # when WeCom did not reach customer 2
    released = caps.release(corp=corp, customer_ids=BitMap([2, 3]), at=at)
    # then only 2 was counted there, and 2 may be reached again that day
    assert released == 1
    assert caps.check(corp=corp, customer_ids=BitMap([1, 2]), at=at).granted == BitMap([2])
    assert caps.contacts_on(corp=corp, day=dt.date(2026, 8, 1)) == {1: 1}


def test_layers_count_several_contacts_a_day(corp) -> None:
    at = _at(2026, 9, 10)
    for batch in ([1, 2, 3], [2, 3], [3]):
        caps.reserve(corp=corp, customer_ids=BitMap(batch), at=at)
    assert caps.contacts_on(corp=corp, day=at.date()) == {1: 1, 2: 2, 3: 3}
    caps.release(corp=corp, customer_ids=BitMap([3]), at=at)
    assert caps.contacts_on(corp=corp, day=at.date()) == {1: 1, 2: 2, 3: 2}
    # a business cap of 2 in 1 day now refuses 2 and 3
    _policy(corp, business_cap_count=2, business_cap_days=1)
    assert caps.check(corp=corp, customer_ids=BitMap([1, 2, 3]), at=at).granted == BitMap([1])


def test_at_least_matches_a_plain_count() -> None:
    # given random day layers (unary: layer k within layer k-1), compare with counting per customer
    import random

    rng = random.Random(7)
    days = []
    for _ in range(12):
        counts = {c: rng.choice([0, 0, 1, 1, 2, 3]) for c in range(40)}
        top = max(counts.values())
        days.append([BitMap(c for c, n in counts.items() if n > k) for k in range(top)])
    totals = {c: sum(sum(1 for layer in day if c in layer) for day in days) for c in range(40)}
    customers = BitMap(range(0, 40, 2))
    for threshold in (1, 3, 7, 12, 30):
        expected = BitMap(c for c in customers if totals[c] >= threshold)
        assert caps.at_least(customers, days, threshold) == expected


def test_quiet_hours_overnight_in_the_corp_time_zone(corp) -> None:
    # given quiet from 22:00 to 08:00 Shanghai time
    _policy(corp, quiet_start=dt.time(22), quiet_end=dt.time(8))
    # then
    assert caps.quiet_until(corp=corp, at=_at(2026, 3, 1, 21)) is None
    assert caps.quiet_until(corp=corp, at=_at(2026, 3, 1, 23)) == _at(2026, 3, 2, 8)
    assert caps.quiet_until(corp=corp, at=_at(2026, 3, 2, 7)) == _at(2026, 3, 2, 8)
    assert caps.quiet_until(corp=corp, at=_at(2026, 3, 2, 8)) is None
    # and the same hours follow a corp in another time zone
    corp.time_zone = "Europe/Berlin"
    corp.save()
    berlin = dt.datetime(2026, 3, 1, 23, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert caps.quiet_until(corp=corp, at=berlin) == dt.datetime(2026, 3, 2, 7, tzinfo=dt.UTC)


def test_bad_policies_are_refused(corp) -> None:
    from siyu.core.errors import Invalid

    with pytest.raises(Invalid):
        _policy(corp, business_cap_days=0)
    with pytest.raises(Invalid):
        _policy(corp, quiet_start=dt.time(22), quiet_end=None)
    with pytest.raises(Invalid):
        _policy(corp, wecom_quota="3_per_hour")
    other = factories.make_corp("别家")
    stranger = factories.make_staff(other, "外人")
    with pytest.raises(Invalid):
        _policy(corp, sender_policy=CapPolicy.SenderPolicy.PRIORITY, staff_priority=[stranger.pk])


def test_a_reservation_never_takes_more_than_the_cap(corp) -> None:
    # given 1 per day: two sends that both ask for the same customers
    _policy(corp, wecom_quota=CapPolicy.WeComQuota.ONE_PER_DAY)
    at = _at(2026, 10, 1)
    first = caps.reserve(corp=corp, customer_ids=BitMap(range(1, 101)), at=at)
    second = caps.reserve(corp=corp, customer_ids=BitMap(range(51, 151)), at=at)
    # then the second only gets those the first did not take
    assert first.granted == BitMap(range(1, 101))
    assert second.granted == BitMap(range(101, 151))
    assert second.refused[caps.WECOM_QUOTA] == BitMap(range(51, 101))
    assert set(caps.contacts_on(corp=corp, day=at.date()).values()) == {1}
