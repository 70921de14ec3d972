"""Benchmark: the WeCom callback receiver (target P1) — durable acknowledgements per second and their latency.

    .venv/bin/python bench/callbacks.py [--count 20000] [--concurrency 64] [--receiver-workers CORES]
                                        [--wsgi-count 5000] [--workers 2] [--threads N] [--rounds 4]
                                        [--duplicates 0.05] [--seed 1] [--max-seconds 60] [--client raw]

Real server processes with the production settings on a fresh PostgreSQL database ``siyu_bench_callbacks``
(DATABASE_URL overrides it, e.g. a SQLite file for the embedded figure), and a corp with a callback Token and
EncodingAESKey: first ``siyu receiver`` (the asynchronous receiver production routes callbacks to), then
``siyu serve`` (gunicorn, whose Django view answers callbacks in the embedded mode). ``--count`` distinct
callbacks (customer-contact and tag events, as WeCom sends them) are encrypted and signed beforehand with
``siyu.wecom.crypto``, plus ``--duplicates`` of them delivered again, freshly encrypted as WeCom's
redeliveries are: half right after the first delivery (so both are in flight together), half later. A load
generator in a separate process fires them over loopback keep-alive connections, ``--concurrency`` requests
in flight, and times every request.

The baseline is the same server's ``/healthz`` (an empty 200 that touches no database), under the same load
generator, with the same number of requests and the same concurrency, measured in the same run: what the HTTP
stack alone costs on this machine right now. ``--rounds`` alternate the two (health checks, then callbacks,
and again), so that both meet the same neighbours on a shared machine. Figures:

- ``callbacks_acks_per_s``: acknowledged (200) callbacks per second, against health checks per second;
- ``callbacks_p50`` / ``callbacks_p99``: latency of one callback, against one health check (ms);
- ``callbacks_cpu_per_ack``: CPU time of the server's processes and of PostgreSQL's backends per request (µs),
  against the same per health check: less noisy than rates on a shared machine;
- ``callbacks_stored_exactly_once``: acknowledged distinct callbacks found in the inbox exactly once, against
  the number of distinct callbacks acknowledged (anything but a ratio of 1 is a bug);
- ``callbacks_*_vs_wsgi``: the receiver's rate, p99 and CPU per acknowledgement against ``--wsgi-count``
  other distinct callbacks through ``siyu serve`` in the same run (the second baseline; 0 skips it).

The log (stderr) splits the CPU per request into server, PostgreSQL and load generator, gives the batch sizes
of the group commits and the load average before and after each front's rounds (other work on the machine
takes CPU from all three, and shows in rates and latencies first).

The load generator (``--client raw``) writes pre-built HTTP/1.1 requests on keep-alive connections with
asyncio and reads the answers: ~0.03–0.1 ms of CPU a request here, where httpx's async client took 6–8 ms,
and it shares the 2 cores with the server, so a heavier client would mostly measure itself. ``--client httpx``
is there to compare.

Measured (2 receiver processes, quiet machine, the receiver's code unchanged since): 2,517 acks/s, p99
48.8 ms, against 8,513 health checks a second; on a later machine, load 0.5 → 2.5: 7,639 acks/s, p50 7.7 ms,
p99 19.4 ms, 200 µs of CPU an acknowledgement, against 31,595 health checks a second — the target met, by a
machine whose baseline was 3.7 times faster: the ratio to the baseline fell from 0.30 to 0.24.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pickle
import random
import signal
import socket
import string
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, Figure, Timing, log, postgres_database, print_figures, setup_django

DATABASE = "siyu_bench_callbacks"
CORPID = "wwbenchcallbacks"
# The server and this process must derive the same key for the corp's encrypted Token and EncodingAESKey.
SECRET_KEY = "siyu-bench-callbacks-secret-key-not-for-production-0123456789"  # noqa: S105
TARGET_ACKS_PER_S = 3000.0  # P1 (PERFORMANCE.md)
TARGET_P99_MS = 50.0  # P1
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- the callbacks ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes
    plaintext: bytes  # empty for the baseline's health checks


def _event_xml(rng: random.Random, n: int, seed_value: int) -> bytes:
    """One distinct decrypted event, shaped like WeCom's (wecom-api.md §3): mostly new customers."""
    create_time = 1_700_000_000 + n // 10
    userid = f"staff{rng.randrange(200):03d}"
    external = f"wmBench{seed_value}x{n:07d}"
    head = (
        "<xml><ToUserName><![CDATA[wwbenchcallbacks]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>"
        f"<CreateTime>{create_time}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
    )
    kind = rng.random()
    if kind < 0.8:
        body = (
            "<Event><![CDATA[change_external_contact]]></Event>"
            "<ChangeType><![CDATA[add_external_contact]]></ChangeType>"
            f"<UserID><![CDATA[{userid}]]></UserID><ExternalUserID><![CDATA[{external}]]></ExternalUserID>"
            f"<State><![CDATA[channel{rng.randrange(20)}]]></State>"
            f"<WelcomeCode><![CDATA[{''.join(rng.choices(string.ascii_letters, k=43))}]]></WelcomeCode>"
        )
    elif kind < 0.9:
        body = (
            "<Event><![CDATA[change_external_contact]]></Event>"
            "<ChangeType><![CDATA[edit_external_contact]]></ChangeType>"
            f"<UserID><![CDATA[{userid}]]></UserID><ExternalUserID><![CDATA[{external}]]></ExternalUserID>"
        )
    elif kind < 0.95:
        body = (
            "<Event><![CDATA[change_external_contact]]></Event>"
            "<ChangeType><![CDATA[del_follow_user]]></ChangeType>"
            f"<UserID><![CDATA[{userid}]]></UserID><ExternalUserID><![CDATA[{external}]]></ExternalUserID>"
        )
    else:
        body = (
            "<Event><![CDATA[change_external_tag]]></Event>"
            f"<Id><![CDATA[etBench{n:07d}]]></Id><TagType><![CDATA[tag]]></TagType>"
            "<ChangeType><![CDATA[update]]></ChangeType>"
        )
    return (head + body + "</xml>").encode()


