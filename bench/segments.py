"""Benchmark: segments through Siyu's bitmap index next to plain SQL on PostgreSQL, same data, same run.

    .venv/bin/python bench/segments.py [--customers 1000000] [--seed 1] [--runs 50] [--join-max 1000000]

Data (deterministic from --seed): N customers, each with about 20 tags drawn from 2,000 by a Zipf law
(exponent 1), a gender, a type and one active relation with one of 30 staff members and a channel ``state``;
a third of them bought 1–3 times in the last 90 days. It is loaded into a fresh PostgreSQL database
(``siyu_bench_segments``) with COPY: Siyu's own tables (customers, relations, ``tags_customertag`` — the
join table —, purchase events) when N ≤ --join-max, and always a table of ``int[]`` tag arrays with a GIN
index (``bench_customer_tags``, the other plain-SQL form PERFORMANCE.md names).

Siyu's index is built with ``segments.index.CorpIndex`` from the generated arrays (the same structure a
rebuild fills; the rebuild from the tables is timed separately when the tables hold the data) and queried
through ``segments.engine.Compiler`` — the code behind ``services.evaluate``. Figures:

- ``segment_count_<expr>_<N>``: p50 ms of a count, against the int[]+GIN statement (baseline);
- ``segment_count_join_<expr>_<N>``: the same count against Siyu's SQL reference evaluator (the join-table
  form, ``segments.reference``), at N ≤ --join-max;
- ``segment_ids_<expr>_<N>``: p50 ms to materialise the customer ids (a ``BitMap`` of ids), against fetching
  them with the int[]+GIN statement;
- ``segment_index_bits_per_pair_<N>`` (against PERFORMANCE.md's 16-bit target), ``segment_reload_<N>``
  (saved copy read from PostgreSQL and deserialised; baseline: the rebuild from the tables, or from arrays);
- ``segment_updates_per_s_<N>``: index updates per second applied by the tail (tag events COPYed into the
  tables, then ``maintenance.catch_up``: reading the events and re-reading the customers) while a thread
  keeps counting, against the 100k/s target; ``segment_count_during_updates_<N>``: the counts' p50 meanwhile.

At 10M the join table (200M rows) takes too long to load on two cores: run it at 1M (the default limit).
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    Figure,
    log,
    peak_rss_mib,
    postgres_database,
    print_figures,
    setup_django,
    size_label,
    time_runs,
)

TAGS = 2000
TAGS_PER_CUSTOMER = 20
STAFF = 30
STATES = ["ch_store", "ch_ad", "ch_referral", "ch_expo", "ch_mp"]
NOW = dt.datetime(2026, 6, 1, 4, 0, tzinfo=dt.UTC)
# Expressions by name: (Siyu text, int[] SQL condition over b = bench_customer_tags). Tags are named t<rank>.
EXPRESSIONS = {
    "3tag": (
        "(tag:t9 OR tag:t29) AND NOT tag:t2",
        "b.tags && '{%(t9)s,%(t29)s}' AND NOT b.tags @> '{%(t2)s}'",
    ),
    "3tag2attr": (
        "(tag:t9 OR tag:t29) AND NOT tag:t2 AND gender:female AND state:ch_ad",
        "b.tags && '{%(t9)s,%(t29)s}' AND NOT b.tags @> '{%(t2)s}' AND b.gender = 2 AND b.state = 'ch_ad'",
    ),
    "20tagor": (
        "tag:any(" + ", ".join(f"t{i}" for i in range(100, 120)) + ")",
        "b.tags && '{" + ",".join(f"%(t{i})s" for i in range(100, 120)) + "}'",
    ),
    "tagattrbehaviour": (
        "tag:t5 AND gender:female AND NOT purchased(30d)",
        "b.tags @> '{%(t5)s}' AND b.gender = 2 AND NOT EXISTS (SELECT 1 FROM customers_event e "
        "WHERE e.customer_id = b.customer_id AND e.kind = 'purchased' AND e.occurred_at >= %(since)s)",
    ),
}


def generate(n: int, seed: int) -> dict[str, np.ndarray]:
    """Customers (0 … n-1), their tag pairs (Zipf over 2,000 tags), attributes and purchases."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, TAGS + 1)
    weights /= weights.sum()
    chunks_c, chunks_t = [], []
    step = 500_000
    for start in range(0, n, step):
        size = min(step, n - start)
        # 24 draws give ~20 distinct tags per customer (the most frequent repeat).
        drawn = rng.choice(TAGS, size=(size, 24), p=weights).astype(np.int64)
        keys = np.unique((np.arange(start, start + size, dtype=np.int64)[:, None] * TAGS + drawn).ravel())
        chunks_c.append((keys // TAGS).astype(np.int64))
        chunks_t.append((keys % TAGS).astype(np.int64))
    buyers = np.flatnonzero(rng.random(n) < 1 / 3)
    times = np.repeat(buyers, rng.integers(1, 4, size=len(buyers)))
    ages = rng.integers(0, 90 * 86400, size=len(times))
    return {
        "pair_customer": np.concatenate(chunks_c),
        "pair_tag": np.concatenate(chunks_t),
        "gender": rng.choice(3, size=n, p=[0.1, 0.4, 0.5]),
        "type": rng.choice([1, 2], size=n, p=[0.93, 0.07]),
        "staff": rng.integers(0, STAFF, size=n),
        "state": rng.integers(0, len(STATES), size=n),
        "purchase_customer": times,
        "purchase_age": ages,
    }


def _copy(cursor: object, sql: str, lines: object) -> None:
    started = time.monotonic()
    with cursor.copy(sql) as copy:  # type: ignore[attr-defined]
        buffer = io.StringIO()
        for i, line in enumerate(lines):  # type: ignore[attr-defined]
            buffer.write(line)
            if i % 200_000 == 199_999:
                copy.write(buffer.getvalue())
                buffer = io.StringIO()
        copy.write(buffer.getvalue())
    log(f"  {sql.split('(')[0].strip()}: {time.monotonic() - started:.1f} s")


def load(
    data: dict[str, np.ndarray], n: int, *, join_table: bool
) -> tuple[object, dict[int, int], list[int]]:
    """Siyu's tables (when ``join_table``) and the int[] table. Returns the corp, tag rank → id, staff ids."""
    from django.db import connection

    from siyu.corps.models import Corp, Staff
    from siyu.tags.models import Tag, TagGroup

    corp = Corp.objects.create(name="分群基准", corpid="wwbenchsegments")
    staff = [Staff.objects.create(corp=corp, userid=f"s{i}", name=f"员工{i}").pk for i in range(STAFF)]
    group = TagGroup.objects.create(corp=corp, name="基准")
    Tag.objects.bulk_create(Tag(corp=corp, group=group, name=f"t{i}", order=i) for i in range(TAGS))
    tag_ids = dict(Tag.objects.filter(corp=corp).values_list("order", "id"))
    stamp = NOW.isoformat()
    raw = connection.connection
    with raw.cursor() as cur:
        # The generated rows are consistent by construction: skip the per-row foreign-key triggers.
        cur.execute("SET session_replication_role = replica")
        first_id = 1
        started = time.monotonic()
        if join_table:
            log(f"COPY {n:,} customers, relations, {len(data['pair_tag']):,} customer tags, events …")
            _copy(
                cur,
                "COPY customers_customer (id, corp_id, external_userid, unionid, name, avatar, gender, type, "
                "corp_name, corp_full_name, custom_fields, last_added_at, search_text, created_at, "
                "updated_at) "
                "FROM STDIN",
                (
                    f"{first_id + i}\t{corp.pk}\twmb{i}\t\tc{i}\t\t{g}\t{t}\t\t\t{{}}\t{stamp}\t\t"
                    f"{stamp}\t{stamp}\n"
                    for i, g, t in zip(range(n), data["gender"].tolist(), data["type"].tolist(), strict=True)
                ),
            )
            _copy(
                cur,
                "COPY customers_followrelation (corp_id, customer_id, staff_id, remark, description, "
                "remark_corp_name, remark_mobiles, add_way, state, oper_userid, added_at, status) FROM STDIN",
                (
                    f"{corp.pk}\t{first_id + i}\t{staff[s]}\t\t\t\t[]\t1\t{STATES[st]}\t\t{stamp}\tactive\n"
                    for i, s, st in zip(range(n), data["staff"].tolist(), data["state"].tolist(), strict=True)
                ),
            )
            tag_of = np.array([tag_ids[i] for i in range(TAGS)], dtype=np.int64)
            _copy(
                cur,
                "COPY tags_customertag (corp_id, customer_id, tag_id) FROM STDIN",
                (
                    f"{corp.pk}\t{c}\t{t}\n"
                    for c, t in zip(
                        (data["pair_customer"] + first_id).tolist(),
                        tag_of[data["pair_tag"]].tolist(),
                        strict=True,
                    )
                ),
            )
            _copy(
                cur,
                "COPY customers_event (corp_id, customer_id, kind, occurred_at, source, payload, dedupe_key, "
                "recorded_at) FROM STDIN",
                (
                    f"{corp.pk}\t{first_id + c}\tpurchased\t"
                    f"{(NOW - dt.timedelta(seconds=a)).isoformat()}\tapi\t"
                    f'{{"amount": "10.00"}}\tb:{k}\t{stamp}\n'
                    for k, (c, a) in enumerate(
                        zip(data["purchase_customer"].tolist(), data["purchase_age"].tolist(), strict=True)
                    )
                ),
            )
            cur.execute("SELECT setval('customers_customer_id_seq', %s)", [first_id + n])
        log("COPY the int[] table and build its GIN index …")
        cur.execute(
            "CREATE TABLE bench_customer_tags (customer_id bigint PRIMARY KEY, tags int[] NOT NULL, "
            "gender smallint NOT NULL, state text NOT NULL)"
        )
        order = np.argsort(data["pair_customer"], kind="stable")
        tags_sorted = data["pair_tag"][order]
        bounds = np.searchsorted(data["pair_customer"][order], np.arange(n + 1))
        tag_of_list = [tag_ids[i] for i in range(TAGS)]

        def rows() -> object:
            for i in range(n):
                ids = ",".join(str(tag_of_list[t]) for t in tags_sorted[bounds[i] : bounds[i + 1]].tolist())
                yield f"{first_id + i}\t{{{ids}}}\t{data['gender'][i]}\t{STATES[data['state'][i]]}\n"

        _copy(cur, "COPY bench_customer_tags (customer_id, tags, gender, state) FROM STDIN", rows())
        cur.execute("CREATE INDEX bench_customer_tags_gin ON bench_customer_tags USING gin (tags)")
        if not join_table:
            cur.execute("CREATE TABLE bench_purchases (customer_id bigint, occurred_at timestamptz)")
            _copy(
                cur,
                "COPY bench_purchases FROM STDIN",
                (
                    f"{first_id + c}\t{(NOW - dt.timedelta(seconds=a)).isoformat()}\n"
                    for c, a in zip(
                        data["purchase_customer"].tolist(), data["purchase_age"].tolist(), strict=True
                    )
                ),
            )
            cur.execute("CREATE INDEX ON bench_purchases (customer_id, occurred_at)")
        cur.execute("SET session_replication_role = DEFAULT")
        cur.execute("ANALYZE")
    raw.commit()
    log(f"loaded in {time.monotonic() - started:.0f} s")
    return corp, tag_ids, staff


def index_from_arrays(
    corp: object, data: dict[str, np.ndarray], n: int, tag_ids: dict[int, int], staff: list[int]
):  # type: ignore[no-untyped-def]
    """The corp's ``CorpIndex`` filled from the generated arrays (customer ids 1 … n, numbered 0 … n-1)."""
    from siyu.segments.index import CorpIndex, bitmap_of

    index = CorpIndex(corp_id=corp.pk, time_zone=corp.time_zone)  # type: ignore[attr-defined]
    numbers = index.dense.assign(np.arange(1, n + 1, dtype=np.int64))
    index.universe = bitmap_of(numbers)
    tag_of = np.array([tag_ids[i] for i in range(TAGS)], dtype=np.int64)
    index.add_tag_pairs(data["pair_customer"], tag_of[data["pair_tag"]])
    for value in range(3):
        index.genders[value] = bitmap_of(np.flatnonzero(data["gender"] == value))
    for value in (1, 2):
        index.types[value] = bitmap_of(np.flatnonzero(data["type"] == value))
    for s, staff_id in enumerate(staff):
        index.staff[staff_id] = bitmap_of(np.flatnonzero(data["staff"] == s))
    for s, state in enumerate(STATES):
        index.states[state] = bitmap_of(np.flatnonzero(data["state"] == s))
    index.statuses["active"] = bitmap_of(numbers)
    index.added[index.day_of(NOW)] = bitmap_of(numbers)
    offset = NOW.astimezone(index.tz).utcoffset().total_seconds()  # Asia/Shanghai: no daylight saving
    local = NOW.timestamp() + offset - data["purchase_age"]
    purchase_days = (local // 86400).astype(np.int64) + dt.date(1970, 1, 1).toordinal()
    keys = np.unique(purchase_days * (n + 1) + data["purchase_customer"], return_counts=True)
    for day in np.unique(purchase_days).tolist():
        chosen = (keys[0] // (n + 1)) == day
        index.add_counts("purchased", int(day), (keys[0][chosen] % (n + 1)), keys[1][chosen])
    return index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--sql-runs", type=int, default=3)
    parser.add_argument("--join-max", type=int, default=1_000_000, help="largest size with the join table")
    parser.add_argument("--updates", type=int, default=20_000, help="tag events applied by the tail")
    args = parser.parse_args()
    n = args.customers
    label = size_label(n)
    join_table = n <= args.join_max
    setup_django(postgres_database("siyu_bench_segments", fresh=True))

    from django.db import connection
    from pyroaring import BitMap

    from siyu.core.clock import frozen_at
    from siyu.customers.models import Customer
    from siyu.segments import engine
    from siyu.segments.engine import Compiler
    from siyu.segments.expressions import Expression
    from siyu.segments.maintenance import load_snapshot, rebuild, save_snapshot
    from siyu.segments.parser import parse
    from siyu.segments.reference import condition_q
    from siyu.segments.windows import local_midnight, window_start_day

    log(f"generating {n:,} customers (seed {args.seed}) …")
    data = generate(n, args.seed)
    pairs = len(data["pair_tag"])
    log(f"{pairs:,} (customer, tag) pairs, {pairs / n:.1f} per customer")
    corp, tag_ids, staff = load(data, n, join_table=join_table)
    figures: list[Figure] = []

    with frozen_at(NOW):
        started = time.perf_counter()
        index = index_from_arrays(corp, data, n, tag_ids, staff)
        built_s = time.perf_counter() - started
        with connection.cursor() as cur:
            cur.execute("SELECT max(id) FROM customers_event")
            index.event_cursor = int(cur.fetchone()[0] or 0)
            cur.execute("SELECT max(id) FROM customers_customer")
            index.customer_cursor = int(cur.fetchone()[0] or 0)
        engine.install(corp, index)
        compiler = Compiler(corp, index)
        since = local_midnight(window_start_day(index.tz, 30), index.tz)
        params = {f"t{i}": tag_ids[i] for i in range(TAGS)} | {"since": f"'{since.isoformat()}'"}
        for name, (text, sql) in EXPRESSIONS.items():
            expression: Expression = parse(corp=corp, text=text)
            where = sql % params
            count_ms = time_runs(lambda e=expression: len(compiler.run(e.root)), runs=args.runs)
            ids_ms = time_runs(lambda e=expression: index.dense.to_pks(compiler.run(e.root)), runs=args.runs)
            got = len(compiler.run(expression.root))
            with connection.cursor() as cur:
                if not join_table:
                    where = where.replace("customers_event e", "bench_purchases e").replace(
                        " AND e.kind = 'purchased'", ""
                    )

                def sql_count(w: str = where) -> int:
                    with connection.cursor() as c:
                        c.execute(f"SELECT count(*) FROM bench_customer_tags b WHERE {w}")
                        return int(c.fetchone()[0])

                def sql_ids(w: str = where) -> BitMap:
                    with connection.cursor() as c:
                        c.execute(f"SELECT customer_id FROM bench_customer_tags b WHERE {w}")
                        return BitMap(r[0] for r in c.fetchall())

                expected = sql_count()
                gin = time_runs(sql_count, runs=args.sql_runs, warmup=1)
                gin_ids = time_runs(sql_ids, runs=args.sql_runs, warmup=1)
            log(f"{name}: {got:,} customers (int[] SQL says {expected:,}); {text}")
            if got != expected:
                raise SystemExit(f"{name}: the index counts {got}, SQL {expected}")
            figures.append(Figure(f"segment_count_{name}_{label}", count_ms.p50, "ms", gin.p50))
            figures.append(Figure(f"segment_ids_{name}_{label}", ids_ms.p50, "ms", gin_ids.p50))
            log(f"  p99 count {count_ms.p99:.2f} ms, ids {ids_ms.p99:.2f} ms")
            if join_table:
                q = condition_q(expression.root, corp, index.tz)
                join = time_runs(
                    lambda q=q: Customer.objects.for_corp(corp).filter(q).count(),
                    runs=args.sql_runs,
                    warmup=1,
                )
                figures.append(Figure(f"segment_count_join_{name}_{label}", count_ms.p50, "ms", join.p50))

        tag_bytes = sum(len(b.serialize()) for b in index.tags.values())
        figures.append(Figure(f"segment_index_bits_per_pair_{label}", tag_bytes * 8 / pairs, "bits", 16.0))
        log(f"index: {index.memory_bytes() / 2**20:.0f} MiB serialised; built from arrays in {built_s:.1f} s")

        started = time.perf_counter()
        save_snapshot(index)
        save_s = time.perf_counter() - started
        started = time.perf_counter()
        loaded = load_snapshot(corp)  # type: ignore[arg-type]
        reload_s = time.perf_counter() - started
        assert loaded is not None and loaded.universe == index.universe
        del loaded
        baseline_s = built_s
        if join_table:
            started = time.perf_counter()
            rebuilt = rebuild(corp)  # type: ignore[arg-type]
            baseline_s = time.perf_counter() - started
            assert rebuilt.tags == index.tags, "the rebuild from the tables differs from the arrays"
            del rebuilt
        log(f"saved in {save_s:.1f} s; rebuild baseline {baseline_s:.1f} s")
        figures.append(Figure(f"segment_reload_{label}", reload_s, "s", baseline_s))

        if join_table:
            figures.extend(_updates(corp, index, n, args.updates, tag_ids, label))
    log(f"peak memory {peak_rss_mib():.0f} MiB")
    print_figures(figures)


def _updates(corp, index, n: int, count: int, tag_ids: dict[int, int], label: str) -> list[Figure]:  # type: ignore[no-untyped-def]
    """Tag events appended to the tables (as a sync's bulk path does), applied by ``catch_up`` while a
    thread keeps counting (interleaved by the GIL; in a web process the two take turns under the corp's
    lock, a catch-up of a second's events taking milliseconds)."""
    from django.db import connection

    from siyu.segments.engine import Compiler
    from siyu.segments.maintenance import catch_up
    from siyu.segments.parser import parse
    from siyu.tags.models import Tag, TagGroup

    # Fresh tags, so every (customer, tag) pair is new.
    group = TagGroup.objects.create(corp=corp, name="增量")
    fresh = [Tag.objects.create(corp=corp, group=group, name=f"u{i}").pk for i in range(50)]
    rng = np.random.default_rng(99)
    customers = rng.choice(n, size=min(count, n), replace=False) + 1
    tags = rng.integers(0, len(fresh), size=len(customers))
    stamp = NOW.isoformat()
    with connection.connection.cursor() as cur:
        _copy(
            cur,
            "COPY tags_customertag (corp_id, customer_id, tag_id) FROM STDIN",
            (f"{corp.pk}\t{c}\t{fresh[t]}\n" for c, t in zip(customers.tolist(), tags.tolist(), strict=True)),
        )
        _copy(
            cur,
            "COPY customers_event (corp_id, customer_id, kind, occurred_at, source, payload, dedupe_key, "
            "recorded_at) FROM STDIN",
            (
                f"{corp.pk}\t{c}\ttagged\t{stamp}\tsync\t{{}}\tu:{k}\t{stamp}\n"
                for k, c in enumerate(customers.tolist())
            ),
        )
    connection.connection.commit()
    expression = parse(corp=corp, text="(tag:t9 OR tag:t29) AND NOT tag:t2")
    stop = threading.Event()
    samples: list[float] = []

    def query() -> None:
        compiler = Compiler(corp, index)
        while not stop.is_set():
            started = time.perf_counter()
            len(compiler.run(expression.root))
            samples.append((time.perf_counter() - started) * 1000)
            time.sleep(0.001)

    thread = threading.Thread(target=query)
    thread.start()
    before = index.updates
    started = time.perf_counter()
    stats = catch_up(index)
    elapsed = time.perf_counter() - started
    stop.set()
    thread.join()
    updates = index.updates - before
    log(
        f"tail: {stats.events:,} events, {stats.refreshed:,} customers re-read, {updates:,} bitmap updates "
        f"in {elapsed:.2f} s; {len(samples)} counts meanwhile"
    )
    p50 = float(np.median(samples)) if samples else 0.0
    return [
        Figure(
            f"segment_updates_per_s_{label}", updates / elapsed, "updates/s", 100_000, higher_is_better=True
        ),
        Figure(
            f"segment_tag_events_per_s_{label}",
            stats.events / elapsed,
            "events/s",
            10_000,
            higher_is_better=True,
        ),
        Figure(f"segment_count_during_updates_{label}", p50, "ms", 2.0),
    ]


if __name__ == "__main__":
    main()
