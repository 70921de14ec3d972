"""``siyu demo``: Siyu's demo corp connected to a simulated WeCom, and the export of a corp to the simulator.

What runs where (each a subprocess in its own session, so Ctrl-C reaches only this supervisor, which stops
them in order):

- web: ``siyu serve``; WeCom's callbacks arrive at ``/wecom/callback/<corpid>/`` and land in the inbox;
- worker: ``siyu worker``; drains the inbox (a drain is enqueued by each callback), sends the outbox, runs
  syncs and the scheduled reconciliation;
- simulator: ``siyu simulator --state var/simulator-state.json``, the demo corp as WeCom sees it, whose
  traffic driver adds customers over channels, tags, edits remarks, deletes, and posts the callbacks.

Web and worker get ``WECOM_API_BASE`` pointing at the simulator, so every WeCom call goes there. The
simulator's state is exported from the database on every start (``export_corp``), so the two sides begin
in agreement, including the customers the last run added.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import httpx
from django.db.models import Count, Q

from siyu.core.clock import now
from siyu.corps.models import Corp, Department, Staff, StaffDepartment
from siyu.customers.models import Customer, FollowRelation
from siyu.groups.models import GroupChat, GroupMember
from siyu.tags.models import RelationTag, Tag, TagGroup

STATE_FILE = "simulator-state.json"
# How the demo's simulated staff confirm mass messages (seconds, seconds, share): soon enough to watch the
# progress bars move, spread enough to see them move one by one, and some who need a reminder.
DEMO_CONFIRM_DELAY = 15.0
DEMO_CONFIRM_SPREAD = 60.0
DEMO_CONFIRM_SHARE = 0.8
STATE_FORMAT = "siyu-simulator-state"  # siyu.simulator.statefile.FORMAT, version 1
# Customers read per query when exporting: a few thousand rows per round trip, memory flat at any size.
EXPORT_BATCH = 1000
# The demo seed's channels (siyu.corps.seed.STATES) named as the seed's 来源渠道 tags name them: a Siyu
# channel (siyu.channels.demo) with its own 「联系我」 for each, so the simulator's customers arrive over
# the same channels the history shows, rotated, capped and welcomed by Siyu.
DEMO_CHANNELS = {
    "ch_store": "门店扫码",
    "ch_ad": "线上广告",
    "ch_referral": "老客推荐",
    "ch_expo": "展会",
    "ch_mp": "公众号",
}
CONTACT_WAY_MEMBERS = 2  # members behind each contact way: the two who took most customers over it
WECOM_STATUS: dict[str, int] = {Staff.Status.ACTIVE: 1, Staff.Status.DISABLED: 2, Staff.Status.RESIGNED: 5}

# Timing of the supervisor. A cold start (gunicorn importing Django, the simulator loading 5,000 customers)
# takes a few seconds; 90 s means something is wrong.
READY_TIMEOUT = 90.0
STOP_TIMEOUT = 10.0  # after SIGTERM, before SIGKILL: gunicorn's graceful timeout is 5 s
DRAIN_TIMEOUT = 10.0  # at Ctrl-C, how long the worker may take to apply the last callbacks
STATUS_EVERY = 60.0  # seconds between the status lines while running


# --- export ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class ExportReport:
    """What ``export_corp`` wrote."""

    path: Path
    staff: int = 0
    customers: int = 0
    relations: int = 0
    groups: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        return (
            f"{self.customers:,} customers, {self.relations:,} relations, {self.staff} staff, "
            f"{self.groups} groups → {self.path} ({self.seconds:.1f} s)"
        )


def _ts(moment: dt.datetime | None) -> int:
    return int(moment.timestamp()) if moment else 0


def _departments(corp: Corp) -> list[dict[str, Any]]:
    rows = (
        Department.objects.for_corp(corp)
        .order_by("wecom_id")
        .values_list("wecom_id", "name", "parent__wecom_id", "order")
    )
    departments = [
        {"id": wecom_id, "name": name or str(wecom_id), "parentid": parent or 0, "order": order}
        for wecom_id, name, parent, order in rows
    ]
    if not departments:  # WeCom always has the root department
        departments = [{"id": 1, "name": corp.name, "parentid": 0, "order": 0}]
    return departments


def _staff(corp: Corp, root: int) -> list[dict[str, Any]]:
    memberships: dict[int, list[int]] = defaultdict(list)
    for staff_id, wecom_id in (
        StaffDepartment.objects.for_corp(corp).order_by("id").values_list("staff_id", "department__wecom_id")
    ):
        memberships[staff_id].append(wecom_id)
    members = []
    rows = (
        Staff.objects.for_corp(corp)
        .order_by("id")
        .values(
            "id", "userid", "name", "avatar", "status", "has_contact_permission", "main_department__wecom_id"
        )
    )
    for row in rows:
        main = row["main_department__wecom_id"]
        departments = memberships.get(row["id"]) or [main or root]
        if main is not None and main not in departments:
            departments.insert(0, main)
        members.append(
            {
                "userid": row["userid"],
                "name": row["name"] or row["userid"],
                "departments": departments,
                "main_department": main if main is not None else departments[0],
                "status": WECOM_STATUS.get(row["status"], 1),
                "customer_contact": row["has_contact_permission"],
                "avatar": row["avatar"],
            }
        )
    return members


def _tag_groups(corp: Corp) -> tuple[list[dict[str, Any]], dict[int, str]]:
    """WeCom's tag groups with their tags (Siyu-only ones are not WeCom's), and WeCom tag id by Siyu tag id.

    Siyu sorts by ascending ``order``, WeCom by descending: the first group gets the largest order.
    """
    groups = list(
        TagGroup.objects.for_corp(corp)
        .exclude(wecom_group_id="")
        .order_by("order", "id")
        .values_list("id", "wecom_group_id", "name", "created_at")
    )
    tags_by_group: dict[int, list[tuple[int, str, str, dt.datetime]]] = defaultdict(list)
    for tag in (
        Tag.objects.for_corp(corp)
        .exclude(wecom_tag_id="")
        .order_by("order", "id")
        .values_list("group_id", "id", "wecom_tag_id", "name", "created_at")
    ):
        tags_by_group[tag[0]].append(tag[1:])
    exported = []
    wecom_ids: dict[int, str] = {}
    for index, (group_pk, group_id, name, created) in enumerate(groups):
        tags = tags_by_group.get(group_pk, [])
        exported.append(
            {
                "group_id": group_id,
                "name": name,
                "order": len(groups) - index,
                "create_time": _ts(created),
                "tags": [
                    {"id": wecom_id, "name": tag_name, "order": len(tags) - i, "create_time": _ts(at)}
                    for i, (_pk, wecom_id, tag_name, at) in enumerate(tags)
                ],
            }
        )
        wecom_ids.update({pk: wecom_id for pk, wecom_id, _n, _c in tags})
    return exported, wecom_ids


def _contact_ways(corp: Corp, channels: dict[str, str]) -> list[dict[str, Any]]:
    """One 「联系我」 per channel, held by the members who took most of that channel's customers."""
    takers: dict[str, list[str]] = defaultdict(list)
    rows = (
        FollowRelation.objects.for_corp(corp)
        .filter(
            status=FollowRelation.Status.ACTIVE,
            state__in=list(channels),
            staff__status=Staff.Status.ACTIVE,
            staff__has_contact_permission=True,
        )
        .values("state", "staff__userid")
        .annotate(n=Count("id"))
        .order_by("state", "-n", "staff__userid")
    )
    for row in rows:
        if len(takers[row["state"]]) < CONTACT_WAY_MEMBERS:
            takers[row["state"]].append(row["staff__userid"])
    fallback = list(
        Staff.objects.for_corp(corp)
        .filter(status=Staff.Status.ACTIVE, has_contact_permission=True)
        .order_by("id")
        .values_list("userid", flat=True)[:1]
    )
    ways = []
    for state, remark in channels.items():
        users = takers.get(state) or fallback
        if not users:
            continue
        config_id = hashlib.sha1(f"{corp.corpid}:{state}".encode(), usedforsecurity=False).hexdigest()[:32]
        ways.append({"config_id": config_id, "state": state, "remark": remark, "user": users})
    return ways


