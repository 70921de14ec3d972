"""Benchmark: welcome messages (P12) — time from the add's callback reaching Siyu to WeCom accepting its
``send_welcome_msg``, while a full sync runs, against the same burst without the sync.

    .venv/bin/python bench/welcome.py [--adds 5000] [--rate 25] [--customers 20000] [--staff 100]
                                      [--workers 2] [--seed 1]

Everything runs as in production, each in its own process: the WeCom simulator (``siyu simulator``, generated
from the seed, posting encrypted callbacks), the web server receiving them (``siyu serve``) and ``--workers``
background workers (``siyu worker``: they drain the inbox, send the outbox, run the sync), on a fresh
PostgreSQL database ``siyu_bench_welcome`` (DATABASE_URL overrides it). The corp's staff are synced first; one
channel lists ``--members`` of them, with a default welcome message.

Two bursts of ``--adds`` scans of the channel's QR code, paced at ``--rate`` adds a second (0: all at once):
first alone (the baseline), then while a full sync of the corp's ``--customers`` customers runs. For every
add, Siyu records when its callback was stored and when WeCom accepted its welcome (``ChannelAdd``). Figures:

- ``welcome_p50_during_sync`` / ``welcome_p99_during_sync``: milliseconds, against the burst without a sync;
- ``welcome_expired_during_sync``: adds whose code expired (or that were otherwise not welcomed), against the
  same count without a sync (target 0);
- ``welcome_adds_per_s_during_sync``: adds worked per second (higher is better), against the baseline burst.

Target (PERFORMANCE.md P12): p99 ≤ 2 s during a full sync, 0 expired codes. The pace matters: a worker turns
an add into its welcome in tens of milliseconds, so a burst far faster than the workers' rate queues up, and
codes queued longer than 20 s expire whatever the priority (the welcome goes out first among the add's work,
but an add waits for the adds before it). The lines say the rate they were measured at.

Measured on the shared 2-core machine (load average 4–6 from other work, PostgreSQL, 3 workers, a
20,000-customer full sync covering the whole burst): 500 adds at 4 a second, p50 0.78 s and p99 3.2 s during
the sync against 0.50 s and 1.6 s without it, one add not welcomed; at 8 a second the workers (~6–8 adds a
second end to end, about 65 queries an add, half of them the add's own mirroring) fall behind and codes
expire.

Since then the add path is shorter (57 statements an add besides transaction control, 60 with the
analytics rollup marks that came after, pinned by tests/channels/test_add_queries.py; the mirroring is one
transaction, so one commit before the welcome instead of three), workers claim two inbox rows at a time
instead of ten and poll their queue every 0.2 s, and a sync pauses after each batch while adds of its corp
are waiting (``SYNC_YIELD_SECONDS``). Measured with 500 adds at 8 a second while the machine ran other
sessions' browser tests and benchmarks (load average
7–11, two to three times what the figures above saw): before these changes 2.2 adds a second without the
sync and 1.4 during it, nearly every code expired (p99 17–18 s); after them 1.7 and 1.0, the same — on that
machine the workers got too little CPU for either version to keep up with 8 adds a second, so the run says
nothing about the gain. The target stays unmet and unmeasured on a quiet machine; what is left: the gateway's
five statements and two commits per WeCom call (two calls an add), and the add's automation (remark, tags,
rotation; about half the statements) running in the worker that is to welcome the next add.

Since then, in a burst an add's remark and tags wait until the adds queued behind it are worked
(``inbox.after_waiting_adds``), and the gateway's limiter costs ~1.6 ms of client CPU a call instead of ~4.
Measured on a quieter machine (load average 1–4), 500 adds at 8 a second: p50 0.35 s and p99 2.6 s without
the sync, p50 0.51 s and p99 3.1 s during it, every add welcomed. A later run with the faster sync (load
0.5–1.6): p50 0.81 s / p99 2.9 s without it, p50 3.0 s / p99 5.2 s during it, and 3 adds not welcomed: the
sync had read their relations from WeCom before their callbacks were worked, and the handler stopped at
"relation already recorded" — since fixed (the callback takes over the add the sync recorded, welcome
included). With that fix, on a quiet machine (load 0.6–1.7): 500 adds at 8 a second, p50 0.28 s and p99
0.95 s without the sync, p50 0.28 s and p99 1.09 s during it, every add welcomed — P12 met at that pace; 1,000
adds at 16 a second, p50 0.21 s / p99 0.66 s without it, p50 0.56 s / p99 2.6 s during it, every add
welcomed — not met. The default burst, 5,000 at 25 a second (load 1.5–3.2), overwhelms the workers even
without a sync: 1,377 of 5,000 adds recorded within the wait, 4,805 not welcomed, 3.6 adds a second — far
below the 16 a second they kept up with, so throughput collapses under overload rather than levelling off
(suspects: the remark and tags put off during the burst all run when a drain's 60 s budget ends, while new
adds wait; codes expiring in the queue), and the run ended with "no worker took the sync within a minute".

Since then, while adds wait or are being worked, everything that can wait gives way (see
docs/architecture.md): remark and tags go to a low-priority task that runs once no add waits, outbox passes
send only welcomes, the sync pauses up to 10 s a batch while adds wait unclaimed, the analytics rollup and
segment upkeep skip their turn; inbox claims skip rows another worker is claiming (a drain that lost a race
ended with nothing and its worker idled); PostgreSQL connections are kept (the workers reconnected after
every poll and task); and the beat vacuums the queue-like tables (autovacuum is off on this machine's
PostgreSQL: a two-minute burst left 5,600 dead limiter tickets that every WeCom call's limiter check read).
The bench runs the production settings. Measured on a quiet machine (load 0.5 → 4), the default burst,
5,000 adds at 25 a second: p50 0.36 s and p99 1.2 s without the sync, p50 0.35 s and p99 1.36 s during it,
24.9 adds a second, every add welcomed — P12 met. A second run: p99 1.87 s without the sync and 1.06 s
during it, every add welcomed; the remark and tags of the 10,050 adds (this channel has a welcome only, so
its automation is the tagging rules' pass) were all done 81 s after the last burst. The same default run of
the code before these changes, on the same machine just after: p99 19.1 s without the sync (985 adds not
welcomed) and 19.7 s during it (2,544 not welcomed). The remark and tags of the bursts' adds wait until the
bursts end; ``welcome_automation_caught_up_after`` says how long they took after the last one.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, Figure, log, postgres_database, print_figures, setup_django

DATABASE = "siyu_bench_welcome"
# The server and the workers must derive the same key to read the corp's encrypted secrets.
SECRET_KEY = "siyu-bench-welcome-secret-key-not-for-production-0123456789"  # noqa: S105
TARGET_P99_MS = 2000.0  # P12 (PERFORMANCE.md)
SETTLE_TIMEOUT = 180.0  # seconds to wait for a burst's adds to be recorded and their welcomes settled
CATCH_UP_TIMEOUT = 900.0  # seconds to wait, after the bursts, for every add's remark and tags
PYTHON = sys.executable
# Adds sent before the measured bursts, so that tokens, connections and the workers' first tasks are in place.
WARMUP = 50


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Processes:
    """The simulator, the web server and the workers, stopped together."""

    def __init__(self) -> None:
        self.children: list[subprocess.Popen[bytes]] = []
        self.logs = ROOT / "var" / "bench" / "welcome-logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        out = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        child = subprocess.Popen(  # noqa: S603 - our own command line
            [PYTHON, "-m", "siyu.config.cli", *args], env=env, stdout=out, stderr=subprocess.STDOUT
        )
        self.children.append(child)
        return child

    def stop(self) -> None:
        for child in self.children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in self.children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def _wait_http(url: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2.0, trust_env=False).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} did not answer within {timeout:.0f} s")


def _sim(sim_url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    response = httpx.post(f"{sim_url}/_sim/{path}", json=body or {}, timeout=120.0, trust_env=False)
    response.raise_for_status()
    return response.json()


def _burst(sim_url: str, config_id: str, adds: int, rate: float) -> float:
    """Scan the channel ``adds`` times at ``rate`` a second (0: at once); returns the seconds it took."""
    started = time.monotonic()
    if rate <= 0:
        _sim(sim_url, "actions/burst_adds", {"count": adds, "config_id": config_id})
        return time.monotonic() - started
    tick = 0.2  # scans are sent in small batches five times a second
    done = 0
    while done < adds:
        due = min(adds, int((time.monotonic() - started) * rate) + 1)
        if due > done:
            _sim(sim_url, "actions/burst_adds", {"count": due - done, "config_id": config_id})
            done = due
        time.sleep(tick)
    return time.monotonic() - started


def _settle(corp: Any, since_id: int, adds: int) -> list[Any]:
    """Wait until the burst's adds are recorded and none is still queued; returns them."""
    from siyu.channels.models import ChannelAdd

    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        rows = ChannelAdd.objects.for_corp(corp).filter(pk__gt=since_id, source="callback")
        recorded = rows.count()
        queued = rows.filter(welcome_status=ChannelAdd.Welcome.QUEUED).count()
        if recorded >= adds and not queued:
            return list(rows)
        if time.monotonic() > deadline:
            log(f"  gave up waiting: {recorded}/{adds} adds recorded, {queued} welcomes still queued")
            return list(rows)
        time.sleep(0.5)


