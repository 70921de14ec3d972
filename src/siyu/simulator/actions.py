"""What people do in the WeCom client and admin console, and the callbacks it causes (§3).

"通过API进行的操作不会产生回调" (§2.5): only these actions — a customer scanning a contact way, a member
tagging in the client, an admin creating a tag in the console, … — emit events. Tests, the traffic driver
and the admin interface call them. Events are sent after the corp lock is released.
"""

from __future__ import annotations

import functools
import secrets
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from siyu.simulator import events, names
from siyu.simulator.api.mass import confirm_task
from siyu.simulator.api.tags import create_tags, delete_tags, edit_tag
from siyu.simulator.errors import ApiError
from siyu.simulator.state import (
    ContactWay,
    Customer,
    Department,
    GroupChat,
    GroupMember,
    Staff,
    Transfer,
    WelcomeCode,
)

if TYPE_CHECKING:
    from siyu.simulator.app import Simulator

F = TypeVar("F", bound=Callable[..., Any])
WELCOME_CODE_KEEP = 600  # seconds an expired welcome code is remembered (it still answers 41050 after)


class ActionError(ValueError):
    """An action that cannot happen (unknown customer, not a contact, …)."""


def action(method: F) -> F:
    """Run under the corp lock; send the events it produced once the lock is released."""

    @functools.wraps(method)
    def wrapper(self: Actions, *args: Any, **kwargs: Any) -> Any:
        local = self._local
        outermost = not getattr(local, "depth", 0)
        if outermost:
            local.events = []
        local.depth = getattr(local, "depth", 0) + 1
        try:
            with self.sim.state.lock:
                return method(self, *args, **kwargs)
        finally:
            local.depth -= 1
            if outermost:
                pending, local.events = local.events, []
                for xml, label in pending:
                    self.sim.sender.send(xml, label)

    return cast(F, wrapper)


