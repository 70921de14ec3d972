"""Helpers for the outbound WeCom tests (client, gateway, tokens, limits, outbox): a corp and WeCom's JSON.

Until the simulator serves every API, these tests answer with respx using the exact shapes of wecom-api.md.
"""

from __future__ import annotations

import itertools
from typing import Any

import httpx

from siyu.corps.models import Corp
from siyu.corps.services import create_corp

BASE = "https://qyapi.test/cgi-bin/"
SECRET = "app-secret-0123456789"
TOKEN = "ACCESS_TOKEN_ONE"
TOKEN_2 = "ACCESS_TOKEN_TWO"

_seq = itertools.count(1)


def make_wecom_corp(*, secret: str = SECRET) -> Corp:
    """A corp whose customer-contact app secret is set."""
    return create_corp(name="企微外呼测试", corpid=f"wwout{next(_seq):06d}", secret=secret)


def ok(**fields: Any) -> dict[str, Any]:
    return {"errcode": 0, "errmsg": "ok", **fields}


def err(code: int, short: str = "error") -> dict[str, Any]:
    """An error answer with WeCom's errmsg suffix (clients must key on errcode only)."""
    return {
        "errcode": code,
        "errmsg": f"{short}, hint: [1614762332_107_440ee03aa446071dd1ca0a35fab1b16a], from ip: 127.0.0.1, "
        f"more info at https://open.work.weixin.qq.com/devtool/query?e={code}",
    }


def json_response(payload: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json=payload)


def token_answer(token: str = TOKEN, expires_in: int = 7200) -> httpx.Response:
    return json_response(ok(access_token=token, expires_in=expires_in))
