"""Simulator fixtures: a simulator on a free port and a plain HTTP client that speaks WeCom to it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from siyu.simulator.app import Simulator
from siyu.simulator.testing import CallbackReceiver, running_simulator


class WeCom:
    """The smallest honest WeCom client: fetches a token, sends JSON, returns the decoded answer."""

    def __init__(self, sim: Simulator, http: httpx.Client | None = None):
        self.sim = sim
        self.http = http or httpx.Client(timeout=10, trust_env=False)
        self.http.base_url = httpx.URL(sim.api_base)
        self._owns_http = http is None
        self._token: str | None = None

    @property
    def token(self) -> str:
        if self._token is None:
            answer = self.http.get(
                "gettoken", params={"corpid": self.sim.config.corpid, "corpsecret": self.sim.config.secret}
            ).json()
            assert answer["errcode"] == 0, answer
            self._token = answer["access_token"]
        return self._token

    def _send(
        self, method: str, path: str, body: dict[str, Any] | None, params: dict[str, Any]
    ) -> dict[str, Any]:
        for attempt in (1, 2):
            query = {"access_token": self.token, **params}
            if method == "GET":
                response = self.http.get(path, params=query)
            else:
                response = self.http.post(path, params=query, json=body or {})
            assert response.status_code == 200
            answer: dict[str, Any] = response.json()
            if answer["errcode"] in (40014, 42001) and attempt == 1:
                self._token = (
                    None  # expired (tests move the clock) or revoked: refetch once, as WeCom advises
                )
                continue
            return answer
        raise AssertionError("unreachable")

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        return self._send("GET", path, None, params)

    def post(self, path: str, body: dict[str, Any] | None = None, **params: Any) -> dict[str, Any]:
        return self._send("POST", path, body, params)

    def ok(self, method: str, path: str, body: dict[str, Any] | None = None, **params: Any) -> dict[str, Any]:
        """Call and insist on errcode 0."""
        answer = self.get(path, **params) if method == "GET" else self.post(path, body, **params)
        assert answer["errcode"] == 0, answer
        assert answer["errmsg"] == "ok"
        return answer

    def close(self) -> None:
        if self._owns_http:
            self.http.close()


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with running_simulator() as simulator:
        yield simulator


@pytest.fixture(scope="session")
def http() -> Iterator[httpx.Client]:
    """One HTTP client for the session: making one (an SSL context) costs more than most tests."""
    with httpx.Client(timeout=10, trust_env=False) as client:
        yield client


@pytest.fixture
def wecom(sim: Simulator, http: httpx.Client) -> Iterator[WeCom]:
    client = WeCom(sim, http)
    yield client
    client.close()


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    with CallbackReceiver() as rx:
        yield rx


@pytest.fixture
def hooked(sim: Simulator, receiver: CallbackReceiver) -> CallbackReceiver:
    """The simulator's callbacks go to ``receiver``."""
    sim.config.callback_url = receiver.url
    return receiver


def errcode(answer: dict[str, Any]) -> int:
    return int(answer["errcode"])
