"""Demo data: a realistic corp with departments, staff, tags, customers, relations and 90 days of timeline.

Deterministic for a seed: the same ``seed_value`` and ``until`` give the same names, relations, tags and
events (ids and the corp differ). The small structure (departments, staff, tags) goes through the ORM; the
bulk (customers, relations, relation and customer tags, events) is generated as plain row tuples, a batch at
a time on a worker thread, and written with ``COPY`` on PostgreSQL or ``executemany`` on SQLite. Derived
columns (search text, the list's sort key, the per-customer tag view) are computed before the insert, so each
row is written once. Memory stays flat at any size: a batch or two of rows is in memory at a time.

On PostgreSQL the seed is one transaction; into near-empty tables it loads without the secondary indexes and
rebuilds them before the commit. SQLite commits every ``SQLITE_COMMIT_EVERY`` customers.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import logging
import random
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from django.db import OperationalError, connection, models, transaction

from siyu.core.clock import now
from siyu.core.errors import Conflict
from siyu.corps.models import Corp, Department, Staff, StaffDepartment
from siyu.corps.services import create_corp
from siyu.customers.models import Customer, CustomField, Event, FollowRelation
from siyu.tags.models import CustomerTag, RelationTag, Tag, TagGroup

logger = logging.getLogger(__name__)

DEMO_CORPID = "wwsiyudemo0000001"
DEMO_NAME = "思域示范企业"
# 5,000 customers per batch is ~150k rows (≈ 60 MB of tuples): large enough that the per-statement cost of
# COPY is noise, small enough that memory stays flat at a million customers.
BATCH = 5000
# On SQLite a transaction's pages stay in the WAL until commit; committing every 50,000 customers keeps the
# WAL file to a few hundred MB. PostgreSQL writes the whole seed in one transaction (all or nothing).
SQLITE_COMMIT_EVERY = 50_000
# On PostgreSQL a seed of at least this many customers into near-empty tables drops the secondary indexes and
# rebuilds them at the end; below it the whole load takes seconds either way.
BULK_LOAD_MIN = 50_000

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏"
    "吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱"
    "严覃武戴莫孔向汤"
)
GIVEN = (
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉兰萍红娥玲芬燕彬鹏辉浩宇欣怡子涵梓萱"
    "雨泽思远佳琪嘉怡晨阳一诺俊熙"
)
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
STAFF_COUNT = 30
MAX_RELATIONS = 3  # staff relations per customer: 1 (70%), 2 (22%) or 3 (8%)
# Share of demo customers with purchases (the segments' "NOT purchased(30d)" needs some).
PURCHASE_PERCENT = 35
STATES = ["ch_store", "ch_ad", "ch_referral", "ch_expo", "ch_mp", ""]  # contact-way states (channels)
ADD_WAYS = [1, 1, 1, 2, 3, 16, 201]  # scan QR (most), search mobile, card share, …, assigned
MOBILE_PREFIXES = ("138", "139", "186", "158", "177", "135")
REMARK_SUFFIXES = ["门店", "老客", "团购", "活动", "咨询"]
COMPANIES = ["腾讯", "阿里巴巴", "字节跳动", "美团", "京东"]
MEMBER_LEVELS = ["普通会员", "银卡", "金卡", "钻石"]
DAYS = 90


@dataclass
class SeedReport:
    """What a seed wrote, and how long it took."""

    corp: Corp
    customers: int
    relations: int
    tags: int
    events: int
    seconds: float
    customer_tags: int = 0

    @property
    def rows(self) -> int:
        return self.customers + self.relations + self.tags + self.customer_tags + self.events

    def summary(self) -> str:
        rate = self.customers / self.seconds if self.seconds else 0
        return (
            f"seeded {self.corp.name} ({self.corp.corpid}): {self.customers:,} customers, "
            f"{self.relations:,} relations, {self.tags:,} relation tags, "
            f"{self.customer_tags:,} customer tags, "
            f"{self.events:,} events in {self.seconds:.1f} s "
            f"({rate:,.0f} customers/s, {self.rows / self.seconds if self.seconds else 0:,.0f} rows/s)"
        )


# --- writers: how a batch of row tuples reaches the database ------------------------------------------------


def columns(model: type[models.Model], names: Sequence[str]) -> list[str]:
    """Database column names of ``names`` (field names) on ``model``."""
    return [str(_concrete_field(model, n).column) for n in names]


def _concrete_field(model: type[models.Model], name: str) -> models.Field[Any, Any]:
    found = model._meta.get_field(name)
    if not isinstance(found, models.Field) or found.column is None:
        raise ValueError(f"{model.__name__}.{name} is not a concrete field")
    return found


CUSTOMER_FIELDS = [
    "id", "corp", "external_userid", "unionid", "name", "avatar", "gender", "type", "corp_name",
    "corp_full_name", "custom_fields", "last_added_at", "search_text", "created_at", "updated_at",
]  # fmt: skip
RELATION_FIELDS = [
    "id", "corp", "customer", "staff", "remark", "description", "remark_corp_name", "remark_mobiles",
    "add_way", "state", "oper_userid", "added_at", "status", "status_changed_at",
]  # fmt: skip
RELATION_TAG_FIELDS = ["corp", "relation", "tag", "customer", "created_at"]
CUSTOMER_TAG_FIELDS = ["corp", "customer", "tag"]
EVENT_FIELDS = [
    "corp", "customer", "staff", "kind", "occurred_at", "source", "payload", "dedupe_key", "recorded_at",
]  # fmt: skip
TABLES: list[tuple[type[models.Model], list[str]]] = [
    (Customer, CUSTOMER_FIELDS),
    (FollowRelation, RELATION_FIELDS),
    (RelationTag, RELATION_TAG_FIELDS),
    (CustomerTag, CUSTOMER_TAG_FIELDS),
    (Event, EVENT_FIELDS),
]


class Writer:
    """Writes row tuples (field order of ``TABLES``) and hands out primary keys for rows that need one."""

    commit_every: int | None = None  # customers per transaction; None: one transaction for the whole seed

    def __init__(self, timestamp: Callable[[int], Any]) -> None:
        # The value to write for a DateTimeField at epoch seconds (UTC).
        self.timestamp = timestamp

    def reset_ids(self) -> None:
        """Forget any id state at the end of a transaction."""

    def prepare(self) -> None:
        """Tune the connection for a bulk load (once, before the first write)."""

    def transaction_started(self, customers: int) -> None:
        """Called first thing inside each of the seed's transactions, which will add ``customers``."""

    def transaction_ending(self, say: Callable[[str], None]) -> None:
        """Called last thing inside each of the seed's transactions, before the commit."""

    def reserve_ids(self, model: type[models.Model], n: int) -> list[int]:
        """``n`` primary keys for ``model`` that nobody else will use."""
        raise NotImplementedError

    def write(self, model: type[models.Model], fields: list[str], rows: list[tuple[Any, ...]]) -> None:
        raise NotImplementedError

    def json(self, text: str) -> Any:
        """The value to write for a JSONField whose JSON text is ``text``."""
        return text