def build_callbacks(
    crypto: object, *, count: int, duplicates: float, seed_value: int, first: int = 0
) -> list[Request]:
    """``count`` distinct signed callbacks numbered from ``first``, plus redeliveries of some of them."""
    from siyu.wecom.crypto import CallbackCrypto

    assert isinstance(crypto, CallbackCrypto)
    rng = random.Random(seed_value * 1_000_003 + first)

    def deliver(plaintext: bytes, nonce: int) -> Request:
        encrypt = crypto.encrypt(plaintext, random_prefix=rng.randbytes(16))
        timestamp = str(1_700_000_000 + nonce % 86_400)
        query = (
            f"msg_signature={crypto.sign(timestamp, str(nonce), encrypt)}&timestamp={timestamp}&nonce={nonce}"
        )
        body = (
            f"<xml><ToUserName><![CDATA[{crypto.receive_id}]]></ToUserName>"
            f"<Encrypt><![CDATA[{encrypt}]]></Encrypt><AgentID><![CDATA[1000002]]></AgentID></xml>"
        ).encode()
        return Request("POST", f"/wecom/callback/{crypto.receive_id}/?{query}", body, plaintext)

    plaintexts = [_event_xml(rng, first + n, seed_value) for n in range(count)]
    requests = [deliver(p, 10_000_000 + first + n) for n, p in enumerate(plaintexts)]
    redelivered = rng.sample(range(count), round(count * duplicates))
    at_once, later = redelivered[: len(redelivered) // 2], redelivered[len(redelivered) // 2 :]
    out: list[Request] = []
    again = {n: deliver(plaintexts[n], 20_000_000 + first + n) for n in redelivered}
    together = set(at_once)
    for n, request in enumerate(requests):
        out.append(request)
        if n in together:
            out.append(again[n])  # next in line: in flight together with the first delivery
    for n in later:
        out.insert(rng.randrange(len(out) + 1), again[n])
    return out


# --- the load generator (a separate process) ---------------------------------------------------------------


@dataclass
class LoadResult:
    seconds: float
    latencies_ms: list[float]
    statuses: list[int]  # per request, in order; 0 when not sent (time ran out), -1 on a connection error
    client_cpu_s: float

    @property
    def ok(self) -> int:
        return sum(1 for s in self.statuses if s == 200)

    @classmethod
    def combine(cls, parts: list[LoadResult]) -> LoadResult:
        """Consecutive runs as one: times add up, requests stay in order."""
        return cls(
            seconds=sum(p.seconds for p in parts),
            latencies_ms=[lat for p in parts for lat in p.latencies_ms],
            statuses=[s for p in parts for s in p.statuses],
            client_cpu_s=sum(p.client_cpu_s for p in parts),
        )


def _raw(request: Request, host: str, port: int) -> bytes:
    head = f"{request.method} {request.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
    if request.method == "POST":
        head += f"Content-Type: text/xml\r\nContent-Length: {len(request.body)}\r\n"
    return (head + "\r\n").encode() + request.body


async def _run_raw(
    requests: list[Request], host: str, port: int, concurrency: int, deadline: float
) -> tuple[list[float], list[int]]:
    payloads = [_raw(r, host, port) for r in requests]
    latencies: list[float] = [0.0] * len(payloads)
    statuses = [0] * len(payloads)
    queue = iter(range(len(payloads)))

    async def connection() -> None:
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        for index in queue:
            if time.monotonic() > deadline:
                break
            started = time.perf_counter()
            try:
                if writer is None or reader is None:
                    reader, writer = await asyncio.open_connection(host, port)
                writer.write(payloads[index])
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                status = int(lines[0].split(" ", 2)[1])
                headers = {
                    k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)
                }
                if headers.get("transfer-encoding", "").lower() == "chunked":
                    while size := int((await reader.readline()).strip() or b"0", 16):
                        await reader.readexactly(size + 2)
                    await reader.readline()
                elif length := int(headers.get("content-length", "0")):
                    await reader.readexactly(length)
                if headers.get("connection", "").lower() == "close":
                    writer.close()
                    reader = writer = None
            except (OSError, asyncio.IncompleteReadError, ValueError):
                status = -1
                if writer is not None:
                    writer.close()
                reader = writer = None
            latencies[index] = (time.perf_counter() - started) * 1000
            statuses[index] = status
        if writer is not None:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return latencies, statuses


