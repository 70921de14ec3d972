"""Channel analytics: the daily rollup against the raw adds as the clock moves, corp days across time zones,
rebuild against incremental upkeep, scope and tenancy, the CSV export and the API."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from siyu.channels import rollups, stats
from siyu.channels.handlers import record_add
from siyu.channels.models import Channel, ChannelAdd, ChannelDay, ChannelDayDirty
from siyu.channels.services import (
    ChannelInput,
    MemberInput,
    VariantInput,
    create_channel,
    save_welcome_message,
)
from siyu.channels.welcome import settled
from siyu.core.clock import frozen_at
from siyu.corps.access import Actor
from siyu.corps.models import Corp, Role, Staff
from siyu.corps.services import set_corp_credentials
from siyu.customers.models import Event, FollowRelation
from siyu.customers.services import add_follow_relation, end_follow_relation
from siyu.wecom.models import Outbox
from tests import factories
from tests.conftest import World

pytestmark = pytest.mark.django_db

UTC = dt.UTC
SHANGHAI = dt.timezone(dt.timedelta(hours=8))  # Asia/Shanghai has had no daylight saving since 1991


def login(username: str) -> Client:
    client = Client()
    client.force_login(get_user_model().objects.get(username=username))
    return client


def connect(corp: Corp, operator: Actor) -> None:
    """The corp sends to WeCom (credentials set) and has a default welcome message, so adds with a welcome
    code queue one; nothing is sent in these tests: outcomes are announced as the outbox would."""
    set_corp_credentials(corp=corp, secret="app-secret", token="", aes_key="")
    save_welcome_message(actor=operator, channel=None, variants=[VariantInput(text="您好{customer_name}")])


def channel_of(corp: Corp, name: str, *members: Staff) -> Channel:
    return create_channel(
        actor=Actor(corp=corp, role=Role.OPERATOR),
        data=ChannelInput(name=name, members=[MemberInput(staff_id=s.pk) for s in members]),
    )


_codes = iter(range(1, 1_000_000))


def arrive(
    corp: Corp, channel: Channel | None, staff: Staff, at: dt.datetime, *, welcome: bool = True
) -> ChannelAdd:
    """A customer adds ``staff`` through ``channel`` at ``at``: the relation, then the add as the worker
    records it (with a welcome code, so the welcome is queued)."""
    with frozen_at(at):
        customer = factories.make_customer(corp, f"客户{next(_codes)}")
        relation = add_follow_relation(
            customer=customer,
            staff=staff,
            source=Event.Source.WECOM,
            state=channel.state if channel else "",
            added_at=at,
        )
        add, _row = record_add(
            corp=corp,
            customer=customer,
            staff=staff,
            relation=relation,
            state=channel.state if channel else "",
            welcome_code=f"code{next(_codes)}" if welcome else "",
            half=False,
            received_at=at,
        )
    assert add is not None
    return add


def welcome_outcome(
    add: ChannelAdd, *, after: float, status: str = "done", errcode: int | None = None
) -> None:
    """The outbox announces the add's welcome outcome ``after`` seconds after the callback."""
    at = add.added_at + dt.timedelta(seconds=after)
    with frozen_at(at):
        settled(
            corp_id=add.corp_id,
            outbox_id=add.welcome_outbox_id or 0,
            status=status,
            errcode=errcode,
            reason="" if status == "done" else "refused",
            expired=False,
            attempts=1,
            at=at,
        )


def delete(add: ChannelAdd, by: str, at: dt.datetime) -> None:
    relation = FollowRelation.objects.get(pk=add.relation_id)
    with frozen_at(at):
        assert end_follow_relation(relation=relation, by=by, source=Event.Source.WECOM, at=at)


@dataclass
class Expected:
    adds: int
    by_staff: int
    by_customer: int
    sent: int
    tried: int