def _all_contact_ways(corp: Corp, channels: dict[str, str]) -> list[dict[str, Any]]:
    """Siyu's channels' contact ways, and one per named channel state that no Siyu channel has yet."""
    from siyu.channels.demo import contact_ways_for_export
    from siyu.channels.models import Channel

    ways = contact_ways_for_export(corp)
    taken = set(Channel.objects.for_corp(corp).values_list("state", flat=True))
    return ways + _contact_ways(corp, {k: v for k, v in channels.items() if k not in taken})


CUSTOMER_FIELDS = (
    "id", "external_userid", "name", "type", "gender", "unionid", "avatar", "corp_name", "corp_full_name",
)  # fmt: skip
RELATION_FIELDS = (
    "id", "customer_id", "staff_id", "remark", "description", "remark_corp_name", "remark_mobiles", "state",
    "add_way", "oper_userid", "added_at",
)  # fmt: skip


def _customers(corp: Corp, userids: dict[int, str], tag_ids: dict[int, str]) -> Iterator[dict[str, Any]]:
    """Customers with at least one active relation (WeCom knows no others), a batch of ids at a time."""
    last = 0
    active = FollowRelation.Status.ACTIVE
    while True:
        batch = list(
            Customer.objects.for_corp(corp)
            .filter(pk__gt=last)
            .order_by("pk")
            .values(*CUSTOMER_FIELDS)[:EXPORT_BATCH]
        )
        if not batch:
            return
        first, last = batch[0]["id"], batch[-1]["id"]
        span = Q(customer_id__gte=first, customer_id__lte=last)
        relations: dict[int, list[dict[str, Any]]] = defaultdict(list)
        rows = (
            FollowRelation.objects.for_corp(corp)
            .filter(span, status=active)
            .order_by("added_at", "id")
            .values(*RELATION_FIELDS)
        )
        tags: dict[int, list[str]] = defaultdict(list)
        for relation_id, tag_pk in (
            RelationTag.objects.for_corp(corp)
            .filter(span, relation__status=active)
            .order_by("id")
            .values_list("relation_id", "tag_id")
        ):
            if tag_pk in tag_ids:
                tags[relation_id].append(tag_ids[tag_pk])
        for row in rows:
            relations[row["customer_id"]].append(
                {
                    "userid": userids[row["staff_id"]],
                    "createtime": _ts(row["added_at"]),
                    "remark": row["remark"],
                    "description": row["description"],
                    "remark_corp_name": row["remark_corp_name"],
                    "remark_mobiles": list(row["remark_mobiles"] or []),
                    "state": row["state"],
                    "add_way": row["add_way"],
                    "oper_userid": row["oper_userid"],
                    "tag_ids": tags.get(row["id"], []),
                }
            )
        for customer in batch:
            follows = relations.get(customer["id"])
            if not follows:
                continue
            yield {
                "external_userid": customer["external_userid"],
                "name": customer["name"] or customer["external_userid"],
                "type": customer["type"],
                "gender": customer["gender"],
                "unionid": customer["unionid"],
                "avatar": customer["avatar"],
                "corp_name": customer["corp_name"],
                "corp_full_name": customer["corp_full_name"],
                "follow_users": follows,
            }