def _catch_up(corp: Any, since_id: int) -> tuple[float, int]:
    """Wait until every add since ``since_id`` has its remark and tags (put off during the bursts); returns
    the seconds it took and how many were still waiting when the wait gave up."""
    from siyu.channels.models import ChannelAdd

    started = time.monotonic()
    rows = ChannelAdd.objects.for_corp(corp).filter(pk__gt=since_id, source="callback")
    while True:
        waiting = rows.filter(automated_at=None).count()
        if not waiting or time.monotonic() - started > CATCH_UP_TIMEOUT:
            return time.monotonic() - started, waiting
        time.sleep(1.0)


def _stats(rows: list[Any], adds: int, seconds: float) -> dict[str, float]:
    from siyu.channels.models import ChannelAdd

    latencies = sorted(
        (r.welcome_sent_at - r.received_at).total_seconds() * 1000
        for r in rows
        if r.welcome_status == ChannelAdd.Welcome.SENT and r.received_at and r.welcome_sent_at
    )
    if not latencies:
        latencies = [float("nan")]
    p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    not_welcomed = adds - sum(1 for r in rows if r.welcome_status == ChannelAdd.Welcome.SENT)
    first = min((r.received_at for r in rows if r.received_at), default=None)
    last = max((r.recorded_at for r in rows), default=None)
    span = (last - first).total_seconds() if first and last else seconds
    return {
        "p50": statistics.median(latencies),
        "p99": p99,
        "not_welcomed": float(not_welcomed),
        "per_s": len(rows) / max(span, 0.001),
    }