def raw_per_day(corp: Corp, start: dt.date, end: dt.date) -> dict[dt.date, Expected]:
    """The same numbers straight from the raw rows (adds and the relations' own status), counted here."""
    out: dict[dt.date, Expected] = {}

    def day_of(moment: dt.datetime) -> dt.date:
        return moment.astimezone(SHANGHAI).date()

    for add in ChannelAdd.objects.for_corp(corp).select_related("relation"):
        d = day_of(add.added_at)
        e = out.setdefault(d, Expected(0, 0, 0, 0, 0))
        e.adds += 1
        if add.welcome_status == ChannelAdd.Welcome.SENT:
            e.sent += 1
        if add.welcome_status in ("sent", "failed", "rejected", "expired"):
            e.tried += 1
        relation = add.relation
        if relation.status != FollowRelation.Status.ACTIVE:
            assert relation.status_changed_at is not None
            ended = out.setdefault(day_of(relation.status_changed_at), Expected(0, 0, 0, 0, 0))
            if relation.status == FollowRelation.Status.DELETED_BY_STAFF:
                ended.by_staff += 1
            else:
                ended.by_customer += 1
    return {d: e for d, e in out.items() if start <= d <= end}


def rollup_rows(corp: Corp) -> list[tuple]:
    fields = [f.attname for f in ChannelDay._meta.concrete_fields if f.attname != "id"]
    rows = ChannelDay.objects.for_corp(corp).values_list(*fields)
    return sorted((tuple(-1 if v is None else v for v in r) for r in rows), key=repr)


def test_the_rollup_counts_what_the_raw_adds_say_as_the_clock_moves(world: World):
    # given a connected corp in Shanghai time with a channel listing two staff members
    connect(world.corp, world.operator)
    shop = channel_of(world.corp, "门店", world.wang, world.liu)
    day1 = dt.datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai, Monday 2 March
    # when customers arrive over three days, late evening and just after midnight included (UTC and
    # Shanghai disagree about the day of these)
    a1 = arrive(world.corp, shop, world.wang, day1)
    a2 = arrive(world.corp, shop, world.liu, day1 + dt.timedelta(hours=14, minutes=50))  # 23:50 local
    a3 = arrive(world.corp, shop, world.wang, day1 + dt.timedelta(hours=15, minutes=10))  # 00:10 on the 3rd
    arrive(world.corp, None, world.wang, day1 + dt.timedelta(days=1, hours=3))
    arrive(world.corp, shop, world.liu, day1 + dt.timedelta(days=2), welcome=False)
    # and their welcomes go out after 3 s and 15 s, one is refused by WeCom, one is still queued
    welcome_outcome(a1, after=3)
    welcome_outcome(a2, after=15)
    welcome_outcome(a3, after=2, status="failed", errcode=41051)
    # and one customer deletes the staff member after 5 hours, a staff member deletes another 3 days on
    delete(a1, "customer", day1 + dt.timedelta(hours=5))
    delete(a3, "staff", day1 + dt.timedelta(days=4))
    now = day1 + dt.timedelta(days=4, hours=1)
    with frozen_at(now):
        rollups.settle()
        actor = world.admin
        query = stats.make_query(actor, start="2026-03-01", end="2026-03-06", breakdown="channel")
        result = stats.stats(actor, query)

    # then every day's numbers are those of the raw rows
    expected = raw_per_day(world.corp, query.start, query.end)
    by_day = {dt.date.fromisoformat(r.key): r.figures for r in result.periods}
    assert set(by_day) == {query.start + dt.timedelta(days=i) for i in range(6)}
    for day, figures in by_day.items():
        e = expected.get(day, Expected(0, 0, 0, 0, 0))
        assert (figures.adds, figures.deleted_by_staff, figures.deleted_by_customer) == (
            e.adds,
            e.by_staff,
            e.by_customer,
        ), day
        assert figures.net == e.adds - e.by_staff - e.by_customer
        assert figures.welcome_sent == e.sent
    # and the days are Shanghai's: two adds on the 2nd (09:00, 23:50), two on the 3rd (00:10 and 11:00)
    assert [by_day[dt.date(2026, 3, d)].adds for d in (1, 2, 3, 4)] == [0, 2, 2, 1]
    assert by_day[dt.date(2026, 3, 2)].deleted_by_customer == 1
    assert by_day[dt.date(2026, 3, 6)].deleted_by_staff == 1  # 3 March 00:10 + 4 days, in Shanghai
    # and the totals: 5 adds, 2 deletions, net 3; welcomes 2 sent of 3 tried, median between 2 and 15 s
    total = result.total
    assert (total.adds, total.deletions, total.net) == (5, 2, 3)
    assert (total.welcome_sent, total.welcome_failed, total.welcome_pending, total.welcome_not_needed) == (
        2,
        1,
        1,
        1,
    )
    assert total.welcome_rate == pytest.approx(2 / 3)
    assert total.welcome_mean == pytest.approx(9.0)
    assert total.welcome_median is not None and 2 <= total.welcome_median <= 15
    # and per channel: the shop's 4 adds and 其他/未知's one
    keyed = {r.key: r.figures.adds for r in result.breakdown}
    assert keyed == {str(shop.pk): 4, "": 1}

    # and retention after 1 day counts only cohorts whose day and one more have passed: on the 6th at
    # 10:00 local, the adds of the 2nd–4th have (a1 left within 5 h, a3 after 3 days: 4 of 5 stayed a day)
    assert total.cohort[0] == 5 and total.retained[0] == 4
    with frozen_at(day1 + dt.timedelta(days=2, hours=1)):  # on the 4th only the 2nd's adds have
        assert stats.stats(actor, query).total.cohort[0] == 2
    # while after 7 days nothing has matured yet
    assert total.retention(1) is None

    # when the clock moves on to 12 March, a week after the 3rd: a3 (deleted on day 4) is not retained
    with frozen_at(dt.datetime(2026, 3, 12, 1, 0, tzinfo=UTC)):
        later = stats.stats(actor, query)
    assert later.total.cohort[1] == 5
    assert later.total.retained[1] == 3  # a1 and a3 left within 7 days
    assert later.total.retention(1) == pytest.approx(3 / 5)