class Actions:
    """Client-side and admin-console actions on the simulated corp."""

    def __init__(self, sim: Simulator):
        self.sim = sim
        self.state = sim.state
        self._local = threading.local()

    # --- helpers -----------------------------------------------------------------------------------------

    def _emit(self, xml: str, label: str) -> None:
        self._local.events.append((xml, label))

    def _now(self) -> int:
        return self.sim.clock.now()

    def _staff(self, userid: str, *, contact: bool = True) -> Staff:
        member = self.state.active_staff(userid)
        if member is None:
            raise ActionError(f"no member {userid!r}")
        if contact and not member.customer_contact:
            raise ActionError(f"member {userid!r} has no customer-contact permission")
        return member

    def _customer(self, external_userid: str) -> Customer:
        customer = self.state.customers.get(external_userid)
        if customer is None:
            raise ActionError(f"no customer {external_userid!r}")
        return customer

    def _new_customer(self, name: str | None = None) -> Customer:
        rng = self.state.rng
        customer_type = 1 if rng.random() < 0.9 else 2
        display, gender = names.customer_name(rng)
        customer = Customer(
            external_userid=self.state.new_external_userid(customer_type),
            name=name or display,
            type=customer_type,
            gender=gender,
            unionid=self.state.random_id("o", 28) if customer_type == 1 else "",
        )
        if customer_type == 2:
            customer.corp_name, customer.corp_full_name = rng.choice(names.COMPANIES)
            customer.position = rng.choice(names.CUSTOMER_POSITIONS)
        return self.state.add_customer(customer)

    def _welcome_code(self, userid: str, external_userid: str) -> str:
        code = secrets.token_urlsafe(32)
        self.state.welcome_codes[code] = WelcomeCode(
            code=code, userid=userid, external_userid=external_userid, issued_at=self.sim.clock.time()
        )
        return code

    def forget_old_welcome_codes(self) -> None:
        horizon = self.sim.clock.time() - self.sim.config.welcome_code_ttl - WELCOME_CODE_KEEP
        stale = [c for c, w in self.state.welcome_codes.items() if w.issued_at < horizon]
        for code in stale:
            del self.state.welcome_codes[code]

    def _contact_event(self, change_type: str, userid: str, external_userid: str, **extra: Any) -> None:
        xml = events.external_contact(
            self.state.corpid,
            self._now(),
            change_type,
            userid=userid,
            external_userid=external_userid,
            **extra,
        )
        self._emit(xml, f"change_external_contact/{change_type}")

    def _add(
        self,
        member: Staff,
        customer: Customer,
        *,
        add_way: int,
        state: str,
        half: bool,
        oper_userid: str | None = None,
        welcome: bool = True,
    ) -> dict[str, Any]:
        if member.userid in customer.follows:
            raise ActionError(f"{customer.external_userid} is already a contact of {member.userid}")
        self.state.add_follow(
            customer, member, createtime=self._now(), add_way=add_way, state=state, oper_userid=oper_userid
        )
        code = self._welcome_code(member.userid, customer.external_userid) if welcome else None
        change_type = "add_half_external_contact" if half else "add_external_contact"
        self._contact_event(
            change_type, member.userid, customer.external_userid, state=state or None, welcome_code=code
        )
        return {
            "userid": member.userid,
            "external_userid": customer.external_userid,
            "name": customer.name,
            "state": state,
            "welcome_code": code,
        }

    def _way_users(self, way: ContactWay) -> list[str]:
        users = list(way.user)
        if way.party:
            expanded = [d for p in way.party for d in self.state.department_and_children(p)]
            users += [u for u in self.state.staff_in_departments(expanded) if u not in users]
        return [u for u in users if (m := self.state.active_staff(u)) is not None and m.customer_contact]

    # --- customers -----------------------------------------------------------------------------------------

    @action
    def scan_contact_way(
        self,
        *,
        config_id: str | None = None,
        state: str | None = None,
        external_userid: str | None = None,
        userid: str | None = None,
        half: bool = False,
    ) -> dict[str, Any]:
        """A customer scans a 「联系我」 code: a relation with its ``state``, an add event, a WelcomeCode."""
        way: ContactWay | None = None
        if config_id:
            way = self.state.contact_ways.get(config_id)
        elif state is not None:
            way = next((w for w in self.state.contact_ways.values() if w.state == state), None)
        if way is None:
            raise ActionError("no such contact way")
        users = self._way_users(way)
        if userid is not None:
            if userid not in users:
                raise ActionError(f"{userid!r} is not a member of this contact way")
            users = [userid]
        if not users:
            raise ActionError("the contact way has no member who can take customers")
        customer = self._customer(external_userid) if external_userid else None
        candidates = [u for u in users if customer is None or u not in customer.follows]
        if not candidates:
            raise ActionError("the customer is already a contact of every member of this contact way")
        # WeCom hands a multi-member way's scans to its members in turn ("排队", as a vendor's help page on
        # 「联系我」 多人 says; not in the API reference): the way keeps its place across list changes.
        member = self.state.staff[candidates[way.turn % len(candidates)]]
        way.turn += 1
        if customer is None:
            customer = self._new_customer()
        return self._add(member, customer, add_way=1, state=way.state, half=half)

    @action
    def add_customer(
        self,
        *,
        userid: str | None = None,
        external_userid: str | None = None,
        name: str | None = None,
        state: str = "",
        add_way: int | None = None,
        half: bool = False,
    ) -> dict[str, Any]:
        """A customer and a member become contacts outside any contact way (search, card, group, …)."""
        if userid is None:
            users = self.state.follow_users()
            if not users:
                raise ActionError("no member can take customers")
            userid = self.state.rng.choice(users)
        member = self._staff(userid)
        customer = self._customer(external_userid) if external_userid else self._new_customer(name)
        way = add_way if add_way is not None else self.state.rng.choice((0, 2, 3, 4, 6))
        staff_initiated = way in (2, 5, 6, 9)
        return self._add(
            member,
            customer,
            add_way=way,
            state=state,
            half=half,
            oper_userid=member.userid if staff_initiated else customer.external_userid,
        )

    @action
    def confirm_half(self, *, userid: str, external_userid: str) -> dict[str, Any]:
        """The member confirms a 免验证 add: the full add event, without a second WelcomeCode."""
        customer = self._customer(external_userid)
        follow = customer.follows.get(userid)
        if follow is None:
            raise ActionError("not a contact")
        self._contact_event("add_external_contact", userid, external_userid, state=follow.state or None)
        return {"userid": userid, "external_userid": external_userid}

    @action
    def edit_remark(
        self, *, userid: str, external_userid: str, remark: str | None = None, description: str | None = None
    ) -> dict[str, Any]:
        """The member edits the customer's remark or description in the client."""
        follow = self._customer(external_userid).follows.get(userid)
        if follow is None:
            raise ActionError("not a contact")
        if remark is not None:
            follow.remark = remark[:20]
        if description is not None:
            follow.description = description[:150]
        self._contact_event("edit_external_contact", userid, external_userid)
        return {"userid": userid, "external_userid": external_userid, "remark": follow.remark}

    @action
    def tag_in_client(
        self,
        *,
        userid: str,
        external_userid: str,
        add_tag: list[str] | None = None,
        remove_tag: list[str] | None = None,
    ) -> dict[str, Any]:
        """The member marks corp tags on the customer in the client (edit_external_contact)."""
        follow = self._customer(external_userid).follows.get(userid)
        if follow is None:
            raise ActionError("not a contact")
        for tag_id in [*(add_tag or []), *(remove_tag or [])]:
            tag = self.state.tags.get(tag_id)
            if tag is None or tag.deleted:
                raise ActionError(f"no tag {tag_id!r}")
        removing = set(remove_tag or [])
        follow.tag_ids = [t for t in follow.tag_ids if t not in removing]
        follow.tag_ids += [t for t in add_tag or [] if t not in follow.tag_ids]
        self._contact_event("edit_external_contact", userid, external_userid)
        return {"userid": userid, "external_userid": external_userid, "tag_ids": list(follow.tag_ids)}

    @action
    def customer_deletes_staff(self, *, external_userid: str, userid: str) -> dict[str, Any]:
        """The customer deletes the member (del_follow_user)."""
        customer = self._customer(external_userid)
        if self.state.remove_follow(customer, userid) is None:
            raise ActionError("not a contact")
        self.state.deletions.append((self._now(), "del_follow_user", userid, external_userid))
        self._contact_event("del_follow_user", userid, external_userid)
        return {"userid": userid, "external_userid": external_userid}

    @action
    def staff_deletes_customer(self, *, userid: str, external_userid: str) -> dict[str, Any]:
        """The member deletes the customer (del_external_contact)."""
        customer = self._customer(external_userid)
        if self.state.remove_follow(customer, userid) is None:
            raise ActionError("not a contact")
        self.state.deletions.append((self._now(), "del_external_contact", userid, external_userid))
        self._contact_event("del_external_contact", userid, external_userid)
        return {"userid": userid, "external_userid": external_userid}

    @action
    def msg_audit_approved(self, *, userid: str, external_userid: str) -> dict[str, Any]:
        """The customer agrees to chat archiving (msg_audit_approved, with a WelcomeCode)."""
        if userid not in self._customer(external_userid).follows:
            raise ActionError("not a contact")
        code = self._welcome_code(userid, external_userid)
        self._contact_event("msg_audit_approved", userid, external_userid, welcome_code=code)
        return {"userid": userid, "external_userid": external_userid, "welcome_code": code}

    @action
    def burst_adds(
        self, *, count: int, config_id: str | None = None, userid: str | None = None
    ) -> dict[str, Any]:
        """Many adds at once (load tests): scans of one contact way, or plain adds to one member."""
        added = []
        for _ in range(max(0, count)):
            if config_id:
                added.append(self.scan_contact_way(config_id=config_id)["external_userid"])
            else:
                added.append(self.add_customer(userid=userid)["external_userid"])
        return {"count": len(added), "external_userids": added[:1000]}

    # --- customer groups ----------------------------------------------------------------------------------

    def _chat(self, chat_id: str) -> GroupChat:
        chat = self.state.groups.get(chat_id)
        if chat is None or chat.dismissed:
            raise ActionError(f"no group {chat_id!r}")
        return chat

    def _chat_event(self, chat: GroupChat, change_type: str, **extra: Any) -> None:
        xml = events.external_chat(self.state.corpid, self._now(), change_type, chat_id=chat.chat_id, **extra)
        detail = extra.get("update_detail")
        self._emit(xml, f"change_external_chat/{change_type}" + (f"/{detail}" if detail else ""))

    @action
    def group_create(
        self, *, owner: str | None = None, name: str | None = None, external_userids: list[str] | None = None
    ) -> dict[str, Any]:
        """A member creates a customer group in the client."""
        rng = self.state.rng
        member = self._staff(owner or rng.choice(self.state.follow_users()))
        now = self._now()
        chat = GroupChat(
            chat_id=self.state.random_id("wr"),
            name=name or rng.choice(names.GROUP_NAMES).format(city=rng.choice(names.CITIES)),
            owner=member.userid,
            create_time=now,
            seq=self.state.next_seq(),
        )
        chat.members[member.userid] = GroupMember(
            userid=member.userid, type=1, join_time=now, join_scene=1, name=member.name
        )
        for external_userid in external_userids or []:
            customer = self._customer(external_userid)
            chat.members[external_userid] = GroupMember(
                userid=external_userid,
                type=2,
                join_time=now,
                join_scene=1,
                invitor=member.userid,
                name=customer.name,
                unionid=customer.unionid,
            )
        self.state.groups[chat.chat_id] = chat
        self._chat_event(chat, "create")
        return {"chat_id": chat.chat_id, "owner": chat.owner, "name": chat.name}

    @action
    def group_join(
        self,
        *,
        chat_id: str,
        external_userids: list[str] | None = None,
        userids: list[str] | None = None,
        join_scene: int = 0,
        new_customers: int = 0,
    ) -> dict[str, Any]:
        """Customers or members join a group: update/add_member, JoinScene 0 (invited) or 3 (QR code)."""
        if join_scene not in (0, 3):
            raise ActionError("join_scene is 0 (invited) or 3 (scanned the group QR code)")
        chat = self._chat(chat_id)
        before = chat.member_version
        now = self._now()
        joined: list[str] = []
        scene = 3 if join_scene == 3 else 1
        invitor = "" if join_scene == 3 else chat.owner
        customers = [self._customer(e) for e in external_userids or []]
        customers += [self._new_customer() for _ in range(new_customers)]
        for customer in customers:
            if customer.external_userid in chat.members:
                continue
            chat.members[customer.external_userid] = GroupMember(
                userid=customer.external_userid,
                type=2,
                join_time=now,
                join_scene=scene,
                invitor=invitor,
                name=customer.name,
                unionid=customer.unionid,
            )
            joined.append(customer.external_userid)
        for userid in userids or []:
            member = self._staff(userid, contact=False)
            if userid not in chat.members:
                chat.members[userid] = GroupMember(
                    userid=userid, type=1, join_time=now, join_scene=scene, invitor=invitor, name=member.name
                )
                joined.append(userid)
        if not joined:
            raise ActionError("nobody new joined")
        self._chat_event(
            chat,
            "update",
            update_detail="add_member",
            join_scene=join_scene,
            members=joined,
            last_version=before,
            current_version=chat.member_version,
        )
        return {"chat_id": chat_id, "joined": joined}

    @action
    def group_leave(self, *, chat_id: str, userids: list[str], quit_scene: int = 0) -> dict[str, Any]:
        """Members leave a group: update/del_member with QuitScene 0 (left) or 1 (removed by owner/admin)."""
        if quit_scene not in (0, 1):
            raise ActionError("quit_scene is 0 (left) or 1 (removed)")
        chat = self._chat(chat_id)
        before = chat.member_version
        left = [u for u in userids if u in chat.members and u != chat.owner]
        if not left:
            raise ActionError("none of them is a member (the owner cannot leave)")
        for userid in left:
            del chat.members[userid]
        self._chat_event(
            chat,
            "update",
            update_detail="del_member",
            quit_scene=quit_scene,
            members=left,
            last_version=before,
            current_version=chat.member_version,
        )
        return {"chat_id": chat_id, "left": left}

    @action
    def group_rename(self, *, chat_id: str, name: str) -> dict[str, Any]:
        chat = self._chat(chat_id)
        chat.name = name
        self._chat_event(chat, "update", update_detail="change_name")
        return {"chat_id": chat_id, "name": name}

    @action
    def group_notice(self, *, chat_id: str, notice: str) -> dict[str, Any]:
        chat = self._chat(chat_id)
        chat.notice = notice
        self._chat_event(chat, "update", update_detail="change_notice")
        return {"chat_id": chat_id}

    @action
    def group_change_owner(self, *, chat_id: str, owner: str) -> dict[str, Any]:
        chat = self._chat(chat_id)
        member = self._staff(owner)
        chat.owner = owner
        if owner not in chat.members:
            chat.members[owner] = GroupMember(
                userid=owner, type=1, join_time=self._now(), join_scene=1, name=member.name
            )
        self._chat_event(chat, "update", update_detail="change_owner")
        return {"chat_id": chat_id, "owner": owner}

    @action
    def group_dismiss(self, *, chat_id: str) -> dict[str, Any]:
        chat = self._chat(chat_id)
        chat.dismissed = True
        self._chat_event(chat, "dismiss")
        return {"chat_id": chat_id}

    # --- corp tags in the admin console -------------------------------------------------------------------

    def _tag_event(self, change_type: str, item_id: str, tag_type: str | None) -> None:
        xml = events.external_tag(
            self.state.corpid, self._now(), change_type, item_id=item_id, tag_type=tag_type
        )
        self._emit(xml, f"change_external_tag/{change_type}")

    @action
    def console_create_tag(
        self, *, name: str, group_id: str = "", group_name: str = "", order: int = 0
    ) -> dict[str, Any]:
        """An admin creates a tag (and, with a new group name, its group) in the admin console."""
        try:
            group, tags, created = create_tags(
                self.sim,
                group_id=group_id,
                group_name=group_name,
                group_order=0,
                tags=[{"name": name, "order": order}],
            )
        except ApiError as exc:
            raise ActionError(exc.message) from exc
        if created:
            self._tag_event("create", group.group_id, "tag_group")
        for tag in tags:
            self._tag_event("create", tag.id, "tag")
        return {"group_id": group.group_id, "tag_id": tags[0].id}

    @action
    def console_rename_tag(self, *, id: str, name: str) -> dict[str, Any]:
        """An admin renames a tag or a tag group."""
        try:
            kind = edit_tag(self.sim, item_id=id, name=name, order=None)
        except ApiError as exc:
            raise ActionError(exc.message) from exc
        self._tag_event("update", id, kind)
        return {"id": id, "tag_type": kind}

    @action
    def console_delete_tag(self, *, id: str) -> dict[str, Any]:
        """An admin deletes a tag or a group (a group's tags go with it, without their own events)."""
        is_group = id in self.state.tag_groups
        try:
            deleted = delete_tags(
                self.sim, tag_ids=[] if is_group else [id], group_ids=[id] if is_group else []
            )
        except ApiError as exc:
            raise ActionError(exc.message) from exc
        for item_id, kind in deleted:
            self._tag_event("delete", item_id, kind)
        return {"deleted": [i for i, _ in deleted]}

    @action
    def console_shuffle_tags(self, *, group_id: str) -> dict[str, Any]:
        """An admin reorders a group's tags (shuffle, no TagType)."""
        group = self.state.tag_groups.get(group_id)
        if group is None or group.deleted:
            raise ActionError("no such tag group")
        live = [self.state.tags[t] for t in group.tag_ids if not self.state.tags[t].deleted]
        self.state.rng.shuffle(live)
        for position, tag in enumerate(live):
            tag.order = len(live) - position
        self._tag_event("shuffle", group_id, None)
        return {"group_id": group_id, "order": [t.id for t in live]}

    # --- address book in the admin console -----------------------------------------------------------------

    def _contact_change(self, change_type: str, fields: list[tuple[str, events.Value]]) -> None:
        xml = events.change_contact(self.state.corpid, self._now(), change_type, fields)
        self._emit(xml, f"change_contact/{change_type}")

    @action
    def staff_create(
        self, *, name: str | None = None, userid: str | None = None, department: int | None = None
    ) -> dict[str, Any]:
        """An admin adds a member (change_contact/create_user: UserID and Department, as WeCom now sends)."""
        rng = self.state.rng
        full_name, pinyin, gender = names.person_name(rng)
        userid = userid or pinyin
        base, suffix = userid, 1
        while userid in self.state.staff:
            suffix += 1
            userid = f"{base}{suffix}"
        dept = department if department is not None else rng.choice(sorted(self.state.departments))
        if dept not in self.state.departments:
            raise ActionError(f"no department {dept}")
        member = Staff(
            userid=userid,
            name=name or full_name,
            departments=[dept],
            main_department=dept,
            position=rng.choice(names.POSITIONS),
            mobile="13" + "".join(rng.choices("0123456789", k=9)),
            gender=gender,
            email=f"{userid}@siyu-sim.example.com",
            is_leader_in_dept=[0],
            open_userid=self.state.random_id("wo"),
        )
        self.state.staff[userid] = member
        self._contact_change("create_user", [("UserID", userid), ("Department", str(dept))])
        return {"userid": userid, "name": member.name}

    @action
    def staff_update(
        self,
        *,
        userid: str,
        name: str | None = None,
        position: str | None = None,
        departments: list[int] | None = None,
    ) -> dict[str, Any]:
        """An admin edits a member (change_contact/update_user)."""
        member = self._staff(userid, contact=False)
        if departments is not None:
            if not departments or any(d not in self.state.departments for d in departments):
                raise ActionError("unknown department")
            member.departments = list(departments)
            member.main_department = departments[0]
            member.is_leader_in_dept = [0 for _ in departments]
        if name is not None:
            member.name = name
        if position is not None:
            member.position = position
        department = ",".join(str(d) for d in member.departments)
        self._contact_change("update_user", [("UserID", userid), ("Department", department)])
        return {"userid": userid}

    @action
    def staff_resign(self, *, userid: str) -> dict[str, Any]:
        """A member leaves: removed from the address book, customers wait for 离职继承, groups too."""
        member = self._staff(userid, contact=False)
        member.status = 5
        member.resigned_at = self._now()
        for chat in self.state.groups.values():
            if chat.owner == userid and not chat.dismissed:
                chat.status = 1  # 离职待继承
        for department in self.state.departments.values():
            if userid in department.leaders:
                department.leaders.remove(userid)
        self._contact_change("delete_user", [("UserID", userid)])
        return {"userid": userid, "customers": len(member.follow_list)}

    @action
    def department_create(self, *, name: str, parentid: int = 1) -> dict[str, Any]:
        if parentid not in self.state.departments:
            raise ActionError(f"no department {parentid}")
        dept_id = max(self.state.departments) + 1
        order = 100000000 - dept_id * 1000
        self.state.departments[dept_id] = Department(
            id=dept_id, name=name, name_en="", parentid=parentid, order=order
        )
        self._contact_change(
            "create_party", [("Id", dept_id), ("Name", name), ("ParentId", str(parentid)), ("Order", order)]
        )
        return {"id": dept_id}

    @action
    def department_update(self, *, id: int, name: str) -> dict[str, Any]:
        department = self.state.departments.get(id)
        if department is None:
            raise ActionError(f"no department {id}")
        department.name = name
        self._contact_change(
            "update_party", [("Id", id), ("Name", name), ("ParentId", str(department.parentid))]
        )
        return {"id": id}

    @action
    def department_delete(self, *, id: int) -> dict[str, Any]:
        if id not in self.state.departments or id == 1:
            raise ActionError(f"cannot delete department {id}")
        if any(d.parentid == id for d in self.state.departments.values()) or self.state.staff_in_departments(
            [id]
        ):
            raise ActionError("the department is not empty")
        del self.state.departments[id]
        self._contact_change("delete_party", [("Id", id)])
        return {"id": id}

    # --- work that falls due -----------------------------------------------------------------------------

    @action
    def tick(self) -> dict[str, int]:
        """Do whatever is due by the simulated clock: staff confirmations, moment publishing, transfers."""
        now = self.sim.clock.time()
        confirmed = published = transferred = 0
        for template in self.state.msg_templates.values():
            if template.cancelled:
                continue
            for task in template.tasks.values():
                if task.status == 0 and task.confirm_at <= now:
                    confirm_task(self.sim, template, task.userid)
                    confirmed += 1
        for moment in self.state.moments.values():
            if moment.cancelled:
                continue
            for userid, status in moment.senders.items():
                if status == 0 and moment.publish_at.get(userid, now + 1) <= now:
                    moment.senders[userid] = 1
                    published += 1
        for transfer in self.state.transfers:
            if not transfer.completed and transfer.takeover_time <= now:
                self._complete_transfer(transfer)
                transferred += 1
        self.forget_old_welcome_codes()
        return {"confirmed": confirmed, "published": published, "transferred": transferred}

    def _complete_transfer(self, transfer: Transfer) -> None:
        transfer.completed = True
        customer = self.state.customers.get(transfer.external_userid)
        takeover = self.state.active_staff(transfer.takeover)
        old = customer.follows.get(transfer.handover) if customer else None
        refused = self.state.rng.random() < self.sim.config.transfer_refuse_rate
        if customer is None or takeover is None or old is None or refused:
            transfer.status = 3
            self._contact_event(
                "transfer_fail", transfer.takeover, transfer.external_userid, fail_reason="customer_refused"
            )
            return
        if len(takeover.follow_list) >= self.sim.config.takeover_customer_limit:
            transfer.status = 4
            self._contact_event(
                "transfer_fail",
                transfer.takeover,
                transfer.external_userid,
                fail_reason="customer_limit_exceed",
            )
            return
        transfer.status = 1
        transfer.takeover_time = self._now()
        self.state.remove_follow(customer, transfer.handover)
        if transfer.kind == "onjob":
            self._contact_event(
                "del_external_contact",
                transfer.handover,
                transfer.external_userid,
                source="DELETE_BY_TRANSFER",
            )
        # "no add event if takeover was already a friend"; the takeover's add carries no WelcomeCode, since
        # WeCom itself sends transfer_success_msg to the customer.
        if takeover.userid not in customer.follows:
            self.state.add_follow(
                customer,
                takeover,
                createtime=self._now(),
                add_way=202,  # 管理员/负责人分配
                oper_userid=transfer.handover,
                remark=old.remark,
                description=old.description,
                tag_ids=old.tag_ids,
            )
            self._contact_event("add_external_contact", takeover.userid, transfer.external_userid)

    @action
    def confirm_msg(self, *, msgid: str, userid: str | None = None) -> dict[str, Any]:
        """The member(s) confirm a mass send now instead of after the configured delay."""
        template = self.state.msg_templates.get(msgid)
        if template is None:
            raise ActionError(f"no mass send {msgid!r}")
        userids = [userid] if userid else list(template.tasks)
        for member in userids:
            if member not in template.tasks:
                raise ActionError(f"{member!r} has no part in this mass send")
            confirm_task(self.sim, template, member)
        return {"msgid": msgid, "confirmed": userids}

    @action
    def publish_moment(self, *, moment_id: str, userid: str | None = None) -> dict[str, Any]:
        """The member(s) publish a moment now."""
        moment = self.state.moments.get(moment_id)
        if moment is None:
            raise ActionError(f"no moment {moment_id!r}")
        userids = [userid] if userid else list(moment.senders)
        for member in userids:
            if member not in moment.senders:
                raise ActionError(f"{member!r} is not a sender of this moment")
            moment.senders[member] = 1
        return {"moment_id": moment_id, "published": userids}

    @action
    def complete_transfers(self, *, external_userid: str | None = None) -> dict[str, Any]:
        """Let pending transfers finish now instead of after the configured delay."""
        count = 0
        for transfer in self.state.transfers:
            if transfer.completed or (external_userid and transfer.external_userid != external_userid):
                continue
            self._complete_transfer(transfer)
            count += 1
        return {"completed": count}


# Actions the admin interface may run, by name.
ADMIN_ACTIONS = (
    "scan_contact_way",
    "add_customer",
    "confirm_half",
    "edit_remark",
    "tag_in_client",
    "customer_deletes_staff",
    "staff_deletes_customer",
    "msg_audit_approved",
    "burst_adds",
    "group_create",
    "group_join",
    "group_leave",
    "group_rename",
    "group_notice",
    "group_change_owner",
    "group_dismiss",
    "console_create_tag",
    "console_rename_tag",
    "console_delete_tag",
    "console_shuffle_tags",
    "staff_create",
    "staff_update",
    "staff_resign",
    "department_create",
    "department_update",
    "department_delete",
    "confirm_msg",
    "publish_moment",
    "complete_transfers",
    "tick",
)