def _groups(corp: Corp, known_staff: set[str]) -> Iterator[dict[str, Any]]:
    """Active customer groups with their current members, one group at a time."""
    last = 0
    while True:
        chats = list(
            GroupChat.objects.for_corp(corp)
            .filter(pk__gt=last, status=GroupChat.Status.ACTIVE)
            .exclude(owner_userid="")
            .order_by("pk")[:EXPORT_BATCH]
        )
        if not chats:
            return
        last = chats[-1].pk
        for chat in chats:
            if chat.owner_userid not in known_staff:
                continue
            members = []
            current = GroupMember.objects.for_corp(corp).filter(group=chat, left_at=None)
            for member in current.order_by("joined_at", "id"):
                if member.type == GroupMember.Type.STAFF and member.userid not in known_staff:
                    continue
                members.append(
                    {
                        "userid": member.userid,
                        "type": member.type,
                        "join_time": _ts(member.joined_at),
                        "join_scene": member.join_scene if member.join_scene in (1, 2, 3) else 1,
                        "invitor": member.invitor_userid,
                        "group_nickname": member.group_nickname,
                        "name": member.name,
                        "unionid": member.unionid,
                    }
                )
            staff_members = {m["userid"] for m in members if m["type"] == GroupMember.Type.STAFF}
            yield {
                "chat_id": chat.chat_id,
                "name": chat.name,
                "owner": chat.owner_userid,
                "create_time": _ts(chat.wecom_created_at or chat.created_at),
                "notice": chat.notice,
                "admins": [a for a in chat.admin_userids if a in staff_members],
                "status": chat.inheritance_status if chat.inheritance_status in (0, 1, 2, 3) else 0,
                "members": members,
            }


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _write_list(out: IO[str], key: str, items: Iterable[dict[str, Any]]) -> int:
    """Write ``"key": [...]`` one item per line; returns how many."""
    out.write(f',\n"{key}":[')
    count = 0
    for item in items:
        out.write(("," if count else "") + "\n" + _dump(item))
        count += 1
    out.write("\n]")
    return count


