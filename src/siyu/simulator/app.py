"""The simulator: a corp, its API, its callbacks, its clock, and the HTTP server around them."""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from siyu.simulator.actions import Actions
from siyu.simulator.api import ROUTES, Request
from siyu.simulator.clock import SimClock
from siyu.simulator.config import SimulatorConfig
from siyu.simulator.cursors import Cursors
from siyu.simulator.delivery import CallbackSender
from siyu.simulator.errors import ApiError, errmsg
from siyu.simulator.generate import generate_corp
from siyu.simulator.limits import Limits, Tokens
from siyu.simulator.state import CorpState
from siyu.simulator.statefile import corp_of, load_corp, read_state_file
from siyu.simulator.traffic import TrafficDriver

logger = logging.getLogger("siyu.simulator")
TICK_SECONDS = 0.2  # how often due work (confirmations, transfers) is looked at, in wall-clock time


@dataclass
class Answer:
    """What the HTTP layer should do: answer JSON or raw bytes, or misbehave on purpose."""

    status: int = 200
    payload: dict[str, Any] | None = None
    raw: bytes | None = None
    content_type: str = "application/json; charset=UTF-8"
    delay: float = 0.0  # seconds to wait before answering
    hold: float = 0.0  # seconds to hold the request, then drop it unanswered (a timeout)
    drop: bool = False  # close the connection without an answer
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> bytes:
        if self.raw is not None:
            return self.raw
        return json.dumps(self.payload or {}, ensure_ascii=False, separators=(",", ":")).encode()


