"""Benchmark P8: planning a mass message to 1,000,000 customers with caps, on PostgreSQL.

    .venv/bin/python bench/broadcast.py --customers 1000000 [--staff 200] [--seed 1] [--runs 5]

Builds its own corp in the PostgreSQL database ``siyu_bench_broadcast`` (re-created every run): N customers,
each followed by one or two of the staff (1.25 relations per customer), a chat event for one customer in ten,
and a month of receive history in the contact ledger (each day 15% of the customers got a message, 2% got two
every day), written through ``caps.reserve`` itself. The corp's rules: WeCom's days-in-month quota and a
business cap of 3 messages per 7 days, so both refuse some customers.

Timed (Siyu's own path, what the worker runs when it sends): ``planning.plan_customers`` with ``reserve=True``
for an audience of all N customers less a 1% exclusion — read the relations (binary COPY), choose each
customer's sender (last chat, else latest add), check quiet hours and both caps, reserve the granted in the
ledger, and produce the counts per reason and per staff member that the preview shows. Each run is inside a
transaction that is rolled back, so every run starts from the same ledger. ``preview`` is the same without
the reservation.

Baseline (same data, same run): the naive ledger — a row per (customer, month) with a count — checked and
reserved for the same N recipients in one statement, ``INSERT … SELECT unnest(…) ON CONFLICT DO UPDATE SET
n = n + 1 WHERE n < quota RETURNING customer_id``, also rolled back. It checks one cap and chooses no sender,
so it does less than the timed path. Target: ≤ 1 s, and ≥ 20× the baseline.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    Figure,
    django_cpu_seconds,
    log,
    peak_rss_mib,
    postgres_database,
    print_figures,
    setup_django,
    size_label,
    time_runs,
)

TARGET_MS = 1000.0  # P8
TARGET_RATIO = 20.0
HISTORY_DAYS = 24  # the send is on the 25th: most of a month of history
DAILY_SHARE = 0.15
HEAVY_SHARE = 0.02


class Rollback(Exception):
    """Raised to roll a timed run's transaction back."""