def run(args: argparse.Namespace) -> list[Figure]:
    url = os.environ.get("DATABASE_URL") or postgres_database(DATABASE, fresh=True)
    os.environ["SECRET_KEY"] = SECRET_KEY
    sim_port, web_port = _free_port(), _free_port()
    sim_url, web_url = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{web_port}"
    os.environ["WECOM_API_BASE"] = f"{sim_url}/cgi-bin/"
    setup_django(url)

    from siyu.channels.models import Channel, ChannelAdd
    from siyu.channels.services import ChannelInput, MemberInput, VariantInput, create_channel
    from siyu.channels.services import save_welcome_message as save_welcome
    from siyu.corps.access import Actor
    from siyu.corps.models import Role, Staff
    from siyu.corps.services import create_corp
    from siyu.simulator.config import SimulatorConfig
    from siyu.wecom.models import SyncRun
    from siyu.wecom.outbox import send_due
    from siyu.wecom.sync import run_sync, start_sync

    defaults = SimulatorConfig()
    corpid = f"wwbenchwelcome{args.seed}"
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "SECRET_KEY": SECRET_KEY,
        "WECOM_API_BASE": f"{sim_url}/cgi-bin/",
        "SIYU_ENV": "production",  # as deployed: persistent database connections, no debug
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SIYU_TASK_BACKEND": "db",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    env.pop("REDIS_URL", None)
    processes = Processes()
    try:
        processes.start(
            "simulator",
            [
                "simulator", "--host", "127.0.0.1", "--port", str(sim_port), "--corpid", corpid,
                "--customers", str(args.customers), "--staff", str(args.staff), "--seed", str(args.seed),
                "--traffic", "0", "--callback-url", f"{web_url}/wecom/callback/{corpid}/",
            ],
            env,
        )  # fmt: skip
        processes.start(
            "web", ["serve", "--host", "127.0.0.1", "--port", str(web_port), "--workers", "1"], env
        )
        _wait_http(f"{sim_url}/_sim/state")
        _wait_http(f"{web_url}/healthz")
        corp = create_corp(
            name="欢迎语基准企业",
            corpid=corpid,
            secret=defaults.secret,
            token=defaults.token,
            aes_key=defaults.aes_key,
        )
        log("syncing the org chart (members) …")
        first = start_sync(corp=corp, kind="full", enqueue=False)
        started = time.monotonic()
        run_sync(first.pk, max_seconds=600)
        log(f"  first full sync: {time.monotonic() - started:.1f} s")
        # Members WeCom lets take customers (Siyu's staff table does not know who has that permission).
        contact = [
            m["userid"]
            for m in httpx.get(f"{sim_url}/_sim/staff", trust_env=False).json()
            if m["customer_contact"] and m["status"] == 1
        ]
        members = list(
            Staff.objects.for_corp(corp)
            .filter(status=Staff.Status.ACTIVE, userid__in=contact)
            .order_by("id")[: args.members]
        )
        actor = Actor(corp=corp, role=Role.ADMIN)
        channel = create_channel(
            actor=actor,
            data=ChannelInput(name="直播间", members=[MemberInput(staff_id=s.pk) for s in members]),
        )
        save_welcome(
            actor=actor, channel=None, variants=[VariantInput(text="您好{customer_name}，我是{staff_name}")]
        )
        send_due()
        channel.refresh_from_db()
        if not channel.config_id:
            raise SystemExit(f"the channel's contact way was not created: {channel.push_error}")
        for n in range(args.workers):
            processes.start(f"worker{n}", ["worker"], env)
        time.sleep(3)  # the workers start their loops

        log(f"warming up: {WARMUP} adds, not measured …")
        since = ChannelAdd.objects.for_corp(corp).order_by("-pk").values_list("pk", flat=True).first() or 0
        _burst(sim_url, channel.config_id, WARMUP, args.rate)
        _settle(corp, since, WARMUP)
        figures: dict[str, dict[str, float]] = {}
        first_measured = (
            ChannelAdd.objects.for_corp(corp).order_by("-pk").values_list("pk", flat=True).first() or 0
        )
        for label in ("baseline", "during_sync"):
            since = (
                ChannelAdd.objects.for_corp(corp).order_by("-pk").values_list("pk", flat=True).first() or 0
            )
            run = None
            if label == "during_sync":
                run = start_sync(corp=corp, kind="full")  # a worker runs it
                deadline = time.monotonic() + 60
                while SyncRun.objects.get(pk=run.pk).status == SyncRun.Status.PENDING:
                    if time.monotonic() > deadline:
                        raise SystemExit("no worker took the sync within a minute")
                    time.sleep(0.2)
            log(f"{label}: {args.adds:,} adds at {args.rate or 'all at once'} a second …")
            burst_start = time.monotonic()
            seconds = _burst(sim_url, channel.config_id, args.adds, args.rate)
            burst_end = time.monotonic()
            rows = _settle(corp, since, args.adds)
            figures[label] = _stats(rows, args.adds, seconds)
            overlap = ""
            if run is not None:
                while SyncRun.objects.get(pk=run.pk).status in (
                    SyncRun.Status.PENDING,
                    SyncRun.Status.RUNNING,
                ):
                    time.sleep(0.5)  # its end tells how much of the burst it covered
                sync_end = time.monotonic()
                covered = max(0.0, min(sync_end, burst_end) - burst_start) / max(
                    burst_end - burst_start, 0.001
                )
                status = SyncRun.objects.get(pk=run.pk).status
                overlap = f"; the sync ({status}) ran through {covered:.0%} of the burst"
            log(
                f"  p50 {figures[label]['p50']:.0f} ms, p99 {figures[label]['p99']:.0f} ms, "
                f"not welcomed {figures[label]['not_welcomed']:.0f}, {figures[label]['per_s']:.1f} adds/s"
                + overlap
            )
        # The remark and tags that gave way to the welcomes during the bursts: all applied once they end.
        caught_up, left = _catch_up(corp, first_measured)
        log(f"remark and tags of both bursts' adds: {left} left {caught_up:.0f} s after the last burst")
        assert Channel.objects.filter(pk=channel.pk).exists()
    finally:
        processes.stop()
    base, sync = figures["baseline"], figures["during_sync"]
    rate = f"{args.rate:g}" if args.rate else "burst"
    return [
        Figure(f"welcome_p50_during_sync_{rate}per_s", sync["p50"], "ms", base["p50"]),
        Figure(f"welcome_p99_during_sync_{rate}per_s", sync["p99"], "ms", base["p99"]),
        Figure(
            f"welcome_not_welcomed_during_sync_{rate}per_s",
            sync["not_welcomed"],
            "adds",
            base["not_welcomed"],
        ),
        Figure(
            "welcome_adds_per_s_during_sync", sync["per_s"], "adds/s", base["per_s"], higher_is_better=True
        ),
        # Against the time the two bursts took: how long the put-off remark and tags needed after them.
        Figure(
            "welcome_automation_caught_up_after", caught_up, "s", 2 * args.adds / (args.rate or args.adds)
        ),
        Figure("welcome_automation_left_after_wait", float(left), "adds", 0.0),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--adds", type=int, default=5000, help="scans per burst")
    parser.add_argument(
        "--rate", type=float, default=25.0, help="scans a second (0: the whole burst at once)"
    )
    parser.add_argument("--customers", type=int, default=20000, help="customers of the corp the sync reads")
    parser.add_argument("--staff", type=int, default=100, help="members of the simulated corp")
    parser.add_argument("--members", type=int, default=10, help="members of the channel")
    parser.add_argument(
        "--workers", type=int, default=3, help="siyu worker processes (one is busy with the sync)"
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    figures = run(args)
    print_figures(figures)
    p99 = figures[1].value
    log(
        f"P12 target: p99 ≤ {TARGET_P99_MS:.0f} ms and 0 expired during a sync — "
        + ("met" if p99 <= TARGET_P99_MS and figures[2].value == 0 else "NOT met")
    )


if __name__ == "__main__":
    main()