def test_days_follow_the_corps_time_zone(world: World):
    # given a corp in New York time and one in Shanghai
    world.corp.time_zone = "America/New_York"
    world.corp.save(update_fields=["time_zone"])
    east_staff = factories.make_staff(world.other_corp, "陈静")
    moment = dt.datetime(2026, 3, 1, 3, 0, tzinfo=UTC)  # 28 Feb 22:00 in New York, 1 March 11:00 in Shanghai
    # when each gets an add at the same instant
    arrive(world.corp, None, world.wang, moment, welcome=False)
    arrive(world.other_corp, None, east_staff, moment, welcome=False)
    rollups.settle()
    # then each counts it on its own calendar day
    assert list(ChannelDay.objects.for_corp(world.corp).values_list("day", flat=True)) == [
        dt.date(2026, 2, 28)
    ]
    assert list(ChannelDay.objects.for_corp(world.other_corp).values_list("day", flat=True)) == [
        dt.date(2026, 3, 1)
    ]


def test_a_rebuild_gives_the_rows_incremental_upkeep_gave(world: World):
    # given adds, outcomes and deletions over two weeks, the rollup kept up as they happened
    connect(world.corp, world.operator)
    shop = channel_of(world.corp, "门店", world.wang, world.liu)
    start = dt.datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
    adds = []
    for i in range(24):
        at = start + dt.timedelta(hours=13 * i)
        add = arrive(world.corp, shop if i % 3 else None, world.wang if i % 2 else world.liu, at)
        adds.append(add)
        if i % 4 == 0:
            welcome_outcome(add, after=1 + i % 7)
        elif i % 4 == 1:
            welcome_outcome(add, after=25, status="failed", errcode=41051)
        if i % 5 == 0:
            delete(add, "staff" if i % 2 else "customer", at + dt.timedelta(hours=30))
        if i % 6 == 0:
            with frozen_at(at):
                rollups.settle()
    with frozen_at(start + dt.timedelta(days=20)):
        rollups.settle()
    assert not ChannelDayDirty.objects.for_corp(world.corp).exists()
    incremental = rollup_rows(world.corp)
    # when the rollup is rebuilt from the adds
    rollups.rebuild(world.corp)
    # then it has the same rows, and they count every add once
    assert rollup_rows(world.corp) == incremental
    assert sum(ChannelDay.objects.for_corp(world.corp).values_list("adds", flat=True)) == 24
    ends = Counter(
        FollowRelation.objects.for_corp(world.corp).exclude(status="active").values_list("status", flat=True)
    )
    assert (
        sum(ChannelDay.objects.for_corp(world.corp).values_list("deleted_by_staff", flat=True))
        == ends["deleted_by_staff"]
    )