class Simulator:
    """One simulated WeCom corp. ``start()`` serves it over HTTP; ``handle_api`` answers in-process."""

    def __init__(self, config: SimulatorConfig | None = None, **overrides: Any):
        self.config = dataclasses.replace(config or SimulatorConfig(), **overrides)
        self.clock = SimClock()
        started = time.monotonic()
        loaded = read_state_file(self.config.state_file) if self.config.state_file else None
        if loaded is not None:  # the file's corp replaces the configured one
            corpid, corp_name = corp_of(loaded)
            self.config.corpid = corpid or self.config.corpid
            self.config.corp_name = corp_name or self.config.corp_name
        self.state = CorpState(
            corpid=self.config.corpid, corp_name=self.config.corp_name, seed=self.config.seed
        )
        if loaded is not None:
            load_corp(self.state, loaded, now=self.clock.now())
            del loaded
        else:
            generate_corp(
                self.state,
                seed=self.config.seed,
                staff=self.config.staff,
                customers=self.config.customers,
                groups=self.config.groups,
                now=self.clock.now(),
            )
        self.generation_seconds = time.monotonic() - started
        self.tokens = Tokens(self.clock, self.config)
        self.cursors = Cursors(f"{self.config.corpid}:{self.config.seed}")
        self.limits = Limits(self.config, self.clock)
        self.sender = CallbackSender(self.config, self.clock)
        self.actions = Actions(self)
        self.traffic = TrafficDriver(self, seed=self.config.seed)
        self.internal_errors: list[str] = []
        self._rng = random.Random()  # noqa: S311 - latency jitter, not security
        self._stopping = threading.Event()
        self._ticker: threading.Thread | None = None
        self._server: Any = None
        self._serve_thread: threading.Thread | None = None

    # --- life cycle ------------------------------------------------------------------------------------

    def start(self) -> Simulator:
        from siyu.simulator.server import SimulatorServer

        self._stopping.clear()
        self._server = SimulatorServer((self.config.host, self.config.port), self)
        self.config.port = self._server.server_address[1]  # port 0 picks a free port
        self._serve_thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="sim-http", daemon=True
        )
        self._serve_thread.start()
        self.sender.start()
        self._ticker = threading.Thread(target=self._tick_loop, name="sim-tick", daemon=True)
        self._ticker.start()
        if self.config.traffic > 0:
            self.traffic.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self.traffic.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.close_all()
            self._server.server_close()
            self._server = None
        if self._serve_thread is not None:
            self._serve_thread.join(timeout=5)
        if self._ticker is not None:
            self._ticker.join(timeout=5)
        self.sender.stop()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _tick_loop(self) -> None:
        while not self._stopping.wait(TICK_SECONDS):
            try:
                self.tick()
            except Exception:  # the ticker must survive a bug in one piece of due work
                self.internal_errors.append(traceback.format_exc())
                logger.exception("simulator tick failed")

    def tick(self) -> dict[str, int]:
        """Run due work now (tests call it after moving the clock)."""
        return self.actions.tick()

    @property
    def base_url(self) -> str:
        return f"http://{self.config.host}:{self.config.port}"

    @property
    def api_base(self) -> str:
        """What a client uses in place of https://qyapi.weixin.qq.com/cgi-bin/."""
        return f"{self.base_url}/cgi-bin/"

    # --- the API ---------------------------------------------------------------------------------------

    def handle_api(
        self,
        method: str,
        api: str,
        query: dict[str, str],
        body: bytes = b"",
        *,
        client_ip: str = "127.0.0.1",
        content_type: str = "",
    ) -> Answer:
        """Answer one /cgi-bin/ call: faults, token, frequency and concurrency limits, then the endpoint."""
        route = ROUTES.get(api)
        if route is None:
            return Answer(status=404, raw=b"", content_type="text/plain")
        answer = Answer()
        fault = self.limits.pick_fault(api)
        if fault is not None:
            if fault.kind == "errcode":
                return self._error(answer, ApiError(fault.errcode), client_ip)
            if fault.kind == "http":
                html = f"<html><body><h1>{fault.status}</h1></body></html>".encode()
                return Answer(status=fault.status, raw=html, content_type="text/html")
            if fault.kind == "timeout":
                return Answer(hold=fault.seconds)
            if fault.kind == "disconnect":
                return Answer(drop=True)
            answer.delay += fault.seconds  # latency
        if self.config.latency_ms or self.config.latency_jitter_ms:
            jitter = self._rng.uniform(0, self.config.latency_jitter_ms)
            answer.delay += (self.config.latency_ms + jitter) / 1000.0
        request = Request(
            method=method, api=api, query=query, body=body, client_ip=client_ip, content_type=content_type
        )
        try:
            if route.auth:
                self.tokens.check(query.get("access_token"))
            self.limits.count_call(api)
            self.limits.enter(api)
            try:
                if answer.delay:  # the work takes this long: the call stays in flight meanwhile
                    self._stopping.wait(answer.delay)
                    answer.delay = 0.0
                with self.state.lock:
                    result = route.handler(self, request)
            finally:
                self.limits.leave(api)
        except ApiError as exc:
            return self._error(answer, exc, client_ip)
        except Exception:  # a simulator bug must look like WeCom's "system busy", and be recorded
            self.internal_errors.append(traceback.format_exc())
            logger.exception("simulator endpoint %s failed", api)
            return self._error(answer, ApiError(-1), client_ip)
        answer.payload = {"errcode": 0, "errmsg": "ok", **result}
        answer.headers = {"Error-Code": "0", "Error-Msg": "ok"}
        return answer

    @staticmethod
    def _error(answer: Answer, error: ApiError, client_ip: str) -> Answer:
        message = errmsg(error.errcode, error.message, client_ip)
        answer.payload = {"errcode": error.errcode, "errmsg": message}
        answer.headers = {"Error-Code": str(error.errcode), "Error-Msg": error.message}
        return answer

    def call(self, api: str, body: dict[str, Any] | None = None, **query: str) -> dict[str, Any]:
        """In-process call with the current token, for tests that need no HTTP: returns the JSON answer."""
        route = ROUTES[api]
        if route.auth and "access_token" not in query:
            query["access_token"] = self.tokens.issue(self.config.secret)[0]
        raw = json.dumps(body).encode() if body is not None else b""
        answer = self.handle_api(route.method, api, query, raw)
        return json.loads(answer.body())