class _TimestampText:
    """'YYYY-MM-DD HH:MM:SS' (+ suffix) for epoch seconds, from two lookup tables, not a strftime per row."""

    def __init__(self, suffix: str) -> None:
        self.suffix = suffix
        self.days: dict[int, str] = {}
        self.clock = [f" {s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}{suffix}" for s in range(86400)]

    def __call__(self, epoch_seconds: int) -> str:
        day, second = divmod(epoch_seconds, 86400)
        prefix = self.days.get(day)
        if prefix is None:
            prefix = self.days[day] = (dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat()
        return prefix + self.clock[second]


class PostgresWriter(Writer):
    """COPY into each table; ids come from the tables' own sequences, so concurrent writers never collide."""

    def __init__(self) -> None:
        super().__init__(_TimestampText("+00"))
        self._rebuild: list[tuple[str, str]] = []  # (name, definition) of indexes dropped for a bulk load
        self._replica = False

    def transaction_started(self, customers: int) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('is_superuser') = 'on'")
            if cursor.fetchone()[0]:
                # Django's foreign keys are deferred, so every COPY'd row queues a trigger that re-reads its
                # parents at commit: about half of the load time. The seed writes parents before children
                # from ids it has just reserved, so the data is consistent by construction (the seed's tests
                # check that no row is orphaned); "replica" skips those triggers for this transaction only.
                # It needs a superuser; any other role loads with the checks.
                cursor.execute("SET LOCAL session_replication_role = replica")
                self._replica = True
            else:
                # Checked at the end of each COPY instead of queued for the commit: the same work, without
                # a queue of tens of millions of pending checks in the server's memory.
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        if customers >= BULK_LOAD_MIN and self._tables_are_small(customers):
            self._drop_secondary_indexes()

    def transaction_ending(self, say: Callable[[str], None]) -> None:
        with connection.cursor() as cursor:
            if self._rebuild:
                say(f"  rebuilding {len(self._rebuild)} indexes …")
                started = time.monotonic()
                for _name, definition in self._rebuild:
                    cursor.execute(definition)
                say(f"  rebuilt {len(self._rebuild)} indexes in {time.monotonic() - started:.1f} s")
                self._rebuild = []
            # Back to normal for whatever else an enclosing transaction does (a test's, say).
            if self._replica:
                cursor.execute("SET LOCAL session_replication_role = DEFAULT")
                self._replica = False
            cursor.execute("SET LOCAL maintenance_work_mem = DEFAULT")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")  # Django declares its foreign keys deferred

    def _tables_are_small(self, customers: int) -> bool:
        """Whether the customers table holds fewer rows than this seed adds (a fresh database, say)."""
        with connection.cursor() as cursor:
            table = Customer._meta.db_table
            cursor.execute(f'SELECT count(*) FROM (SELECT 1 FROM "{table}" LIMIT %s) AS s', [customers])  # noqa: S608
            return bool(cursor.fetchone()[0] < customers)

    def _drop_secondary_indexes(self) -> None:
        """Drop the non-unique indexes of the bulk tables, to be rebuilt (sorted, far faster) before commit.

        pg_restore's trick: maintaining a dozen B-trees row by row costs more than building them once. Only
        done when the seed at least doubles the tables (a fresh database: ``make demo``, a benchmark); the
        tables are then locked until the seed commits. Primary keys and unique constraints stay. If another
        session holds a lock on a table, the seed does not wait: it loads with the indexes in place.
        """
        tables = [model._meta.db_table for model, _fields in TABLES]
        try:
            with transaction.atomic(), connection.cursor() as cursor:  # a savepoint
                cursor.execute("SET LOCAL lock_timeout = '2s'")
                cursor.execute(
                    "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
                    "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid "
                    "WHERE t.relname = ANY(%s) AND NOT i.indisunique AND NOT i.indisprimary ORDER BY 1",
                    [tables],
                )
                indexes = [(name, definition) for name, definition in cursor.fetchall()]
                for name, _definition in indexes:
                    cursor.execute(f'DROP INDEX "{name}"')
                cursor.execute("SET LOCAL lock_timeout = 0")
                # Sorting a few million index entries: 256 MB for this transaction's builds.
                cursor.execute("SET LOCAL maintenance_work_mem = '256MB'")
        except OperationalError as exc:
            logger.info("loading with indexes in place (%s)", exc)
            return
        self._rebuild = indexes

    def reserve_ids(self, model: type[models.Model], n: int) -> list[int]:
        table = model._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", [table, n]
            )
            return [row[0] for row in cursor.fetchall()]

    def write(self, model: type[models.Model], fields: list[str], rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        names = ", ".join(f'"{c}"' for c in columns(model, fields))
        raw = connection.connection  # the psycopg 3 connection under Django's, in the same transaction
        with (
            raw.cursor() as cursor,
            cursor.copy(f'COPY "{model._meta.db_table}" ({names}) FROM STDIN') as copy,
        ):
            write_row = copy.write_row
            for row in rows:
                write_row(row)


class SqliteWriter(Writer):
    """executemany in large transactions; ids continue from the table's highest (we hold the write lock)."""

    commit_every = SQLITE_COMMIT_EVERY

    def __init__(self) -> None:
        super().__init__(_TimestampText(""))
        self._next: dict[type[models.Model], int] = {}

    def reset_ids(self) -> None:
        self._next.clear()

    def prepare(self) -> None:
        with connection.cursor() as cursor:
            # A 256 MiB page cache for this connection: the indexes of a large seed stop spilling to the OS
            # between batches (SQLite's default cache is 2 MiB).
            cursor.execute("PRAGMA cache_size = -262144")

    def reserve_ids(self, model: type[models.Model], n: int) -> list[int]:
        if model not in self._next:
            table = model._meta.db_table
            with connection.cursor() as cursor:
                cursor.execute(f'SELECT MAX("id") FROM "{table}"')  # noqa: S608 - table name from the model
                highest = cursor.fetchone()[0] or 0
                cursor.execute("SELECT seq FROM sqlite_sequence WHERE name = %s", [table])
                row = cursor.fetchone()
            self._next[model] = max(highest, row[0] if row else 0) + 1
        first = self._next[model]
        self._next[model] = first + n
        return list(range(first, first + n))

    def write(self, model: type[models.Model], fields: list[str], rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        names = ", ".join(f'"{c}"' for c in columns(model, fields))
        marks = ", ".join(["%s"] * len(fields))
        with connection.cursor() as cursor:
            cursor.executemany(f'INSERT INTO "{model._meta.db_table}" ({names}) VALUES ({marks})', rows)  # noqa: S608


class OrmWriter(Writer):
    """The plain Django way: model instances and ``bulk_create``. The benchmark's baseline only."""

    commit_every = BATCH

    def __init__(self) -> None:
        super().__init__(lambda epoch_seconds: dt.datetime.fromtimestamp(epoch_seconds, tz=dt.UTC))
        self._inner = PostgresWriter() if connection.vendor == "postgresql" else SqliteWriter()

    def reset_ids(self) -> None:
        self._inner.reset_ids()

    def reserve_ids(self, model: type[models.Model], n: int) -> list[int]:
        return self._inner.reserve_ids(model, n)

    def json(self, text: str) -> Any:
        return json.loads(text)

    def write(self, model: type[models.Model], fields: list[str], rows: list[tuple[Any, ...]]) -> None:
        attnames = [_concrete_field(model, n).attname for n in fields]
        model._default_manager.bulk_create([model(**dict(zip(attnames, row, strict=True))) for row in rows])


def writer_for_connection() -> Writer:
    return PostgresWriter() if connection.vendor == "postgresql" else SqliteWriter()


# --- the structure: departments, staff, tags, custom fields (small, through the ORM) ------------------------


def _below(rng: random.Random) -> Callable[[int], int]:
    """``n ↦ a number in [0, n)``: one random() per draw, much cheaper than ``randrange`` in the hot loop."""
    rand = rng.random
    return lambda n: int(rand() * n)


def _name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2, 2))))