def export_corp(*, corp: Corp, path: Path, channels: dict[str, str] | None = None) -> ExportReport:
    """Write ``corp`` as a simulator state file (``siyu.simulator.statefile``) to ``path``, streaming.

    WeCom's view of the corp: departments, staff, WeCom tag groups and tags, customers with their active
    relations (remark, mobiles, channel, tags), active groups with their current members, and a contact way
    per channel in ``channels`` (state → name). The file is replaced at once when complete.
    """
    started = time.monotonic()
    report = ExportReport(path=path)
    departments = _departments(corp)
    staff = _staff(corp, root=departments[0]["id"])
    userids = dict(Staff.objects.for_corp(corp).values_list("id", "userid"))
    tag_groups, tag_ids = _tag_groups(corp)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(_dump({"format": STATE_FORMAT, "version": 1})[:-1])
            out.write(',\n"corp":' + _dump({"corpid": corp.corpid, "name": corp.name}))
            _write_list(out, "departments", departments)
            report.staff = _write_list(out, "staff", staff)
            _write_list(out, "tag_groups", tag_groups)
            _write_list(out, "contact_ways", _all_contact_ways(corp, channels or {}))
            relations = 0

            def counted(items: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
                nonlocal relations
                for item in items:
                    relations += len(item["follow_users"])
                    yield item

            report.customers = _write_list(out, "customers", counted(_customers(corp, userids, tag_ids)))
            report.relations = relations
            report.groups = _write_list(out, "groups", _groups(corp, {m["userid"] for m in staff}))
            out.write("\n}\n")
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    report.seconds = time.monotonic() - started
    return report


# --- the demo: set up, run three processes, stop them in order --------------------------------------------


class DemoError(Exception):
    """Why the demo cannot start or had to stop; said to the user as it is."""


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could listen on ``host:port`` now (as the servers do, with SO_REUSEADDR)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _local(host: str) -> str:
    """How this machine reaches a server bound to ``host``."""
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host  # noqa: S104 - only compared


def _no_proxy(env: dict[str, str]) -> None:
    # The processes talk to each other on this machine: never through a proxy set for the outside world.
    for name in ("NO_PROXY", "no_proxy"):
        present = [p for p in env.get(name, "").split(",") if p]
        env[name] = ",".join(dict.fromkeys([*present, "127.0.0.1", "localhost"]))


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """On Linux, a child gets SIGTERM when this supervisor dies, even by SIGKILL: no orphaned servers."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


@dataclasses.dataclass
class Child:
    """One of the demo's processes and its log file."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join("    " + line for line in text[-lines:])


class Stop:
    """Ctrl-C / SIGTERM: the first asks for an orderly stop, a second for a quick one."""

    def __init__(self) -> None:
        self.requested = 0
        signal.signal(signal.SIGINT, self._handle)
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, _frame: object) -> None:
        self.requested += 1
        if self.requested == 2:
            print("\n· stopping now", flush=True)


