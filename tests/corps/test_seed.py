"""Demo data: deterministic, realistic, consistent, and written exactly as the ORM would write it."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator

import pytest
from django.db import connection
from django.db.models import Count, Max, Prefetch

from siyu.config.cli import main
from siyu.core.errors import Conflict
from siyu.corps import seed as seed_module
from siyu.corps.models import Corp, Staff
from siyu.corps.seed import DAYS, TAG_GROUPS, OrmWriter, seed
from siyu.customers.models import Customer, Event, FollowRelation
from siyu.customers.services import build_search_text
from siyu.tags.models import CustomerTag, RelationTag, Tag, TagGroup

UNTIL = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
N = 120
CUSTOMER_COLUMNS = ("external_userid", "unionid", "name", "gender", "type", "corp_name", "custom_fields")
CUSTOMER_COLUMNS += ("last_added_at", "search_text", "created_at", "updated_at")
RELATION_COLUMNS = ("remark", "remark_mobiles", "add_way", "state", "oper_userid", "added_at", "status")
RELATION_COLUMNS += ("status_changed_at",)


def digest_lines(corp: Corp) -> Iterator[str]:
    """The corp's seeded content as id-free lines: ids and the corp are replaced by stable names."""
    staff = dict(Staff.objects.for_corp(corp).values_list("pk", "userid"))
    tag_names = dict(Tag.objects.for_corp(corp).values_list("pk", "name"))
    customers = dict(Customer.objects.for_corp(corp).values_list("pk", "external_userid"))
    relations = {
        pk: f"{customers[c]}/{staff[s]}"
        for pk, c, s in FollowRelation.objects.for_corp(corp).values_list("pk", "customer_id", "staff_id")
    }
    yield from sorted(f"{u}:{n}" for u, n in Staff.objects.for_corp(corp).values_list("userid", "name"))
    yield from (
        repr(row)
        for row in Customer.objects.for_corp(corp).order_by("external_userid").values_list(*CUSTOMER_COLUMNS)
    )
    yield from sorted(
        repr((relations[pk], *rest))
        for pk, *rest in FollowRelation.objects.for_corp(corp).values_list("pk", *RELATION_COLUMNS)
    )
    yield from sorted(
        f"{relations[r]}:{tag_names[t]}:{at.isoformat()}"
        for r, t, at in RelationTag.objects.for_corp(corp).values_list("relation_id", "tag_id", "created_at")
    )
    yield from sorted(
        f"{customers[c]}:{tag_names[t]}"
        for c, t in CustomerTag.objects.for_corp(corp).values_list("customer_id", "tag_id")
    )
    for customer_id, staff_id, kind, source, occurred_at, payload in Event.objects.for_corp(corp).values_list(
        "customer_id", "staff_id", "kind", "source", "occurred_at", "payload"
    ):
        payload = dict(payload)
        if "relation_id" in payload:
            payload["relation_id"] = relations[payload["relation_id"]]
        if "tag_id" in payload:
            payload["tag_id"] = tag_names[payload["tag_id"]]
        yield repr(
            (customers[customer_id], staff[staff_id], kind, source, occurred_at, sorted(payload.items()))
        )


def digest(corp: Corp) -> str:
    lines = sorted(digest_lines(corp))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


@pytest.mark.django_db
def test_the_same_seed_gives_the_same_data_in_two_corps() -> None:
    # given two corps seeded with the same seed value
    first = seed(customers=N, seed_value=7, corpid="wwseedfirst", until=UNTIL)
    second = seed(customers=N, seed_value=7, corpid="wwseedsecond", until=UNTIL)
    # when their content is compared without ids
    # then it is identical, and the counts say so too
    assert digest(first.corp) == digest(second.corp)
    assert (first.customers, first.relations, first.tags, first.customer_tags, first.events) == (
        second.customers,
        second.relations,
        second.tags,
        second.customer_tags,
        second.events,
    )