def test_another_corps_adds_never_appear(world: World):
    # given both corps have adds through a channel today
    mine = channel_of(world.corp, "我的渠道", world.wang)
    their_staff = factories.make_staff(world.other_corp, "别家员工")
    theirs = channel_of(world.other_corp, "别家渠道", their_staff)
    moment = dt.datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
    arrive(world.corp, mine, world.wang, moment, welcome=False)
    for _ in range(3):
        arrive(world.other_corp, theirs, their_staff, moment, welcome=False)
    with frozen_at(moment + dt.timedelta(hours=1)):
        # when my corp's admin reads the analytics (page, API, the other corp's channel by id)
        result = stats.stats(world.admin, stats.make_query(world.admin))
        page = login("admin1").get("/channels/stats/")
        other = login("admin1").get(f"/channels/stats/?channel={theirs.pk}")
    # then only my corp's add is counted, and the other corp's channel does not exist for me
    assert result.total.adds == 1
    assert [r.label for r in result.breakdown] == ["我的渠道"]
    assert "别家渠道" not in page.content.decode()
    assert other.status_code == 404


def test_staff_and_managers_see_only_their_peoples_numbers(world: World):
    # given a channel shared by 王芳 (华东) and 刘强 (华南) with adds for both
    shared = channel_of(world.corp, "共用码", world.wang, world.liu)
    moment = dt.datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
    arrive(world.corp, shared, world.wang, moment, welcome=False)
    for _ in range(2):
        arrive(world.corp, shared, world.liu, moment, welcome=False)
    with frozen_at(moment + dt.timedelta(hours=1)):
        rollups.settle()
        # then each sees what their scope allows
        seen = {
            name: stats.stats(actor, stats.make_query(actor, breakdown="staff")).total.adds
            for name, actor in (
                ("admin", world.admin),
                ("manager", world.manager),
                ("wang", world.staff_wang),
                ("liu", world.staff_liu),
            )
        }
        per_staff = stats.stats(world.manager, stats.make_query(world.manager, breakdown="staff")).breakdown
        csv = (
            login("wang").get(f"/channels/{shared.pk}/stats.csv?table=breakdown").content.decode("utf-8-sig")
        )
    assert seen == {"admin": 3, "manager": 1, "wang": 1, "liu": 2}
    assert [r.label for r in per_staff] == ["王芳"]
    assert "刘强" not in csv and "王芳" in csv


def test_the_csv_export_holds_the_tables_numbers_for_excel(world: World):
    # given two channels with adds on one day, one add deleted by its customer the next morning
    connect(world.corp, world.operator)
    shop = channel_of(world.corp, "门店", world.wang)
    web = channel_of(world.corp, "官网", world.liu)
    moment = dt.datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
    first = arrive(world.corp, shop, world.wang, moment)
    arrive(world.corp, shop, world.wang, moment)
    arrive(world.corp, web, world.liu, moment, welcome=False)
    welcome_outcome(first, after=4)
    delete(first, "customer", moment + dt.timedelta(hours=20))  # 06:00 the next day in Shanghai
    client = login("operator1")
    with frozen_at(moment + dt.timedelta(days=3)):
        # when the operator exports the per-channel table and the per-day table
        response = client.get("/channels/stats/?start=2026-03-01&end=2026-03-04&export=breakdown")
        periods = client.get("/channels/stats/?start=2026-03-01&end=2026-03-04&export=periods")
    # then it is UTF-8 with a BOM (Excel), headed in Chinese, one line per channel and a total
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    raw = response.content
    assert raw.startswith("\ufeff".encode())
    lines = [line.split(",") for line in raw.decode("utf-8-sig").strip().splitlines()]
    assert lines[0][:5] == ["渠道", "添加", "员工删除客户", "客户删除员工", "净增"]
    rows = {line[0]: line[1:] for line in lines[1:]}
    assert rows["门店"][:4] == ["2", "0", "1", "1"]
    assert rows["门店"][7] == "100.0%"  # welcome success: 1 sent, 0 failed
    assert rows["门店"][4] == "50.0%"  # after 1 day: the first left within it, the other stayed
    assert rows["官网"][:4] == ["1", "0", "0", "1"]
    assert rows["合计"][:4] == ["3", "0", "1", "2"]
    day_lines = periods.content.decode("utf-8-sig").strip().splitlines()
    assert day_lines[0].startswith("日期,")
    assert [line.split(",")[:5] for line in day_lines[1:]] == [
        ["2026-03-01", "0", "0", "0", "0"],
        ["2026-03-02", "3", "0", "0", "3"],
        ["2026-03-03", "0", "0", "1", "-1"],
        ["2026-03-04", "0", "0", "0", "0"],
        ["合计", "3", "0", "1", "2"],
    ]


