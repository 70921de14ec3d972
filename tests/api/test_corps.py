"""The staff and departments API: read only, filtered, paginated, of the key's corp only."""

from __future__ import annotations

import pytest

from siyu.corps.models import Staff, StaffDepartment
from tests import factories
from tests.api.conftest import count_queries, error_of

pytestmark = pytest.mark.django_db


def test_staff_are_listed_with_their_departments(world, keys, book):
    # given: 王芳 is also in 华南
    StaffDepartment.objects.create(corp=world.corp, staff=world.wang, department=world.south)

    # when
    response = keys.staff_wang.get("/staff")

    # then
    assert response.status_code == 200
    items = {s["userid"]: s for s in response.json()["items"]}
    assert set(items) == {"wangfang", "liuqiang"}  # not the other corp's 外人
    assert items["wangfang"]["department_ids"] == [world.east.pk, world.south.pk]
    assert items["wangfang"]["main_department_id"] == world.east.pk
    assert (items["liuqiang"]["status"], items["liuqiang"]["has_contact_permission"]) == ("active", True)


def test_staff_are_filtered_by_department_and_status(world, keys, book):
    # given
    zhao = factories.make_staff(world.corp, "赵敏", world.east, userid="zhaomin")
    Staff.objects.filter(pk=zhao.pk).update(status=Staff.Status.RESIGNED)

    # when
    east = keys.admin.get("/staff", department=world.east.pk)
    both = keys.admin.get("/staff", department=[world.east.pk, world.south.pk], status="active")
    resigned = keys.admin.get("/staff", status="resigned")

    # then
    assert [s["userid"] for s in east.json()["items"]] == ["wangfang", "zhaomin"]
    assert [s["userid"] for s in both.json()["items"]] == ["wangfang", "liuqiang"]
    assert [s["userid"] for s in resigned.json()["items"]] == ["zhaomin"]


def test_staff_pages_cover_everyone_once_at_a_constant_cost(world, keys):
    # given
    for i in range(11):
        factories.make_staff(world.corp, f"员工{i}", world.east)
    keys.admin.get("/staff")  # the first use of a key records it

    # when
    seen = []
    costs = set()
    cursor = None
    while True:
        params = {"page_size": 4} | ({"cursor": cursor} if cursor else {})
        cost, response = count_queries(lambda params=params: keys.admin.get("/staff", **params))
        costs.add(cost)
        seen.extend(s["id"] for s in response.json()["items"])
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break

    # then
    assert len(seen) == len(set(seen)) == Staff.objects.for_corp(world.corp).count() == 13
    assert seen == sorted(seen)
    assert len(costs) == 1


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"page_size": 201}, 400, "page_too_large"),
        ({"page_size": 0}, 422, "invalid"),
        ({"cursor": "nope"}, 400, "bad_cursor"),
        ({"status": "fired"}, 422, "invalid"),
        ({"department": "east"}, 422, "invalid"),
    ],
)
def test_staff_list_errors(world, keys, params, status, code):
    # when / then
    assert error_of(keys.admin.get("/staff", **params)) == (status, code)


def test_a_staff_member_is_read_and_another_corps_is_unknown(world, keys, book):
    # when
    ours = keys.admin.get(f"/staff/{world.liu.pk}")
    theirs = keys.admin.get(f"/staff/{book.foreign_staff.pk}")

    # then
    assert ours.json()["name"] == "刘强"
    assert ours.json()["department_ids"] == [world.south.pk]
    assert error_of(theirs) == (404, "unknown_staff")
    assert error_of(keys.other_corp.get(f"/staff/{world.liu.pk}")) == (404, "unknown_staff")


def test_departments_form_a_tree_with_staff_counts(world, keys, book):
    # given
    factories.make_department(world.other_corp, "别家部门")

    # when
    response = keys.manager.get("/departments")

    # then
    departments = {d["name"]: d for d in response.json()}
    assert set(departments) == {"总部", "华东", "华南"}
    assert departments["华东"]["parent_id"] == departments["总部"]["id"]
    assert departments["总部"]["parent_id"] is None
    assert (departments["华东"]["staff_count"], departments["总部"]["staff_count"]) == (1, 0)


def test_a_department_is_read_and_another_corps_is_unknown(world, keys, book):
    # given
    foreign = factories.make_department(world.other_corp, "别家部门")

    # when / then
    assert keys.admin.get(f"/departments/{world.east.pk}").json()["name"] == "华东"
    assert error_of(keys.admin.get(f"/departments/{foreign.pk}")) == (404, "not_found")
    assert error_of(keys.admin.get("/departments/0")) == (404, "not_found")
