"""Every benchmark at its default size (what ``make bench`` runs); the summary lines are repeated at the end.

    .venv/bin/python bench/run_all.py [--quick]

Default: the seed at 100,000 customers and the customer list at 1,000,000 (its corp is seeded on the first
run, ~10 minutes on 2 cores, and re-used after). ``--quick``: 20,000 and 100,000, for a check in a couple of
minutes. PostgreSQL is started if it is not running; the benchmarks create their own databases.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (script, arguments at the default size, arguments with --quick). A new benchmark adds its line here.
BENCHMARKS: list[tuple[str, list[str], list[str]]] = [
    ("seed.py", ["--customers", "100000"], ["--customers", "20000"]),
    ("customer_list.py", ["--customers", "1000000"], ["--customers", "100000"]),
    ("callbacks.py", ["--count", "20000"], ["--count", "3000", "--rounds", "2", "--wsgi-count", "1000"]),
    ("segments.py", ["--customers", "1000000"], ["--customers", "100000"]),
    ("sync.py", ["--customers", "100000"], ["--quick"]),
    ("welcome.py", ["--adds", "5000"], ["--adds", "300", "--customers", "5000"]),
    ("analytics.py", ["--adds", "500000"], ["--adds", "50000", "--runs", "5"]),
    (
        "broadcast.py",
        ["--customers", "1000000"],
        ["--customers", "100000", "--runs", "3", "--baseline-runs", "2"],
    ),
]


def run(script: str, *args: str) -> list[str]:
    """Run one benchmark; its progress goes to stderr as it happens, its summary lines are returned."""
    print(f"== {script} {' '.join(args)}", file=sys.stderr, flush=True)
    started = time.monotonic()
    done = subprocess.run(  # noqa: S603 - our own scripts
        [sys.executable, str(HERE / script), *args], check=False, stdout=subprocess.PIPE, text=True
    )
    print(f"   ({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0:
        lines.append(f"# {script} failed with exit code {done.returncode}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes: a check in a couple of minutes")
    args = parser.parse_args()
    lines: list[str] = []
    for script, default_args, quick_args in BENCHMARKS:
        lines += run(script, *(quick_args if args.quick else default_args))
    print("\n# name  value  unit  baseline  ratio")
    for line in lines:
        print(line)
    return 1 if any(line.startswith("#") and "failed" in line for line in lines) else 0


if __name__ == "__main__":
    sys.exit(main())
