"""Benchmark: ``siyu seed`` — rows/s and peak memory, against Django ``bulk_create`` of the same rows.

    .venv/bin/python bench/seed.py --customers 100000 [--seed 1] [--baseline-customers 5000]

Uses DATABASE_URL when set; otherwise a fresh PostgreSQL database ``siyu_bench_seed`` (re-created each run).
Each measurement runs in its own process so its peak memory is its own. The baseline writes the same generated
rows (customers, relations, relation and customer tags, events) as model instances with ``bulk_create``, on a
smaller sample, first, so it does not pay for the larger tables the main run leaves behind. The seed path is
measured as ``siyu seed`` runs it, with whatever it does on this database (on a fresh PostgreSQL one: indexes
rebuilt at the end, and no per-row foreign-key triggers for a superuser).

Figures: rows/s and customers/s (ratio: how many times faster), the time for all customers (the baseline's
extrapolated from its sample), and peak memory (the baseline's is its own peak, on its smaller sample).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Figure, log, peak_rss_mib, postgres_database, print_figures, setup_django, size_label


def _child(mode: str, customers: int, seed_value: int, corpid: str) -> None:
    setup_django(os.environ["DATABASE_URL"])
    from siyu.corps.seed import OrmWriter, seed

    writer = OrmWriter() if mode == "orm" else None
    report = seed(
        customers=customers, seed_value=seed_value, corpid=corpid, progress=mode == "fast", writer=writer
    )
    log(report.summary())
    print(
        json.dumps(
            {
                "seconds": report.seconds,
                "rows": report.rows,
                "customers": report.customers,
                "rss": peak_rss_mib(),
            }
        )
    )


def _run_child(
    mode: str, customers: int, seed_value: int, corpid: str, database_url: str
) -> dict[str, float]:
    env = dict(os.environ, DATABASE_URL=database_url)
    command = [sys.executable, __file__, "--child", mode, "--customers", str(customers)]
    command += ["--seed", str(seed_value), "--corpid", corpid]
    done = subprocess.run(command, env=env, check=True, stdout=subprocess.PIPE, text=True)  # noqa: S603
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run(customers: int, seed_value: int, baseline_customers: int) -> list[Figure]:
    database_url = os.environ.get("DATABASE_URL") or postgres_database("siyu_bench_seed", fresh=True)
    setup_django(database_url)  # migrate once, here, so no child pays for it
    from django.db import connection

    vendor = connection.vendor
    stamp = int(time.time())
    log(f"baseline: bulk_create of {baseline_customers:,} customers' rows on {vendor} …")
    orm = _run_child("orm", baseline_customers, seed_value, f"wwbenchorm{stamp}", database_url)
    log(f"seed path: {customers:,} customers on {vendor} …")
    fast = _run_child("fast", customers, seed_value, f"wwbenchseed{stamp}", database_url)
    label = size_label(customers)
    suffix = "" if vendor == "postgresql" else f"_{vendor}"
    return [
        Figure(
            f"seed_rows_per_s_{label}{suffix}",
            fast["rows"] / fast["seconds"],
            "rows/s",
            orm["rows"] / orm["seconds"],
            higher_is_better=True,
        ),
        Figure(
            f"seed_customers_per_s_{label}{suffix}",
            fast["customers"] / fast["seconds"],
            "customers/s",
            orm["customers"] / orm["seconds"],
            higher_is_better=True,
        ),
        Figure(
            f"seed_time_{label}{suffix}", fast["seconds"], "s", orm["seconds"] * customers / orm["customers"]
        ),
        Figure(f"seed_peak_rss_{label}{suffix}", fast["rss"], "MiB", orm["rss"]),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--baseline-customers",
        type=int,
        default=0,
        help="sample for bulk_create (default: 5%%, 2,000–10,000)",
    )
    parser.add_argument("--child", choices=["fast", "orm"], help=argparse.SUPPRESS)
    parser.add_argument("--corpid", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.customers, args.seed, args.corpid)
        return
    baseline = args.baseline_customers or min(10_000, max(2_000, args.customers // 20))
    print_figures(run(args.customers, args.seed, baseline))


if __name__ == "__main__":
    main()
