"""The simulator's own control interface under ``/_sim/`` (not a WeCom path): inspect, act, set faults.

GET  /_sim/state                     counts, clock, callbacks, config
GET  /_sim/staff | customers[?userid=&offset=&limit=] | customers/<id> | contact_ways | groups[/<id>]
     | tags | welcome_codes[?external_userid=] | msg_templates | transfers | moments | calls
GET  /_sim/callbacks[?status=&label=&limit=]     delivery log (plaintext XML included)
POST /_sim/callbacks/wait {"timeout": s}         wait until every callback is delivered or given up
POST /_sim/callbacks/verify                      WeCom's GET URL check against the callback URL
POST /_sim/actions/<name> {kwargs}               a client/console action, e.g. scan_contact_way
GET  /_sim/scan/<config_id>                      a customer scans the contact way (its QR code's target)
POST /_sim/clock {"advance": s} | {"freeze": true|false}
GET|POST|DELETE /_sim/faults                     list / add one / clear
POST|DELETE /_sim/limits {"api", "per_minute", "per_hour"}   per-API budgets / unblock and reset
GET|POST /_sim/config {name: value}              run-time knobs
POST /_sim/token/expire {"mode": "expired"|"invalid"}
POST /_sim/traffic {"rate": adds_per_minute}
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from siyu.simulator.actions import ADMIN_ACTIONS, ActionError
from siyu.simulator.api.customers import contact_json, follow_info_json
from siyu.simulator.api.groups import group_json

if TYPE_CHECKING:
    from siyu.simulator.app import Answer, Simulator


def _answer(payload: Any, status: int = 200) -> Answer:
    from siyu.simulator.app import Answer

    raw = json.dumps(payload, ensure_ascii=False, default=str).encode()
    return Answer(status=status, raw=raw)


def _int(query: dict[str, str], name: str, default: int) -> int:
    try:
        return int(query.get(name, default))
    except ValueError:
        return default


def handle_admin(sim: Simulator, method: str, path: str, query: dict[str, str], body: bytes) -> Answer:
    parts = [p for p in path.split("/") if p][1:]  # drop "_sim"
    try:
        data = json.loads(body) if body.strip() else {}
        if not isinstance(data, dict):
            raise ValueError("the body must be a JSON object")
        return _answer(_dispatch(sim, method, parts, query, data))
    except (ActionError, ValueError, TypeError) as exc:
        return _answer({"error": str(exc)}, status=400)
    except LookupError as exc:
        return _answer({"error": f"not found: {exc}"}, status=404)


def _dispatch(
    sim: Simulator, method: str, parts: list[str], query: dict[str, str], data: dict[str, Any]
) -> Any:
    head = parts[0] if parts else "state"
    rest = parts[1:]
    if head == "actions" and method == "POST" and rest:
        name = rest[0]
        if name not in ADMIN_ACTIONS:
            raise LookupError(name)
        return getattr(sim.actions, name)(**data)
    if head == "scan" and rest:
        # The target of a contact way's QR code: a customer scans it (GET, as a phone opens a link).
        return sim.actions.scan_contact_way(config_id=rest[0])
    if head == "tick" and method == "POST":
        return sim.tick()
    if head == "clock":
        if method == "POST":
            if "advance" in data:
                sim.clock.advance(float(data["advance"]))
            if data.get("freeze") is True:
                sim.clock.freeze()
            elif data.get("freeze") is False:
                sim.clock.unfreeze()
            if data.get("tick", True):
                sim.tick()
        return {"now": sim.clock.time(), "frozen": sim.clock.frozen}
    if head == "faults":
        if method == "POST":
            return sim.limits.add_fault(**data).public()
        if method == "DELETE":
            sim.limits.clear_faults()
        return [f.public() for f in sim.limits.faults]
    if head == "limits":
        if method == "POST":
            sim.limits.set_limit(str(data["api"]), data.get("per_minute"), data.get("per_hour"))
        elif method == "DELETE":
            sim.limits.overrides.clear()
            sim.limits.unblock()
        return {"overrides": {k: list(v) for k, v in sim.limits.overrides.items()}}
    if head == "config":
        if method == "POST":
            sim.config.update(data)
            if "traffic" in data:
                sim.traffic.set_rate(sim.config.traffic)
        public = sim.config.public()
        return public
    if head == "token" and rest == ["expire"] and method == "POST":
        return {"revoked": sim.tokens.revoke_all(str(data.get("mode", "expired")))}
    if head == "traffic" and method == "POST":
        sim.traffic.set_rate(float(data.get("rate", 0)))
        return {"rate": sim.traffic.rate, "counts": dict(sim.traffic.counts)}
    if head == "callbacks":
        if rest == ["wait"] and method == "POST":
            return {"idle": sim.sender.wait_idle(float(data.get("timeout", 10))), "counts": sim.sender.counts}
        if rest == ["verify"] and method == "POST":
            return sim.sender.verify_url()
        return _callbacks(sim, query)
    if method != "GET":
        raise LookupError("/".join(parts))
    with sim.state.lock:
        return _read(sim, head, rest, query)


def _callbacks(sim: Simulator, query: dict[str, str]) -> dict[str, Any]:
    deliveries = list(sim.sender.log)
    if query.get("status"):
        deliveries = [d for d in deliveries if d.status == query["status"]]
    if query.get("label"):
        deliveries = [d for d in deliveries if d.label.startswith(query["label"])]
    limit = _int(query, "limit", 100)
    items = [{**d.public(), "xml": d.plaintext} for d in deliveries[-limit:]]
    return {"counts": sim.sender.counts, "pending": sim.sender.pending, "deliveries": items}


def _read(sim: Simulator, head: str, rest: list[str], query: dict[str, str]) -> Any:
    state = sim.state
    offset, limit = _int(query, "offset", 0), _int(query, "limit", 100)
    if head == "state":
        return {
            "corpid": state.corpid,
            "counts": state.snapshot_counts(),
            "clock": {"now": sim.clock.time(), "frozen": sim.clock.frozen},
            "callbacks": {**sim.sender.counts, "pending": sim.sender.pending},
            "traffic": {"rate": sim.traffic.rate, "counts": dict(sim.traffic.counts)},
            "tokens_issued": sim.tokens.issued,
            "internal_errors": len(sim.internal_errors),
            "generation_seconds": round(sim.generation_seconds, 3),
        }
    if head == "staff":
        return [
            {
                "userid": s.userid,
                "name": s.name,
                "departments": s.departments,
                "status": s.status,
                "customer_contact": s.customer_contact,
                "customers": len(s.follow_list),
            }
            for s in state.staff.values()
        ]
    if head == "customers":
        if rest:
            customer = state.customers[rest[0]]
            return {
                **contact_json(customer),
                "follows": [follow_info_json(f) for f in customer.follows.values()],
            }
        if query.get("userid"):
            follows = state.staff[query["userid"]].follow_list[offset : offset + limit]
            return [f.external_userid for f in follows]
        return state.customer_ids[offset : offset + limit]
    if head == "contact_ways":
        return [
            {"config_id": w.config_id, "state": w.state, "remark": w.remark, "user": w.user, "party": w.party}
            for w in state.contact_ways.values()
        ]
    if head == "groups":
        if rest:
            return group_json(state.groups[rest[0]], need_name=True)
        chats = [c for c in state.groups.values() if not c.dismissed][offset : offset + limit]
        return [
            {"chat_id": c.chat_id, "name": c.name, "owner": c.owner, "members": len(c.members)} for c in chats
        ]
    if head == "tags":
        return [
            {
                "group_id": g.group_id,
                "name": g.name,
                "deleted": g.deleted,
                "tags": [
                    {"id": t, "name": state.tags[t].name, "deleted": state.tags[t].deleted} for t in g.tag_ids
                ],
            }
            for g in state.tag_groups.values()
        ]
    if head == "welcome_codes":
        wanted = query.get("external_userid")
        return [
            {
                "code": w.code,
                "userid": w.userid,
                "external_userid": w.external_userid,
                "issued_at": w.issued_at,
                "used": w.used,
                "message": w.message,
            }
            for w in state.welcome_codes.values()
            if not wanted or w.external_userid == wanted
        ]
    if head == "msg_templates":
        return [
            {
                "msgid": t.msgid,
                "chat_type": t.chat_type,
                "cancelled": t.cancelled,
                "tasks": {u: task.status for u, task in t.tasks.items()},
                "recipients": sum(len(r) for r in t.recipients.values()),
            }
            for t in state.msg_templates.values()
        ]
    if head == "transfers":
        return [
            {
                "kind": t.kind,
                "handover": t.handover,
                "takeover": t.takeover,
                "external_userid": t.external_userid,
                "status": t.status,
                "takeover_time": t.takeover_time,
            }
            for t in state.transfers
        ]
    if head == "moments":
        return [
            {"moment_id": m.moment_id, "jobid": m.jobid, "senders": m.senders, "cancelled": m.cancelled}
            for m in state.moments.values()
        ]
    if head == "calls":
        return {"calls": dict(sim.limits.calls), "rejected": dict(sim.limits.rejected)}
    raise LookupError(head)
