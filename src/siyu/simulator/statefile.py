"""A simulated corp loaded from a JSON file instead of generated (``siyu simulator --state FILE``).

``siyu demo`` writes such a file from Siyu's own demo corp, so the simulator and Siyu start out knowing the
same staff, tags, customers and relations. Any other tool can write one too: the format is plain JSON in
WeCom's own vocabulary, and nothing here knows Siyu's models.

The format (version 1). Keys not listed are refused, so a typo is an error rather than a silent default;
optional keys show their default after ``=``. Times are Unix seconds; "now" is the simulator's clock at load::

    {
      "format": "siyu-simulator-state", "version": 1,
      "corp": {"corpid": str, "name": str},                  # optional; replaces --corpid and the corp name
      "departments": [                                       # at least one
        {"id": int ≥ 1, "name": str, "parentid": int = 0 (0: a root), "order": int = 0,
         "name_en": str = "", "leaders": [userid] = []}
      ],
      "staff": [
        {"userid": str, "name": str, "departments": [department id, …] (at least one),
         "main_department": int = first of departments, "status": 1|2|4|5 = 1 (5: left the corp),
         "customer_contact": bool = true, "position": str = "", "mobile": str = "", "email": str = "",
         "alias": str = "", "gender": 0|1|2 = 0, "avatar": str = derived from the userid,
         "open_userid": str = random}
      ],
      "tag_groups": [                                        # = []; WeCom lists larger orders first
        {"group_id": str, "name": str, "order": int = 0 (larger sorts first, as in WeCom),
         "create_time": int = now, "tags": [{"id": str, "name": str, "order": int = 0, "create_time": int}]}
      ],
      "contact_ways": [                                      # = []; 「联系我」 configurations
        {"config_id": str, "state": str = "" (≤ 30 characters), "remark": str = "", "type": 1|2,
         "scene": 1|2 = 2, "user": [userid] = [], "party": [department id] = [] (user or party non-empty),
         "create_time": int = now, "qr_code": str = "", "skip_verify": bool = true, "style": int = 1}
      ],
      "customers": [                                         # = []
        {"external_userid": str, "name": str, "type": 1|2 = 1, "gender": 0|1|2 = 0, "unionid": str = "",
         "avatar": str = derived from the external_userid, "corp_name": str = "", "corp_full_name": str = "",
         "position": str = "",
         "follow_users": [                                   # = []; one per member, oldest first
           {"userid": str, "createtime": int = now, "remark": str = "", "description": str = "",
            "remark_corp_name": str = "", "remark_mobiles": [str] = [], "state": str = "",
            "add_way": int = 0, "oper_userid": str = "", "tag_ids": [tag id] = []}
         ]}
      ],
      "groups": [                                            # = []; customer groups
        {"chat_id": str, "name": str = "", "owner": userid, "create_time": int = now, "notice": str = "",
         "admins": [userid] = [], "status": 0|1|2|3 = 0,
         "members": [{"userid": str, "type": 1 (member) | 2 (external contact),
                      "join_time": int = create_time, "join_scene": 1|2|3 = 1, "invitor": str = "",
                      "group_nickname": str = "",
                      "name": str = the member's or customer's name, "unionid": str = the customer's}]}
      ]
    }

Every reference is checked: a member's departments, a relation's member and tags, a contact way's members
and departments, a group's owner and members of type 1. Ids are unique within their kind (tag and group ids
share one space, as in WeCom). A broken file is refused as a whole with ``StateFileError``, whose message
says where (``customers[12].follow_users[0].userid``) and what is wrong.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from siyu.simulator.state import (
    ContactWay,
    CorpState,
    Customer,
    Department,
    Follow,
    GroupChat,
    GroupMember,
    Staff,
    Tag,
    TagGroup,
)

FORMAT = "siyu-simulator-state"
VERSION = 1
STATE_MAX = 30  # §4.3: a contact way's state is at most 30 characters
STAFF_STATUSES = (1, 2, 4, 5)  # user/get status: activated, disabled, not activated, left the corp
GENDERS = (0, 1, 2)


class StateFileError(ValueError):
    """A state file that cannot be loaded; the message names the place and the problem."""


# --- reading typed values with their place in the file ----------------------------------------------


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false"}.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__
    )


class _Object:
    """One JSON object of the file: typed getters that name ``path`` in their errors, unknown keys refused."""

    def __init__(self, value: object, path: str, allowed: tuple[str, ...]):
        if not isinstance(value, dict):
            raise StateFileError(f"{path}: expected an object, got {_type_name(value)}")
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            raise StateFileError(f"{path}: unknown key {unknown[0]!r} (allowed: {', '.join(allowed)})")
        self.data: dict[str, Any] = value
        self.path = path

    def where(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def _get(self, key: str, required: bool) -> Any:
        if key not in self.data or self.data[key] is None:
            if required:
                raise StateFileError(f"{self.where(key)}: required")
            return None
        return self.data[key]

    def text(self, key: str, default: str | None = "", *, required: bool = False, max_len: int = 0) -> Any:
        value = self._get(key, required)
        if value is None:
            return default
        if not isinstance(value, str):
            raise StateFileError(f"{self.where(key)}: expected a string, got {_type_name(value)}")
        if required and not value:
            raise StateFileError(f"{self.where(key)}: must not be empty")
        if max_len and len(value) > max_len:
            raise StateFileError(f"{self.where(key)}: at most {max_len} characters, got {len(value)}")
        return value

    def number(
        self, key: str, default: int | None = 0, *, required: bool = False, choices: tuple[int, ...] = ()
    ) -> Any:
        value = self._get(key, required)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise StateFileError(f"{self.where(key)}: expected a whole number, got {_type_name(value)}")
        if choices and value not in choices:
            raise StateFileError(
                f"{self.where(key)}: must be one of {', '.join(map(str, choices))}, got {value}"
            )
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self._get(key, False)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise StateFileError(f"{self.where(key)}: expected true or false, got {_type_name(value)}")
        return value

    def items(self, key: str, *, required: bool = False) -> list[Any]:
        value = self._get(key, required)
        if value is None:
            return []
        if not isinstance(value, list):
            raise StateFileError(f"{self.where(key)}: expected a list, got {_type_name(value)}")
        return value

    def texts(self, key: str) -> list[str]:
        items = self.items(key)
        for index, item in enumerate(items):
            if not isinstance(item, str) or not item:
                raise StateFileError(f"{self.where(key)}[{index}]: expected a non-empty string")
        return list(items)

    def numbers(self, key: str, *, required: bool = False) -> list[int]:
        items = self.items(key, required=required)
        for index, item in enumerate(items):
            if isinstance(item, bool) or not isinstance(item, int):
                raise StateFileError(f"{self.where(key)}[{index}]: expected a whole number")
        if required and not items:
            raise StateFileError(f"{self.where(key)}: must not be empty")
        return list(items)


def _objects(parent: _Object, key: str, allowed: tuple[str, ...]) -> list[_Object]:
    return [_Object(item, f"{parent.where(key)}[{i}]", allowed) for i, item in enumerate(parent.items(key))]


def _unique(seen: set[str], value: str, place: str, what: str) -> None:
    if value in seen:
        raise StateFileError(f"{place}: duplicate {what} {value!r}")
    seen.add(value)


# --- reading and loading ---------------------------------------------------------------------------------


def read_state_file(path: str | Path) -> dict[str, Any]:
    """The file's JSON object (not yet checked beyond its format marker); ``StateFileError`` if unreadable."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise StateFileError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StateFileError(f"{path}: cannot read it ({exc})") from None
    except json.JSONDecodeError as exc:
        raise StateFileError(
            f"{path}: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise StateFileError(f'{path}: not a simulator state file (expected "format": "{FORMAT}")')
    if data.get("version") != VERSION:
        raise StateFileError(f"{path}: version {data.get('version')!r} is not supported (expected {VERSION})")
    return data


def corp_of(data: dict[str, Any]) -> tuple[str | None, str | None]:
    """The corpid and corp name the file sets (None where it sets none)."""
    corp = _Object(data.get("corp") or {}, "corp", ("corpid", "name"))
    return corp.text("corpid", None), corp.text("name", None)


TOP = (
    "format", "version", "corp", "departments", "staff", "tag_groups", "contact_ways", "customers", "groups",
)  # fmt: skip


def load_corp(state: CorpState, data: dict[str, Any], *, now: int) -> None:
    """Fill an empty ``state`` from a state file's object. Checks everything before the state is touched."""
    root = _Object(data, "", TOP)
    corp_of(data)
    with state.lock:
        if state.staff or state.customers or state.departments:
            raise StateFileError("the simulated corp is not empty")
        loader = _Loader(state, now)
        departments = loader.departments(root)
        staff = loader.staff(root)
        groups, tags = loader.tags(root)
        ways = loader.contact_ways(root)
        customers = loader.customers(root)
        chats = loader.groups(root)
        # Everything checked: now the state.
        state.departments.update(departments)
        state.staff.update(staff)
        state.tag_groups.update(groups)
        state.tags.update(tags)
        for way in ways:
            way.seq = state.next_seq()
            state.contact_ways[way.config_id] = way
        for customer, follows in customers:
            state.add_customer(customer)
            for follow in follows:
                follow.seq = state.next_seq()
                customer.follows[follow.userid] = follow
                member = state.staff[follow.userid]
                member.follow_seqs.append(follow.seq)
                member.follow_list.append(follow)
        for chat in chats:
            chat.seq = state.next_seq()
            state.groups[chat.chat_id] = chat


class _Loader:
    """Builds the state's objects from the file, checking references as it goes."""

    def __init__(self, state: CorpState, now: int):
        self.state = state
        self.now = now
        self.departments_by_id: dict[int, Department] = {}
        self.staff_by_id: dict[str, Staff] = {}
        self.tag_ids: set[str] = set()
        self.customer_names: dict[str, tuple[str, str]] = {}
        self._leaders: list[tuple[_Object, list[str]]] = []

    def departments(self, root: _Object) -> dict[int, Department]:
        items = _objects(root, "departments", ("id", "name", "parentid", "order", "name_en", "leaders"))
        if not items:
            raise StateFileError("departments: at least one department is needed (the root)")
        leaders: list[tuple[_Object, list[str]]] = []
        for item in items:
            dept_id = item.number("id", required=True)
            if dept_id < 1:
                raise StateFileError(f"{item.where('id')}: must be 1 or more")
            if dept_id in self.departments_by_id:
                raise StateFileError(f"{item.where('id')}: duplicate department id {dept_id}")
            self.departments_by_id[dept_id] = Department(
                id=dept_id,
                name=item.text("name", required=True),
                name_en=item.text("name_en"),
                parentid=item.number("parentid"),
                order=item.number("order"),
            )
            leaders.append((item, item.texts("leaders")))
        for item in items:
            parent = item.number("parentid")
            if parent and parent not in self.departments_by_id:
                raise StateFileError(f"{item.where('parentid')}: no department {parent}")
        self._leaders = leaders
        return self.departments_by_id

    def _department(self, item: _Object, key: str, dept_id: int) -> None:
        if dept_id not in self.departments_by_id:
            raise StateFileError(f"{item.where(key)}: no department {dept_id}")

    def staff(self, root: _Object) -> dict[str, Staff]:
        allowed = (
            "userid", "name", "departments", "main_department", "status", "customer_contact", "position",
            "mobile", "email", "alias", "gender", "avatar", "open_userid",
        )  # fmt: skip
        for item in _objects(root, "staff", allowed):
            userid = item.text("userid", required=True, max_len=64)
            if userid in self.staff_by_id:
                raise StateFileError(f"{item.where('userid')}: duplicate userid {userid!r}")
            departments = item.numbers("departments", required=True)
            for dept_id in departments:
                self._department(item, "departments", dept_id)
            main = item.number("main_department", departments[0])
            if main not in departments:
                raise StateFileError(f"{item.where('main_department')}: {main} is not one of its departments")
            self.staff_by_id[userid] = Staff(
                userid=userid,
                name=item.text("name", required=True),
                departments=departments,
                main_department=main,
                position=item.text("position"),
                mobile=item.text("mobile"),
                gender=item.number("gender", choices=GENDERS),
                email=item.text("email"),
                alias=item.text("alias"),
                status=item.number("status", 1, choices=STAFF_STATUSES),
                customer_contact=item.flag("customer_contact", True),
                is_leader_in_dept=[0 for _ in departments],
                open_userid=item.text("open_userid", None) or self.state.random_id("wo"),
                avatar_url=item.text("avatar", None),
            )
        for item, userids in self._leaders:
            department = self.departments_by_id[item.number("id")]
            for userid in userids:
                member = self._member(item, "leaders", userid)
                department.leaders.append(userid)
                if department.id in member.departments:
                    member.is_leader_in_dept[member.departments.index(department.id)] = 1
        return self.staff_by_id

    def _member(self, item: _Object, key: str, userid: str) -> Staff:
        member = self.staff_by_id.get(userid)
        if member is None:
            raise StateFileError(f"{item.where(key)}: no staff member {userid!r}")
        return member

    def tags(self, root: _Object) -> tuple[dict[str, TagGroup], dict[str, Tag]]:
        groups: dict[str, TagGroup] = {}
        tags: dict[str, Tag] = {}
        ids: set[str] = set()
        for item in _objects(root, "tag_groups", ("group_id", "name", "order", "create_time", "tags")):
            group_id = item.text("group_id", required=True, max_len=64)
            _unique(ids, group_id, item.where("group_id"), "tag or group id")
            created = item.number("create_time", self.now)
            group = TagGroup(
                group_id=group_id,
                name=item.text("name", required=True),
                create_time=created,
                order=item.number("order"),
            )
            names: set[str] = set()
            for tag_item in _objects(item, "tags", ("id", "name", "order", "create_time")):
                tag_id = tag_item.text("id", required=True, max_len=64)
                _unique(ids, tag_id, tag_item.where("id"), "tag or group id")
                name = tag_item.text("name", required=True)
                _unique(names, name, tag_item.where("name"), "tag name in this group:")
                tags[tag_id] = Tag(
                    id=tag_id,
                    name=name,
                    group_id=group_id,
                    create_time=tag_item.number("create_time", created),
                    order=tag_item.number("order"),
                )
                group.tag_ids.append(tag_id)
            groups[group_id] = group
        self.tag_ids = set(tags)
        return groups, tags

    def contact_ways(self, root: _Object) -> list[ContactWay]:
        allowed = (
            "config_id", "state", "remark", "type", "scene", "user", "party", "create_time", "qr_code",
            "skip_verify", "style",
        )  # fmt: skip
        ways: list[ContactWay] = []
        seen: set[str] = set()
        for item in _objects(root, "contact_ways", allowed):
            config_id = item.text("config_id", required=True, max_len=64)
            _unique(seen, config_id, item.where("config_id"), "config_id")
            users = item.texts("user")
            for userid in users:
                self._member(item, "user", userid)
            party = item.numbers("party")
            for dept_id in party:
                self._department(item, "party", dept_id)
            if not users and not party:
                raise StateFileError(f"{item.path}: needs a user or a party")
            ways.append(
                ContactWay(
                    config_id=config_id,
                    type=item.number("type", 1 if len(users) == 1 and not party else 2, choices=(1, 2)),
                    scene=item.number("scene", 2, choices=(1, 2)),
                    create_time=item.number("create_time", self.now),
                    seq=0,
                    style=item.number("style", 1),
                    remark=item.text("remark"),
                    skip_verify=item.flag("skip_verify", True),
                    state=item.text("state", max_len=STATE_MAX),
                    qr_code=item.text("qr_code"),
                    user=users,
                    party=party,
                )
            )
        return ways

    def customers(self, root: _Object) -> list[tuple[Customer, list[Follow]]]:
        allowed = (
            "external_userid", "name", "type", "gender", "unionid", "avatar", "corp_name", "corp_full_name",
            "position", "follow_users",
        )  # fmt: skip
        follow_keys = (
            "userid", "createtime", "remark", "description", "remark_corp_name", "remark_mobiles", "state",
            "add_way", "oper_userid", "tag_ids",
        )  # fmt: skip
        loaded: list[tuple[Customer, list[Follow]]] = []
        for item in _objects(root, "customers", allowed):
            external_userid = item.text("external_userid", required=True, max_len=64)
            if external_userid in self.customer_names:
                raise StateFileError(
                    f"{item.where('external_userid')}: duplicate external_userid {external_userid!r}"
                )
            customer = Customer(
                external_userid=external_userid,
                name=item.text("name", required=True),
                type=item.number("type", 1, choices=(1, 2)),
                gender=item.number("gender", choices=GENDERS),
                unionid=item.text("unionid"),
                corp_name=item.text("corp_name"),
                corp_full_name=item.text("corp_full_name"),
                position=item.text("position"),
                avatar_url=item.text("avatar", None),
            )
            self.customer_names[external_userid] = (customer.name, customer.unionid)
            follows: list[Follow] = []
            members: set[str] = set()
            for follow_item in _objects(item, "follow_users", follow_keys):
                userid = follow_item.text("userid", required=True)
                self._member(follow_item, "userid", userid)
                _unique(members, userid, follow_item.where("userid"), "relation with")
                tag_ids = follow_item.texts("tag_ids")
                for tag_id in tag_ids:
                    if tag_id not in self.tag_ids:
                        raise StateFileError(f"{follow_item.where('tag_ids')}: no tag {tag_id!r}")
                follows.append(
                    Follow(
                        userid=userid,
                        external_userid=external_userid,
                        createtime=follow_item.number("createtime", self.now),
                        seq=0,
                        add_way=follow_item.number("add_way"),
                        state=follow_item.text("state", max_len=STATE_MAX),
                        oper_userid=follow_item.text("oper_userid"),
                        remark=follow_item.text("remark"),
                        description=follow_item.text("description"),
                        remark_corp_name=follow_item.text("remark_corp_name"),
                        remark_mobiles=follow_item.texts("remark_mobiles"),
                        tag_ids=list(dict.fromkeys(tag_ids)),
                    )
                )
            loaded.append((customer, follows))
        return loaded

    def groups(self, root: _Object) -> list[GroupChat]:
        allowed = ("chat_id", "name", "owner", "create_time", "notice", "admins", "status", "members")
        member_keys = (
            "userid", "type", "join_time", "join_scene", "invitor", "group_nickname", "name", "unionid",
        )  # fmt: skip
        chats: list[GroupChat] = []
        seen: set[str] = set()
        for item in _objects(root, "groups", allowed):
            chat_id = item.text("chat_id", required=True, max_len=64)
            _unique(seen, chat_id, item.where("chat_id"), "chat_id")
            owner = self._member(item, "owner", item.text("owner", required=True))
            created = item.number("create_time", self.now)
            chat = GroupChat(
                chat_id=chat_id,
                name=item.text("name"),
                owner=owner.userid,
                create_time=created,
                seq=0,
                notice=item.text("notice"),
                status=item.number("status", choices=(0, 1, 2, 3)),
            )
            for member_item in _objects(item, "members", member_keys):
                userid = member_item.text("userid", required=True, max_len=64)
                if userid in chat.members:
                    raise StateFileError(f"{member_item.where('userid')}: duplicate member {userid!r}")
                kind = member_item.number("type", required=True, choices=(1, 2))
                if kind == 1:
                    default_name, default_unionid = self._member(member_item, "userid", userid).name, ""
                else:  # an external contact need not be a customer of this corp
                    default_name, default_unionid = self.customer_names.get(userid, ("", ""))
                chat.members[userid] = GroupMember(
                    userid=userid,
                    type=kind,
                    join_time=member_item.number("join_time", created),
                    join_scene=member_item.number("join_scene", 1, choices=(1, 2, 3)),
                    invitor=member_item.text("invitor"),
                    group_nickname=member_item.text("group_nickname"),
                    name=member_item.text("name", None) or default_name,
                    unionid=member_item.text("unionid", None) or default_unionid,
                )
            if owner.userid not in chat.members:  # the owner is always a member, listed first
                founder = GroupMember(
                    userid=owner.userid, type=1, join_time=created, join_scene=1, name=owner.name
                )
                chat.members = {owner.userid: founder, **chat.members}
            for userid in item.texts("admins"):
                if chat.members.get(userid) is None or chat.members[userid].type != 1:
                    raise StateFileError(f"{item.where('admins')}: {userid!r} is not a staff member here")
                chat.admins.append(userid)
            chats.append(chat)
        return chats
