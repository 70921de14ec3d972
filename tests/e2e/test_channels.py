"""An operator creates a channel in the console; a customer scans its QR code and arrives through it.

The simulated WeCom runs in this process and posts its encrypted callbacks to the live server; the test body
does the worker's part (sending the outbox, draining the inbox) where a worker process would.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from siyu.channels.models import Channel, ChannelAdd
from siyu.corps.services import set_corp_credentials, upsert_staff
from siyu.simulator.testing import running_simulator
from siyu.wecom import groupcommit, tokens
from siyu.wecom.inbox import drain_inbox
from siyu.wecom.models import InboxEvent
from siyu.wecom.outbox import send_due
from tests.conftest import World

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _no_committer_left() -> Iterator[None]:
    """The live server stores callbacks through the process's group committer on PostgreSQL; its thread's
    connection must be closed before the test database is dropped."""
    yield
    groupcommit.shutdown()


def wait_for(check: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_create_a_channel_and_see_a_customer_arrive(
    page: Page, logged_in, world: World, live_server, settings
):
    corp = world.corp
    with running_simulator(
        corpid=corp.corpid, callback_url=f"{live_server.url}/wecom/callback/{corp.corpid}/", customers=10
    ) as sim:
        # given the corp connected to the simulated WeCom, and its members known to Siyu
        settings.WECOM_API_BASE = sim.api_base
        tokens.forget_cached()
        set_corp_credentials(
            corp=corp, secret=sim.config.secret, token=sim.config.token, aes_key=sim.config.aes_key
        )
        userid = sim.state.follow_users()[0]
        member = upsert_staff(corp=corp, userid=userid, name="店长小美")

        # when an operator creates a channel with its own welcome message
        logged_in("operator1")
        page.goto("/channels/")
        page.get_by_test_id("new-channel").click()
        page.get_by_test_id("channel-name-input").fill("门店海报")
        page.get_by_test_id(f"member-role-{userid}").select_option("primary")
        page.get_by_test_id("welcome-mode").select_option("own")
        page.get_by_test_id("variant-text-0").fill("您好{customer_name}，我是{staff_name}")
        expect(page.get_by_test_id("welcome-preview")).to_contain_text("我是")
        page.get_by_test_id("save-channel").click()
        expect(page.get_by_test_id("channel-title")).to_have_text("门店海报")
        channel = Channel.objects.for_corp(corp).get(name="门店海报")

        # and the worker creates its contact way in WeCom: the QR code shows
        send_due()
        page.reload()
        qr = page.get_by_test_id("channel-qr")
        expect(qr).to_be_visible()
        wait_for(lambda: page.evaluate("document.querySelector('[data-testid=channel-qr]').naturalWidth") > 0)

        # when a customer scans it (opens the code's target) and the callback is worked
        channel.refresh_from_db()
        scanned = httpx.get(f"{sim.base_url}/_sim/scan/{channel.config_id}", trust_env=False).json()
        wait_for(
            lambda: InboxEvent.objects.for_corp(corp).filter(change_type="add_external_contact").exists()
        )
        drain_inbox(corp_id=corp.pk)

        # then the customer is on the channel's page, welcomed
        add = ChannelAdd.objects.for_corp(corp).get(channel=channel)
        assert add.staff_id == member.pk
        page.reload()
        row = page.get_by_test_id(f"add-{add.pk}")
        expect(row.get_by_test_id("add-customer")).to_have_text(scanned["name"])
        expect(row.get_by_test_id("add-welcome")).to_contain_text("已发送")
        assert (
            sim.state.welcome_codes[scanned["welcome_code"]]
            .message["text"]["content"]
            .startswith(f"您好{scanned['name']}")
        )
        # and the list counts it today
        page.goto("/channels/")
        expect(page.get_by_test_id(f"channel-{channel.pk}").get_by_test_id("channel-today")).to_have_text("1")
        tokens.forget_cached()
