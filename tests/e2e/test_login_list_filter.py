"""Log in through the form, see the customer list, filter it, open a customer."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.e2e


def test_login_form_leads_to_the_customer_list(logged_in: Callable[[str], Page]) -> None:
    # given / when
    page = logged_in("admin1")

    # then
    expect(page).to_have_url(re.compile(r"/customers/$"))
    expect(page.get_by_test_id("nav")).to_be_visible()
    expect(page.get_by_test_id("current-corp")).to_be_visible()