def build(customers: int, staff: int, seed: int) -> tuple[object, dt.datetime]:
    """The corp, its staff, customers, relations, chats and ledger history; returns (corp, send time)."""
    import numpy as np
    from django.db import connection
    from pyroaring import BitMap

    from siyu.broadcasts import caps
    from siyu.broadcasts.audience import bitmap_of
    from siyu.broadcasts.models import CapPolicy
    from siyu.core import clock
    from siyu.corps.models import Corp, Staff
    from siyu.corps.services import create_corp

    now_china = dt.datetime.now(caps.WECOM_TIME_ZONE)
    month = now_china.replace(day=1, hour=12, minute=0, second=0, microsecond=0)
    existing = Corp.objects.filter(corpid=f"wwbcast{customers}s{seed}").first()
    if existing is not None:  # --reuse: built by an earlier run this month
        log(f"re-using {existing.corpid}")
        return existing, month + dt.timedelta(days=HISTORY_DAYS)
    corp = create_corp(name="群发基准企业", corpid=f"wwbcast{customers}s{seed}")
    Staff.objects.bulk_create(
        [Staff(corp=corp, userid=f"staff{n:04d}", name=f"员工{n}") for n in range(staff)], batch_size=1000
    )
    first_staff = Staff.objects.for_corp(corp).order_by("pk").values_list("pk", flat=True).first()
    log(f"inserting {customers:,} customers, relations and chats …")
    with connection.cursor() as cursor:
        cursor.execute("SET max_parallel_workers_per_gather = 0")  # deterministic row order
        cursor.execute(
            """
            INSERT INTO customers_customer (corp_id, external_userid, unionid, name, avatar, gender, type,
                corp_name, corp_full_name, custom_fields, last_added_at, search_text, created_at, updated_at)
            SELECT %s, 'wm' || lpad(i::text, 10, '0'), '', '客户' || i, '', i %% 3, 1, '', '', '{}'::jsonb,
                now() - make_interval(days => i %% 365), '', now(), now()
            FROM generate_series(1, %s) AS i
            """,
            [corp.pk, customers],
        )
        # Knuth's multiplicative hash spreads customers over staff deterministically; a quarter have a second.
        cursor.execute(
            """
            INSERT INTO customers_followrelation (corp_id, customer_id, staff_id, remark, description,
                remark_corp_name, remark_mobiles, add_way, state, oper_userid, added_at, status)
            SELECT c.corp_id, c.id, %(first)s + ((c.id * 2654435761 + %(seed)s) %% %(staff)s),
                '', '', '', '[]'::jsonb, 1, '', '',
                now() - make_interval(mins => ((c.id * 40503) %% 500000)::int), 'active'
            FROM customers_customer c WHERE c.corp_id = %(corp)s
            UNION ALL
            SELECT c.corp_id, c.id, %(first)s + ((c.id * 2246822519 + %(seed)s + 1) %% %(staff)s),
                '', '', '', '[]'::jsonb, 1, '', '',
                now() - make_interval(mins => ((c.id * 7919) %% 500000)::int), 'active'
            FROM customers_customer c WHERE c.corp_id = %(corp)s AND c.id %% 4 = 0
                AND ((c.id * 2654435761 + %(seed)s) %% %(staff)s)
                    <> ((c.id * 2246822519 + %(seed)s + 1) %% %(staff)s)
            """,
            {"first": first_staff, "seed": seed, "staff": staff, "corp": corp.pk},
        )
        cursor.execute(
            """
            INSERT INTO customers_event (corp_id, customer_id, staff_id, kind, occurred_at, source, payload,
                dedupe_key, recorded_at)
            SELECT r.corp_id, r.customer_id, r.staff_id, 'chatted',
                now() - make_interval(mins => (r.id %% 9000)::int), 'wecom', '{}'::jsonb,
                'bench-chat:' || r.id, now()
            FROM customers_followrelation r WHERE r.corp_id = %s AND r.customer_id %% 10 = 0
            """,
            [corp.pk],
        )
        cursor.execute("ANALYZE")
    ids = np.array(
        sorted(customer_ids(corp)),
        dtype=np.uint32,
    )
    rng = np.random.default_rng(seed)
    heavy = bitmap_of(ids[rng.random(len(ids)) < HEAVY_SHARE])
    log(f"writing {HISTORY_DAYS} days of receive history through caps.reserve …")
    everyone = BitMap(ids)
    for day in range(HISTORY_DAYS):
        at = month + dt.timedelta(days=day)
        with clock.frozen_at(at):
            daily = bitmap_of(ids[rng.random(len(ids)) < DAILY_SHARE]) | heavy
            caps.reserve(corp=corp, customer_ids=daily, at=at)
            caps.reserve(corp=corp, customer_ids=heavy, at=at)
    del everyone
    # The rules the send meets (the history was written without a business cap, so it holds what was sent).
    policy = caps.policy_for(corp)
    policy.wecom_quota = CapPolicy.WeComQuota.DAYS_IN_MONTH
    policy.business_cap_count, policy.business_cap_days = 3, 7
    policy.save()
    return corp, month + dt.timedelta(days=HISTORY_DAYS)


def customer_ids(corp: object) -> list[int]:
    from siyu.customers.models import Customer

    return list(Customer.objects.for_corp(corp).values_list("pk", flat=True))


def baseline_table(corp: object, at: dt.datetime) -> None:
    """The naive ledger: a count per (customer, month), from the same history."""
    import numpy as np
    from django.db import connection

    from siyu.broadcasts import caps
    from siyu.broadcasts.models import LedgerDay

    counts: dict[int, int] = {}
    rows = LedgerDay.objects.for_corp(corp).filter(channel="wecom_mass").values_list("members", flat=True)
    from pyroaring import BitMap

    for members in rows:
        for customer_id in BitMap.deserialize(bytes(members)):
            counts[customer_id] = counts.get(customer_id, 0) + 1
    period = caps.wecom_day(at).replace(day=1)
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_cap_counter")
        cursor.execute(
            "CREATE TABLE bench_cap_counter (customer_id bigint NOT NULL, period date NOT NULL, "
            "n integer NOT NULL, PRIMARY KEY (customer_id, period))"
        )
        keys = np.fromiter(counts.keys(), dtype=np.int64)
        values = np.fromiter(counts.values(), dtype=np.int64)
        cursor.execute(
            "INSERT INTO bench_cap_counter SELECT unnest(%s::bigint[]), %s, unnest(%s::int[])",
            [keys.tolist(), period, values.tolist()],
        )
        cursor.execute("ANALYZE bench_cap_counter")


