"""Offline members: importing a file (every rejection reason, idempotent re-import, Excel), and merging a
member into the customer whose relation carries their phone — on add, on a later remark change, and against
the relations Siyu already has when an import runs."""

from __future__ import annotations

import io

import pytest
from django.utils import translation
from openpyxl import Workbook

from siyu.core.models import Job
from siyu.corps.services import set_corp_credentials
from siyu.customers.models import Event, Note
from siyu.customers.services import create_custom_field, update_relation_remark
from siyu.offline.importing import process_import_job, start_import, upload_import
from siyu.offline.models import OfflineImportRejection, OfflineMember
from siyu.offline.phones import normalise_phone
from siyu.tags.models import RelationTag
from siyu.wecom.models import Outbox
from tests import factories
from tests.conftest import World, run_tasks

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _english():
    """Refusals are read in English here (the console's default language is Chinese)."""
    with translation.override("en"):
        yield


HEADER = "姓名,手机,标签,备注,会员等级\n"
GOOD = "陈静,138-0013-8000,上海、VIP,喜欢周末来店,金卡\n"


@pytest.fixture
def tags(world: World):
    create_custom_field(
        corp=world.corp, key="level", label="会员等级", kind="choice", choices=["银卡", "金卡"]
    )
    return {
        "上海": factories.make_tag(world.corp, "上海", group="地区"),
        "VIP": factories.make_tag(world.corp, "VIP", group="客户等级"),
        "新客": factories.make_tag(world.corp, "新客", group="生命周期"),
        "新客2": factories.make_tag(world.corp, "新客", group="渠道"),
    }


def run_import(world: World, content: bytes, name: str = "members.csv") -> Job:
    upload = upload_import(actor=world.operator, file_name=name, data=content)
    job = start_import(actor=world.operator, upload=upload, mapping=upload.mapping)
    return process_import_job(job_id=job.pk)  # type: ignore[return-value]


def test_bad_rows_are_reported_with_their_row_number_and_reason(world: World, tags) -> None:
    content = (
        HEADER
        + GOOD  # row 2
        + ",13900001111,,,\n"  # 3 missing name
        + "李四,12345,,,\n"  # 4 bad phone
        + "王五,,,,\n"  # 5 missing phone
        + "陈静的重复,+86 13800138000,,,\n"  # 6 duplicate of row 2
        + "赵六,13900002222,火星,,\n"  # 7 unknown tag
        + "钱七,13900003333,新客,,\n"  # 8 ambiguous tag (two groups)
        + "孙八,13900004444,生命周期/新客,,白金卡\n"  # 9 bad custom value
        + ",,,,\n"  # 10 blank line: ignored
        + "周九,0086 139 0000 5555,渠道/新客,,\n"  # 11 good
    ).encode()
    # when
    job = run_import(world, content)
    # then
    assert job.status == Job.Status.DONE
    rejections = {r.row_number: r.reason for r in OfflineImportRejection.objects.for_corp(world.corp)}
    assert rejections == {
        3: "missing_name",
        4: "bad_phone",
        5: "bad_phone",
        6: "duplicate_in_file",
        7: "unknown_tag",
        8: "unknown_tag",
        9: "bad_value",
    }
    assert (job.result["created"], job.result["rejected"]) == (2, 7)
    chen = OfflineMember.objects.get(corp=world.corp, phone="13800138000")
    assert (chen.name, chen.notes, chen.custom_fields) == ("陈静", "喜欢周末来店", {"level": "金卡"})
    assert chen.tag_ids == [tags["上海"].pk, tags["VIP"].pk]
    zhou = OfflineMember.objects.get(corp=world.corp, phone="13900005555")
    assert zhou.tag_ids == [tags["新客2"].pk]


def test_importing_the_same_file_twice_changes_nothing_and_a_changed_row_updates(world: World, tags) -> None:
    content = (HEADER + GOOD + "周九,13900005555,,,\n").encode()
    first = run_import(world, content)
    members = {m.pk: (m.name, m.updated_at) for m in OfflineMember.objects.for_corp(world.corp)}
    # when: the same file again
    again = run_import(world, content)
    # then
    assert (first.result["created"], again.result["created"], again.result["updated"]) == (2, 0, 0)
    assert again.result["unchanged"] == 2
    assert {m.pk: (m.name, m.updated_at) for m in OfflineMember.objects.for_corp(world.corp)} == members
    # when: the same phone with a new name
    changed = run_import(world, (HEADER + "陈静（老客）,13800138000,上海,,\n").encode())
    assert (changed.result["created"], changed.result["updated"]) == (0, 1)
    chen = OfflineMember.objects.get(corp=world.corp, phone="13800138000")
    assert (chen.name, chen.tag_ids, chen.notes) == ("陈静（老客）", [tags["上海"].pk], "")


def test_an_excel_file_imports_like_a_csv(world: World, tags) -> None:
    book = Workbook()
    sheet = book.active
    sheet.append(["Name", "Mobile", "Tags", "Notes"])
    sheet.append(["陈静", 13800138000, "VIP", "门店老客"])
    sheet.append(["", 13900001111, "", ""])
    out = io.BytesIO()
    book.save(out)
    job = run_import(world, out.getvalue(), name="members.xlsx")
    assert (job.result["created"], job.result["rejected"]) == (1, 1)
    assert OfflineMember.objects.get(corp=world.corp).phone == "13800138000"


