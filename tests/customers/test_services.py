"""Customer and relation services: every state change appends its event, once."""

from __future__ import annotations

import datetime as dt

import pytest

from siyu.core import clock
from siyu.core.errors import Invalid
from siyu.customers.events import record_event
from siyu.customers.models import Customer, Event, FollowRelation, Note
from siyu.customers.services import (
    add_follow_relation,
    add_note,
    create_custom_field,
    end_follow_relation,
    set_custom_fields,
    update_relation_remark,
    upsert_customer,
)
from tests import factories

pytestmark = pytest.mark.django_db


def kinds(customer: Customer) -> list[str]:
    return list(
        Event.objects.for_corp(customer.corp_id)
        .filter(customer=customer)
        .order_by("id")
        .values_list("kind", flat=True)
    )


def test_add_relation_records_added_event_and_is_idempotent_while_active(world):
    # given
    customer = factories.make_customer(world.corp, "陈晨")
    # when
    first = add_follow_relation(
        customer=customer, staff=world.wang, source="console", state="ch_store", add_way=1
    )
    again = add_follow_relation(
        customer=customer, staff=world.wang, source="console", state="ch_store", add_way=1
    )
    # then
    assert first.pk == again.pk
    assert kinds(customer) == ["added"]
    event = Event.objects.get(customer=customer, kind="added")
    assert event.staff_id == world.wang.pk
    assert event.payload["state"] == "ch_store"


def test_deleted_and_re_added_relation_keeps_history(world):
    # given
    customer = factories.make_customer(world.corp)
    moment = dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.UTC)
    with clock.frozen_at(moment):
        relation = factories.follow(customer, world.wang)
        # when
        assert end_follow_relation(relation=relation, by="customer", source="wecom")
        assert not end_follow_relation(relation=relation, by="customer", source="wecom")  # already ended
        clock.advance(dt.timedelta(days=3))
        re_added = factories.follow(customer, world.wang)
    # then
    relations = FollowRelation.objects.for_corp(world.corp).filter(customer=customer).order_by("id")
    assert [r.status for r in relations] == ["deleted_by_customer", "active"]
    assert relations[0].status_changed_at == moment
    assert re_added.pk != relation.pk
    assert kinds(customer) == ["added", "deleted_by_customer", "added"]


def test_end_relation_by_staff_and_bad_side(world):
    customer = factories.make_customer(world.corp)
    relation = factories.follow(customer, world.liu)
    with pytest.raises(Invalid):
        end_follow_relation(relation=relation, by="nobody", source="console")
    assert end_follow_relation(relation=relation, by="staff", source="console")
    relation.refresh_from_db()
    assert relation.status == FollowRelation.Status.DELETED_BY_STAFF
    assert kinds(customer)[-1] == "deleted_by_staff"


def test_relation_between_corps_is_refused(world):
    other_staff = factories.make_staff(world.other_corp, "外人")
    customer = factories.make_customer(world.corp)
    with pytest.raises(Invalid):
        add_follow_relation(customer=customer, staff=other_staff, source="console")
    assert not FollowRelation.objects.filter(customer=customer).exists()


def test_remark_change_validates_records_before_after_and_updates_search(world):
    # given
    customer = factories.make_customer(world.corp, "周杰")
    relation = factories.follow(customer, world.wang)
    # when
    changed = update_relation_remark(
        relation=relation, source="console", remark="周先生-门店", remark_mobiles=["13800138000"]
    )
    # then
    assert changed == ["remark", "remark_mobiles"]
    event = Event.objects.get(customer=customer, kind="remark_changed")
    assert event.payload["after"]["remark"] == "周先生-门店"
    customer.refresh_from_db()
    assert "13800138000" in customer.search_text and "周先生-门店" in customer.search_text
    assert update_relation_remark(relation=relation, source="console", remark="周先生-门店") == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("remark", "x" * 65),
        ("description", "y" * 257),
        ("remark_mobiles", ["not-a-phone"]),
        ("remark_mobiles", ["13800138000"] * 6),
    ],
)
def test_remark_validation_writes_nothing(world, field, value):
    customer = factories.make_customer(world.corp)
    relation = factories.follow(customer, world.wang)
    with pytest.raises(Invalid) as error:
        update_relation_remark(relation=relation, source="console", **{field: value})
    assert error.value.field == field
    relation.refresh_from_db()
    assert relation.remark == "" and relation.remark_mobiles == []
    assert "remark_changed" not in kinds(customer)