@pytest.mark.django_db
def test_another_seed_gives_other_data() -> None:
    # given two corps seeded with different seed values
    first = seed(customers=N, seed_value=7, corpid="wwseedseven", until=UNTIL)
    other = seed(customers=N, seed_value=8, corpid="wwseedeight", until=UNTIL)
    # then their content differs
    assert digest(first.corp) != digest(other.corp)


@pytest.mark.django_db
def test_the_fast_path_writes_what_the_orm_would_write() -> None:
    # given the same seed written by COPY/executemany and by Django's bulk_create
    fast = seed(customers=N, seed_value=3, corpid="wwseedfast", until=UNTIL)
    orm = seed(customers=N, seed_value=3, corpid="wwseedorm", until=UNTIL, writer=OrmWriter())
    # then the rows read back through the ORM are identical (timestamps, JSON, text)
    assert digest(fast.corp) == digest(orm.corp)


@pytest.mark.django_db
def test_seeded_corp_is_realistic_and_consistent() -> None:
    # given
    report = seed(customers=N, seed_value=11, corpid="wwseedreal", until=UNTIL)
    corp = report.corp
    customers = Customer.objects.for_corp(corp)
    # then the structure is there: ~30 staff, the named tag groups with their tags
    assert Staff.objects.for_corp(corp).count() == 30
    assert list(TagGroup.objects.for_corp(corp).values_list("name", flat=True)) == [g for g, _ in TAG_GROUPS]
    assert Tag.objects.for_corp(corp).count() == sum(len(tags) for _, tags in TAG_GROUPS)
    # and every customer has 1–3 relations, with Chinese names
    per_customer = customers.annotate(n=Count("relations")).values_list("n", flat=True)
    assert customers.count() == N == report.customers
    assert set(per_customer) <= {1, 2, 3} and max(per_customer) > 1
    assert all("\u4e00" <= name[0] <= "\u9fff" for name in customers.values_list("name", flat=True))
    # and the derived columns are what the services would compute
    for customer in customers.prefetch_related(
        Prefetch("relations", queryset=FollowRelation.objects.order_by("id"))
    ):
        relations = list(customer.relations.all())
        assert customer.search_text == build_search_text(customer, relations)
        assert customer.last_added_at == max(r.added_at for r in relations)
    # and the per-customer tag view is exactly the union of the relation tags
    from_relations = set(RelationTag.objects.for_corp(corp).values_list("customer_id", "tag_id"))
    assert set(CustomerTag.objects.for_corp(corp).values_list("customer_id", "tag_id")) == from_relations
    assert CustomerTag.objects.for_corp(corp).count() == report.customer_tags == len(from_relations)
    # and the timeline spans the 90 days before `until`, with an `added` event per relation
    events = Event.objects.for_corp(corp)
    latest = events.aggregate(m=Max("occurred_at"))["m"]
    assert latest is not None and UNTIL - dt.timedelta(days=1) <= latest <= UNTIL
    assert not events.filter(occurred_at__lt=UNTIL - dt.timedelta(days=DAYS)).exists()
    assert events.filter(kind=Event.Kind.ADDED).count() == FollowRelation.objects.for_corp(corp).count()
    assert events.filter(kind=Event.Kind.TAGGED).count() == RelationTag.objects.for_corp(corp).count()
    assert set(events.values_list("kind", flat=True)) >= {"added", "tagged", "chatted"}


@pytest.mark.django_db
def test_no_seeded_row_points_at_a_missing_parent() -> None:
    # given a seed (on PostgreSQL as a superuser it loads without per-row foreign-key triggers)
    report = seed(customers=N, seed_value=5, corpid="wwseedfk", until=UNTIL)
    corp = report.corp
    customer_ids = set(Customer.objects.for_corp(corp).values_list("pk", flat=True))
    relation_ids = set(FollowRelation.objects.for_corp(corp).values_list("pk", flat=True))
    staff_ids = set(Staff.objects.for_corp(corp).values_list("pk", flat=True))
    tag_ids = set(Tag.objects.for_corp(corp).values_list("pk", flat=True))
    # then every reference resolves inside the same corp
    relations = FollowRelation.objects.for_corp(corp).values_list("customer_id", "staff_id")
    assert {c for c, _ in relations} == customer_ids
    assert {s for _, s in relations} <= staff_ids
    for relation_id, tag_id, customer_id in RelationTag.objects.for_corp(corp).values_list(
        "relation_id", "tag_id", "customer_id"
    ):
        assert relation_id in relation_ids and tag_id in tag_ids and customer_id in customer_ids
    for customer_id, staff_id in Event.objects.for_corp(corp).values_list("customer_id", "staff_id"):
        assert customer_id in customer_ids and staff_id in staff_ids


