"""Benchmark: channel analytics (P9) — each chart's query from the daily rollup against the same numbers
computed by a PostgreSQL group-by over the raw ``ChannelAdd`` rows, in the same run on the same data.

    .venv/bin/python bench/analytics.py [--adds 1000000] [--channels 50] [--staff 200] [--days 365]
                                        [--runs 15] [--seed 1]

A fresh PostgreSQL database ``siyu_bench_analytics`` (DATABASE_URL overrides it) gets one corp whose
``--adds`` adds are generated in SQL (customers, relations, adds: ``generate_series``) over ``--days`` days:
spread over ``--channels`` channels (in 5 groups, each listing 4 of ``--staff`` staff) and 其他/未知 (1 in
``channels + 1``); a fifth of the relations end (by either side) within 40 days; welcomes 85 % sent after
0–12 s, 5 % failed, 3 % expired, the rest needing none. The rollup is then built by ``rollups.rebuild``
(timed).

Charts, as the console asks them (an admin, so no scope filter; the corp's days, Asia/Shanghai):

- ``line_30d`` / ``line_365d``: figures per day over the last 30 / all days (the line chart and the table);
- ``bars_channel_30d`` / ``bars_staff_30d`` / ``bars_channel_365d``: figures per channel or staff member;
- ``one_channel_30d``: one channel's figures per day (its page's line);

each against the raw group-by that yields the same numbers (adds, deletions by side, welcome outcomes, 1/7/30
day retention over matured cohorts, exact median seconds to welcome), whose result is checked against the
rollup's before timing (adds and deletions per group must match). Lines: ``name p50_ms ms raw_p50_ms ratio``;
target (PERFORMANCE.md P9) ≤ 100 ms per chart at 10M events and ≥ 10× the raw group-by.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Figure, log, postgres_database, print_figures, setup_django, size_label, time_runs

DATABASE = "siyu_bench_analytics"
TZ = "Asia/Shanghai"
TARGET_MS = 100.0
TARGET_RATIO = 10.0


def _defaults(model: Any, given: dict[str, str]) -> tuple[list[str], list[str]]:
    """Columns and SQL expressions for an INSERT … SELECT over ``generate_series`` (``i``): the given
    expressions, and every other non-null column's Django default as a literal."""
    from django.db import models

    columns, values = [], []
    for f in model._meta.concrete_fields:
        if isinstance(f, models.AutoField):
            continue
        column = f.column
        if column in given:
            expression = given[column]
        elif f.null:
            continue
        elif isinstance(f, models.JSONField):
            expression = "'[]'::jsonb" if f.default is list else "'{}'::jsonb"
        elif isinstance(f, models.DateTimeField):
            expression = "now()"
        elif isinstance(f, models.BooleanField):
            expression = "true" if f.default is True else "false"
        elif isinstance(f, (models.IntegerField, models.FloatField)):
            default = f.default if not callable(f.default) else 0
            expression = str(int(default) if default is not models.NOT_PROVIDED else 0)
        else:
            default = f.default if isinstance(f.default, str) else ""
            expression = "'" + default.replace("'", "''") + "'"
        columns.append(column)
        values.append(expression)
    return columns, values


def _insert_series(cursor: Any, model: Any, n: int, given: dict[str, str]) -> None:
    columns, values = _defaults(model, given)
    table = model._meta.db_table
    sql = f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(values)} "
    sql += f"FROM generate_series(1, {n}) AS i"
    cursor.execute(sql)