async def _run_httpx(
    requests: list[Request], host: str, port: int, concurrency: int, deadline: float
) -> tuple[list[float], list[int]]:
    import httpx

    latencies: list[float] = [0.0] * len(requests)
    statuses = [0] * len(requests)
    queue = iter(range(len(requests)))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}", limits=limits, timeout=30) as client:

        async def connection() -> None:
            for index in queue:
                if time.monotonic() > deadline:
                    break
                request = requests[index]
                started = time.perf_counter()
                try:
                    headers = {"Content-Type": "text/xml"} if request.method == "POST" else {}
                    response = await client.request(
                        request.method, request.path, content=request.body or None, headers=headers
                    )
                    status = response.status_code
                except httpx.HTTPError:
                    status = -1
                latencies[index] = (time.perf_counter() - started) * 1000
                statuses[index] = status

        await asyncio.gather(*(connection() for _ in range(concurrency)))
    return latencies, statuses


def load_child(path: str, host: str, port: int, concurrency: int, max_seconds: float, client: str) -> None:
    """The load generator process: fire the requests in ``path``, print a JSON result."""
    with open(path, "rb") as f:
        requests: list[Request] = pickle.load(f)  # noqa: S301 - our own file, written by the parent
    run = _run_httpx if client == "httpx" else _run_raw
    cpu_before = time.process_time()
    started = time.perf_counter()
    latencies, statuses = asyncio.run(run(requests, host, port, concurrency, time.monotonic() + max_seconds))
    seconds = time.perf_counter() - started
    result = {
        "seconds": seconds,
        "latencies_ms": [lat for lat, s in zip(latencies, statuses, strict=True) if s != 0],
        "statuses": statuses,
        "client_cpu_s": time.process_time() - cpu_before,
    }
    print(json.dumps(result))


def fire(
    requests: list[Request], *, port: int, concurrency: int, max_seconds: float, client: str
) -> LoadResult:
    path = ROOT / "var" / "bench" / "callbacks-requests.pickle"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(requests, f)
    command = [sys.executable, __file__, "--load-child", str(path), "--port", str(port)]
    command += ["--concurrency", str(concurrency), "--max-seconds", str(max_seconds), "--client", client]
    try:
        done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)  # noqa: S603
    finally:
        path.unlink(missing_ok=True)
    data = json.loads(done.stdout.strip().splitlines()[-1])
    return LoadResult(data["seconds"], data["latencies_ms"], data["statuses"], data["client_cpu_s"])


# --- the server ---------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _server_env(database_url: str, threads: int = 0) -> dict[str, str]:
    env = dict(
        os.environ,
        SIYU_ENV="production",
        SECRET_KEY=SECRET_KEY,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        DATABASE_URL=database_url,
        SIYU_DATA_DIR=str(ROOT / "var" / "bench"),
    )
    if threads:
        env["WEB_THREADS"] = str(threads)
    env.pop("DEBUG", None)
    return env


