"""The simulated corp's data: org chart, customers and follow relations, tags, groups, contact ways, tasks.

One re-entrant lock guards everything (``CorpState.lock``): API handlers, client-side actions, the scheduler
and the traffic driver all take it, so every answer sees one consistent corp.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import random
import string
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

CHINA = timezone(timedelta(hours=8))  # WeCom's natural days and months are Beijing time
_ALNUM = string.ascii_letters + string.digits
_BASE64_TO_ALNUM = bytes.maketrans(b"+/", b"Ab")


def random_alnum(rng: random.Random, count: int) -> str:
    """``count`` random letters and digits: base64 of random bits, with "+" and "/" mapped to letters."""
    raw = rng.getrandbits(count * 6 + 8).to_bytes((count * 6 + 15) // 8, "big")
    return base64.b64encode(raw)[:count].translate(_BASE64_TO_ALNUM).decode()


@dataclass(slots=True)
class Department:
    """A department of the address book (部门)."""

    id: int
    name: str
    name_en: str
    parentid: int
    order: int
    leaders: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Follow:
    """A follow relation: one staff member's view of one customer (follow_user / follow_info)."""

    userid: str
    external_userid: str
    createtime: int
    seq: int
    add_way: int = 1
    state: str = ""
    oper_userid: str = ""
    remark: str = ""
    description: str = ""
    remark_corp_name: str = ""
    remark_mobiles: list[str] = field(default_factory=list)
    tag_ids: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Staff:
    """A member of the corp (成员); ``customer_contact`` means 客户联系 permission."""

    userid: str
    name: str
    departments: list[int]
    main_department: int
    position: str
    mobile: str
    gender: int
    email: str
    alias: str = ""
    status: int = 1  # 1 activated, 2 disabled, 4 not activated, 5 left the corp
    customer_contact: bool = True
    is_leader_in_dept: list[int] = field(default_factory=list)
    open_userid: str = ""
    resigned_at: int | None = None
    # Follow relations in creation order; the parallel seq list makes cursors a bisect.
    follow_seqs: list[int] = field(default_factory=list)
    follow_list: list[Follow] = field(default_factory=list)
    avatar_url: str | None = None  # set by a state file; None: one derived from the userid

    @property
    def avatar(self) -> str:
        if self.avatar_url is not None:
            return self.avatar_url
        digest = hashlib.md5(self.userid.encode(), usedforsecurity=False).hexdigest()
        return f"https://wework.qpic.cn/wwhead/{digest}/0"


@dataclass(slots=True)
class Customer:
    """An external contact (外部联系人) and its relations with the corp's staff."""

    external_userid: str
    name: str
    type: int  # 1 WeChat user, 2 WeCom user
    gender: int
    unionid: str
    corp_name: str = ""
    corp_full_name: str = ""
    position: str = ""
    follows: dict[str, Follow] = field(default_factory=dict)
    transfers: list[int] = field(default_factory=list)  # in-service transfers (2 per 90 days)
    avatar_url: str | None = None  # set by a state file; None: one derived from the external_userid

    @property
    def avatar(self) -> str:
        if self.avatar_url is not None:
            return self.avatar_url
        digest = hashlib.md5(self.external_userid.encode(), usedforsecurity=False).hexdigest()
        return f"http://wx.qlogo.cn/mmhead/{digest}/0"


@dataclass(slots=True)
class Tag:
    """A corp customer tag (企业客户标签)."""

    id: str
    name: str
    group_id: str
    create_time: int
    order: int
    deleted: bool = False


@dataclass(slots=True)
class TagGroup:
    """A corp tag group; its tags in creation order."""

    group_id: str
    name: str
    create_time: int
    order: int
    tag_ids: list[str] = field(default_factory=list)
    deleted: bool = False


@dataclass(slots=True)
class GroupMember:
    """A member of a customer group: staff (type 1) or external contact (type 2)."""

    userid: str
    type: int
    join_time: int
    join_scene: int  # 1 direct invite, 2 invite link, 3 group QR code
    invitor: str = ""
    group_nickname: str = ""
    name: str = ""
    unionid: str = ""


@dataclass(slots=True)
class GroupChat:
    """A customer group (客户群)."""

    chat_id: str
    name: str
    owner: str
    create_time: int
    seq: int
    notice: str = ""
    members: dict[str, GroupMember] = field(default_factory=dict)
    admins: list[str] = field(default_factory=list)
    status: int = 0  # 0 normal, 1 owner left (待继承), 2 inheriting, 3 inherited
    dismissed: bool = False

    @property
    def member_version(self) -> str:
        joined = ",".join(sorted(self.members))
        return hashlib.md5(joined.encode(), usedforsecurity=False).hexdigest()