def _namer(rng: random.Random) -> Callable[[], str]:
    """Chinese names: a surname and one or (more often) two given-name characters."""
    rand = rng.random
    surnames, given = SURNAMES, GIVEN
    n_surnames, n_given = len(surnames), len(given)

    def name() -> str:
        first = surnames[int(rand() * n_surnames)] + given[int(rand() * n_given)]
        return first + given[int(rand() * n_given)] if rand() < 2 / 3 else first

    return name


@transaction.atomic
def _structure(corp: Corp, rng: random.Random) -> tuple[list[Staff], dict[str, list[Tag]]]:
    departments: dict[int, Department] = {}
    for wecom_id, name, parent in DEPARTMENTS:
        departments[wecom_id] = Department.objects.create(
            corp=corp,
            wecom_id=wecom_id,
            name=name,
            parent=departments.get(parent) if parent else None,
            order=wecom_id,
        )
    staff: list[Staff] = []
    leaf_departments = [3, 3, 4, 4, 5, 5, 6, 7]
    for i in range(STAFF_COUNT):
        dept = departments[leaf_departments[i % len(leaf_departments)]]
        member = Staff.objects.create(
            corp=corp,
            userid=f"staff{i + 1:03d}",
            name=_name(rng),
            main_department=dept,
            status=Staff.Status.RESIGNED if i == STAFF_COUNT - 1 else Staff.Status.ACTIVE,
            has_contact_permission=i < STAFF_COUNT - 2,
        )
        StaffDepartment.objects.create(corp=corp, staff=member, department=dept)
        staff.append(member)
    tags: dict[str, list[Tag]] = {}
    for g_order, (group_name, names) in enumerate(TAG_GROUPS, start=1):
        group = TagGroup.objects.create(
            corp=corp, name=group_name, order=g_order, wecom_group_id=f"et_g{g_order:03d}"
        )
        tags[group_name] = [
            Tag.objects.create(
                corp=corp, group=group, name=n, order=i, wecom_tag_id=f"et_t{g_order:03d}_{i:03d}"
            )
            for i, n in enumerate(names, start=1)
        ]
    CustomField.objects.create(corp=corp, key="birthday", label="生日", kind=CustomField.Kind.DATE, order=1)
    CustomField.objects.create(
        corp=corp,
        key="member_level",
        label="会员等级",
        kind=CustomField.Kind.CHOICE,
        choices=MEMBER_LEVELS,
        order=2,
    )
    CustomField.objects.create(corp=corp, key="city", label="所在城市", kind=CustomField.Kind.TEXT, order=3)
    return staff, tags