def generate(adds: int, n_channels: int, n_staff: int, days: int, seed: int) -> tuple[Any, dt.datetime]:
    """The corp, its staff and channels, and ``adds`` adds ending now; returns (corp, the last add's time)."""
    from django.db import connection, transaction

    from siyu.channels.models import Channel, ChannelAdd, ChannelGroup
    from siyu.corps.models import Staff
    from siyu.corps.services import create_corp
    from siyu.customers.models import Customer, FollowRelation

    corp = create_corp(name="分析基准", corpid=f"wwbenchanalytics{seed}")
    corp.time_zone = TZ
    corp.save(update_fields=["time_zone"])
    staff = Staff.objects.bulk_create(
        [Staff(corp=corp, userid=f"staff{i}", name=f"员工{i:03d}") for i in range(n_staff)]
    )
    groups = ChannelGroup.objects.bulk_create(
        [ChannelGroup(corp=corp, name=f"分组{g}", order=g) for g in range(5)]
    )
    channels = Channel.objects.bulk_create(
        [
            Channel(corp=corp, name=f"渠道{c:03d}", state=f"cbench{c:04d}", group=groups[c % 5])
            for c in range(n_channels)
        ]
    )
    end = dt.datetime.now(dt.UTC).replace(microsecond=0)
    start = end - dt.timedelta(days=days)
    span = days * 86400
    staff0, channel0 = staff[0].pk, channels[0].pk
    # i → channel slot (0: none), a staff member among the channel's four, a moment, a welcome, an end.
    slot = f"((i::bigint * 7919 + {seed}) % {n_channels + 1})::int"
    channel_expr = f"CASE WHEN {slot} = 0 THEN NULL ELSE {channel0} + {slot} - 1 END"
    staff_expr = f"{staff0} + (({slot} * 4 + i % 4) % {n_staff})"
    added_expr = f"timestamptz '{start.isoformat()}' + ((i::bigint * {span}) / {adds}) * interval '1 second'"
    log(f"generating {adds:,} customers, relations and adds …")
    started = time.monotonic()
    with transaction.atomic(), connection.cursor() as cursor:
        _insert_series(
            cursor,
            Customer,
            adds,
            {"corp_id": str(corp.pk), "external_userid": "'wmb' || i", "name": "'客户' || i"},
        )
        cursor.execute("SELECT min(id) FROM customers_customer WHERE corp_id = %s", [corp.pk])
        customer0 = cursor.fetchone()[0]
        ended = "(i % 5 = 0)"
        # ends within 40 days, and never after now
        ended_at = (
            f"LEAST(({added_expr}) + ((i::bigint * 31) % (40 * 86400)) * interval '1 second', "
            f"timestamptz '{end.isoformat()}' - interval '1 second')"
        )
        _insert_series(
            cursor,
            FollowRelation,
            adds,
            {
                "corp_id": str(corp.pk),
                "customer_id": f"{customer0} + i - 1",
                "staff_id": staff_expr,
                "state": f"CASE WHEN {slot} = 0 THEN '' "
                f"ELSE 'cbench' || lpad(({slot} - 1)::text, 4, '0') END",
                "added_at": added_expr,
                "status": f"CASE WHEN {ended} THEN (CASE WHEN i % 2 = 0 THEN 'deleted_by_staff' ELSE "
                "'deleted_by_customer' END) ELSE 'active' END",
                "status_changed_at": f"CASE WHEN {ended} THEN {ended_at} ELSE NULL END",
            },
        )
        cursor.execute("SELECT min(id) FROM customers_followrelation WHERE corp_id = %s", [corp.pk])
        relation0 = cursor.fetchone()[0]
        w = "(i % 100)"
        status = (
            f"CASE WHEN {w} < 85 THEN 'sent' WHEN {w} < 90 THEN 'failed' WHEN {w} < 93 THEN 'expired' "
            "ELSE 'no_code' END"
        )
        _insert_series(
            cursor,
            ChannelAdd,
            adds,
            {
                "corp_id": str(corp.pk),
                "relation_id": f"{relation0} + i - 1",
                "customer_id": f"{customer0} + i - 1",
                "staff_id": staff_expr,
                "channel_id": channel_expr,
                "added_at": added_expr,
                "received_at": added_expr,
                "welcome_status": status,
                "welcome_sent_at": f"CASE WHEN {w} < 85 THEN ({added_expr}) + ((i % 121) / 10.0) * "
                "interval '1 second' ELSE NULL END",
                "ended_at": f"CASE WHEN {ended} THEN {ended_at} ELSE NULL END",
                "ended_by": f"CASE WHEN {ended} THEN (CASE WHEN i % 2 = 0 THEN 'staff' ELSE 'customer' END) "
                "ELSE '' END",
            },
        )
    with connection.cursor() as cursor:
        for table in ("customers_customer", "customers_followrelation", "channels_channeladd"):
            cursor.execute(f"VACUUM ANALYZE {table}")
    log(f"   {time.monotonic() - started:.0f} s")
    assert ChannelAdd.objects.for_corp(corp).count() == adds
    return corp, end