@dataclass(slots=True)
class ContactWay:
    """A 「联系我」 configuration; ``state`` attributes the adds it brings."""

    config_id: str
    type: int
    scene: int
    create_time: int
    seq: int
    style: int = 1
    remark: str = ""
    skip_verify: bool = True
    state: str = ""
    qr_code: str = ""
    user: list[str] = field(default_factory=list)
    party: list[int] = field(default_factory=list)
    is_temp: bool = False
    expires_in: int = 0
    chat_expires_in: int = 0
    unionid: str = ""
    conclusions: dict[str, Any] | None = None
    turn: int = 0  # a multi-member way hands scans to its members in turn (排队); the next one's index


@dataclass(slots=True)
class WelcomeCode:
    """A welcome_code handed out with an add event: valid for a short time, usable once."""

    code: str
    userid: str
    external_userid: str
    issued_at: float
    used: bool = False
    message: dict[str, Any] | None = None  # what was sent, for tests (kept in memory only)


@dataclass(slots=True)
class GroupWelcomeTemplate:
    """A group welcome template (入群欢迎语素材); ``owned``: made through the API by this corp's app, so
    the app may edit and delete it (one made in the admin console may not be: 41058)."""

    template_id: str
    create_time: int
    content: dict[str, Any]  # text and the one kept attachment, as get answers them
    notify: bool = True
    owned: bool = True


@dataclass(slots=True)
class Recipient:
    """One customer (or group) of a mass send, with its send status 0/1/2/3."""

    userid: str
    external_userid: str = ""
    chat_id: str = ""
    status: int = 0
    send_time: int | None = None


@dataclass(slots=True)
class SenderTask:
    """One staff member's part of a mass send (status 0 unsent, 2 sent)."""

    userid: str
    status: int = 0
    send_time: int | None = None
    confirm_at: float = 0.0


@dataclass(slots=True)
class MsgTemplate:
    """An 企业群发 task created by add_msg_template."""

    msgid: str
    chat_type: str
    create_time: int
    seq: int
    sender: str = ""
    text: dict[str, Any] | None = None
    attachments: list[dict[str, Any]] = field(default_factory=list)
    allow_select: bool = False
    tasks: dict[str, SenderTask] = field(default_factory=dict)
    recipients: dict[str, list[Recipient]] = field(default_factory=dict)
    cancelled: bool = False
    reminds: list[float] = field(default_factory=list)


@dataclass(slots=True)
class Transfer:
    """A customer hand-over (在职继承 ``onjob`` or 离职继承 ``resigned``)."""

    kind: str
    handover: str
    takeover: str
    external_userid: str
    created: int
    takeover_time: int
    seq: int
    status: int = 2  # 1 done, 2 waiting, 3 refused, 4 takeover over its customer cap
    completed: bool = False


@dataclass(slots=True)
class Moment:
    """A moment (客户朋友圈) task and, once created, the moment itself."""

    jobid: str
    moment_id: str
    create_time: int
    seq: int
    job_done_at: float
    text: dict[str, Any] | None = None
    attachments: list[dict[str, Any]] = field(default_factory=list)
    tag_list: list[str] = field(default_factory=list)
    senders: dict[str, int] = field(default_factory=dict)  # userid → publish_status 0/1
    publish_at: dict[str, float] = field(default_factory=dict)
    invalid_users: list[str] = field(default_factory=list)
    invalid_departments: list[int] = field(default_factory=list)
    invalid_tags: list[str] = field(default_factory=list)
    cancelled: bool = False