def _start(name: str, command: list[str], env: dict[str, str], log_dir: Path) -> Child:
    log = log_dir / f"{name}.log"
    with open(log, "ab") as out:
        out.write(f"\n=== siyu demo: {name} started {dt.datetime.now():%Y-%m-%d %H:%M:%S} ===\n".encode())
        out.flush()
        process = subprocess.Popen(  # noqa: S603 - our own command line
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the supervisor only; it stops the children in order
            preexec_fn=_die_with_parent,  # no threads run in this process by now: fork-safe
        )
    return Child(name=name, process=process, log=log)


def _exited(children: list[Child]) -> Child | None:
    return next((c for c in children if c.process.poll() is not None), None)


def _wait_ready(children: list[Child], urls: dict[str, str], stop: Stop) -> None:
    """Wait until every URL answers (any HTTP status below 500); raise if a process exits first."""
    pending = dict(urls)
    deadline = time.monotonic() + READY_TIMEOUT
    with httpx.Client(timeout=2.0, trust_env=False) as http:
        while pending:
            if stop.requested:
                raise DemoError("stopped while starting")
            dead = _exited(children)
            if dead is not None:
                raise DemoError(
                    f"the {dead.name} process exited ({dead.process.returncode}) while starting; "
                    f"the end of {dead.log}:\n{dead.tail()}"
                )
            for name, url in list(pending.items()):
                with contextlib.suppress(httpx.HTTPError):
                    if http.get(url).status_code < 500:
                        del pending[name]
            if time.monotonic() > deadline:
                raise DemoError(f"{', '.join(pending)} did not answer within {READY_TIMEOUT:.0f} s")
            if pending:
                time.sleep(0.2)


def _sim_post(sim_url: str, path: str, body: dict[str, Any], timeout: float = 3.0) -> dict[str, Any] | None:
    try:
        answer = httpx.post(f"{sim_url}/_sim/{path}", json=body, timeout=timeout, trust_env=False)
        result: dict[str, Any] = answer.json()
        return result
    except (httpx.HTTPError, ValueError):
        return None


def _open_inbox_rows(corp: Corp) -> int:
    """Callbacks stored but not applied yet that the worker may take now (later retries do not count)."""
    from siyu.wecom.inbox import OPEN
    from siyu.wecom.models import InboxEvent

    due = Q(next_attempt_at__lte=now() + dt.timedelta(seconds=1)) | Q(status=InboxEvent.Status.PROCESSING)
    return InboxEvent.objects.for_corp(corp).filter(due, status__in=OPEN).count()


def _let_callbacks_in(children: list[Child], sim_url: str, corp: Corp, stop: Stop) -> None:
    """Stop the traffic, let the simulator deliver what it has sent and the worker apply it.

    So the database holds everything the simulator did, and the next start's export agrees with it.
    """
    alive = {c.name for c in children if c.process.poll() is None}
    if not {"simulator", "web", "worker"} <= alive:
        return
    print("· stopping: letting the last callbacks in …", flush=True)
    _sim_post(sim_url, "traffic", {"rate": 0})
    _sim_post(sim_url, "callbacks/wait", {"timeout": 5}, timeout=7)
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while stop.requested < 2 and time.monotonic() < deadline:
        if _open_inbox_rows(corp) == 0:
            return
        time.sleep(0.3)