def test_a_file_that_cannot_be_read_is_refused_with_a_reason(world: World) -> None:
    from siyu.core.errors import Invalid

    for name, content, message in (
        ("a.csv", b"", "choose a file"),
        ("a.pdf", b"%PDF-1.4", ".csv or .xlsx"),
        ("a.csv", "姓名,手机\n".encode(), "no rows"),
        ("a.xlsx", b"PK\x03\x04broken", "Excel"),
    ):
        with pytest.raises(Invalid, match=message):
            upload_import(actor=world.operator, file_name=name, data=content)
    upload = upload_import(actor=world.operator, file_name="a.csv", data="备注,姓名\nx,y\n".encode())
    with pytest.raises(Invalid, match="phone"):
        start_import(actor=world.operator, upload=upload, mapping=upload.mapping)


def test_a_customer_who_adds_staff_with_the_members_phone_merges(
    world: World, tags, django_capture_on_commit_callbacks
) -> None:
    set_corp_credentials(corp=world.corp, secret="s3cret", token="", aes_key="")
    run_import(world, (HEADER + GOOD).encode())
    customer = factories.make_customer(world.corp, "陈静（微信）")
    # when: a relation arrives whose remark mobile is the member's phone, written another way
    with django_capture_on_commit_callbacks(execute=True):
        relation = factories.follow(customer, world.wang, remark_mobiles=["+86 138 0013 8000"])
    run_tasks()
    # then
    member = OfflineMember.objects.get(corp=world.corp, phone="13800138000")
    assert (member.status, member.customer, member.relation) == ("merged", customer, relation)
    assert set(RelationTag.objects.filter(relation=relation).values_list("tag_id", flat=True)) == {
        tags["上海"].pk,
        tags["VIP"].pk,
    }
    assert Note.objects.get(customer=customer).text == "喜欢周末来店"
    customer.refresh_from_db()
    assert customer.custom_fields == {"level": "金卡"}
    [merged] = Event.objects.filter(customer=customer, kind=Event.Kind.OFFLINE_MERGED)
    assert merged.payload["offline_member_id"] == member.pk and "13800138000" not in str(merged.payload)
    # the tags went to WeCom through the outbox only where WeCom has them (these are Siyu-only tags: none)
    assert not Outbox.objects.filter(corp=world.corp, api="externalcontact/mark_tag").exists()
    # and merging again changes nothing
    from siyu.offline.merging import match_relations

    assert match_relations(corp_id=world.corp.pk, relation_ids=[relation.pk]) == 0


def test_wecom_tags_of_a_merge_are_written_to_wecom(world: World, django_capture_on_commit_callbacks) -> None:
    set_corp_credentials(corp=world.corp, secret="s3cret", token="", aes_key="")
    from siyu.tags.services import create_tag, create_tag_group

    group = create_tag_group(corp=world.corp, name="等级", wecom_group_id="etG1")
    create_tag(group=group, name="金卡", wecom_tag_id="etGold")
    run_import(world, "姓名,手机,标签\n陈静,13800138000,金卡\n".encode())
    customer = factories.make_customer(world.corp, "陈静")
    with django_capture_on_commit_callbacks(execute=True):
        factories.follow(customer, world.wang, remark_mobiles=["13800138000"])
    run_tasks()
    [write] = Outbox.objects.filter(corp=world.corp, api="externalcontact/mark_tag")
    assert write.payload["add_tag"] == ["etGold"]


def test_a_later_remark_mobile_merges_too(world: World, tags, django_capture_on_commit_callbacks) -> None:
    run_import(world, (HEADER + GOOD).encode())
    customer = factories.make_customer(world.corp, "陈静")
    relation = factories.follow(customer, world.liu)
    run_tasks()
    assert OfflineMember.objects.get(corp=world.corp).status == "pending"
    # when: the staff member adds the phone to the remark later
    with django_capture_on_commit_callbacks(execute=True):
        update_relation_remark(relation=relation, source=Event.Source.WECOM, remark_mobiles=["13800138000"])
    run_tasks()
    # then
    assert OfflineMember.objects.get(corp=world.corp).relation == relation


def test_an_import_merges_members_who_are_customers_already(world: World, tags) -> None:
    customer = factories.make_customer(world.corp, "陈静")
    relation = factories.follow(customer, world.wang, remark_mobiles=["138 0013 8000"])
    factories.follow(factories.make_customer(world.corp), world.wang, remark_mobiles=["13999999999"])
    # when
    job = run_import(world, (HEADER + GOOD + "周九,13900005555,,,\n").encode())
    # then
    assert (job.result["merged"], job.result["match_done"]) == (1, 2)
    assert OfflineMember.objects.get(corp=world.corp, phone="13800138000").relation == relation
    assert OfflineMember.objects.get(corp=world.corp, phone="13900005555").status == "pending"
    # a merged member's row in a later import is reported, not changed
    later = run_import(world, (HEADER + "陈静新名,13800138000,,,\n").encode())
    assert later.result["rejected"] == 1
    assert OfflineImportRejection.objects.filter(reason="already_merged").count() == 1


def test_pools_of_corps_do_not_mix(world: World, django_capture_on_commit_callbacks) -> None:
    run_import(world, "姓名,手机\n陈静,13800138000\n".encode())
    other = factories.make_staff(world.other_corp, "外企员工")
    with django_capture_on_commit_callbacks(execute=True):
        factories.follow(factories.make_customer(world.other_corp), other, remark_mobiles=["13800138000"])
    run_tasks()
    assert OfflineMember.objects.get(corp=world.corp).status == "pending"


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("+86 138-0013-8000", "13800138000"),
        ("0086 13800138000", "13800138000"),
        ("8613800138000", "13800138000"),
        (13800138000.0, "13800138000"),
        ("+852 9123 4567", "+85291234567"),
        ("12345", None),
        ("021-12345678", None),
        ("", None),
    ],
)
def test_phones_are_normalised(raw: object, normalised: str | None) -> None:
    assert normalise_phone(raw) == normalised