def start_server(
    database_url: str, *, front: str, port: int, workers: int, threads: int = 0
) -> subprocess.Popen[bytes]:
    """``siyu receiver`` (front "receiver") or ``siyu serve`` (front "wsgi", gunicorn) with the production
    settings; returns once ``/healthz`` answers."""
    command = "receiver" if front == "receiver" else "serve"
    log_path = ROOT / "var" / "bench" / f"callbacks-{command}.log"
    shape = f"{workers} workers" + (f" × {threads or 'default'} threads" if front == "wsgi" else "")
    log(f"starting siyu {command}: {shape}, port {port} ({log_path})")
    with open(log_path, "wb") as out:
        server = subprocess.Popen(  # noqa: S603 - our own command
            [
                sys.executable,
                "-m",
                "siyu.config.cli",
                command,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            env=_server_env(database_url, threads),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited with {server.returncode}; see {log_path}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(
                    f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode()
                )
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return server
        except OSError:
            pass
        time.sleep(0.2)
    server.terminate()
    raise SystemExit(f"the server did not answer /healthz within 60 s; see {log_path}")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def _cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except OSError:
                continue
    return found


@dataclass(frozen=True)
class Cpu:
    """CPU seconds of the server's processes and of PostgreSQL's backends on the benchmark database."""

    web: float
    db: float

    def __sub__(self, other: Cpu) -> Cpu:
        return Cpu(self.web - other.web, self.db - other.db)

    def __add__(self, other: Cpu) -> Cpu:
        return Cpu(self.web + other.web, self.db + other.db)

    @property
    def total(self) -> float:
        return self.web + self.db


def server_cpu(server_pid: int) -> Cpu:
    """CPU used so far by the server (gunicorn and its workers) and by PostgreSQL for it."""
    web = _cpu_seconds(server_pid) + sum(_cpu_seconds(p) for p in _children(server_pid))
    from django.db import connection

    db = 0.0
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            db = sum(_cpu_seconds(pid) for (pid,) in cursor.fetchall())
    return Cpu(web, db)


# --- the run ------------------------------------------------------------------------------------------------


def verify(corp_id: int, requests: list[Request], result: LoadResult) -> tuple[int, int]:
    """(acknowledged distinct callbacks stored exactly once, acknowledged distinct callbacks)."""
    from django.db.models import Count

    from siyu.wecom.inbox import dedupe_key
    from siyu.wecom.models import InboxEvent

    acked = {dedupe_key(r.plaintext) for r, s in zip(requests, result.statuses, strict=True) if s == 200}
    sent = {dedupe_key(r.plaintext) for r, s in zip(requests, result.statuses, strict=True) if s != 0}
    counts = dict(
        InboxEvent.objects.filter(corp_id=corp_id, dedupe_key__in=sent)
        .values_list("dedupe_key")
        .annotate(n=Count("pk"))
        .order_by()
    )
    once = sum(1 for key in acked if counts.get(key) == 1)
    from django.db import connection

    if connection.vendor == "postgresql" and counts:
        with connection.cursor() as cursor:  # rows committed together share their transaction id (xmin)
            cursor.execute(
                f"SELECT count(*), count(DISTINCT xmin::text) FROM {InboxEvent._meta.db_table}"
                " WHERE corp_id = %s AND dedupe_key = ANY(%s)",
                [corp_id, list(sent)],
            )
            rows, transactions = cursor.fetchone() or (0, 0)
        log(
            f"inbox: {rows:,} rows committed in {transactions:,} transactions "
            f"({rows / transactions:.1f} a batch)"
        )
    unacked_stored = sum(1 for key in sent - acked if key in counts)
    log(
        f"inbox: {len(acked):,} distinct callbacks acknowledged, {once:,} of them stored exactly once; "
        f"{len(sent - acked)} refused or failed ({unacked_stored} of which were stored anyway: a later "
        "delivery of theirs is then acknowledged as a duplicate)"
    )
    return once, len(acked)


def _summary(label: str, result: LoadResult, cpu: Cpu) -> Timing:
    timing = Timing(result.latencies_ms)
    sent = sum(1 for s in result.statuses if s != 0)
    failed = sent - result.ok
    per = 1e6 / max(1, sent)
    log(
        f"  {label}: {result.ok:,}/{sent:,} answered 200 in {result.seconds:.2f} s = "
        f"{result.ok / result.seconds:,.0f}/s; p50 {timing.p50:.1f} ms, p99 {timing.p99:.1f} ms; "
        f"CPU per request: server {cpu.web * per:.0f} µs + PostgreSQL {cpu.db * per:.0f} µs; "
        f"load generator {result.client_cpu_s * per:.0f} µs"
        + (f"; {failed} not 200: {sorted(set(result.statuses) - {0, 200})}" if failed else "")
    )
    return timing


@dataclass
class Measured:
    """One front's run: its health checks (the baseline) and its callbacks, with the CPU they took."""

    base: LoadResult
    result: LoadResult
    base_cpu: Cpu
    result_cpu: Cpu

    @property
    def acks_per_s(self) -> float:
        return self.result.ok / self.result.seconds

    @property
    def base_per_s(self) -> float:
        return self.base.ok / self.base.seconds

    def cpu_per(self, which: str) -> float:
        """CPU µs per request sent (server + PostgreSQL), of the callbacks or of the health checks."""
        load, cpu = (self.result, self.result_cpu) if which == "callbacks" else (self.base, self.base_cpu)
        return cpu.total / max(1, sum(1 for s in load.statuses if s != 0)) * 1e6


def measure(
    front: str,
    database_url: str,
    corp_id: int,
    warmup: list[Request],
    callbacks: list[Request],
    args: argparse.Namespace,
) -> Measured:
    """Start one front, warm it up, alternate health checks and callbacks, stop it; log what it did."""
    health = [Request("GET", "/healthz", b"", b"")] * len(callbacks)
    port = _free_port()
    workers = args.receiver_workers if front == "receiver" else args.workers
    server = start_server(database_url, front=front, port=port, workers=workers, threads=args.threads)
    base_rounds: list[LoadResult] = []
    rounds: list[LoadResult] = []
    base_cpu = result_cpu = Cpu(0.0, 0.0)
    try:
        load = {"port": port, "concurrency": args.concurrency, "max_seconds": args.max_seconds}
        log("warm-up …")
        fire(health[:1000], **load, client=args.client)
        warm = fire(warmup, **load, client=args.client)
        # Rounds alternate health checks and callbacks, so both meet the same neighbours on a shared machine.
        size = -(-len(callbacks) // args.rounds)
        log(
            f"{args.rounds} rounds of {size:,} health checks then {size:,} callbacks, "
            f"{args.concurrency} in flight; load average {_load()} …"
        )
        for start in range(0, len(callbacks), size):
            cpu = server_cpu(server.pid)
            base_rounds.append(fire(health[start : start + size], **load, client=args.client))
            middle = server_cpu(server.pid)
            rounds.append(fire(callbacks[start : start + size], **load, client=args.client))
            base_cpu, result_cpu = base_cpu + (middle - cpu), result_cpu + (server_cpu(server.pid) - middle)
        log(f"load average after the rounds: {_load()}")
    finally:
        stop_server(server)
    measured = Measured(LoadResult.combine(base_rounds), LoadResult.combine(rounds), base_cpu, result_cpu)
    _summary(f"{front} /healthz", measured.base, base_cpu)
    _summary(f"{front} callbacks", measured.result, result_cpu)
    warm_once, warm_acked = verify(corp_id, warmup, warm)
    if warm_once != warm_acked:
        log(f"warm-up callbacks: only {warm_once} of {warm_acked} acknowledged ones are stored exactly once")
    return measured


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run(args: argparse.Namespace) -> list[Figure]:
    database_url = os.environ.get("DATABASE_URL") or postgres_database(DATABASE, fresh=True)
    os.environ["SECRET_KEY"] = SECRET_KEY
    setup_django(database_url)
    from siyu.corps.models import Corp
    from siyu.corps.services import create_corp
    from siyu.wecom.crypto import CallbackCrypto

    rng = random.Random(args.seed)
    token = "".join(rng.choices(string.ascii_letters + string.digits, k=32))
    aes_key = "".join(rng.choices(string.ascii_letters + string.digits, k=43))
    Corp.objects.filter(corpid=CORPID).delete()  # a reused database (DATABASE_URL) starts from an empty inbox
    corp = create_corp(name="回调基准", corpid=CORPID, token=token, aes_key=aes_key)
    crypto = CallbackCrypto(token=token, encoding_aes_key=aes_key, receive_id=CORPID)
    log(f"encrypting {args.count:,} + {args.wsgi_count:,} callbacks (+{args.duplicates:.0%} redelivered) …")

    def callbacks(count: int, first: int) -> list[Request]:
        return build_callbacks(
            crypto, count=count, duplicates=args.duplicates, seed_value=args.seed, first=first
        )

    # Distinct callbacks for each front and warm-up: every front meets an inbox of new rows, like WeCom's.
    receiver = measure(
        "receiver", database_url, corp.pk, callbacks(500, 10_000_000), callbacks(args.count, 0), args
    )
    once, acked = verify(corp.pk, callbacks(args.count, 0), receiver.result)
    wsgi = None
    if args.wsgi_count:
        wsgi = measure(
            "wsgi",
            database_url,
            corp.pk,
            callbacks(500, 11_000_000),
            callbacks(args.wsgi_count, 5_000_000),
            args,
        )
        wsgi_once, wsgi_acked = verify(corp.pk, callbacks(args.wsgi_count, 5_000_000), wsgi.result)
        if wsgi_once != wsgi_acked:
            log(f"wsgi: only {wsgi_once} of {wsgi_acked} acknowledged callbacks are stored exactly once")

    timing, base_timing = Timing(receiver.result.latencies_ms), Timing(receiver.base.latencies_ms)
    rate = receiver.acks_per_s
    verdict = (
        "met"
        if rate >= TARGET_ACKS_PER_S and timing.p99 <= TARGET_P99_MS
        else f"MISSED: {rate:,.0f} acks/s ({rate / TARGET_ACKS_PER_S:.0%} of the target), "
        f"p99 {timing.p99:.1f} ms (target ≤ {TARGET_P99_MS:.0f})"
    )
    log(f"target ≥ {TARGET_ACKS_PER_S:,.0f} acks/s with p99 ≤ {TARGET_P99_MS:.0f} ms: {verdict}")
    figures = [
        Figure(
            "callbacks_acks_per_s", receiver.acks_per_s, "acks/s", receiver.base_per_s, higher_is_better=True
        ),
        Figure("callbacks_p50", timing.p50, "ms", base_timing.p50),
        Figure("callbacks_p99", timing.p99, "ms", base_timing.p99),
        Figure("callbacks_cpu_per_ack", receiver.cpu_per("callbacks"), "us", receiver.cpu_per("health")),
        Figure("callbacks_stored_exactly_once", once, "callbacks", acked, higher_is_better=True),
    ]
    if wsgi is not None:
        # The second baseline: the same callbacks through siyu serve's WSGI view (gunicorn, threaded group
        # commit), the path the receiver replaces in production.
        wsgi_timing = Timing(wsgi.result.latencies_ms)
        figures += [
            Figure(
                "callbacks_acks_per_s_vs_wsgi",
                receiver.acks_per_s,
                "acks/s",
                wsgi.acks_per_s,
                higher_is_better=True,
            ),
            Figure("callbacks_p99_vs_wsgi", timing.p99, "ms", wsgi_timing.p99),
            Figure(
                "callbacks_cpu_per_ack_vs_wsgi",
                receiver.cpu_per("callbacks"),
                "us",
                wsgi.cpu_per("callbacks"),
            ),
        ]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=20_000, help="distinct callbacks")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight")
    parser.add_argument(
        "--receiver-workers",
        type=int,
        default=os.cpu_count() or 1,
        help="siyu receiver processes (default: one per core, as siyu receiver's own default)",
    )
    parser.add_argument(
        "--wsgi-count",
        type=int,
        default=5000,
        help="distinct callbacks through siyu serve (gunicorn) as a second baseline; 0 skips it",
    )
    parser.add_argument("--workers", type=int, default=2, help="siyu serve processes (the second baseline)")
    parser.add_argument("--threads", type=int, default=0, help="threads per siyu serve process (its default)")
    parser.add_argument("--rounds", type=int, default=4, help="alternations of health checks and callbacks")
    parser.add_argument("--duplicates", type=float, default=0.05, help="share of callbacks delivered twice")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-seconds", type=float, default=60.0, help="time limit of each load run")
    parser.add_argument("--client", choices=["raw", "httpx"], default="raw", help="load generator")
    parser.add_argument("--load-child", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load_child:
        load_child(args.load_child, "127.0.0.1", args.port, args.concurrency, args.max_seconds, args.client)
        return
    print_figures(run(args))


if __name__ == "__main__":
    main()
