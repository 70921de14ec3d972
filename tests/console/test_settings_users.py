"""Users and roles: admins list, create and change console logins; the corp always keeps an active admin."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import translation

from siyu.core.errors import Invalid
from siyu.corps.access import actor_for_user
from siyu.corps.models import AuditLog, Membership, Role
from siyu.corps.services import create_console_user, set_membership, update_membership
from tests import factories
from tests.conftest import World

pytestmark = pytest.mark.django_db

LIST = "/org/settings/users/"
NEW = "/org/settings/users/new/"


def user(username: str) -> User:
    return get_user_model().objects.get(username=username)


def login(client: Client, username: str) -> Client:
    client.force_login(user(username))
    return client


def edit_url(username: str) -> str:
    return reverse("corps:settings_user_edit", args=[user(username).pk])


def membership(world: World, username: str) -> Membership:
    return Membership.objects.for_corp(world.corp).get(user__username=username)


def secret_of(html: str) -> str:
    found = re.search(r'id="secret" value="([^"]+)"', html)
    assert found, "no secret on the page"
    return found.group(1)


def audits(world: World, action: str) -> list[AuditLog]:
    return list(AuditLog.objects.for_corp(world.corp).filter(action=action).order_by("pk"))


def can_log_in(username: str, password: str) -> bool:
    return Client().login(username=username, password=password)


# ---------- the list ----------


def test_the_list_shows_each_users_role_staff_departments_last_login_and_status(client: Client, world: World):
    # given
    Client().login(username="wang", password=world.password)  # sets wang's last login
    liu = user("liu")
    liu.is_active = False
    liu.save(update_fields=["is_active"])
    login(client, "admin1")

    # when
    response = client.get(LIST)

    # then
    assert response.status_code == 200
    html = response.content.decode()
    rows = {name: row(html, name) for name in ["admin1", "operator1", "manager1", "wang", "liu"]}
    assert "role-admin" in rows["admin1"] and "role-operator" in rows["operator1"]
    assert "华东" in rows["manager1"] and "role-manager" in rows["manager1"]
    assert "王芳" in rows["wang"] and "wangfang" in rows["wang"]
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", rows["wang"])  # last login, in the corp's time zone
    assert "badge-ok" in rows["wang"] and "badge-muted" in rows["liu"] and 'class="inactive"' in rows["liu"]
    assert f'href="{LIST}" aria-current="page"' in html


def row(html: str, username: str) -> str:
    start = html.index(f'data-testid="user-{username}"')
    return html[start : html.index("</tr>", start)]


def test_another_corps_users_are_not_listed(client: Client, world: World):
    # given
    create_console_user(corp=world.other_corp, username="outsider", password=world.password, role=Role.ADMIN)
    login(client, "admin1")

    # when
    html = client.get(LIST).content.decode()

    # then
    assert "outsider" not in html
    assert client.get(reverse("corps:settings_user_edit", args=[user("outsider").pk])).status_code == 404


def count_queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_the_list_costs_the_same_number_of_queries_for_5_or_25_users(client: Client, world: World):
    # given
    login(client, "admin1")
    count_queries(client, LIST)
    with_five = count_queries(client, LIST)

    # when: managers with departments and staff with links, the costly kinds of row
    for i in range(10):
        create_console_user(
            corp=world.corp,
            username=f"m{i}",
            password=world.password,
            role=Role.MANAGER,
            departments=[world.east, world.south],
        )
        staff = factories.make_staff(world.corp, f"员工{i}", world.south)
        create_console_user(
            corp=world.corp, username=f"s{i}", password=world.password, role=Role.STAFF, staff=staff
        )
    with_twenty_five = count_queries(client, LIST)

    # then
    assert Membership.objects.for_corp(world.corp).count() == 25
    assert with_five == with_twenty_five


# ---------- permissions ----------


@pytest.mark.parametrize("username", ["operator1", "manager1", "wang"])
def test_only_admins_manage_users(client: Client, world: World, username: str):
    # given
    login(client, username)
    target = user("liu").pk
    before = sorted(Membership.objects.for_corp(world.corp).values_list("user_id", "role", "staff_id"))

    # when
    responses = [
        client.get(LIST),
        client.get(NEW),
        client.post(NEW, {"username": "sneaky", "password": world.password, "role": Role.ADMIN}),
        client.get(reverse("corps:settings_user_edit", args=[target])),
        client.post(reverse("corps:settings_user_edit", args=[target]), {"role": Role.ADMIN}),
        client.post(reverse("corps:settings_user_active", args=[target]), {"active": "0"}),
        client.post(reverse("corps:settings_user_password", args=[target])),
    ]

    # then
    assert [r.status_code for r in responses] == [403] * len(responses)
    assert not get_user_model().objects.filter(username="sneaky").exists()
    assert (
        sorted(Membership.objects.for_corp(world.corp).values_list("user_id", "role", "staff_id")) == before
    )
    assert user("liu").is_active and can_log_in("liu", world.password)
    html = client.get(reverse("customers:list")).content.decode()
    assert f'href="{LIST}"' not in html
    assert 'href="/org/settings/api-keys/"' not in html and 'href="/org/settings/audit/"' not in html


def test_the_admin_sees_the_settings_entries(client: Client, world: World):
    login(client, "admin1")
    html = client.get(reverse("customers:list")).content.decode()
    for url in (LIST, "/org/settings/api-keys/", "/org/settings/audit/", "/org/settings/custom-fields/"):
        assert f'href="{url}"' in html


def test_an_anonymous_visitor_is_sent_to_the_login_page(client: Client, world: World):
    response = client.get(LIST)
    assert response.status_code == 302 and response["Location"].startswith("/login/")


# ---------- creating ----------


def test_an_admin_creates_a_user_with_a_password_they_chose(client: Client, world: World):
    # given
    login(client, "admin1")

    # when
    response = client.post(
        NEW,
        {
            "username": "li.na",
            "password": "a-long-enough-passphrase",
            "role": Role.MANAGER,
            "staff": world.liu.pk,
            "departments": [world.east.pk],
        },
    )

    # then
    assert response.status_code == 302 and response["Location"] == LIST
    created = membership(world, "li.na")
    assert (created.role, created.staff_id) == (Role.MANAGER, world.liu.pk)
    assert list(created.departments.values_list("pk", flat=True)) == [world.east.pk]
    assert can_log_in("li.na", "a-long-enough-passphrase")
    [entry] = audits(world, "user.create")
    assert entry.user_id == user("admin1").pk and entry.object_id == str(created.user_id)
    assert entry.detail == {
        "username": "li.na",
        "role": Role.MANAGER,
        "staff_id": world.liu.pk,
        "department_ids": [world.east.pk],
    }
    assert "a-long-enough-passphrase" not in str(entry.detail)


def test_an_empty_password_is_generated_and_shown_once(client: Client, world: World):
    # given
    login(client, "admin1")

    # when
    response = client.post(
        NEW, {"username": "newbie", "password": "", "role": Role.STAFF, "staff": world.wang.pk}
    )

    # then
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    password = secret_of(response.content.decode())
    assert len(password) >= 16
    assert can_log_in("newbie", password)
    assert password not in client.get(LIST).content.decode()
    assert password not in client.get(edit_url("newbie")).content.decode()
    assert password not in str(list(AuditLog.objects.values_list("detail", flat=True)))


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        ({"username": "ADMIN1", "role": Role.OPERATOR}, "username", "is taken"),
        ({"username": "has space", "role": Role.OPERATOR}, "username", "valid username"),
        ({"username": "", "role": Role.OPERATOR}, "username", "required"),
        ({"username": "weak", "password": "123", "role": Role.OPERATOR}, "password", "too short"),
        ({"username": "common", "password": "password123", "role": Role.OPERATOR}, "password", "too common"),
        ({"username": "x", "role": "god"}, "role", "valid choice"),
        ({"username": "x", "role": Role.STAFF}, "staff", "must be linked"),
        ({"username": "x", "role": Role.MANAGER}, "departments", "needs departments"),
    ],
)
def test_a_refused_new_user_is_shown_next_to_its_field_and_nothing_is_written(
    client: Client, world: World, form: dict[str, str], field: str, message: str
):
    # given: English, so Django's own messages read as written here
    login(client, "admin1")
    users_before = get_user_model().objects.count()

    # when
    response = client.post(NEW, form, headers={"Accept-Language": "en"})

    # then
    assert response.status_code == 400
    html = response.content.decode()
    error = html.split(f'data-testid="error-{field}">')[1].split("</ul>")[0]
    assert message in error
    assert get_user_model().objects.count() == users_before
    assert not audits(world, "user.create")


def test_a_staff_member_or_department_of_another_corp_is_refused(client: Client, world: World):
    # given
    foreign_department = factories.make_department(world.other_corp, "别家部门")
    foreign_staff = factories.make_staff(world.other_corp, "别家员工", foreign_department)
    login(client, "admin1")

    # when
    with_staff = client.post(NEW, {"username": "x1", "role": Role.STAFF, "staff": foreign_staff.pk})
    with_department = client.post(
        NEW, {"username": "x2", "role": Role.MANAGER, "departments": [foreign_department.pk]}
    )
    edited = client.post(edit_url("wang"), {"role": Role.STAFF, "staff": foreign_staff.pk})

    # then
    assert [r.status_code for r in (with_staff, with_department, edited)] == [400, 400, 400]
    assert 'data-testid="error-staff"' in with_staff.content.decode()
    assert 'data-testid="error-departments"' in with_department.content.decode()
    assert not get_user_model().objects.filter(username__in=["x1", "x2"]).exists()
    assert membership(world, "wang").staff_id == world.wang.pk


def test_the_service_refuses_a_foreign_staff_member_even_without_the_form(world: World):
    foreign_staff = factories.make_staff(world.other_corp, "别家员工")
    with pytest.raises(Invalid) as refused:
        update_membership(
            actor=world.admin, membership=membership(world, "wang"), role=Role.STAFF, staff=foreign_staff
        )
    assert refused.value.field == "staff"
    assert membership(world, "wang").staff_id == world.wang.pk


# ---------- changing roles ----------


def test_an_admin_changes_a_role_staff_link_and_departments(client: Client, world: World):
    # given
    login(client, "admin1")

    # when
    response = client.post(
        edit_url("manager1"), {"role": Role.MANAGER, "staff": world.wang.pk, "departments": [world.south.pk]}
    )

    # then
    assert response.status_code == 302 and response["Location"] == LIST
    changed = membership(world, "manager1")
    assert changed.staff_id == world.wang.pk
    assert list(changed.departments.values_list("pk", flat=True)) == [world.south.pk]
    assert world.south.pk in actor_for_user(changed.user_id, world.corp).department_ids
    [entry] = audits(world, "user.update")
    assert entry.object_id == str(changed.user_id)
    assert entry.detail == {
        "before": {"role": Role.MANAGER, "staff_id": None, "department_ids": [world.east.pk]},
        "after": {"role": Role.MANAGER, "staff_id": world.wang.pk, "department_ids": [world.south.pk]},
    }


def test_a_role_without_departments_drops_them_and_an_unchanged_form_writes_no_audit(
    client: Client, world: World
):
    # given
    login(client, "admin1")

    # when
    client.post(edit_url("manager1"), {"role": Role.OPERATOR, "departments": [world.east.pk]})
    client.post(edit_url("manager1"), {"role": Role.OPERATOR})

    # then
    changed = membership(world, "manager1")
    assert changed.role == Role.OPERATOR and not changed.departments.exists()
    assert len(audits(world, "user.update")) == 1


def test_the_edit_page_shows_the_current_role_and_links(client: Client, world: World):
    login(client, "admin1")
    html = client.get(edit_url("manager1")).content.decode()
    assert '<option value="manager" selected>' in html
    assert f'<option value="{world.east.pk}" selected>' in html
    assert 'data-testid="deactivate"' in html and 'data-testid="reset-password"' in html


# ---------- the last active admin ----------


def test_the_last_active_admin_cannot_demote_or_deactivate_themselves(client: Client, world: World):
    # given
    login(client, "admin1")

    # when
    demoted = client.post(edit_url("admin1"), {"role": Role.OPERATOR})
    deactivated = client.post(
        reverse("corps:settings_user_active", args=[user("admin1").pk]), {"active": "0"}
    )

    # then
    assert demoted.status_code == 400
    assert "最后一位启用中的管理员" in demoted.content.decode().split('data-testid="error-role">')[1]
    assert deactivated.status_code == 400
    assert "最后一位启用中的管理员" in deactivated.content.decode().split('data-testid="account-error">')[1]
    assert membership(world, "admin1").role == Role.ADMIN and user("admin1").is_active
    assert not audits(world, "user.update") and not audits(world, "user.deactivate")


def test_an_inactive_admin_does_not_count_as_the_other_admin(client: Client, world: World):
    # given: a second admin, deactivated
    second = create_console_user(corp=world.corp, username="admin2", password=world.password, role=Role.ADMIN)
    second.is_active = False
    second.save(update_fields=["is_active"])
    login(client, "admin1")

    # when
    response = client.post(edit_url("admin1"), {"role": Role.OPERATOR})

    # then
    assert response.status_code == 400
    assert membership(world, "admin1").role == Role.ADMIN


def test_with_another_active_admin_an_admin_may_step_down(client: Client, world: World):
    # given
    create_console_user(corp=world.corp, username="admin2", password=world.password, role=Role.ADMIN)
    login(client, "admin1")

    # when
    response = client.post(edit_url("admin1"), {"role": Role.OPERATOR})

    # then: no longer an admin, they land where an operator may be
    assert response.status_code == 302 and response["Location"] == reverse("console:home")
    assert membership(world, "admin1").role == Role.OPERATOR
    assert client.get(LIST).status_code == 403
    # and the other admin, now the last one, cannot step down either
    admin2 = membership(world, "admin2")
    actor = actor_for_user(admin2.user_id, world.corp)
    with translation.override("en"), pytest.raises(Invalid, match="last active admin"):
        update_membership(actor=actor, membership=admin2, role=Role.STAFF, staff=world.wang)


# ---------- deactivating ----------


def test_a_deactivated_user_cannot_log_in_and_their_session_ends_until_reactivated(
    client: Client, world: World
):
    # given: wang is logged in somewhere
    wang_browser = Client()
    assert wang_browser.login(username="wang", password=world.password)
    assert wang_browser.get(reverse("customers:list")).status_code == 200
    login(client, "admin1")
    url = reverse("corps:settings_user_active", args=[user("wang").pk])

    # when
    response = client.post(url, {"active": "0"})

    # then
    assert response.status_code == 302
    assert not user("wang").is_active
    assert Membership.objects.for_corp(world.corp).filter(user__username="wang").exists()  # never deleted
    assert not can_log_in("wang", world.password)
    assert wang_browser.get(reverse("customers:list")).status_code == 302  # back to the login page
    assert [e.object_id for e in audits(world, "user.deactivate")] == [str(user("wang").pk)]

    # when
    client.post(url, {"active": "1"})

    # then
    assert can_log_in("wang", world.password)
    assert len(audits(world, "user.reactivate")) == 1


def test_deactivating_twice_is_audited_once_and_a_bad_value_is_refused(client: Client, world: World):
    login(client, "admin1")
    url = reverse("corps:settings_user_active", args=[user("liu").pk])
    client.post(url, {"active": "0"})
    client.post(url, {"active": "0"})
    assert client.post(url, {"active": "maybe"}).status_code == 400
    assert len(audits(world, "user.deactivate")) == 1


# ---------- passwords ----------


def test_a_reset_password_is_shown_once_and_replaces_the_old_one(client: Client, world: World):
    # given
    login(client, "admin1")

    # when
    response = client.post(reverse("corps:settings_user_password", args=[user("wang").pk]))

    # then
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    password = secret_of(response.content.decode())
    assert can_log_in("wang", password)
    assert not can_log_in("wang", world.password)
    [entry] = audits(world, "user.password_reset")
    assert entry.object_id == str(user("wang").pk) and password not in str(entry.detail)


def test_an_admin_resetting_their_own_password_stays_logged_in(client: Client, world: World):
    login(client, "admin1")
    response = client.post(reverse("corps:settings_user_password", args=[user("admin1").pk]))
    assert can_log_in("admin1", secret_of(response.content.decode()))
    assert client.get(LIST).status_code == 200


def test_a_login_shared_with_another_corp_is_not_this_corps_to_lock_or_take_over(
    client: Client, world: World
):
    # given: a superuser with a role here, and a login that also works in the other corp
    root = get_user_model().objects.create_superuser("root", password=world.password)
    set_membership(corp=world.corp, user=root, role=Role.OPERATOR)
    set_membership(corp=world.other_corp, user=user("liu"), role=Role.ADMIN)
    login(client, "admin1")

    # when
    responses = [
        client.post(reverse("corps:settings_user_password", args=[root.pk])),
        client.post(reverse("corps:settings_user_active", args=[root.pk]), {"active": "0"}),
        client.post(reverse("corps:settings_user_password", args=[user("liu").pk])),
    ]

    # then
    assert [r.status_code for r in responses] == [400, 400, 400]
    assert "只有超级用户可以修改" in responses[0].content.decode()
    assert can_log_in("root", world.password) and can_log_in("liu", world.password)


# ---------- tenancy and superusers ----------


def test_an_admin_cannot_touch_a_user_of_another_corp(client: Client, world: World):
    # given
    outsider = create_console_user(
        corp=world.other_corp, username="outsider", password=world.password, role=Role.OPERATOR
    )
    login(client, "admin1")

    # when
    responses = [
        client.get(reverse("corps:settings_user_edit", args=[outsider.pk])),
        client.post(reverse("corps:settings_user_edit", args=[outsider.pk]), {"role": Role.STAFF}),
        client.post(reverse("corps:settings_user_active", args=[outsider.pk]), {"active": "0"}),
        client.post(reverse("corps:settings_user_password", args=[outsider.pk])),
    ]

    # then
    assert [r.status_code for r in responses] == [404] * 4
    assert Membership.objects.for_corp(world.other_corp).get(user=outsider).role == Role.OPERATOR
    assert can_log_in("outsider", world.password)
    assert not AuditLog.objects.exists()


def test_a_superuser_manages_the_users_of_the_corp_they_switched_to(client: Client, world: World):
    # given
    create_console_user(corp=world.other_corp, username="outsider", password=world.password, role=Role.ADMIN)
    root = get_user_model().objects.create_superuser("root", password=world.password)
    client.force_login(root)
    client.post(reverse("console:switch_corp"), {"corp_id": world.other_corp.pk})

    # when
    listed = client.get(LIST).content.decode()
    created = client.post(NEW, {"username": "other.op", "role": Role.OPERATOR})

    # then
    assert 'data-testid="user-outsider"' in listed and 'data-testid="user-admin1"' not in listed
    assert created.status_code == 200
    assert Membership.objects.for_corp(world.other_corp).filter(user__username="other.op").exists()
    [entry] = AuditLog.objects.for_corp(world.other_corp).filter(action="user.create")
    assert entry.user_id == root.pk