def test_upsert_customer_updates_profile_with_event(world):
    customer = upsert_customer(corp=world.corp, external_userid="wmABC", name="旧名", source="wecom")
    same = upsert_customer(corp=world.corp, external_userid="wmABC", name="新名", gender=2, source="wecom")
    assert same.pk == customer.pk
    assert same.name == "新名" and same.gender == 2
    event = Event.objects.get(customer=customer, kind="profile_changed")
    assert sorted(event.payload["fields"]) == ["gender", "name"]
    with pytest.raises(Invalid):
        upsert_customer(corp=world.corp, external_userid="", name="x", source="wecom")
    with pytest.raises(Invalid):
        upsert_customer(corp=world.corp, external_userid="wmX", name="x", gender=7, source="wecom")


def test_same_external_userid_in_two_corps_are_two_customers(world):
    a = upsert_customer(corp=world.corp, external_userid="wmSAME", name="甲", source="wecom")
    b = upsert_customer(corp=world.other_corp, external_userid="wmSAME", name="乙", source="wecom")
    assert a.pk != b.pk
    assert Customer.objects.for_corp(world.corp).get(external_userid="wmSAME").name == "甲"


def test_custom_fields_validate_all_or_nothing(world):
    # given
    create_custom_field(corp=world.corp, key="birthday", label="生日", kind="date")
    create_custom_field(corp=world.corp, key="level", label="等级", kind="choice", choices=["金卡", "银卡"])
    create_custom_field(corp=world.corp, key="spend", label="消费", kind="number")
    customer = factories.make_customer(world.corp)
    # when a batch has one bad value, nothing is written
    with pytest.raises(Invalid) as error:
        set_custom_fields(
            customer=customer, values={"birthday": "1990-02-03", "level": "铜卡"}, source="console"
        )
    assert error.value.field == "level"
    customer.refresh_from_db()
    assert customer.custom_fields == {}
    # when all are valid
    changed = set_custom_fields(
        customer=customer,
        values={"birthday": "1990-02-03", "level": "金卡", "spend": "12.50"},
        source="console",
    )
    # then
    customer.refresh_from_db()
    assert sorted(changed) == ["birthday", "level", "spend"]
    assert customer.custom_fields == {"birthday": "1990-02-03", "level": "金卡", "spend": 12.5}
    with pytest.raises(Invalid):
        set_custom_fields(customer=customer, values={"unknown": "x"}, source="console")
    with pytest.raises(Invalid):
        set_custom_fields(customer=customer, values={"birthday": "02/03/1990"}, source="console")
    with pytest.raises(Invalid):
        set_custom_fields(customer=customer, values={"spend": "NaN"}, source="console")
    # clearing a value removes it
    set_custom_fields(customer=customer, values={"spend": ""}, source="console")
    customer.refresh_from_db()
    assert "spend" not in customer.custom_fields


def test_custom_field_definitions_are_validated(world):
    with pytest.raises(Invalid):
        create_custom_field(corp=world.corp, key="Bad Key", label="x")
    with pytest.raises(Invalid):
        create_custom_field(corp=world.corp, key="pick", label="x", kind="choice")
    create_custom_field(corp=world.corp, key="ok", label="x")
    with pytest.raises(Invalid):
        create_custom_field(corp=world.corp, key="ok", label="again")


def test_note_records_event_without_text(world):
    customer = factories.make_customer(world.corp)
    note = add_note(customer=customer, author_id=None, text="  喜欢周末到店  ", source="console")
    assert note.text == "喜欢周末到店"
    event = Event.objects.get(customer=customer, kind="note_added")
    assert "喜欢" not in str(event.payload)
    with pytest.raises(Invalid):
        add_note(customer=customer, author_id=None, text="   ", source="console")
    assert Note.objects.for_corp(world.corp).count() == 1


def test_record_event_dedupes_on_key_within_a_transaction(world):
    customer = factories.make_customer(world.corp)
    first = record_event(
        corp_id=world.corp.pk, customer_id=customer.pk, kind="chatted", source="wecom", dedupe_key="k1"
    )
    second = record_event(
        corp_id=world.corp.pk, customer_id=customer.pk, kind="chatted", source="wecom", dedupe_key="k1"
    )
    other_corp = record_event(corp_id=world.other_corp.pk, kind="chatted", source="wecom", dedupe_key="k1")
    assert first is not None and second is None and other_corp is not None
    assert Event.objects.filter(dedupe_key="k1").count() == 2