def test_weeks_are_iso_weeks(world: World):
    # given adds on a Sunday and the Monday after (Shanghai days)
    sunday = dt.datetime(2026, 3, 8, 4, 0, tzinfo=UTC)
    arrive(world.corp, None, world.wang, sunday, welcome=False)
    arrive(world.corp, None, world.wang, sunday + dt.timedelta(days=1), welcome=False)
    with frozen_at(sunday + dt.timedelta(days=2)):
        query = stats.make_query(world.admin, start="2026-03-01", end="2026-03-15", granularity="week")
        result = stats.stats(world.admin, query)
    # then they fall in two ISO weeks, each keyed by its Monday
    assert [(r.label, r.key, r.figures.adds) for r in result.periods] == [
        ("2026-W09", "2026-02-23", 0),
        ("2026-W10", "2026-03-02", 1),
        ("2026-W11", "2026-03-09", 1),
    ]


def test_bad_ranges_are_refused_with_their_field(world: World):
    client = login("admin1")
    response = client.get("/channels/stats/?start=2026-03-05&end=2026-03-01")
    assert response.status_code == 400
    assert "start" in response.content.decode()
    assert client.get("/channels/stats/?granularity=month").status_code == 400
    assert client.get("/channels/stats/?start=yesterday").status_code == 400


def test_the_api_answers_the_same_numbers_within_the_corp(world: World):
    # given an add through a channel of this corp and an API key
    from siyu.corps.services import create_api_key

    shop = channel_of(world.corp, "门店", world.wang)
    moment = dt.datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
    arrive(world.corp, shop, world.wang, moment, welcome=False)
    key = create_api_key(corp=world.corp, role=Role.OPERATOR).plaintext
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    with frozen_at(moment + dt.timedelta(hours=1)):
        body = client.get("/api/v1/channel-stats?start=2026-03-01&end=2026-03-02&breakdown=staff").json()
        one = client.get(f"/api/v1/channels/{shop.pk}/stats?start=2026-03-02&end=2026-03-02").json()
        bad = client.get("/api/v1/channel-stats?start=2026-03-03&end=2026-03-01")
    # then the figures are the rollup's, per day and per staff member
    assert body["total"]["adds"] == 1 and body["total"]["net"] == 1
    assert [p["figures"]["adds"] for p in body["by_period"]] == [0, 1]
    assert body["by_key"] == [
        {"key": str(world.wang.pk), "label": "王芳", "figures": body["by_key"][0]["figures"]}
    ]
    assert one["by_key"][0]["label"] == "王芳" and one["total"]["adds"] == 1
    assert bad.status_code == 400 and bad.json()["code"] == "invalid"


def test_the_median_is_read_from_the_histogram():
    # given 3 welcomes within 1 s and 1 between 12 and 20 s
    f = stats.Figures()
    f.buckets = [3, 0, 0, 0, 0, 0, 1, 0]
    # then the median is in the first bucket, interpolated; with all above 20 s it is 20
    assert f.welcome_median == pytest.approx(2 / 3)
    assert stats.Figures(buckets=[0] * 7 + [4]).welcome_median == 20.0
    assert stats.Figures().welcome_median is None


def test_outbox_outcomes_mark_the_adds_day(world: World):
    # given a queued welcome whose day was rolled up
    connect(world.corp, world.operator)
    moment = dt.datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
    add = arrive(world.corp, None, world.wang, moment)
    rollups.settle()
    assert ChannelDay.objects.for_corp(world.corp).get().welcome_pending == 1
    assert Outbox.objects.filter(pk=add.welcome_outbox_id).exists()
    # when WeCom accepts it
    welcome_outcome(add, after=2)
    # then the day is marked, and once settled it counts the welcome sent
    assert ChannelDayDirty.objects.for_corp(world.corp).filter(day=dt.date(2026, 3, 2)).exists()
    rollups.settle()
    row = ChannelDay.objects.for_corp(world.corp).get()
    assert (row.welcome_pending, row.welcome_sent, row.welcome_timed) == (0, 1, 1)
    assert row.welcome_seconds == pytest.approx(2.0)
