"""Roles and data scope: who sees which customers."""

from __future__ import annotations

import pytest

from siyu.core.errors import NotFound, PermissionDenied
from siyu.corps.access import actor_for_api_key, actor_for_user, corps_for_user, scope_customers
from siyu.corps.models import Role
from siyu.corps.services import create_api_key, create_console_user
from siyu.customers.models import Customer
from siyu.customers.selectors import get_customer
from siyu.customers.services import end_follow_relation
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def customers(world):
    wang_only = factories.make_customer(world.corp, "王的客户")
    factories.follow(wang_only, world.wang)
    liu_only = factories.make_customer(world.corp, "刘的客户")
    factories.follow(liu_only, world.liu)
    nobody = factories.make_customer(world.corp, "无人跟进")
    foreign = factories.make_customer(world.other_corp, "别家客户")
    factories.follow(foreign, factories.make_staff(world.other_corp, "外人"))
    return {"wang": wang_only, "liu": liu_only, "nobody": nobody, "foreign": foreign}


def visible(actor) -> set[str]:
    return set(scope_customers(actor, Customer.objects.for_corp(actor.corp)).values_list("name", flat=True))


def test_admin_and_operator_see_the_whole_corp_only(world, customers):
    assert visible(world.admin) == {"王的客户", "刘的客户", "无人跟进"}
    assert visible(world.operator) == {"王的客户", "刘的客户", "无人跟进"}


def test_staff_see_only_customers_they_follow(world, customers):
    assert visible(world.staff_wang) == {"王的客户"}
    assert visible(world.staff_liu) == {"刘的客户"}
    with pytest.raises(NotFound):
        get_customer(world.staff_liu, customers["wang"].pk)


def test_staff_lose_sight_of_a_customer_who_deleted_them(world, customers):
    relation = customers["wang"].relations.get()
    end_follow_relation(relation=relation, by="customer", source="wecom")
    assert visible(world.staff_wang) == set()


def test_manager_sees_their_departments_and_below(world, customers):
    assert visible(world.manager) == {"王的客户"}
    # a sub-department of 华东 is in scope too
    sub = factories.make_department(world.corp, "上海组", parent=world.east)
    zhao = factories.make_staff(world.corp, "赵敏", sub)
    c = factories.make_customer(world.corp, "赵的客户")
    factories.follow(c, zhao)
    manager = actor_for_user(world.manager.user_id, world.corp)
    assert visible(manager) == {"王的客户", "赵的客户"}


def test_manager_linked_to_staff_defaults_to_their_departments(world, customers):
    user = create_console_user(
        corp=world.corp, username="liu_mgr", password="x" * 12, role=Role.MANAGER, staff=world.liu
    )
    assert visible(actor_for_user(user.pk, world.corp)) == {"刘的客户"}


def test_unlinked_staff_login_sees_nothing(world, customers):
    user = create_console_user(corp=world.corp, username="ghost", password="x" * 12, role=Role.STAFF)
    assert visible(actor_for_user(user.pk, world.corp)) == set()


def test_no_one_crosses_corps(world, customers):
    for actor in (world.admin, world.operator, world.manager, world.staff_wang):
        with pytest.raises(NotFound):
            get_customer(actor, customers["foreign"].pk)


def test_membership_is_required_except_for_superusers(world):
    user = create_console_user(corp=world.corp, username="outsider", password="x" * 12, role=Role.ADMIN)
    with pytest.raises(PermissionDenied):
        actor_for_user(user.pk, world.other_corp)
    assert list(corps_for_user(user.pk, is_superuser=False)) == [world.corp]
    assert set(corps_for_user(user.pk, is_superuser=True)) == {world.corp, world.other_corp}
    assert actor_for_user(user.pk, world.other_corp, is_superuser=True).role == Role.ADMIN


def test_api_key_actor_has_the_keys_corp_and_role(world, customers):
    new = create_api_key(corp=world.corp, name="crm", role=Role.OPERATOR)
    actor = actor_for_api_key(new.api_key)
    assert actor.corp == world.corp and actor.can_configure and not actor.can_manage_users
    assert visible(actor) == {"王的客户", "刘的客户", "无人跟进"}


def test_role_permissions(world):
    assert world.admin.can_manage_users and world.admin.can_configure
    assert world.operator.can_configure and not world.operator.can_manage_users
    assert not world.manager.can_configure
    with pytest.raises(PermissionDenied):
        world.staff_wang.require_configure()
    with pytest.raises(PermissionDenied):
        world.operator.require_admin()