def _stop_children(children: list[Child]) -> None:
    """SIGTERM each (the simulator first: nothing new arrives), wait, then SIGKILL what is left."""
    for child in children:
        if child.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for child in children:
        try:
            child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"  the {child.name} process did not stop in time: killed", file=sys.stderr, flush=True)
            child.process.kill()
            child.process.wait()


def _ensure_demo_corp(args: argparse.Namespace) -> Corp:
    from siyu.corps.seed import DEMO_CORPID, seed
    from siyu.corps.services import set_corp_credentials
    from siyu.simulator.config import DEFAULT_AES_KEY, DEFAULT_SECRET, DEFAULT_TOKEN

    corp = Corp.objects.filter(corpid=DEMO_CORPID).first()
    if corp is None:
        print(f"· loading demo data ({args.customers:,} customers) …", flush=True)
        report = seed(customers=args.customers, seed_value=args.seed, progress=True)
        print("  " + report.summary(), flush=True)
        corp = report.corp
        from siyu.channels.demo import seed_channels

        made = seed_channels(corp=corp, channels=DEMO_CHANNELS)
        print(f"  {len(made)} channels with their history attributed", flush=True)
        from siyu.segments.demo import seed_segments

        segments = seed_segments(corp=corp)
        print(f"  {len(segments)} segments, e.g. {segments[0].text}" if segments else "", flush=True)
    else:
        print("· demo data already loaded (delete var/ to start over)", flush=True)
    # The simulator's public, fixed credentials: the demo corp talks to nothing but the local simulator.
    set_corp_credentials(corp=corp, secret=DEFAULT_SECRET, token=DEFAULT_TOKEN, aes_key=DEFAULT_AES_KEY)
    return corp


def _kick_worker(corp: Corp) -> None:
    """Work left from the last run (callbacks stored but not applied, unsent writes) is picked up at once,
    and a reconciliation is scheduled (the schedule only starts after a first sync otherwise)."""
    from siyu.wecom.inbox import drain_inbox_task
    from siyu.wecom.outbox import dispatch
    from siyu.wecom.reconcile import schedule_reconciliation

    drain_inbox_task.enqueue(corp_id=corp.pk)
    dispatch()
    schedule_reconciliation(corp=corp)


def _status_line(corp: Corp, started_with: int) -> tuple[str, int]:
    customers = Customer.objects.for_corp(corp).count()
    return (
        f"· {dt.datetime.now():%H:%M:%S}  {customers:,} customers ({customers - started_with:+,} this run), "
        f"{_open_inbox_rows(corp)} callbacks waiting",
        customers,
    )


