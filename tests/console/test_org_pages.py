"""Staff and department pages: read views of the org chart for every role."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from siyu.corps.models import Staff, StaffDepartment
from siyu.customers.models import Event
from siyu.customers.services import end_follow_relation
from tests import factories
from tests.conftest import World

pytestmark = pytest.mark.django_db

STAFF = "/org/staff/"
DEPARTMENTS = "/org/departments/"


def login(client: Client, username: str) -> Client:
    client.force_login(get_user_model().objects.get(username=username))
    return client


def staff_rows(html: str) -> list[str]:
    """The userids of the staff rows, in page order."""
    return [part.split('"')[0] for part in html.split('<tr data-testid="staff-')[1:]]


def cell(html: str, testid: str, name: str) -> str:
    start = html.index(f'data-testid="{testid}"')
    end = html.index("</tr>", start)
    return html[start:end].split(f'data-testid="{name}">')[1].split("<")[0]


@pytest.fixture
def org(world: World) -> World:
    """Adds 赵敏 (上海, under 华东), resigned 孙丽 (华南), customers: 王芳 2 active + 1 ended, 刘强 1."""
    shanghai = factories.make_department(world.corp, "上海", parent=world.east)
    factories.make_staff(world.corp, "赵敏", shanghai, userid="zhaomin")
    sun = factories.make_staff(world.corp, "孙丽", world.south, userid="sunli")
    Staff.objects.filter(pk=sun.pk).update(status=Staff.Status.RESIGNED, has_contact_permission=False)
    StaffDepartment.objects.create(
        corp=world.corp, staff=world.wang, department=world.south
    )  # 王芳 is in both
    for name in ("甲", "乙", "丙"):
        relation = factories.follow(factories.make_customer(world.corp, name), world.wang)
    end_follow_relation(relation=relation, by="customer", source=Event.Source.WECOM)
    factories.follow(factories.make_customer(world.corp, "丁"), world.liu)
    factories.make_staff(world.other_corp, "外人", userid="outsider")
    return world


# ---------- staff ----------


@pytest.mark.parametrize("username", ["admin1", "manager1", "liu"])
def test_every_role_sees_the_staff_with_departments_status_and_active_customers(
    client: Client, org: World, username: str
):
    # given
    login(client, username)

    # when
    response = client.get(STAFF)

    # then
    assert response.status_code == 200
    html = response.content.decode()
    assert staff_rows(html) == ["liuqiang", "sunli", "wangfang", "zhaomin"]  # by name; no other corp's staff
    assert cell(html, "staff-wangfang", "active-customers") == "2"  # the ended relation does not count
    assert cell(html, "staff-liuqiang", "active-customers") == "1"
    assert cell(html, "staff-zhaomin", "active-customers") == "0"
    wang = html[html.index('data-testid="staff-wangfang"') :]
    wang = wang[: wang.index("</tr>")]
    assert "华东" in wang and "华南" in wang
    sun = html[html.index('data-testid="staff-sunli"') :]
    assert "已离职" in sun[: sun.index("</tr>")]
    assert "outsider" not in html


def test_staff_filter_by_department_including_the_ones_below(client: Client, org: World):
    # given
    login(client, "admin1")

    # when
    east = client.get(STAFF, {"department": org.east.pk}).content.decode()
    south = client.get(STAFF, {"department": org.south.pk}).content.decode()

    # then
    assert staff_rows(east) == ["wangfang", "zhaomin"]  # 赵敏 is in 上海, under 华东
    assert staff_rows(south) == ["liuqiang", "sunli", "wangfang"]


def test_staff_filter_by_status_and_search(client: Client, org: World):
    login(client, "admin1")
    assert staff_rows(client.get(STAFF, {"status": "resigned"}).content.decode()) == ["sunli"]
    assert staff_rows(client.get(STAFF, {"q": "ZHAO"}).content.decode()) == ["zhaomin"]
    assert staff_rows(client.get(STAFF, {"q": "王"}).content.decode()) == ["wangfang"]


@pytest.mark.parametrize("params", [{"status": "asleep"}, {"department": "abc"}, {"department": "999999"}])
def test_a_bad_filter_is_a_400_with_a_message(client: Client, org: World, params: dict[str, str]):
    login(client, "admin1")
    response = client.get(STAFF, params)
    assert response.status_code == 400
    assert 'data-testid="filter-error"' in response.content.decode()


def test_another_corps_department_is_not_a_filter(client: Client, org: World):
    # given
    foreign = factories.make_department(org.other_corp, "别家部门")
    login(client, "admin1")

    # when / then
    assert client.get(STAFF, {"department": foreign.pk}).status_code == 400


def test_the_staff_page_costs_the_same_number_of_queries_for_few_or_many_staff(client: Client, org: World):
    # given
    login(client, "admin1")
    client.get(STAFF)  # warm up per-process caches
    with CaptureQueriesContext(connection) as few:
        client.get(STAFF)
    for i in range(12):
        member = factories.make_staff(org.corp, f"新人{i}", org.east)
        factories.follow(factories.make_customer(org.corp, f"客户{i}"), member)

    # when
    with CaptureQueriesContext(connection) as many:
        html = client.get(STAFF).content.decode()

    # then
    assert len(staff_rows(html)) == 16
    assert len(few.captured_queries) == len(many.captured_queries)


def test_staff_are_paginated(client: Client, org: World):
    # given
    for i in range(60):
        factories.make_staff(org.corp, f"员工{i:02d}", org.east)
    login(client, "admin1")

    # when
    first = client.get(STAFF).content.decode()
    second = client.get(STAFF, {"page": 2}).content.decode()

    # then
    assert len(staff_rows(first)) == 50 and len(staff_rows(second)) == 14
    assert not set(staff_rows(first)) & set(staff_rows(second))
    assert 'rel="next"' in first and 'rel="prev"' in second


# ---------- departments ----------


def test_departments_are_a_tree_with_member_counts(client: Client, org: World):
    # given
    login(client, "wang")

    # when
    html = client.get(DEPARTMENTS).content.decode()

    # then: 总部 > (华东 > 上海), 华南 in tree order, with direct and subtree counts
    order = [part.split('"')[0] for part in html.split('<tr data-testid="department-')[1:]]
    hq = org.east.parent_id
    shanghai = org.east.children.get().pk
    assert order == [str(hq), str(org.east.pk), str(shanghai), str(org.south.pk)]
    assert 'data-depth="2"' in html[html.index(f'data-testid="department-{shanghai}"') :][:80]
    counts = {
        dept: (cell(html, f"department-{dept}", "members"), cell(html, f"department-{dept}", "members-total"))
        for dept in (hq, org.east.pk, shanghai, org.south.pk)
    }
    assert counts == {
        hq: ("0", "4"),  # 王芳 counts once although she is in two departments below
        org.east.pk: ("1", "2"),
        shanghai: ("1", "1"),
        org.south.pk: ("3", "3"),
    }
    assert f"{reverse('corps:staff_list')}?department={org.south.pk}" in html


def test_anonymous_visitors_are_sent_to_log_in(client: Client):
    for url in (STAFF, DEPARTMENTS):
        response = client.get(url)
        assert response.status_code == 302 and reverse("console:login") in response["Location"]
