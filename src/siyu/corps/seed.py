"""Demo data: a realistic corp with departments, staff, tags, customers, relations and 90 days of timeline.

Deterministic for a seed. Customers are written in batches with ``bulk_create`` so memory stays bounded at any
size (one batch of customers, their relations, tags and events is in memory at a time).
"""

from __future__ import annotations

import datetime as dt
import random
import sys
import time
from dataclasses import dataclass

from django.db import transaction

from siyu.core.clock import now
from siyu.corps.models import Corp, Department, Staff, StaffDepartment
from siyu.corps.services import create_corp
from siyu.customers.models import CustomField, Customer, Event, FollowRelation
from siyu.customers.services import build_search_text
from siyu.tags.models import CustomerTag, RelationTag, Tag, TagGroup

DEMO_CORPID = "wwsiyudemo0000001"
DEMO_NAME = "思域示范企业"
# 1,000 customers per batch: ~6k relations/tags/events rows per bulk insert, a few MB of Python objects.
BATCH = 1000

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉兰萍红娥玲芬燕彬鹏辉浩宇欣怡子涵梓萱雨泽思远佳琪嘉怡晨阳一诺俊熙"
TAG_GROUPS: list[tuple[str, list[str]]] = [
    ("地区", ["北京", "上海", "广州", "深圳", "杭州", "成都", "武汉", "南京"]),
    ("性别", ["男", "女"]),
    ("兴趣", ["美妆", "母婴", "数码", "运动", "旅行", "美食", "理财", "家居"]),
    ("客户等级", ["VIP", "高意向", "普通", "沉睡"]),
    ("来源渠道", ["门店扫码", "线上广告", "老客推荐", "展会", "公众号"]),
    ("生命周期", ["新客", "活跃", "复购", "流失风险"]),
]
DEPARTMENTS: list[tuple[int, str, int | None]] = [
    (1, DEMO_NAME, None),
    (2, "销售中心", 1),
    (3, "华东大区", 2),
    (4, "华南大区", 2),
    (5, "华北大区", 2),
    (6, "客户服务部", 1),
    (7, "市场部", 1),
]
STATES = ["ch_store", "ch_ad", "ch_referral", "ch_expo", "ch_mp", ""]  # contact-way states (channels)
ADD_WAYS = [1, 1, 1, 2, 3, 16, 201]  # scan QR (most), search mobile, card share, …, assigned
DAYS = 90


@dataclass
class SeedReport:
    corp: Corp
    customers: int
    relations: int
    tags: int
    events: int
    seconds: float

    def summary(self) -> str:
        rate = self.customers / self.seconds if self.seconds else 0
        rows = self.customers + self.relations + self.tags + self.events
        return (
            f"seeded {self.corp.name}: {self.customers} customers, {self.relations} relations, "
            f"{self.tags} relation tags, {self.events} events in {self.seconds:.1f} s "
            f"({rate:,.0f} customers/s, {rows / self.seconds if self.seconds else 0:,.0f} rows/s)"
        )


def _name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2, 2))))


def _mobile(rng: random.Random) -> str:
    return rng.choice(("138", "139", "186", "158", "177", "135")) + f"{rng.randrange(10**8):08d}"


@transaction.atomic
def _structure(corp: Corp, rng: random.Random) -> tuple[list[Staff], dict[str, list[Tag]]]:
    departments: dict[int, Department] = {}
    for wecom_id, name, parent in DEPARTMENTS:
        departments[wecom_id] = Department.objects.create(
            corp=corp, wecom_id=wecom_id, name=name, parent=departments.get(parent) if parent else None, order=wecom_id
        )
    staff: list[Staff] = []
    leaf_departments = [3, 3, 4, 4, 5, 5, 6, 7]
    for i in range(30):
        dept = departments[leaf_departments[i % len(leaf_departments)]]
        member = Staff.objects.create(
            corp=corp,
            userid=f"staff{i + 1:03d}",
            name=_name(rng),
            main_department=dept,
            status=Staff.Status.RESIGNED if i == 29 else Staff.Status.ACTIVE,
            has_contact_permission=i < 28,
        )
        StaffDepartment.objects.create(corp=corp, staff=member, department=dept)
        staff.append(member)
    tags: dict[str, list[Tag]] = {}
    for g_order, (group_name, names) in enumerate(TAG_GROUPS, start=1):
        group = TagGroup.objects.create(corp=corp, name=group_name, order=g_order, wecom_group_id=f"et_g{g_order:03d}")
        tags[group_name] = [
            Tag.objects.create(corp=corp, group=group, name=n, order=i, wecom_tag_id=f"et_t{g_order:03d}_{i:03d}")
            for i, n in enumerate(names, start=1)
        ]
    CustomField.objects.create(corp=corp, key="birthday", label="生日", kind=CustomField.Kind.DATE, order=1)
    CustomField.objects.create(
        corp=corp, key="member_level", label="会员等级", kind=CustomField.Kind.CHOICE,
        choices=["普通会员", "银卡", "金卡", "钻石"], order=2,
    )
    CustomField.objects.create(corp=corp, key="city", label="所在城市", kind=CustomField.Kind.TEXT, order=3)
    return staff, tags