@pytest.mark.django_db
def test_seeding_after_other_data_continues_the_ids() -> None:
    # given a corp already seeded, and a second seed
    first = seed(customers=10, seed_value=1, corpid="wwseedids1", until=UNTIL)
    second = seed(customers=10, seed_value=1, corpid="wwseedids2", until=UNTIL)
    # then the second corp's rows come after the first's, and new rows still get fresh ids
    first_max = Customer.objects.for_corp(first.corp).aggregate(m=Max("pk"))["m"]
    assert Customer.objects.for_corp(second.corp).filter(pk__lte=first_max).count() == 0
    created = Customer.objects.create(corp=second.corp, external_userid="wmafterseed", name="新客")
    assert created.pk > Customer.objects.exclude(pk=created.pk).aggregate(m=Max("pk"))["m"]


@pytest.mark.django_db
def test_seeding_an_existing_corpid_is_refused() -> None:
    # given
    seed(customers=3, seed_value=1, corpid="wwseedtwice", until=UNTIL)
    # when / then
    with pytest.raises(Conflict, match="already exists"):
        seed(customers=3, seed_value=1, corpid="wwseedtwice", until=UNTIL)
    assert Customer.objects.filter(corp__corpid="wwseedtwice").count() == 3


@pytest.mark.django_db(transaction=True)
def test_cli_seed_twice_exits_2_with_a_clear_message(capsys: pytest.CaptureFixture[str]) -> None:
    # given a first seed through the command line
    assert main(["seed", "--customers", "4", "--corpid", "wwseedcli", "--quiet"]) == 0
    assert "4 customers" in capsys.readouterr().out
    # when the same corpid is seeded again
    code = main(["seed", "--customers", "4", "--corpid", "wwseedcli", "--quiet"])
    # then it is refused with exit code 2 and a message naming the corpid and --corpid
    err = capsys.readouterr().err
    assert code == 2
    assert "wwseedcli" in err and "--corpid" in err
    # and another corpid works
    assert main(["seed", "--customers", "2", "--corpid", "wwseedcli2", "--quiet"]) == 0


@pytest.mark.django_db
def test_progress_goes_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    # when
    seed(customers=5, seed_value=1, corpid="wwseedprogress", until=UNTIL, progress=True)
    # then
    captured = capsys.readouterr()
    assert "5/5 customers" in captured.err
    assert captured.out == ""


def index_definitions() -> list[str]:
    tables = [model._meta.db_table for model, _fields in seed_module.TABLES]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = ANY(%s) ORDER BY indexname", [tables]
        )
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "postgresql", reason="the bulk load is PostgreSQL's")
def test_bulk_load_into_a_fresh_database_rebuilds_every_index_and_writes_the_same_rows(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a fresh database and a seed large enough (here: any size) for the bulk path
    before = index_definitions()
    monkeypatch.setattr(seed_module, "BULK_LOAD_MIN", 1)
    # when it seeds
    bulk = seed(customers=N, seed_value=4, corpid="wwseedbulk", until=UNTIL, progress=True)
    # then the secondary indexes were dropped and rebuilt, identical
    assert "rebuilt" in capsys.readouterr().err
    assert index_definitions() == before
    # and the rows are those of a load with the indexes in place
    monkeypatch.setattr(seed_module, "BULK_LOAD_MIN", 10**9)
    plain = seed(customers=N, seed_value=4, corpid="wwseedplain", until=UNTIL, progress=True)
    assert "rebuilt" not in capsys.readouterr().err
    assert digest(bulk.corp) == digest(plain.corp)
