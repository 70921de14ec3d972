"""Build a realistic corp from a seed: the same seed and sizes give the same corp, id for id."""

from __future__ import annotations

import itertools
import random
import string

from siyu.simulator import names
from siyu.simulator.state import (
    ContactWay,
    CorpState,
    Customer,
    Department,
    GroupChat,
    GroupMember,
    Staff,
    Tag,
    TagGroup,
    random_alnum,
)

DAY = 86400
# How customers came to their staff (add_way, §4.1), weighted like a retail corp's mix of channels.
ADD_WAYS = [1, 2, 3, 4, 6, 0, 201, 202]
ADD_WAY_CUM_WEIGHTS = list(itertools.accumulate([45, 12, 10, 8, 10, 5, 5, 5]))
STAFF_INITIATED = {2, 5, 6, 9}  # the member searched or imported the customer: oper_userid is the member


def _rid(rng: random.Random, prefix: str, length: int = 32) -> str:
    return prefix + random_alnum(rng, length - len(prefix))


def generate_corp(
    state: CorpState, *, seed: int, staff: int, customers: int, groups: int | None, now: int
) -> None:
    """Fill ``state`` with departments, staff, tags, contact ways, customers with relations, and groups."""
    rng = random.Random(seed)  # noqa: S311 - reproducible demo data, not security
    with state.lock:
        _departments(state)
        _staff(state, rng, staff)
        _tags(state, rng, now)
        _contact_ways(state, rng, now)
        _customers(state, rng, customers, now)
        count = groups if groups is not None else min(500, max(3, customers // 100))
        _groups(state, rng, count, now)


def _departments(state: CorpState) -> None:
    state.departments[1] = Department(id=1, name=state.corp_name, name_en="HQ", parentid=0, order=100000000)
    for index, (name, name_en, parent) in enumerate(names.DEPARTMENTS):
        dept_id = index + 2
        parentid = 1 if parent is None else parent + 2
        state.departments[dept_id] = Department(
            id=dept_id, name=name, name_en=name_en, parentid=parentid, order=100000000 - dept_id * 1000
        )


def _staff(state: CorpState, rng: random.Random, count: int) -> None:
    # Front-line departments (the regions, customer success, stores) hold most of the staff.
    front = [d.id for d in state.departments.values() if d.id not in (1, 2)]
    for index in range(count):
        name, pinyin, gender = names.person_name(rng)
        userid = pinyin
        suffix = 1
        while userid in state.staff:
            suffix += 1
            userid = f"{pinyin}{suffix}"
        dept = front[index % len(front)] if index else 1
        leader = index < len(front) + 1 and index > 0 and rng.random() < 0.5
        member = Staff(
            userid=userid,
            name=name,
            departments=[dept],
            main_department=dept,
            position=rng.choice(names.POSITIONS),
            mobile="1" + rng.choice("3578") + "".join(rng.choices(string.digits, k=9)),
            gender=gender,
            email=f"{userid}@siyu-sim.example.com",
            alias=pinyin.capitalize(),
            is_leader_in_dept=[1 if leader else 0],
            open_userid=_rid(rng, "wo"),
            # One in ten members has no 客户联系 permission (back office), except in small corps.
            customer_contact=count < 5 or index % 10 != 9,
        )
        state.staff[userid] = member
        if leader:
            state.departments[dept].leaders.append(userid)


def _tags(state: CorpState, rng: random.Random, now: int) -> None:
    for g_index, (group_name, tag_names) in enumerate(names.TAG_GROUPS):
        created = now - rng.randint(200, 600) * DAY
        group = TagGroup(
            group_id=_rid(rng, "et"),
            name=group_name,
            create_time=created,
            order=len(names.TAG_GROUPS) - g_index,
        )
        state.tag_groups[group.group_id] = group
        for t_index, tag_name in enumerate(tag_names):
            tag = Tag(
                id=_rid(rng, "et"),
                name=tag_name,
                group_id=group.group_id,
                create_time=created + rng.randint(0, 30) * DAY,
                order=len(tag_names) - t_index,
            )
            state.tags[tag.id] = tag
            group.tag_ids.append(tag.id)


def _contact_ways(state: CorpState, rng: random.Random, now: int) -> None:
    users = state.follow_users()
    for remark, channel_state in names.CHANNELS:
        chosen = rng.sample(users, k=min(len(users), rng.choice((1, 1, 2, 3))))
        way = ContactWay(
            config_id="".join(rng.choices("0123456789abcdef", k=32)),
            type=1 if len(chosen) == 1 else 2,
            scene=2,
            create_time=now - rng.randint(10, 200) * DAY,
            seq=state.next_seq(),
            remark=remark,
            state=channel_state,
            qr_code=f"https://wework.qpic.cn/wwpic/{_rid(rng, '', 24)}/0",
            user=chosen,
        )
        state.contact_ways[way.config_id] = way


def _customers(state: CorpState, rng: random.Random, count: int, now: int) -> None:
    follow_users = [state.staff[u] for u in state.follow_users()]
    if not follow_users:
        return
    ways_by_user: dict[str, list[ContactWay]] = {}
    for way in state.contact_ways.values():
        for userid in way.user:
            ways_by_user.setdefault(userid, []).append(way)
    groups = list(state.tag_groups.values())
    for _ in range(count):
        customer_type = 1 if rng.random() < 0.9 else 2
        name, gender = names.customer_name(rng)
        customer = Customer(
            external_userid=_rid(rng, "wm" if customer_type == 1 else "wo"),
            name=name,
            type=customer_type,
            gender=gender,
            unionid=_rid(rng, "o", 28) if customer_type == 1 else "",
        )
        if customer_type == 2:
            customer.corp_name, customer.corp_full_name = rng.choice(names.COMPANIES)
            customer.position = rng.choice(names.CUSTOMER_POSITIONS)
        state.add_customer(customer)
        relations = 1 if rng.random() < 0.75 else (2 if rng.random() < 0.8 else 3)
        if relations == 1:
            members = [follow_users[int(rng.random() * len(follow_users))]]
        else:
            members = rng.sample(follow_users, k=min(relations, len(follow_users)))
        for member in members:
            # Recent adds are likelier: a corp's customer base grows.
            age_days = int(730 * rng.random() ** 2)
            createtime = now - age_days * DAY - int(rng.random() * DAY)
            add_way = rng.choices(ADD_WAYS, cum_weights=ADD_WAY_CUM_WEIGHTS)[0]
            channel_state = ""
            if add_way == 1 and member.userid in ways_by_user and rng.random() < 0.6:
                channel_state = rng.choice(ways_by_user[member.userid]).state
            remark = ""
            if rng.random() < 0.4 and customer.name not in names.NICKNAMES:
                suffix = rng.choice(names.REMARK_SUFFIXES)  # "王总", "李老师", or the full name
                remark = customer.name[0] + suffix if suffix else customer.name
            tag_ids = [rng.choice(g.tag_ids) for g in rng.sample(groups, k=rng.choice((0, 1, 1, 2, 2, 3)))]
            follow = state.add_follow(
                customer,
                member,
                createtime=createtime,
                add_way=add_way,
                state=channel_state,
                oper_userid=member.userid if add_way in STAFF_INITIATED else customer.external_userid,
                remark=remark,
                description=rng.choice(names.DESCRIPTIONS),
                tag_ids=tag_ids,
            )
            if customer_type == 2:
                follow.remark_corp_name = customer.corp_name
            if rng.random() < 0.2:
                follow.remark_mobiles = ["1" + rng.choice("3578") + "".join(rng.choices(string.digits, k=9))]


def _groups(state: CorpState, rng: random.Random, count: int, now: int) -> None:
    owners = [state.staff[u] for u in state.follow_users()]
    if not owners or not state.customer_ids:
        return
    for _ in range(count):
        owner = rng.choice(owners)
        created = now - rng.randint(1, 500) * DAY
        title = rng.choice(names.GROUP_NAMES).format(city=rng.choice(names.CITIES))
        chat = GroupChat(
            chat_id=_rid(rng, "wr"),
            name=title,
            owner=owner.userid,
            create_time=created,
            seq=state.next_seq(),
            notice=rng.choice(names.GROUP_NOTICES),
        )
        chat.members[owner.userid] = GroupMember(
            userid=owner.userid, type=1, join_time=created, join_scene=1, name=owner.name
        )
        for colleague in rng.sample(owners, k=min(len(owners), rng.choice((0, 1, 2)))):
            if colleague.userid not in chat.members:
                chat.members[colleague.userid] = GroupMember(
                    userid=colleague.userid,
                    type=1,
                    join_time=created + rng.randint(0, 3600),
                    join_scene=1,
                    invitor=owner.userid,
                    name=colleague.name,
                )
        own = [f.external_userid for f in owner.follow_list]
        size = rng.randint(5, 120)
        for _m in range(size):
            external_userid = (
                rng.choice(own) if own and rng.random() < 0.6 else rng.choice(state.customer_ids)
            )
            if external_userid in chat.members:
                continue
            customer = state.customers[external_userid]
            scene = rng.choice((1, 2, 3, 3))
            chat.members[external_userid] = GroupMember(
                userid=external_userid,
                type=2,
                join_time=created + rng.randint(0, max(1, now - created)),
                join_scene=scene,
                invitor=owner.userid if scene != 3 else "",
                name=customer.name,
                unionid=customer.unionid,
            )
        if len(chat.members) > 1 and rng.random() < 0.3:
            staff_members = [
                m.userid for m in chat.members.values() if m.type == 1 and m.userid != owner.userid
            ]
            if staff_members:
                chat.admins.append(staff_members[0])
        state.groups[chat.chat_id] = chat
