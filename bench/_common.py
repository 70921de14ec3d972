"""Shared plumbing of the benchmarks: the database, Django, timing and the summary lines.

Every figure is one summary line ``name value unit baseline ratio`` (whitespace-separated), the baseline
measured in the same run on the same data; the ratio is baseline ÷ value for times (how many times faster) and
value ÷ baseline for rates.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = "postgres://postgres@127.0.0.1/postgres"


def log(message: str) -> None:
    """Progress for the person watching (stderr, so stdout stays summary lines only)."""
    print(message, file=sys.stderr, flush=True)


@dataclass
class Figure:
    """One summary line."""

    name: str
    value: float
    unit: str
    baseline: float
    higher_is_better: bool = False

    @property
    def ratio(self) -> float:
        if self.higher_is_better:
            return self.value / self.baseline if self.baseline else 0.0
        return self.baseline / self.value if self.value else 0.0

    def line(self) -> str:
        return f"{self.name}  {_num(self.value)}  {self.unit}  {_num(self.baseline)}  {_num(self.ratio)}"


def _num(x: float) -> str:
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def print_figures(figures: list[Figure]) -> None:
    for figure in figures:
        print(figure.line(), flush=True)


def _pg_cluster_running() -> bool:
    import psycopg

    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def ensure_postgres() -> None:
    """Start the machine's PostgreSQL cluster if it is not answering."""
    if _pg_cluster_running():
        return
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not versions:
        raise SystemExit("PostgreSQL is not running and no cluster is installed under /etc/postgresql")
    log(f"starting PostgreSQL {versions[-1]} …")
    subprocess.run(  # noqa: S603 - fixed command line
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"],  # noqa: S607
        check=True,
    )
    for _ in range(30):
        if _pg_cluster_running():
            return
        time.sleep(1)
    raise SystemExit("PostgreSQL did not start")


def postgres_database(name: str, *, fresh: bool) -> str:
    """The URL of database ``name`` on the local cluster, created (or re-created when ``fresh``)."""
    import psycopg
    from psycopg import sql

    ensure_postgres()
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and fresh:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
            exists = None
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return f"postgres://postgres@127.0.0.1/{name}"


def setup_django(database_url: str) -> None:
    """Point Django at ``database_url``, set it up and migrate."""
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "siyu.config.settings")
    os.environ.setdefault("SIYU_DATA_DIR", str(ROOT / "var" / "bench"))
    os.environ["DEBUG"] = "0"  # no query log: it would grow with every timed run
    sys.path.insert(0, str(ROOT / "src"))
    import django

    django.setup()
    from django.core.management import call_command

    Path(os.environ["SIYU_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
    call_command("migrate", interactive=False, verbosity=0)


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class Timing:
    samples_ms: list[float]
    cpu_ms: float | None = None  # CPU per run (this process and the database backend), when measured

    @property
    def p50(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def p99(self) -> float:
        ordered = sorted(self.samples_ms)
        return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def time_runs(
    fn: Callable[[], object], *, runs: int, warmup: int = 3, cpu: Callable[[], float] | None = None
) -> Timing:
    """Run ``fn`` ``warmup`` times untimed, then ``runs`` times timed (milliseconds).

    ``cpu`` (seconds of CPU used so far, e.g. ``django_cpu_seconds``) adds the mean CPU per run: on a shared,
    busy machine wall-clock times swing with the neighbours' load, CPU time much less.
    """
    for _ in range(warmup):
        fn()
    samples = []
    cpu_before = cpu() if cpu else 0.0
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    cpu_ms = (cpu() - cpu_before) * 1000 / runs if cpu else None
    return Timing(samples, cpu_ms)


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process on this machine, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def django_cpu_seconds() -> Callable[[], float]:
    """CPU of this process plus its PostgreSQL backend (a local server), for ``time_runs(cpu=…)``."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = int(cursor.fetchone()[0])
    return lambda: time.process_time() + process_cpu_seconds(backend)


def size_label(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def bench_corpid(customers: int, seed_value: int) -> str:
    return f"wwbench{customers}s{seed_value}"


def ensure_seeded(customers: int, seed_value: int) -> object:
    """The benchmark corp with ``customers`` seeded customers, re-used when an earlier run left it."""
    from django.db import connection

    from siyu.corps.models import Corp
    from siyu.corps.seed import seed
    from siyu.customers.models import Customer

    corpid = bench_corpid(customers, seed_value)
    corp = Corp.objects.filter(corpid=corpid).first()
    if corp is not None and Customer.objects.for_corp(corp).count() == customers:
        log(f"re-using {corpid} ({customers:,} customers)")
        return corp
    if corp is not None:  # an interrupted SQLite seed; PostgreSQL seeds are all or nothing
        raise SystemExit(f"{corpid} exists with the wrong number of customers; drop the benchmark database")
    log(f"seeding {customers:,} customers into {corpid} …")
    report = seed(
        customers=customers, seed_value=seed_value, corpid=corpid, name="基准测试企业", progress=True
    )
    log(report.summary())
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # fresh statistics, as autovacuum would give a long-lived database
    return report.corp