def seed(
    *, customers: int, seed_value: int = 1, corpid: str | None = None, name: str | None = None, progress: bool = False
) -> SeedReport:
    """Build a demo corp with ``customers`` customers; the same seed gives the same data."""
    started = time.monotonic()
    rng = random.Random(seed_value)
    corp = create_corp(name=name or DEMO_NAME, corpid=corpid or DEMO_CORPID)
    staff, tags = _structure(corp, rng)
    contact_staff = [s for s in staff if s.has_contact_permission]
    # Staff are not equally busy: a few front-line members carry most customers (Pareto-like weights).
    weights = [1.0 / (i + 1) ** 0.7 for i in range(len(contact_staff))]
    end = now().replace(microsecond=0)
    start = end - dt.timedelta(days=DAYS)
    counts = {"customers": 0, "relations": 0, "tags": 0, "events": 0}
    for batch_start in range(0, customers, BATCH):
        size = min(BATCH, customers - batch_start)
        _seed_batch(corp, rng, batch_start, size, contact_staff, weights, tags, start, counts)
        if progress and (batch_start // BATCH) % 10 == 9 or progress and batch_start + size == customers:
            done = batch_start + size
            print(f"  {done:,}/{customers:,} customers ({done * 100 // max(customers, 1)}%)", file=sys.stderr, flush=True)
    return SeedReport(
        corp=corp,
        customers=counts["customers"],
        relations=counts["relations"],
        tags=counts["tags"],
        events=counts["events"],
        seconds=time.monotonic() - started,
    )


@transaction.atomic
def _seed_batch(
    corp: Corp,
    rng: random.Random,
    offset: int,
    size: int,
    staff: list[Staff],
    weights: list[float],
    tags: dict[str, list[Tag]],
    start: dt.datetime,
    counts: dict[str, int],
) -> None:
    span = DAYS * 86400
    plans = []
    new_customers = []
    for i in range(offset, offset + size):
        gender = rng.choice((1, 2, 2, 0))
        first_add = start + dt.timedelta(seconds=rng.randrange(span))
        n_rel = rng.choices((1, 2, 3), weights=(70, 22, 8))[0]
        followers = list(dict.fromkeys(rng.choices(staff, weights=weights, k=n_rel)))
        customer = Customer(
            corp=corp,
            external_userid=f"wmdemo{i:09d}",
            unionid=f"ozdemo{i:09d}" if rng.random() < 0.6 else "",
            name=_name(rng),
            gender=gender,
            type=1 if rng.random() < 0.93 else 2,
            corp_name="" if rng.random() < 0.9 else rng.choice(["腾讯", "阿里巴巴", "字节跳动", "美团", "京东"]),
            custom_fields={"member_level": rng.choice(["普通会员", "银卡", "金卡", "钻石"])}
            if rng.random() < 0.4
            else {},
            last_added_at=first_add,
            created_at=first_add,
            updated_at=first_add,
        )
        new_customers.append(customer)
        plans.append((customer, followers, first_add, gender))
    Customer.objects.bulk_create(new_customers, batch_size=BATCH)
    relations: list[FollowRelation] = []
    relation_plan = []
    events: list[Event] = []
    for customer, followers, first_add, gender in plans:
        added_at = first_add
        for member in followers:
            deleted = rng.random() < 0.08
            state = rng.choice(STATES)
            mobiles = [_mobile(rng)] if rng.random() < 0.5 else []
            remark = f"{customer.name}-{rng.choice(['门店', '老客', '团购', '活动', '咨询'])}" if rng.random() < 0.6 else ""
            status = FollowRelation.Status.ACTIVE
            changed_at = None
            if deleted:
                status = rng.choice([FollowRelation.Status.DELETED_BY_CUSTOMER, FollowRelation.Status.DELETED_BY_STAFF])
                changed_at = min(now(), added_at + dt.timedelta(days=rng.randrange(1, 30)))
            relation = FollowRelation(
                corp=corp, customer=customer, staff=member, remark=remark, remark_mobiles=mobiles,
                add_way=rng.choice(ADD_WAYS), state=state, oper_userid=member.userid if rng.random() < 0.3 else "",
                added_at=added_at, status=status, status_changed_at=changed_at,
            )
            relations.append(relation)
            chosen: list[Tag] = [rng.choice(tags["地区"])]
            if gender in (1, 2):
                chosen.append(tags["性别"][gender - 1])
            chosen += rng.sample(tags["兴趣"], k=rng.choice((0, 1, 1, 2, 3)))
            chosen.append(rng.choices(tags["客户等级"], weights=(5, 20, 60, 15))[0])
            if rng.random() < 0.7:
                chosen.append(rng.choice(tags["来源渠道"]))
            chosen.append(rng.choices(tags["生命周期"], weights=(30, 40, 15, 15))[0])
            relation_plan.append((relation, chosen))
            customer.last_added_at = max(customer.last_added_at, added_at)
            added_at = added_at + dt.timedelta(hours=rng.randrange(1, 24 * 20))
    FollowRelation.objects.bulk_create(relations, batch_size=BATCH)
    relation_tags: list[RelationTag] = []
    customer_tags: dict[tuple[int, int], CustomerTag] = {}
    for relation, chosen in relation_plan:
        customer_id = relation.customer.pk
        events.append(Event(
            corp=corp, customer_id=customer_id, staff=relation.staff, kind=Event.Kind.ADDED, source=Event.Source.SEED,
            occurred_at=relation.added_at, payload={"add_way": relation.add_way, "state": relation.state,
                                                    "relation_id": relation.pk},
            dedupe_key=f"seed:added:{relation.pk}", recorded_at=relation.added_at,
        ))
        for n, tag in enumerate(chosen):
            relation_tags.append(RelationTag(corp=corp, relation=relation, tag=tag, customer_id=customer_id,
                                             created_at=relation.added_at))
            customer_tags.setdefault((customer_id, tag.pk), CustomerTag(corp=corp, customer_id=customer_id, tag=tag))
            at = relation.added_at + dt.timedelta(minutes=5 + n)
            events.append(Event(
                corp=corp, customer_id=customer_id, staff=relation.staff, kind=Event.Kind.TAGGED,
                source=Event.Source.SEED, occurred_at=at, payload={"tag_id": tag.pk, "tag": tag.name,
                                                                   "relation_id": relation.pk},
                dedupe_key=f"seed:tagged:{relation.pk}:{tag.pk}", recorded_at=at,
            ))
        for c in range(rng.choice((0, 1, 2, 4))):
            at = min(now(), relation.added_at + dt.timedelta(hours=rng.randrange(1, 24 * 30)))
            events.append(Event(
                corp=corp, customer_id=customer_id, staff=relation.staff, kind=Event.Kind.CHATTED,
                source=Event.Source.SEED, occurred_at=at, payload={"messages": rng.randrange(1, 30)},
                dedupe_key=f"seed:chatted:{relation.pk}:{c}", recorded_at=at,
            ))
        if relation.status != FollowRelation.Status.ACTIVE and relation.status_changed_at:
            events.append(Event(
                corp=corp, customer_id=customer_id, staff=relation.staff, kind=str(relation.status),
                source=Event.Source.SEED, occurred_at=relation.status_changed_at,
                payload={"relation_id": relation.pk}, dedupe_key=f"seed:{relation.status}:{relation.pk}",
                recorded_at=relation.status_changed_at,
            ))
    RelationTag.objects.bulk_create(relation_tags, batch_size=5000)
    CustomerTag.objects.bulk_create(list(customer_tags.values()), batch_size=5000)
    Event.objects.bulk_create(events, batch_size=5000)
    # search text and the sort key need the relations; update them in one pass per batch.
    by_customer: dict[int, list[FollowRelation]] = {}
    for relation, _chosen in relation_plan:
        by_customer.setdefault(relation.customer.pk, []).append(relation)
    for customer, _f, _a, _g in plans:
        customer.search_text = build_search_text(customer, by_customer.get(customer.pk, []))
    Customer.objects.bulk_update([p[0] for p in plans], ["search_text", "last_added_at"], batch_size=BATCH)
    counts["customers"] += len(plans)
    counts["relations"] += len(relations)
    counts["tags"] += len(relation_tags)
    counts["events"] += len(events)