class CorpState:
    """All data of the simulated corp, its indexes and the id factories."""

    def __init__(self, *, corpid: str, corp_name: str, seed: int):
        self.lock = threading.RLock()
        self.corpid = corpid
        self.corp_name = corp_name
        self.rng = random.Random(seed ^ 0x5EED)  # noqa: S311 - simulation, separate from generation
        self.departments: dict[int, Department] = {}
        self.staff: dict[str, Staff] = {}
        self.customers: dict[str, Customer] = {}
        self.customer_ids: list[str] = []  # for uniform random picks
        self.tag_groups: dict[str, TagGroup] = {}
        self.tags: dict[str, Tag] = {}
        self.groups: dict[str, GroupChat] = {}
        self.contact_ways: dict[str, ContactWay] = {}
        self.welcome_codes: dict[str, WelcomeCode] = {}
        self.msg_templates: dict[str, MsgTemplate] = {}
        self.group_welcome_templates: dict[str, GroupWelcomeTemplate] = {}
        self.transfers: list[Transfer] = []
        self.moments: dict[str, Moment] = {}
        self.moments_by_job: dict[str, str] = {}
        self.media: dict[str, dict[str, Any]] = {}
        self.deletions: list[tuple[int, str, str, str]] = []  # (time, kind, userid, external_userid)
        self.received: dict[str, list[int]] = {}  # customer or group id → mass messages received (quota)
        self._seq = 0

    # --- ids -------------------------------------------------------------------------------------------

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def random_id(self, prefix: str, length: int = 32, alphabet: str | None = None) -> str:
        if alphabet is None:
            return prefix + random_alnum(self.rng, length - len(prefix))
        return prefix + "".join(self.rng.choices(alphabet, k=length - len(prefix)))

    def new_external_userid(self, customer_type: int = 1) -> str:
        while True:
            candidate = self.random_id("wm" if customer_type == 1 else "wo")
            if candidate not in self.customers:
                return candidate

    def new_tag_id(self) -> str:
        while True:
            candidate = self.random_id("et")
            if candidate not in self.tags and candidate not in self.tag_groups:
                return candidate

    # --- time ------------------------------------------------------------------------------------------

    @staticmethod
    def day_start(timestamp: float) -> int:
        """Beijing midnight at or before ``timestamp``."""
        moment = datetime.fromtimestamp(timestamp, CHINA)
        return int(moment.replace(hour=0, minute=0, second=0, microsecond=0).timestamp())

    # --- staff and relations ---------------------------------------------------------------------------

    def active_staff(self, userid: str) -> Staff | None:
        member = self.staff.get(userid)
        if member is None or member.status == 5:
            return None
        return member

    def follow_users(self) -> list[str]:
        return [s.userid for s in self.staff.values() if s.customer_contact and s.status != 5]

    def department_and_children(self, root: int) -> list[int]:
        found = [root]
        index = 0
        while index < len(found):
            parent = found[index]
            found.extend(d.id for d in self.departments.values() if d.parentid == parent and d.id != parent)
            index += 1
        return found

    def staff_in_departments(self, department_ids: list[int]) -> list[str]:
        wanted = set(department_ids)
        return [s.userid for s in self.staff.values() if s.status != 5 and wanted & set(s.departments)]

    def add_customer(self, customer: Customer) -> Customer:
        self.customers[customer.external_userid] = customer
        self.customer_ids.append(customer.external_userid)
        return customer

    def add_follow(
        self,
        customer: Customer,
        staff: Staff,
        *,
        createtime: int,
        add_way: int,
        state: str = "",
        oper_userid: str | None = None,
        remark: str = "",
        description: str = "",
        tag_ids: list[str] | None = None,
    ) -> Follow:
        follow = Follow(
            userid=staff.userid,
            external_userid=customer.external_userid,
            createtime=createtime,
            seq=self.next_seq(),
            add_way=add_way,
            state=state,
            oper_userid=oper_userid if oper_userid is not None else customer.external_userid,
            remark=remark,
            description=description,
            tag_ids=list(tag_ids or []),
        )
        customer.follows[staff.userid] = follow
        staff.follow_seqs.append(follow.seq)
        staff.follow_list.append(follow)
        return follow

    def remove_follow(self, customer: Customer, userid: str) -> Follow | None:
        follow = customer.follows.pop(userid, None)
        member = self.staff.get(userid)
        if follow is not None and member is not None:
            index = bisect.bisect_left(member.follow_seqs, follow.seq)
            if index < len(member.follow_seqs) and member.follow_seqs[index] == follow.seq:
                del member.follow_seqs[index]
                del member.follow_list[index]
        return follow

    def follows_after(self, staff: Staff, seq: int) -> tuple[int, list[Follow]]:
        """The index of the first relation after ``seq`` and the staff's relation list."""
        return bisect.bisect_right(staff.follow_seqs, seq), staff.follow_list

    # --- tags ------------------------------------------------------------------------------------------

    def live_tags(self) -> int:
        return sum(1 for t in self.tags.values() if not t.deleted)

    def group_by_name(self, name: str) -> TagGroup | None:
        for group in self.tag_groups.values():
            if not group.deleted and group.name == name:
                return group
        return None

    def drop_tag_from_relations(self, tag_ids: set[str]) -> None:
        for customer in self.customers.values():
            for follow in customer.follows.values():
                if follow.tag_ids and tag_ids.intersection(follow.tag_ids):
                    follow.tag_ids = [t for t in follow.tag_ids if t not in tag_ids]

    def snapshot_counts(self) -> dict[str, int]:
        return {
            "departments": len(self.departments),
            "staff": sum(1 for s in self.staff.values() if s.status != 5),
            "customers": len(self.customers),
            "follows": sum(len(s.follow_list) for s in self.staff.values()),
            "tag_groups": sum(1 for g in self.tag_groups.values() if not g.deleted),
            "tags": self.live_tags(),
            "groups": sum(1 for g in self.groups.values() if not g.dismissed),
            "contact_ways": len(self.contact_ways),
            "msg_templates": len(self.msg_templates),
            "group_welcome_templates": len(self.group_welcome_templates),
            "transfers": len(self.transfers),
            "moments": len(self.moments),
        }