# --- the raw group-by -------------------------------------------------------------------------------------

RAW = """
WITH a AS (
  SELECT {key} AS k, count(*) AS adds,
    count(*) FILTER (WHERE welcome_status = 'sent') AS sent,
    count(*) FILTER (WHERE welcome_status IN ('failed', 'rejected')) AS failed,
    count(*) FILTER (WHERE welcome_status = 'expired') AS expired,
    count(*) FILTER (WHERE (added_at AT TIME ZONE %(tz)s)::date <= %(m1)s) AS cohort1,
    count(*) FILTER (WHERE (added_at AT TIME ZONE %(tz)s)::date <= %(m1)s
                     AND (ended_at IS NULL OR ended_at >= added_at + interval '1 day')) AS retained1,
    count(*) FILTER (WHERE (added_at AT TIME ZONE %(tz)s)::date <= %(m7)s) AS cohort7,
    count(*) FILTER (WHERE (added_at AT TIME ZONE %(tz)s)::date <= %(m7)s
                     AND (ended_at IS NULL OR ended_at >= added_at + interval '7 days')) AS retained7,
    count(*) FILTER (WHERE (added_at AT TIME ZONE %(tz)s)::date <= %(m30)s) AS cohort30,
    count(*) FILTER (WHERE (added_at AT TIME ZONE %(tz)s)::date <= %(m30)s
                     AND (ended_at IS NULL OR ended_at >= added_at + interval '30 days')) AS retained30,
    percentile_cont(0.5) WITHIN GROUP (
      ORDER BY extract(epoch FROM welcome_sent_at - coalesce(received_at, added_at)))
      FILTER (WHERE welcome_status = 'sent' AND welcome_sent_at IS NOT NULL) AS median
  FROM channels_channeladd
  WHERE corp_id = %(corp)s AND added_at >= %(since)s AND added_at < %(until)s {extra}
  GROUP BY 1
), e AS (
  SELECT {end_key} AS k,
    count(*) FILTER (WHERE ended_by = 'staff') AS by_staff,
    count(*) FILTER (WHERE ended_by <> 'staff') AS by_customer
  FROM channels_channeladd
  WHERE corp_id = %(corp)s AND ended_at >= %(since)s AND ended_at < %(until)s {extra}
  GROUP BY 1
)
SELECT k, coalesce(a.adds, 0), coalesce(e.by_staff, 0), coalesce(e.by_customer, 0), a.sent, a.failed,
       a.expired, a.cohort1, a.retained1, a.cohort7, a.retained7, a.cohort30, a.retained30, a.median
FROM a FULL JOIN e USING (k)
"""