def run(
    customers: int, staff: int, seed: int, runs: int, baseline_runs: int, profile: bool = False
) -> list[Figure]:
    from django.db import connection, transaction
    from pyroaring import BitMap

    from siyu.broadcasts import caps
    from siyu.broadcasts.audience import CustomerAudience
    from siyu.broadcasts.planning import plan_customers
    from siyu.core import clock

    corp, at = build(customers, staff, seed)
    ids = BitMap(customer_ids(corp))
    excluded = BitMap(ids[::100])
    audience = CustomerAudience(members=ids, excluded=excluded)
    outcome: dict[str, object] = {}

    def plan(reserve: bool) -> None:
        try:
            with transaction.atomic(), clock.frozen_at(at):
                found = plan_customers(corp=corp, audience=audience, at=at, reserve=reserve)
                outcome["summary"] = found.summary()
                raise Rollback
        except Rollback:
            pass

    if profile:
        import cProfile
        import pstats

        plan(True)
        profiler = cProfile.Profile()
        profiler.runcall(plan, True)
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(25)
    cpu = django_cpu_seconds()
    log(f"timing Siyu's planning ({runs} runs) …")
    reserve = time_runs(lambda: plan(True), runs=runs, warmup=2, cpu=cpu)
    summary = outcome["summary"]
    log(f"plan: {summary['recipients']:,} recipients, skipped {summary['skipped']}")
    preview = time_runs(lambda: plan(False), runs=runs, warmup=1, cpu=cpu)

    baseline_table(corp, at)
    quota = caps.quota_window(caps.policy_for(corp).wecom_quota, caps.wecom_day(at))[1]
    period = caps.wecom_day(at).replace(day=1)
    recipients = list(ids - excluded)
    granted: dict[str, int] = {}

    def upsert() -> None:
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO bench_cap_counter AS c (customer_id, period, n) "
                    "SELECT unnest(%s::bigint[]), %s, 1 "
                    "ON CONFLICT (customer_id, period) DO UPDATE SET n = c.n + 1 WHERE c.n < %s "
                    "RETURNING customer_id",
                    [recipients, period, quota],
                )
                granted["n"] = len(cursor.fetchall())
                raise Rollback
        except Rollback:
            pass

    log(f"timing the single-statement upsert ({baseline_runs} runs) …")
    baseline = time_runs(upsert, runs=baseline_runs, warmup=1, cpu=cpu)
    log(f"upsert granted {granted['n']:,}; peak memory {peak_rss_mib():.0f} MiB")
    label = size_label(customers)
    figures = [
        Figure(f"broadcast_plan_reserve_{label}", reserve.p50, "ms", baseline.p50),
        Figure(f"broadcast_plan_reserve_{label}_p99", reserve.p99, "ms", baseline.p99),
        Figure(f"broadcast_preview_{label}", preview.p50, "ms", baseline.p50),
    ]
    if reserve.cpu_ms is not None and baseline.cpu_ms is not None:
        figures.append(Figure(f"broadcast_plan_reserve_{label}_cpu", reserve.cpu_ms, "ms", baseline.cpu_ms))
    verdict = "meets" if reserve.p50 <= TARGET_MS and baseline.p50 / reserve.p50 >= TARGET_RATIO else "misses"
    log(f"P8 target (≤ {TARGET_MS:.0f} ms, ≥ {TARGET_RATIO:.0f}× the upsert): {verdict}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--staff", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=5, help="timed runs of Siyu's path (after warm-up)")
    parser.add_argument("--baseline-runs", type=int, default=3, help="timed runs of the upsert")
    parser.add_argument("--profile", action="store_true", help="print a profile of one planning run (stderr)")
    parser.add_argument("--reuse", action="store_true", help="keep the database an earlier run built")
    args = parser.parse_args()
    setup_django(postgres_database("siyu_bench_broadcast", fresh=not args.reuse))
    print_figures(run(args.customers, args.staff, args.seed, args.runs, args.baseline_runs, args.profile))


if __name__ == "__main__":
    main()
