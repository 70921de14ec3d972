"""Benchmark: the console's customer list at 1M customers on PostgreSQL, with and without the list's indexes.

    .venv/bin/python bench/customer_list.py --customers 1000000 [--seed 1] [--runs 30]

Uses DATABASE_URL when set, otherwise the PostgreSQL database ``siyu_bench`` (created when missing). The corp
is seeded once (``siyu seed``'s own path) and re-used by later runs with the same size and seed.

What is timed is ``customers.selectors.list_customers`` for an admin, the call behind the console page and the
API: the page of 50 customers with their relations, staff and tags loaded. Scenarios: two tags and one staff
member (first page, and the page 20 pages in through the keyset cursor), the unfiltered first page, and
searches: a full name, a six-digit mobile fragment, a two-character name (too short for trigrams). The
baseline is the same call with the indexes the project adds for this list dropped inside a transaction that
is rolled back (primary keys, unique constraints and Django's one-column foreign-key indexes stay; those the
schema drops because a list index covers them are created for the baseline, so that it stays what Django
alone would give). Each
scenario also reports its CPU per call (this process plus its PostgreSQL backend), steadier than wall time
on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    Figure,
    Timing,
    django_cpu_seconds,
    ensure_seeded,
    log,
    postgres_database,
    print_figures,
    setup_django,
    size_label,
    time_runs,
)

# Indexes the project adds for the list (models' Meta and the PostgreSQL-only migration). The baseline runs
# without them.
LIST_INDEXES = [
    "customer_corp_added",
    "customer_tag_tag_customer",
    "relation_staff_status",
    "relation_tag_customer_tag",
    "customer_search_trgm",
    "relation_customer_staff",
]
# Django's one-column foreign-key indexes that the schema leaves out because the list's indexes (or a unique
# constraint) lead with the same column; the baseline has them back, as Django alone would create them.
PLAIN_FK_INDEXES = [
    ("customers_followrelation", "customer_id"),
    ("customers_followrelation", "staff_id"),
    ("tags_customertag", "tag_id"),
    ("tags_relationtag", "customer_id"),
]
TARGET_P50_MS = 150.0  # the target for the filtered first page at 1M customers


@dataclass
class Scenario:
    name: str
    run: Callable[[], object]


def _vacuum_analyze() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        # Visibility map and statistics, as autovacuum gives a long-lived database: index-only scans depend on
        # the first, the planner on the second.
        cursor.execute("VACUUM ANALYZE")


@contextmanager
def without_list_indexes() -> Iterator[list[str]]:
    """Inside a transaction that is rolled back: the list's indexes dropped, Django's plain ones there."""
    from django.db import connection, transaction

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT indexname FROM pg_indexes WHERE indexname = ANY(%s)", [LIST_INDEXES])
            present = [row[0] for row in cursor.fetchall()]
            for name in present:
                cursor.execute(f'DROP INDEX "{name}"')
            for table, column in PLAIN_FK_INDEXES:
                cursor.execute(f'CREATE INDEX "bench_{table}_{column}" ON "{table}" ("{column}")')
        try:
            yield present
        finally:
            transaction.set_rollback(True)


def scenarios(corp: object) -> list[Scenario]:
    from siyu.corps.access import Actor
    from siyu.corps.models import Corp, Role, Staff
    from siyu.customers.models import FollowRelation
    from siyu.customers.selectors import CustomerFilter, list_customers
    from siyu.tags.models import Tag

    assert isinstance(corp, Corp)
    actor = Actor(corp=corp, role=Role.ADMIN)
    tags = {t.name: t.pk for t in Tag.objects.for_corp(corp)}
    # A region and a customer level, and the fourth-busiest front-line member: a typical sales-manager query.
    staff = Staff.objects.for_corp(corp).get(userid="staff004")
    filtered = CustomerFilter(tags_all=[tags["上海"], tags["高意向"]], staff_ids=[staff.pk])
    cursor = None
    for _ in range(20):
        cursor = list_customers(actor, filtered, cursor=cursor).next_cursor
    assert cursor is not None, "fewer than 21 pages match the filter: seed more customers"
    deep_cursor = cursor
    # A mobile fragment that occurs a few times: the middle six digits of one customer's number.
    mobiles = (
        FollowRelation.objects.for_corp(corp)
        .exclude(remark_mobiles=[])
        .values_list("remark_mobiles", flat=True)
    )
    fragment = mobiles[1000][0][3:9]
    unfiltered = CustomerFilter()
    by_name = CustomerFilter(q="王秀英")  # a full name: three characters, so trigrams apply
    by_short = CustomerFilter(q="王芳")  # two characters: no trigram, a scan (the known weak spot)
    by_mobile = CustomerFilter(q=fragment)
    return [
        Scenario("2tags_staff", lambda: list_customers(actor, filtered)),
        Scenario("2tags_staff_page21", lambda: list_customers(actor, filtered, cursor=deep_cursor)),
        Scenario("first_page", lambda: list_customers(actor, unfiltered)),
        Scenario("search_name", lambda: list_customers(actor, by_name)),
        Scenario("search_mobile", lambda: list_customers(actor, by_mobile)),
        Scenario("search_2chars", lambda: list_customers(actor, by_short)),
    ]


def count_queries(fn: Callable[[], object]) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        fn()
    return len(queries)


def run(customers: int, seed_value: int, runs: int, baseline_runs: int) -> list[Figure]:
    database_url = os.environ.get("DATABASE_URL") or postgres_database("siyu_bench", fresh=False)
    setup_django(database_url)
    from django.db import connection

    if connection.vendor != "postgresql":
        raise SystemExit("the customer-list benchmark measures PostgreSQL; point DATABASE_URL at one")
    corp = ensure_seeded(customers, seed_value)
    _vacuum_analyze()
    label = size_label(customers)
    cases = scenarios(corp)
    cpu = django_cpu_seconds()
    timed: dict[str, Timing] = {}
    for case in cases:
        log(f"timing {case.name} ({runs} runs) …")
        timed[case.name] = time_runs(case.run, runs=runs, warmup=3, cpu=cpu)
        log(
            f"  p50 {timed[case.name].p50:.1f} ms, p99 {timed[case.name].p99:.1f} ms, "
            f"CPU {timed[case.name].cpu_ms or 0:.1f} ms"
        )
    queries = {case.name: count_queries(case.run) for case in cases}
    baseline: dict[str, Timing] = {}
    with without_list_indexes() as dropped:
        log(f"baseline without {', '.join(dropped)} ({baseline_runs} runs each) …")
        for case in cases:
            baseline[case.name] = time_runs(case.run, runs=baseline_runs, warmup=1, cpu=cpu)
            log(f"  {case.name}: p50 {baseline[case.name].p50:.1f} ms")
    figures = []
    for case in cases:
        name = f"customer_list_{case.name}_{label}"
        figures.append(Figure(f"{name}_p50", timed[case.name].p50, "ms", baseline[case.name].p50))
        figures.append(Figure(f"{name}_p99", timed[case.name].p99, "ms", baseline[case.name].p99))
        figures.append(
            Figure(f"{name}_cpu", timed[case.name].cpu_ms or 0.0, "ms", baseline[case.name].cpu_ms or 0.0)
        )
    # Query count: the filtered first page against the deep page and the other scenarios: equal is constant.
    figures.append(
        Figure(
            f"customer_list_queries_{label}", queries["2tags_staff"], "queries", queries["2tags_staff_page21"]
        )
    )
    p50 = timed["2tags_staff"].p50
    verdict = "met" if p50 <= TARGET_P50_MS else f"MISSED by {p50 - TARGET_P50_MS:.0f} ms"
    log(f"target p50 ≤ {TARGET_P50_MS:.0f} ms for 2 tags + staff at {label}: {verdict}")
    log(
        f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores: "
        "wall times include the wait for a free core)"
    )
    if len(set(queries.values())) != 1:
        log(f"query counts differ between scenarios: {queries}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=30, help="timed runs per scenario (after 3 warm-up runs)")
    parser.add_argument(
        "--baseline-runs", type=int, default=5, help="timed runs per scenario without indexes"
    )
    args = parser.parse_args()
    print_figures(run(args.customers, args.seed, args.runs, args.baseline_runs))


if __name__ == "__main__":
    main()
