"""gettoken (§1)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from siyu.simulator.api.base import Request, Result, route
from siyu.simulator.errors import ApiError

if TYPE_CHECKING:
    from siyu.simulator.app import Simulator


@route("gettoken", method="GET", auth=False)
def gettoken(sim: Simulator, request: Request) -> Result:
    corpid = request.query.get("corpid", "")
    secret = request.query.get("corpsecret", "")
    if not corpid:
        raise ApiError(41002)
    if not secret:
        raise ApiError(41004)
    if corpid != sim.config.corpid:
        raise ApiError(40013)
    if secret != sim.config.secret:
        raise ApiError(40001)
    token, expires_in = sim.tokens.issue(secret)
    return {"access_token": token, "expires_in": expires_in}