# --- the bulk: customers and everything hanging off them ----------------------------------------------------


@dataclass
class _Rows:
    customers: list[tuple[Any, ...]] = field(default_factory=list)
    relations: list[tuple[Any, ...]] = field(default_factory=list)
    relation_tags: list[tuple[Any, ...]] = field(default_factory=list)
    customer_tags: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[tuple[Any, ...]] = field(default_factory=list)

    def by_table(self) -> list[list[tuple[Any, ...]]]:
        return [self.customers, self.relations, self.relation_tags, self.customer_tags, self.events]


def _weighted(rng: random.Random, weights: Sequence[float]) -> Callable[[], int]:
    """A picker of an index with the given weights (bisect on the cumulative sum: one random() per pick)."""
    cumulative: list[float] = []
    total = 0.0
    for w in weights:
        total += w
        cumulative.append(total)
    rand = rng.random
    last = len(cumulative) - 1
    return lambda: min(bisect.bisect(cumulative, rand() * total), last)


class _Generator:
    """Turns the random stream into rows. Only ``rng`` decides content; ids come from the writer."""

    def __init__(
        self,
        *,
        corp: Corp,
        rng: random.Random,
        staff: list[Staff],
        tags: dict[str, list[Tag]],
        until: dt.datetime,
    ) -> None:
        self.corp_id = corp.pk
        self.rng = rng
        self.staff = [s for s in staff if s.has_contact_permission]
        # Staff are not equally busy: a few front-line members carry most customers (Pareto-like weights).
        self.pick_staff = _weighted(rng, [1.0 / (i + 1) ** 0.7 for i in range(len(self.staff))])
        self.pick_relations = _weighted(rng, (70, 22, 8))  # 1, 2 or 3 staff relations
        self.pick_level = _weighted(rng, (5, 20, 60, 15))
        self.pick_lifecycle = _weighted(rng, (30, 40, 15, 15))
        self.tags = tags
        self.tag_json = {t.pk: json.dumps(t.name) for group in tags.values() for t in group}
        self.end = int(until.timestamp())
        self.start = self.end - DAYS * 86400

    def batch(self, writer: Writer, offset: int, customer_ids: list[int], relation_ids: deque[int]) -> _Rows:
        """Rows for customers ``offset`` …, one per ``customer_ids``; relation ids come from the left."""
        rng = self.rng
        rand = rng.random
        below = _below(rng)
        new_name = _namer(rng)
        sample = rng.sample
        ts = writer.timestamp
        as_json = writer.json
        corp_id = self.corp_id
        staff = [(s.pk, s.userid) for s in self.staff]
        tag_ids = {group: [t.pk for t in tags] for group, tags in self.tags.items()}
        regions, genders, interests = tag_ids["地区"], tag_ids["性别"], tag_ids["兴趣"]
        levels, channels, lifecycles = tag_ids["客户等级"], tag_ids["来源渠道"], tag_ids["生命周期"]
        tag_json = self.tag_json
        span = self.end - self.start
        end = self.end
        active = FollowRelation.Status.ACTIVE.value
        deleted_statuses = [
            FollowRelation.Status.DELETED_BY_CUSTOMER.value,
            FollowRelation.Status.DELETED_BY_STAFF.value,
        ]
        added_kind, tagged_kind, chatted_kind = (
            Event.Kind.ADDED.value,
            Event.Kind.TAGGED.value,
            Event.Kind.CHATTED.value,
        )
        source = Event.Source.SEED.value
        rows = _Rows()
        customers, relations, relation_tags = rows.customers, rows.relations, rows.relation_tags
        customer_tags, events = rows.customer_tags, rows.events
        next_relation_id = relation_ids.popleft
        for i, customer_id in enumerate(customer_ids, start=offset):
            external_userid = f"wmdemo{i:09d}"
            gender = (1, 2, 2, 0)[below(4)]
            first_add = self.start + below(span - 86400)  # the newest customer arrives a day before the end
            # 1–MAX_RELATIONS distinct staff members
            followers = list(
                dict.fromkeys(staff[self.pick_staff()] for _ in range(self.pick_relations() + 1))
            )
            name = new_name()
            unionid = f"ozdemo{i:09d}" if rand() < 0.6 else ""
            kind = 1 if rand() < 0.93 else 2
            # WeCom reports a company only for WeCom users (type 2); WeChat users have none.
            company = COMPANIES[below(len(COMPANIES))]
            corp_name = company if kind == 2 else ""
            custom_fields = (
                json.dumps({"member_level": MEMBER_LEVELS[below(len(MEMBER_LEVELS))]})
                if rand() < 0.4
                else "{}"
            )
            search_parts = [name]
            on_customer: dict[int, None] = {}
            added_at = last_added = first_add
            for staff_id, userid in followers:
                relation_id = next_relation_id()
                deleted = rand() < 0.08
                state = STATES[below(len(STATES))]
                mobiles = [MOBILE_PREFIXES[below(6)] + f"{below(10**8):08d}"] if rand() < 0.5 else []
                remark = f"{name}-{REMARK_SUFFIXES[below(5)]}" if rand() < 0.6 else ""
                add_way = ADD_WAYS[below(len(ADD_WAYS))]
                oper_userid = userid if rand() < 0.3 else ""
                status, changed_at = active, None
                if deleted:
                    status = deleted_statuses[below(2)]
                    changed_at = min(end, added_at + 86400 * (1 + below(29)))
                added_text = ts(added_at)
                # Dedupe keys start with the zero-padded relation id: they sort in insertion order, so the
                # unique (corp, dedupe_key) index grows at its right edge instead of splitting pages all over.
                key = f"seed:{relation_id:012d}"
                relations.append((
                    relation_id, corp_id, customer_id, staff_id, remark, "", "",
                    as_json(json.dumps(mobiles)), add_way, state, oper_userid, added_text, status,
                    None if changed_at is None else ts(changed_at),
                ))  # fmt: skip
                search_parts.append(remark)
                search_parts.extend(mobiles)
                events.append((
                    corp_id, customer_id, staff_id, added_kind, added_text, source,
                    as_json(f'{{"add_way": {add_way}, "state": "{state}", "relation_id": {relation_id}}}'),
                    f"{key}:added", added_text,
                ))  # fmt: skip
                chosen = [regions[below(len(regions))]]
                if gender in (1, 2):
                    chosen.append(genders[gender - 1])
                chosen += sample(interests, k=(0, 1, 1, 2, 3)[below(5)])
                chosen.append(levels[self.pick_level()])
                if rand() < 0.7:
                    chosen.append(channels[below(len(channels))])
                chosen.append(lifecycles[self.pick_lifecycle()])
                for n, tag_id in enumerate(chosen):
                    relation_tags.append((corp_id, relation_id, tag_id, customer_id, added_text))
                    on_customer[tag_id] = None
                    at = ts(added_at + 300 + 60 * n)
                    events.append((
                        corp_id, customer_id, staff_id, tagged_kind, at, source,
                        as_json(
                            f'{{"tag_id": {tag_id}, "tag": {tag_json[tag_id]}, "relation_id": {relation_id}}}'
                        ),
                        f"{key}:tagged:{tag_id}", at,
                    ))  # fmt: skip
                for c in range((0, 1, 2, 4)[below(4)]):
                    at = ts(min(end, added_at + 3600 * (1 + below(24 * 30 - 1))))
                    events.append((
                        corp_id, customer_id, staff_id, chatted_kind, at, source,
                        as_json(f'{{"messages": {1 + below(29)}}}'), f"{key}:chatted:{c}", at,
                    ))  # fmt: skip
                if changed_at is not None:
                    at = ts(changed_at)
                    events.append((
                        corp_id, customer_id, staff_id, status, at, source,
                        as_json(f'{{"relation_id": {relation_id}}}'), f"{key}:{status}", at,
                    ))  # fmt: skip
                last_added = max(last_added, added_at)
                # the next staff member adds them hours to weeks later (never after the end, minus an hour
                # for the tag events)
                added_at = min(end - 3600, added_at + 3600 * (1 + below(24 * 20 - 1)))
            customer_tags.extend((corp_id, customer_id, tag_id) for tag_id in on_customer)
            self._purchases(events, i, customer_id, followers[0][0], first_add, end, ts, as_json)
            # As customers.services.build_search_text: name, remarks, remark mobiles.
            search_text = " ".join(p for p in search_parts if p).lower()
            first_text = ts(first_add)
            customers.append((
                customer_id, corp_id, external_userid, unionid, name, "", gender, kind, corp_name, "",
                as_json(custom_fields), ts(last_added), search_text, first_text, first_text,
            ))  # fmt: skip
        return rows

    def _purchases(
        self,
        events: list[tuple[Any, ...]],
        i: int,
        customer_id: int,
        staff_id: int,
        first_add: int,
        end: int,
        ts: Callable[[int], Any],
        as_json: Callable[[str], Any],
    ) -> None:
        """Purchases reported by a shop (``customers.behaviour``): about a third of customers, 1–3 each, after
        they were added, credited to the staff member who added them first. Drawn from a hash of the
        customer's number, not the random stream, so the rest of a seed stays as it was."""
        mixed = (i * 2654435761) % 2**32
        if mixed % 100 >= PURCHASE_PERCENT:
            return
        window = max(1, end - 3600 - first_add)
        for k in range(1 + (mixed >> 8) % 3):
            at = ts(first_add + ((mixed >> 4) * (k + 1) * 7919) % window)
            amount = 19 + ((mixed >> 12) + 97 * k) % 480
            events.append((
                self.corp_id, customer_id, staff_id, Event.Kind.PURCHASED.value, at, Event.Source.SEED.value,
                as_json(f'{{"amount": "{amount}.00", "external_id": "demo-{i}-{k}"}}'),
                f"seed:c{customer_id:012d}:purchased:{k}", at,
            ))  # fmt: skip


