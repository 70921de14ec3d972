"""In a real browser: an admin creates an operator login, and that operator logs in and works."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from siyu.corps.models import AuditLog, Membership, Role
from tests import factories
from tests.conftest import World
from tests.e2e.conftest import ARTIFACTS

pytestmark = pytest.mark.e2e


def test_an_admin_creates_an_operator_who_then_logs_in_and_sees_the_customers(
    logged_in: Callable[[str], Page], world: World
) -> None:
    # given: customers followed by two different staff members (an operator sees both)
    factories.follow(factories.make_customer(world.corp, "王的客户"), world.wang)
    factories.follow(factories.make_customer(world.corp, "刘的客户"), world.liu)
    page = logged_in("admin1")

    # when: the admin opens the users page from the navigation and creates an operator, password generated
    page.get_by_test_id("nav").locator('a[href="/org/settings/users/"]').click()
    expect(page.get_by_test_id("user-table")).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(Path(ARTIFACTS) / "settings-users.png"))
    page.get_by_test_id("new-user").click()
    page.locator("#user-username").fill("yunying")
    page.locator("#user-role").select_option(Role.OPERATOR)
    page.get_by_test_id("save-user").click()

    # then: the password is shown once, with a copy button
    secret = page.get_by_test_id("secret")
    expect(secret).to_be_visible()
    expect(page.get_by_test_id("copy-secret")).to_be_visible()
    password = secret.input_value()
    assert len(password) >= 16
    page.get_by_test_id("copy-secret").click()
    expect(page.get_by_test_id("copy-secret")).not_to_have_text(re.compile(r"^$"))
    assert Membership.objects.for_corp(world.corp).get(user__username="yunying").role == Role.OPERATOR
    assert AuditLog.objects.for_corp(world.corp).filter(action="user.create").count() == 1
    page.get_by_test_id("secret-done").click()
    expect(page.get_by_test_id("user-yunying")).to_be_visible()

    # when: the admin logs out and the operator logs in with the password shown
    page.get_by_test_id("logout").click()
    page.wait_for_url(re.compile(r"/login/"))
    page.locator("input[name=username]").fill("yunying")
    page.locator("input[name=password]").fill(password)
    page.get_by_test_id("login-submit").click()

    # then: the customer list, with every customer, and no admin pages in the navigation
    expect(page).to_have_url(re.compile(r"/customers/$"))
    expect(page.get_by_test_id("customer-row")).to_have_count(2)
    nav = page.get_by_test_id("nav")
    expect(nav.locator('a[href="/org/settings/custom-fields/"]')).to_be_visible()
    expect(nav.locator('a[href="/org/settings/users/"]')).to_have_count(0)