def raw_query(by: str, corp: Any, first: dt.date, last: dt.date, today: dt.date, channel_id: int | None):
    from django.db import connection

    from siyu.core.timewindows import zone

    tz = zone(TZ)
    keys = {
        "day": ("(added_at AT TIME ZONE %(tz)s)::date", "(ended_at AT TIME ZONE %(tz)s)::date"),
        "channel": ("coalesce(channel_id, 0)", "coalesce(channel_id, 0)"),  # NULL never joins: 0
        "staff": ("staff_id", "staff_id"),
    }
    key, end_key = keys[by]
    extra = "AND channel_id = %(channel)s" if channel_id is not None else ""
    sql = RAW.format(key=key, end_key=end_key, extra=extra)
    params = {
        "tz": TZ,
        "corp": corp.pk,
        "since": dt.datetime.combine(first, dt.time.min, tzinfo=tz),
        "until": dt.datetime.combine(last + dt.timedelta(days=1), dt.time.min, tzinfo=tz),
        "m1": today - dt.timedelta(days=2),
        "m7": today - dt.timedelta(days=8),
        "m30": today - dt.timedelta(days=31),
        "channel": channel_id,
    }

    def run() -> dict[Any, tuple[int, int, int]]:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return {row[0] or None: (row[1], row[2], row[3]) for row in cursor.fetchall()}

    return run


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--adds", type=int, default=1_000_000)
    parser.add_argument("--channels", type=int, default=50)
    parser.add_argument("--staff", type=int, default=200)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    import os

    url = os.environ.get("DATABASE_URL") or postgres_database(DATABASE, fresh=True)
    setup_django(url)
    from siyu.channels import rollups, stats
    from siyu.channels.models import ChannelDay
    from siyu.core.clock import frozen_at
    from siyu.corps.access import Actor
    from siyu.corps.models import Role

    corp, end = generate(args.adds, args.channels, args.staff, args.days, args.seed)
    log("building the rollup (rollups.rebuild) …")
    started = time.monotonic()
    rows = rollups.rebuild(corp)
    rebuild_s = time.monotonic() - started
    log(f"   {rows:,} rollup rows in {rebuild_s:.1f} s")
    with __import__("django.db", fromlist=["connection"]).connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {ChannelDay._meta.db_table}")

    label = size_label(args.adds)
    figures: list[Figure] = [
        Figure(f"analytics_rebuild_{label}", rebuild_s * 1000, "ms", rebuild_s * 1000),
    ]
    actor = Actor(corp=corp, role=Role.ADMIN)
    with frozen_at(end):
        today = end.astimezone(__import__("zoneinfo").ZoneInfo(TZ)).date()
        busiest = (
            ChannelDay.objects.for_corp(corp)
            .exclude(channel_id=None)
            .values_list("channel_id", flat=True)
            .first()
        )
        charts = [
            ("line_30d", "day", 30, None),
            ("line_365d", "day", args.days, None),
            ("bars_channel_30d", "channel", 30, None),
            ("bars_staff_30d", "staff", 30, None),
            ("bars_channel_365d", "channel", args.days, None),
            ("one_channel_30d", "day", 30, busiest),
        ]
        for name, by, days, channel_id in charts:
            first = today - dt.timedelta(days=days - 1)
            query = stats.make_query(
                actor,
                start=first,
                end=today,
                breakdown="staff" if by == "staff" else "channel",
                channel_id=channel_id,
            )

            def from_rollup(by: str = by, query: stats.Query = query) -> dict[Any, Any]:
                if by == "day":
                    return stats.per_day(actor, query)
                return stats.per_key(actor, query)

            raw = raw_query(by, corp, first, today, today, channel_id)
            # the same numbers first: adds and deletions by side per group
            mine = {k: (f.adds, f.deleted_by_staff, f.deleted_by_customer) for k, f in from_rollup().items()}
            theirs = {k: v for k, v in raw().items() if any(v)}
            mine = {k: v for k, v in mine.items() if any(v)}
            if mine != theirs:
                diff = {
                    k: (mine.get(k), theirs.get(k))
                    for k in set(mine) | set(theirs)
                    if mine.get(k) != theirs.get(k)
                }
                raise SystemExit(
                    f"{name}: the rollup and the raw group-by disagree: {list(diff.items())[:5]}"
                )
            rollup_t = time_runs(from_rollup, runs=args.runs)
            raw_t = time_runs(raw, runs=max(3, args.runs // 3), warmup=1)
            log(
                f"   {name}: rollup p50 {rollup_t.p50:.1f} ms (p99 {rollup_t.p99:.1f}), "
                f"raw p50 {raw_t.p50:.0f} ms"
            )
            figures.append(Figure(f"analytics_{name}_{label}", rollup_t.p50, "ms", raw_t.p50))
        page = stats.make_query(actor, start=today - dt.timedelta(days=29), end=today)
        whole = time_runs(lambda: stats.stats(actor, page, settle=False), runs=args.runs)
        figures.append(Figure(f"analytics_page_30d_{label}", whole.p50, "ms", whole.p50))
    print_figures(figures)
    misses = [f for f in figures[1:-1] if f.value > TARGET_MS or f.ratio < TARGET_RATIO]
    for f in misses:
        log(
            f"   below P9: {f.name} {f.value:.1f} ms, {f.ratio:.1f}× "
            f"(targets ≤ {TARGET_MS:.0f} ms, ≥ {TARGET_RATIO:.0f}×)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