def _default_until() -> dt.datetime:
    """The end of the demo's 90 days: the current hour, so seeds within the same hour are identical."""
    return now().replace(minute=0, second=0, microsecond=0)


def _load(
    writer: Writer, generator: _Generator, pool: ThreadPoolExecutor, start: int, end: int
) -> Iterator[list[int]]:
    """Write customers ``start`` … ``end - 1``; yields the rows written per table after each batch.

    Generating rows (Python) and writing them (mostly the database's work) overlap: the pool's one thread
    generates the next batch while this one writes the current. Generation stays strictly sequential, so the
    random stream, and so the data, are those of a plain loop. Ids are reserved here, on this thread's
    connection and transaction, before a batch is handed over; the generator never touches the database.
    """
    relation_ids: deque[int] = deque()  # what a batch leaves over is used by the next one

    def submit(offset: int) -> Future[_Rows]:
        size = min(BATCH, end - offset)
        relation_ids.extend(writer.reserve_ids(FollowRelation, MAX_RELATIONS * size - len(relation_ids)))
        return pool.submit(generator.batch, writer, offset, writer.reserve_ids(Customer, size), relation_ids)

    pending: Future[_Rows] | None = submit(start)
    while pending is not None:
        rows = pending.result()
        start += len(rows.customers)
        pending = submit(start) if start < end else None
        for (model, fields), table_rows in zip(TABLES, rows.by_table(), strict=True):
            writer.write(model, fields, table_rows)
        yield [len(table_rows) for table_rows in rows.by_table()]