def run_demo(args: argparse.Namespace, *, data_dir: Path) -> int:
    """Set up (migrate, seed, export) and run web, worker and simulator until Ctrl-C."""
    from django.core.management import call_command

    from siyu.config.cli import _ensure_admin

    host, port, sim_port = args.host, args.port, args.sim_port
    if port == sim_port:
        raise DemoError("--port and --sim-port must differ")
    for what, bind_host, number, option in (
        ("the console", host, port, "--port"),
        ("the WeCom simulator", "127.0.0.1", sim_port, "--sim-port"),
    ):
        if not port_is_free(bind_host, number):
            raise DemoError(
                f"port {number} on {bind_host} is taken, so {what} cannot listen there "
                f"(is a demo already running?); choose another with {option} N"
            )
    if args.traffic < 0:
        raise DemoError("--traffic must be 0 or more")

    print("· migrating the database …", flush=True)
    call_command("migrate", interactive=False, verbosity=0)
    corp = _ensure_demo_corp(args)
    password_file = data_dir / "demo-admin-password"
    _username, password = _ensure_admin("admin", None, corp.corpid)
    if password:
        password_file.write_text(password)
        password_file.chmod(0o600)
    shown_password = password or (
        password_file.read_text().strip() if password_file.exists() else "(unchanged)"
    )
    print("· exporting the corp for the WeCom simulator …", flush=True)
    exported = export_corp(corp=corp, path=data_dir / STATE_FILE, channels=DEMO_CHANNELS)
    print("  " + exported.summary(), flush=True)
    _kick_worker(corp)

    local, sim_url = _local(host), f"http://127.0.0.1:{sim_port}"
    console_url = f"http://{local}:{port}"
    siyu = [sys.executable, "-m", "siyu.config.cli"]
    env = dict(os.environ)
    _no_proxy(env)
    siyu_env = {**env, "WECOM_API_BASE": f"{sim_url}/cgi-bin/"}
    log_dir = data_dir / "log"
    log_dir.mkdir(parents=True, exist_ok=True)
    simulator = [
        *siyu, "simulator", "--state", str(data_dir / STATE_FILE),
        "--host", "127.0.0.1", "--port", str(sim_port),
        "--callback-url", f"{console_url}/wecom/callback/{corp.corpid}/",
        # Traffic starts once the console answers (below), so no early callback meets a closed port.
        "--traffic", "0", "--seed", str(secrets.randbelow(2**31)),
        # Simulated staff confirm mass messages 15–75 s after they are sent; one in five only once reminded.
        "--msg-confirm-delay", str(DEMO_CONFIRM_DELAY), "--msg-confirm-spread", str(DEMO_CONFIRM_SPREAD),
        "--msg-confirm-share", str(DEMO_CONFIRM_SHARE),
    ]  # fmt: skip
    stop = Stop()
    children: list[Child] = []
    exit_code = 0
    try:
        print("· starting the console, the worker and the WeCom simulator …", flush=True)
        children = [
            _start("simulator", simulator, env, log_dir),
            _start("web", [*siyu, "serve", "--host", host, "--port", str(port)], siyu_env, log_dir),
            _start("worker", [*siyu, "worker"], siyu_env, log_dir),
        ]
        ready = {"console": f"{console_url}/login/", "simulator": f"{sim_url}/_sim/state"}
        _wait_ready(children, ready, stop)
        if args.traffic > 0 and _sim_post(sim_url, "traffic", {"rate": args.traffic}) is None:
            raise DemoError("the WeCom simulator did not take the traffic rate")
        traffic = f"{args.traffic:g} new customers a minute" if args.traffic > 0 else "off (--traffic 0)"
        print(
            "\n  Siyu is running.\n"
            f"  console:    {console_url}/\n"
            f"  API docs:   {console_url}/api/v1/docs\n"
            f"  login:      admin / {shown_password}\n"
            f"  WeCom:      simulated at {sim_url}/ (state: {sim_url}/_sim/state), corp {corp.corpid}\n"
            f"  traffic:    {traffic}, arriving through encrypted callbacks\n"
            f"  logs:       {log_dir}/ (web, worker, simulator)\n"
            "  Ctrl-C stops everything.\n",
            flush=True,
        )
        line, started_with = _status_line(corp, 0)
        last_status, last_count = time.monotonic(), started_with
        while not stop.requested:
            dead = _exited(children)
            if dead is not None:
                print(
                    f"error: the {dead.name} process exited ({dead.process.returncode}); stopping. "
                    f"The end of {dead.log}:\n{dead.tail()}",
                    file=sys.stderr,
                    flush=True,
                )
                exit_code = dead.process.returncode or 1
                break
            if time.monotonic() - last_status >= STATUS_EVERY:
                line, count = _status_line(corp, started_with)
                if count != last_count:
                    print(line, flush=True)
                last_status, last_count = time.monotonic(), count
            time.sleep(0.3)
        if not exit_code and stop.requested < 2:
            _let_callbacks_in(children, sim_url, corp, stop)
    except DemoError as exc:
        if not stop.requested:  # a Ctrl-C while starting is no error
            print(f"error: {exc}", file=sys.stderr, flush=True)
            exit_code = 2
    finally:
        _stop_children(children)
    print("stopped.", flush=True)
    return exit_code
