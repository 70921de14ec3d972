"""``siyu demo`` from an empty data directory: the console, the worker and the WeCom simulator come up,
customers arrive through encrypted callbacks while it runs, and Ctrl-C stops all three.

It runs the product as ``make demo`` does, on its embedded default (SQLite in a temporary ``SIYU_DATA_DIR``,
the database task worker): ``DATABASE_URL`` and ``REDIS_URL`` are left out on purpose, so the test never
writes into a shared database. Slow-ish: about half a minute.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

DEMO_CORPID = "wwsiyudemo0000001"
# A cold start migrates, seeds 200 customers and boots gunicorn: ~10 s here; 60 s means it is broken.
BANNER_TIMEOUT = 60.0
ARRIVAL_TIMEOUT = 40.0  # the brief to the demo: new customers within ~40 s at 600 adds/min
STOP_TIMEOUT = 30.0
LEFT_OUT = ("DATABASE_URL", "REDIS_URL", "SIYU_TASK_BACKEND", "WECOM_API_BASE", "SIYU_ENV")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class Demo:
    """``siyu demo`` in a subprocess, its output read line by line on a thread."""

    def __init__(self, tmp_path: Path):
        self.data_dir = tmp_path / "var"
        self.port, self.sim_port = free_port(), free_port()
        self.env = {k: v for k, v in os.environ.items() if k not in LEFT_OUT}
        self.env["SIYU_DATA_DIR"] = str(self.data_dir)
        command = [
            sys.executable, "-m", "siyu.config.cli", "demo", "--customers", "200", "--traffic", "600",
            "--port", str(self.port), "--sim-port", str(self.sim_port),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            env=self.env,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # a Ctrl-C sent to the test run must not reach it: the test sends its own
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            found = re.search(pattern, line)
            if found:
                return found
        self.drain()
        raise AssertionError(f"no line matching {pattern!r} in {timeout:.0f} s; output:\n" + self.output)

    def drain(self) -> None:
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                return
            if line is not None:
                self.lines.append(line)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def count(self, sql: str) -> int:
        database = self.data_dir / "siyu.sqlite3"
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10) as connection:
            return int(connection.execute(sql).fetchone()[0])

    def siyu(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "siyu.config.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    running = Demo(tmp_path)
    yield running
    if running.process.poll() is None:  # the test failed before stopping it: leave nothing behind
        below = descendants(running.process.pid)
        os.killpg(running.process.pid, signal.SIGKILL)
        for pid in below:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        running.process.wait(timeout=10)


def test_siyu_demo_is_a_living_wecom_connected_corp(demo: Demo) -> None:
    started = time.monotonic()
    # given the demo from an empty data directory, up and saying how to log in
    password = demo.wait_for(r"login:\s+admin / (\S+)", BANNER_TIMEOUT).group(1)
    demo.wait_for(r"Ctrl-C stops everything", 5)
    ready_after = time.monotonic() - started
    processes = descendants(demo.process.pid)
    commands = {pid: Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ") for pid in processes}
    assert any(b" serve " in c or b"gunicorn" in c for c in commands.values()), commands
    assert any(b" worker" in c or b"siyu_worker" in c for c in commands.values()), commands
    assert any(b" simulator " in c for c in commands.values()), commands
    customers_at_start = demo.count("select count(*) from customers_customer")
    assert customers_at_start == 200
    console = f"http://127.0.0.1:{demo.port}"

    # when an admin logs in to the console over HTTP
    with httpx.Client(base_url=console, trust_env=False, timeout=10) as http:
        http.get("/login/")
        login = http.post(
            "/login/",
            data={
                "username": "admin",
                "password": password,
                "csrfmiddlewaretoken": http.cookies["csrftoken"],
            },
        )
        # then the console lets them in
        assert login.status_code == 302, login.text[:500]
        assert "/login/" not in login.headers["location"]
        assert http.get(login.headers["location"]).status_code == 200

    # and while it runs, new customers arrive from the simulated WeCom through callbacks
    deadline = time.monotonic() + ARRIVAL_TIMEOUT
    arrived = added = 0
    while time.monotonic() < deadline:
        arrived = demo.count("select count(*) from customers_customer") - customers_at_start
        added = demo.count("select count(*) from customers_event where kind = 'added' and source = 'wecom'")
        if arrived >= 5 and added >= 5:
            break
        time.sleep(0.5)
    arrived_after = time.monotonic() - started
    assert arrived >= 5 and added >= 5, f"{arrived} customers and {added} added events arrived\n{demo.output}"

    # and the REST API shows them: the newest customer came from WeCom, and their timeline says so
    key = demo.siyu("apikey", "create", "--corp", DEMO_CORPID).strip().splitlines()[-1]
    with httpx.Client(
        base_url=f"{console}/api/v1", trust_env=False, timeout=10, headers={"Authorization": f"Bearer {key}"}
    ) as api:
        newest = api.get("/customers", params={"page_size": 20}).json()["items"]
        # (a customer whose relation is being written this instant has none yet: the handler stores the
        # profile and the relation in two transactions)
        fresh = [c for c in newest if not c["external_userid"].startswith("wmdemo") and c["relations"]]
        assert fresh, newest
        timeline = api.get(f"/customers/{fresh[0]['id']}/timeline").json()["items"]
        assert ("added", "wecom") in {(e["kind"], e["source"]) for e in timeline}, timeline
        # and the demo's segments count the live data, the example among them
        segments = {s["name"]: s for s in api.get("/segments").json()}
        assert len(segments) == 5, segments
        example = segments["北京女性·近30天未购买"]
        assert example["text"] == "tag:北京 AND tag:女 AND NOT purchased(30d)"
        counted = api.post("/segments/evaluate", json={"text": "北京 AND 女 AND NOT purchased(30d)"}).json()
        assert counted["count"] == api.get(f"/segments/{example['id']}/count").json()["count"] > 0

    # when Ctrl-C
    os.kill(demo.process.pid, signal.SIGINT)
    code = demo.process.wait(timeout=STOP_TIMEOUT)
    demo.wait_for(r"^stopped\.$", 5)
    # then the demo and all of its processes (web with its workers, worker, simulator) are gone
    assert code == 0, demo.output
    assert [pid for pid in processes if alive(pid)] == []
    assert "error" not in demo.output.lower(), demo.output
    print(
        f"\ndemo ready after {ready_after:.1f} s; {arrived} customers arrived by "
        f"{arrived_after:.1f} s; stopped after {time.monotonic() - started:.1f} s"
    )