def seed(
    *,
    customers: int,
    seed_value: int = 1,
    corpid: str | None = None,
    name: str | None = None,
    progress: bool = False,
    until: dt.datetime | None = None,
    writer: Writer | None = None,
) -> SeedReport:
    """Build a demo corp with ``customers`` customers; the same seed (and ``until``) gives the same data."""
    if customers < 0:
        raise ValueError("customers must be 0 or more")
    corpid = corpid or DEMO_CORPID
    if Corp.objects.filter(corpid=corpid).exists():
        raise Conflict(f"a corp with corpid {corpid} already exists; pass another --corpid to seed a new one")
    started = time.monotonic()
    rng = random.Random(seed_value)
    writer = writer or writer_for_connection()
    writer.reset_ids()
    writer.prepare()
    corp = create_corp(name=name or DEMO_NAME, corpid=corpid)
    staff, tags = _structure(corp, rng)
    generator = _Generator(corp=corp, rng=rng, staff=staff, tags=tags, until=until or _default_until())
    counts = [0] * len(TABLES)

    def say(message: str) -> None:
        if progress:
            print(message, file=sys.stderr, flush=True)

    per_transaction = writer.commit_every or max(customers, 1)
    done = 0
    last_report = 0.0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="seed") as pool:
        while done < customers:
            chunk_end = min(customers, done + per_transaction)
            with transaction.atomic():
                writer.transaction_started(chunk_end - done)
                for table_counts in _load(writer, generator, pool, done, chunk_end):
                    counts = [a + b for a, b in zip(counts, table_counts, strict=True)]
                    done += table_counts[0]
                    if time.monotonic() - last_report > 2 or done == customers:
                        last_report = time.monotonic()
                        elapsed = last_report - started
                        say(
                            f"  {done:,}/{customers:,} customers ({done * 100 // max(customers, 1)}%, "
                            f"{done / elapsed if elapsed else 0:,.0f}/s)"
                        )
                writer.transaction_ending(say)
            writer.reset_ids()  # SQLite's ids are only ours while we hold the write lock
    return SeedReport(
        corp=corp,
        customers=counts[0],
        relations=counts[1],
        tags=counts[2],
        customer_tags=counts[3],
        events=counts[4],
        seconds=time.monotonic() - started,
    )
