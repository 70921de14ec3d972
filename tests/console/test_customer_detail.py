"""The customer detail page: what it shows, who may see and edit what, and that edits go through services."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from siyu.core.clock import frozen_at
from siyu.corps.models import AuditLog
from siyu.customers.models import Customer, Event, FollowRelation, Note
from siyu.customers.services import add_note, create_custom_field, end_follow_relation
from siyu.tags.models import CustomerTag, RelationTag
from siyu.tags.services import mark_relation_tags
from tests import factories
from tests.conftest import World

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def login(client: Client, username: str) -> Client:
    client.force_login(get_user_model().objects.get(username=username))
    return client


def detail_url(customer: Customer) -> str:
    return reverse("customers:detail", args=[customer.pk])


def remark_url(relation: FollowRelation) -> str:
    return reverse("customers:relation_remark", args=[relation.customer_id, relation.pk])


def tags_url(relation: FollowRelation) -> str:
    return reverse("customers:relation_tags", args=[relation.customer_id, relation.pk])


@pytest.fixture
def shared(world: World) -> Customer:
    """A customer both 王芳 (华东) and 刘强 (华南) follow."""
    customer = factories.make_customer(
        world.corp, "陈静", external_userid="wmshared0001", unionid="union-chen", corp_name="静思科技", type=2
    )
    factories.follow(customer, world.wang, remark="王的备注", state="ch_store", add_way=1)
    factories.follow(customer, world.liu, remark="刘的备注", description="刘的描述", add_way=202)
    return customer


@pytest.fixture
def wang_only(world: World) -> Customer:
    customer = factories.make_customer(world.corp, "王的客户", external_userid="wmwang000001")
    factories.follow(customer, world.wang, remark="只有王")
    return customer


@pytest.fixture
def liu_only(world: World) -> Customer:
    customer = factories.make_customer(world.corp, "刘的客户", external_userid="wmliu0000001")
    factories.follow(customer, world.liu, remark="只有刘")
    return customer


def relation_of(customer: Customer, staff_id: int) -> FollowRelation:
    return FollowRelation.objects.for_corp(customer.corp_id).get(
        customer=customer, staff_id=staff_id, status=FollowRelation.Status.ACTIVE
    )


# ---------- rendering ----------


def test_admin_sees_profile_every_relation_tags_timeline_and_notes(
    client: Client, world: World, shared: Customer
):
    # given
    tag = factories.make_tag(world.corp, "上海", group="地区")
    mark_relation_tags(relation=relation_of(shared, world.liu.pk), add=[tag], source=Event.Source.CONSOLE)
    add_note(customer=shared, author_id=None, text="喜欢周末到店", source=Event.Source.CONSOLE)
    login(client, "admin1")

    # when
    response = client.get(detail_url(shared))

    # then
    assert response.status_code == 200
    html = response.content.decode()
    for expected in [
        "陈静",
        "wmshared0001",
        "union-chen",
        "静思科技",
        "王芳",
        "刘强",
        "王的备注",
        "刘的备注",
        "刘的描述",
    ]:
        assert expected in html, expected
    assert "ch_store" in html  # the channel (state) of 王芳's relation
    assert f'data-testid="customer-tag" data-tag-id="{tag.pk}"' in html
    assert "喜欢周末到店" in html
    assert html.count('data-testid="timeline-event"') == Event.objects.filter(customer=shared).count() == 4


def test_every_view_of_the_page_is_audited(client: Client, world: World, shared: Customer):
    # given
    login(client, "operator1")

    # when
    client.get(detail_url(shared))
    client.get(detail_url(shared))

    # then
    views = AuditLog.objects.for_corp(world.corp).filter(action="customer.view", object_id=str(shared.pk))
    assert views.count() == 2
    assert {row.user.username for row in views} == {"operator1"}


def test_times_are_shown_in_the_corps_time_zone(client: Client, world: World):
    # given: added at 00:30 UTC, which is 08:30 in Asia/Shanghai
    with frozen_at(dt.datetime(2026, 3, 1, 0, 30, tzinfo=dt.UTC)):
        customer = factories.make_customer(world.corp, "时区客户")
        factories.follow(customer, world.wang)
    login(client, "admin1")

    # when
    html = client.get(detail_url(customer)).content.decode()

    # then
    assert "2026-03-01 08:30" in html
    assert "2026-03-01 00:30" not in html


def test_ended_relations_show_who_ended_them_and_are_read_only(
    client: Client, world: World, shared: Customer
):
    # given
    relation = relation_of(shared, world.liu.pk)
    with frozen_at(dt.datetime(2026, 4, 2, 2, 0, tzinfo=dt.UTC)):
        end_follow_relation(relation=relation, by="customer", source=Event.Source.WECOM)
    login(client, "admin1")

    # when
    html = client.get(detail_url(shared)).content.decode()

    # then
    card = html[html.index(f'id="relation-{relation.pk}"') :]
    card = card[: card.index("</article>")]
    assert "客户删除员工" in card  # Deleted by customer
    assert "2026-04-02 10:00" in card
    assert "remark-form" not in card and "add-tag-select" not in card
    assert "客户删除了刘强" in html  # The customer deleted 刘强


# ---------- scope ----------


def test_staff_cannot_open_a_customer_only_another_staff_member_follows(client: Client, wang_only: Customer):
    login(client, "liu")
    assert client.get(detail_url(wang_only)).status_code == 404


def test_staff_see_only_their_own_relation_of_a_shared_customer(client: Client, shared: Customer):
    # given
    login(client, "wang")

    # when
    html = client.get(detail_url(shared)).content.decode()

    # then
    assert "王的备注" in html
    assert "刘的备注" not in html and "刘的描述" not in html


def test_a_manager_sees_their_departments_customers_only(
    client: Client, world: World, wang_only: Customer, liu_only: Customer, shared: Customer
):
    login(client, "manager1")
    assert client.get(detail_url(wang_only)).status_code == 200
    assert client.get(detail_url(liu_only)).status_code == 404
    html = client.get(detail_url(shared)).content.decode()
    assert "王的备注" in html and "刘的备注" not in html


def test_another_corps_customer_is_not_found(client: Client, world: World):
    # given
    foreign = factories.make_customer(world.other_corp, "别家客户")
    factories.follow(foreign, factories.make_staff(world.other_corp, "外人"))
    login(client, "admin1")

    # when / then
    assert client.get(detail_url(foreign)).status_code == 404
    assert client.get(reverse("customers:detail", args=[999_999])).status_code == 404
    assert not AuditLog.objects.filter(action="customer.view").exists()


def test_anonymous_visitors_are_sent_to_log_in(client: Client, shared: Customer):
    response = client.get(detail_url(shared))
    assert response.status_code == 302
    assert reverse("console:login") in response["Location"]


def test_a_user_without_a_role_gets_403(client: Client, world: World, shared: Customer):
    # given
    user = get_user_model().objects.create_user(username="nobody", password=World.password)
    client.force_login(user)

    # when / then
    assert client.get(detail_url(shared)).status_code == 403


# ---------- remark ----------


def test_staff_edit_the_remark_of_their_own_relation(client: Client, world: World, shared: Customer):
    # given
    relation = relation_of(shared, world.wang.pk)
    login(client, "wang")

    # when
    response = client.post(
        remark_url(relation),
        {"remark": "老朋友", "description": "每月到店", "remark_mobiles": "13800001111\n13900002222"},
    )

    # then
    assert response.status_code == 302
    assert response["Location"].endswith(f"#relation-{relation.pk}")
    relation.refresh_from_db()
    assert (relation.remark, relation.description) == ("老朋友", "每月到店")
    assert relation.remark_mobiles == ["13800001111", "13900002222"]
    event = Event.objects.get(customer=shared, kind=Event.Kind.REMARK_CHANGED)
    assert event.source == Event.Source.CONSOLE
    assert event.payload["after"]["remark"] == "老朋友"
    html = client.get(detail_url(shared)).content.decode()
    assert "王芳对客户的备注已修改" in html  # 王芳's remark changed


def test_staff_cannot_edit_another_staff_members_relation(client: Client, world: World, shared: Customer):
    # given
    relation = relation_of(shared, world.liu.pk)
    login(client, "wang")

    # when
    response = client.post(remark_url(relation), {"remark": "篡改", "description": "", "remark_mobiles": ""})

    # then
    assert response.status_code == 404
    relation.refresh_from_db()
    assert relation.remark == "刘的备注"
    assert not Event.objects.filter(kind=Event.Kind.REMARK_CHANGED).exists()


def test_a_manager_edits_their_staffs_relations_but_not_others(
    client: Client, world: World, shared: Customer
):
    # given
    login(client, "manager1")
    wang_relation, liu_relation = relation_of(shared, world.wang.pk), relation_of(shared, world.liu.pk)

    # when
    allowed = client.post(
        remark_url(wang_relation), {"remark": "经理改", "description": "", "remark_mobiles": ""}
    )
    refused = client.post(
        remark_url(liu_relation), {"remark": "经理改", "description": "", "remark_mobiles": ""}
    )

    # then
    assert (allowed.status_code, refused.status_code) == (302, 404)
    wang_relation.refresh_from_db()
    liu_relation.refresh_from_db()
    assert (wang_relation.remark, liu_relation.remark) == ("经理改", "刘的备注")


def test_a_relation_of_another_customer_is_not_found(
    client: Client, world: World, shared: Customer, wang_only
):
    # given: a real relation, but under the wrong customer's URL
    relation = relation_of(wang_only, world.wang.pk)
    login(client, "admin1")
    url = reverse("customers:relation_remark", args=[shared.pk, relation.pk])

    # when / then
    assert client.post(url, {"remark": "x"}).status_code == 404


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        ({"remark": "长" * 65}, "remark", "备注最多 64 个字符"),
        ({"description": "长" * 257}, "description", "描述最多 256 个字符"),
        ({"remark_mobiles": "not-a-phone"}, "remark_mobiles", "不是有效的手机号"),
        (
            {"remark_mobiles": "\n".join(f"1380000000{i}" for i in range(6))},
            "remark_mobiles",
            "备注手机号最多 5 个",
        ),
    ],
)
def test_a_bad_remark_is_shown_with_its_error_and_nothing_is_written(
    client: Client, world: World, shared: Customer, form: dict[str, str], field: str, message: str
):
    # given
    relation = relation_of(shared, world.wang.pk)
    login(client, "wang")
    data = {"remark": "王的备注", "description": "", "remark_mobiles": "", **form}

    # when
    plain = client.post(remark_url(relation), data)
    htmx = client.post(remark_url(relation), data, **HTMX)

    # then
    for response in (plain, htmx):
        assert response.status_code == 400
        assert message in response.content.decode()
    assert f'id="remark-{relation.pk}" name="remark"' in htmx.content.decode()
    relation.refresh_from_db()
    assert relation.remark == "王的备注" and relation.description == "" and relation.remark_mobiles == []
    assert not Event.objects.filter(kind=Event.Kind.REMARK_CHANGED).exists()


def test_an_ended_relation_cannot_be_edited(client: Client, world: World, shared: Customer):
    # given
    relation = relation_of(shared, world.wang.pk)
    end_follow_relation(relation=relation, by="staff", source=Event.Source.WECOM)
    login(client, "admin1")

    # when
    response = client.post(remark_url(relation), {"remark": "复活", "description": "", "remark_mobiles": ""})

    # then
    assert response.status_code == 400
    relation.refresh_from_db()
    assert relation.remark == "王的备注"


# ---------- tags ----------


def test_adding_a_tag_goes_through_the_service_and_shows_up_everywhere(client: Client, world: World, shared):
    # given
    tag = factories.make_tag(world.corp, "高意向", group="客户等级")
    relation = relation_of(shared, world.wang.pk)
    login(client, "wang")

    # when
    response = client.post(tags_url(relation), {"add": str(tag.pk)}, **HTMX)

    # then
    assert response.status_code == 200
    html = response.content.decode()
    assert f'id="relation-{relation.pk}"' in html
    assert f'data-testid="remove-tag-{tag.pk}"' in html
    assert 'id="customer-tags" data-testid="customer-tags" hx-swap-oob="true"' in html
    assert 'id="timeline-list" data-testid="timeline" hx-swap-oob="true"' in html
    assert "在王芳处打上标签“高意向”" in html  # Tagged “高意向” on 王芳's relation
    assert RelationTag.objects.filter(relation=relation, tag=tag).exists()
    assert CustomerTag.objects.filter(customer=shared, tag=tag).exists()
    event = Event.objects.get(customer=shared, kind=Event.Kind.TAGGED)
    assert (event.staff_id, event.payload["tag_id"], event.source) == (world.wang.pk, tag.pk, "console")


def test_removing_a_tag_without_javascript_redirects_back(client: Client, world: World, shared: Customer):
    # given
    tag = factories.make_tag(world.corp, "高意向", group="客户等级")
    relation = relation_of(shared, world.wang.pk)
    mark_relation_tags(relation=relation, add=[tag], source=Event.Source.CONSOLE)
    login(client, "wang")

    # when
    response = client.post(tags_url(relation), {"remove": str(tag.pk)})

    # then
    assert response.status_code == 302
    assert response["Location"] == detail_url(shared) + f"#relation-{relation.pk}"
    assert not RelationTag.objects.filter(relation=relation).exists()
    assert not CustomerTag.objects.filter(customer=shared).exists()
    assert (
        Event.objects.filter(customer=shared, kind=Event.Kind.UNTAGGED, payload__tag_id=tag.pk).count() == 1
    )


def test_the_customer_keeps_a_tag_another_relation_still_carries(
    client: Client, world: World, shared: Customer
):
    # given
    tag = factories.make_tag(world.corp, "高意向", group="客户等级")
    for staff in (world.wang, world.liu):
        mark_relation_tags(relation=relation_of(shared, staff.pk), add=[tag], source=Event.Source.CONSOLE)
    login(client, "wang")

    # when
    client.post(tags_url(relation_of(shared, world.wang.pk)), {"remove": str(tag.pk)})

    # then
    assert CustomerTag.objects.filter(customer=shared, tag=tag).exists()
    html = client.get(detail_url(shared)).content.decode()
    assert f'data-testid="customer-tag" data-tag-id="{tag.pk}"' in html


def test_staff_cannot_tag_another_staff_members_relation(client: Client, world: World, shared: Customer):
    # given
    tag = factories.make_tag(world.corp, "高意向")
    login(client, "liu")

    # when
    response = client.post(tags_url(relation_of(shared, world.wang.pk)), {"add": str(tag.pk)})

    # then
    assert response.status_code == 404
    assert not RelationTag.objects.exists()


@pytest.mark.parametrize("bad", ["foreign", "missing", "text", "none"])
def test_a_bad_tag_is_refused_with_a_message_and_nothing_is_written(
    client: Client, world: World, shared: Customer, bad: str
):
    # given
    foreign = factories.make_tag(world.other_corp, "别家标签")
    value = {"foreign": str(foreign.pk), "missing": "999999", "text": "abc", "none": ""}[bad]
    relation = relation_of(shared, world.wang.pk)
    login(client, "wang")

    # when
    plain = client.post(tags_url(relation), {"add": value})
    htmx = client.post(tags_url(relation), {"add": value}, **HTMX)

    # then
    assert plain.status_code == htmx.status_code == 400
    assert 'data-testid="tag-error"' in plain.content.decode()
    assert 'data-testid="tag-error"' in htmx.content.decode()
    assert not RelationTag.objects.exists()
    assert not Event.objects.filter(kind=Event.Kind.TAGGED).exists()


def test_reads_and_edits_need_the_right_method(client: Client, world: World, shared: Customer):
    login(client, "admin1")
    relation = relation_of(shared, world.wang.pk)
    assert client.get(tags_url(relation)).status_code == 405
    assert client.get(remark_url(relation)).status_code == 405
    assert client.post(detail_url(shared)).status_code == 405


# ---------- custom fields ----------


@pytest.fixture
def fields(world: World):
    create_custom_field(corp=world.corp, key="birthday", label="生日", kind="date")
    create_custom_field(corp=world.corp, key="budget", label="预算", kind="number")
    create_custom_field(
        corp=world.corp, key="level", label="会员等级", kind="choice", choices=["银卡", "金卡"]
    )


def test_custom_fields_are_saved_through_the_service(client: Client, world: World, shared: Customer, fields):
    # given
    login(client, "wang")
    url = reverse("customers:custom_fields", args=[shared.pk])

    # when
    response = client.post(url, {"cf_birthday": "1990-05-01", "cf_budget": "5000", "cf_level": "金卡"})

    # then
    assert response.status_code == 302
    shared.refresh_from_db()
    assert shared.custom_fields == {"birthday": "1990-05-01", "budget": 5000, "level": "金卡"}
    event = Event.objects.get(customer=shared, kind=Event.Kind.PROFILE_CHANGED, source="console")
    assert sorted(event.payload["fields"]) == ["custom.birthday", "custom.budget", "custom.level"]
    html = client.get(detail_url(shared)).content.decode()
    assert 'value="1990-05-01"' in html
    assert "资料已更新：生日、预算、会员等级" in html


def test_every_bad_custom_field_gets_its_own_error_and_nothing_is_written(
    client: Client, world: World, shared: Customer, fields
):
    # given
    login(client, "wang")
    url = reverse("customers:custom_fields", args=[shared.pk])
    data = {"cf_birthday": "not-a-date", "cf_budget": "lots", "cf_level": "金卡"}

    # when
    plain = client.post(url, data)
    htmx = client.post(url, data, **HTMX)

    # then
    for response in (plain, htmx):
        html = response.content.decode()
        assert response.status_code == 400
        assert 'data-field="birthday"' in html and "不是有效的日期" in html
        assert 'data-field="budget"' in html and "不是有效的数字" in html
        assert 'data-field="level"' not in html
        assert 'value="lots"' in html  # what was typed comes back for correcting
    shared.refresh_from_db()
    assert shared.custom_fields == {}
    assert not Event.objects.filter(kind=Event.Kind.PROFILE_CHANGED, source="console").exists()


# ---------- notes ----------


def test_a_note_is_added_and_its_adding_is_on_the_timeline(client: Client, world: World, shared: Customer):
    # given
    login(client, "wang")
    url = reverse("customers:add_note", args=[shared.pk])

    # when
    response = client.post(url, {"text": "周五回访"}, **HTMX)

    # then
    assert response.status_code == 200
    html = response.content.decode()
    assert "周五回访" in html
    assert "wang添加了跟进记录" in html  # the out-of-band timeline names the author
    note = Note.objects.get(customer=shared)
    assert note.author.username == "wang"
    assert Event.objects.filter(
        customer=shared, kind=Event.Kind.NOTE_ADDED, payload__note_id=note.pk
    ).exists()


def test_an_empty_note_is_refused(client: Client, world: World, shared: Customer):
    # given
    login(client, "wang")
    url = reverse("customers:add_note", args=[shared.pk])

    # when
    response = client.post(url, {"text": "   "})

    # then
    assert response.status_code == 400
    assert 'data-testid="note-error"' in response.content.decode()
    assert not Note.objects.exists()
    assert not Event.objects.filter(kind=Event.Kind.NOTE_ADDED).exists()


def test_staff_cannot_add_a_note_to_a_customer_they_do_not_follow(client: Client, liu_only: Customer):
    login(client, "wang")
    response = client.post(reverse("customers:add_note", args=[liu_only.pk]), {"text": "偷看"})
    assert response.status_code == 404
    assert not Note.objects.exists()


# ---------- timeline ----------


def test_the_timeline_is_newest_first_and_loads_more(client: Client, world: World, wang_only: Customer):
    # given: the "added" event plus 24 notes, one minute apart
    start = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    for i in range(24):
        with frozen_at(start + dt.timedelta(minutes=i)):
            add_note(customer=wang_only, author_id=None, text=f"第{i}条", source=Event.Source.CONSOLE)
    login(client, "wang")

    # when
    first = client.get(detail_url(wang_only)).content.decode()

    # then: 20 on the page, newest first, and a "load more" link that works with and without htmx
    ids = list(
        Event.objects.filter(customer=wang_only).order_by("-occurred_at", "-id").values_list("pk", flat=True)
    )
    assert len(ids) == 25
    shown = [int(x.split('"')[0]) for x in first.split('data-event-id="')[1:]]
    assert shown == ids[:20]
    assert 'data-testid="timeline-more"' in first
    cursor = first.split("?cursor=")[1].split('"')[0]
    more = client.get(reverse("customers:timeline", args=[wang_only.pk]) + f"?cursor={cursor}", **HTMX)
    assert more.status_code == 200
    rest = [int(x.split('"')[0]) for x in more.content.decode().split('data-event-id="')[1:]]
    assert rest == ids[20:]
    assert 'data-testid="timeline-more"' not in more.content.decode()
    plain = client.get(reverse("customers:timeline", args=[wang_only.pk]) + f"?cursor={cursor}")
    assert plain.status_code == 302
    page_two = client.get(plain["Location"]).content.decode()
    assert [int(x.split('"')[0]) for x in page_two.split('data-event-id="')[1:]] == ids[20:]


def test_a_bad_timeline_cursor_is_a_400_not_a_500(client: Client, wang_only: Customer):
    login(client, "wang")
    url = reverse("customers:timeline", args=[wang_only.pk]) + "?cursor=garbage"
    assert client.get(url, **HTMX).status_code == 400
    assert client.get(detail_url(wang_only) + "?timeline_cursor=garbage").status_code == 200


def test_the_timeline_of_an_out_of_scope_customer_is_not_found(client: Client, liu_only: Customer):
    login(client, "wang")
    assert client.get(reverse("customers:timeline", args=[liu_only.pk]), **HTMX).status_code == 404


# ---------- query budget ----------


def count_queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries)


def test_the_page_costs_the_same_number_of_queries_for_one_or_three_relations(client: Client, world: World):
    # given: two customers alike but for the number of relations, each relation tagged, each with a note
    third = factories.make_staff(world.corp, "张伟", world.east)
    tags = [factories.make_tag(world.corp, name, group="兴趣") for name in ("茶", "咖啡", "红酒")]
    one = factories.make_customer(world.corp, "一人跟进")
    three = factories.make_customer(world.corp, "三人跟进")
    for customer, staff in [(one, [world.wang]), (three, [world.wang, world.liu, third])]:
        for member in staff:
            relation = factories.follow(customer, member, remark=f"{member.name}的备注")
            mark_relation_tags(relation=relation, add=tags[:2], source=Event.Source.CONSOLE)
        add_note(customer=customer, author_id=None, text="备注", source=Event.Source.CONSOLE)
    login(client, "admin1")
    count_queries(client, detail_url(one))  # warm up per-process caches

    # when
    for_one = count_queries(client, detail_url(one))
    for_three = count_queries(client, detail_url(three))

    # then
    assert for_one == for_three, (for_one, for_three)


def test_the_timeline_does_not_show_the_text_of_another_staff_members_remark(
    client: Client, world: World, shared: Customer
):
    # given: 刘强 changes his remark; 王芳 may see that it changed, not what it says
    from siyu.customers.services import update_relation_remark

    update_relation_remark(relation=relation_of(shared, world.liu.pk), remark="刘的秘密", source="console")
    update_relation_remark(relation=relation_of(shared, world.wang.pk), remark="王的新备注", source="console")

    # when
    as_wang = login(client, "wang").get(detail_url(shared)).content.decode()
    as_admin = login(Client(), "admin1").get(detail_url(shared)).content.decode()

    # then
    assert "刘强对客户的备注已修改" in as_wang and "刘的秘密" not in as_wang
    assert "王的新备注" in as_wang
    assert "刘的秘密" in as_admin
