"""An operator creates a channel in the console, customers arrive through it (one leaves again), and the
channel's analytics show them: the figures, the line and bar charts, the tables — and the overview too.

The simulated WeCom runs in this process and posts its encrypted callbacks to the live server; the test body
does the worker's part (sending the outbox, draining the inbox) where a worker process would.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from siyu.channels.models import Channel, ChannelAdd
from siyu.core.clock import now
from siyu.core.timewindows import local
from siyu.corps.services import set_corp_credentials, upsert_staff
from siyu.simulator.testing import running_simulator
from siyu.wecom import groupcommit, tokens
from siyu.wecom.inbox import drain_inbox
from siyu.wecom.models import InboxEvent
from siyu.wecom.outbox import send_due
from tests.conftest import World
from tests.e2e.test_channels import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _no_committer_left() -> Iterator[None]:
    yield
    groupcommit.shutdown()


def test_a_new_channels_customers_show_in_its_analytics(
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

        # when an operator creates a channel with its own welcome message in the console
        logged_in("operator1")
        page.goto("/channels/new/")
        page.get_by_test_id("channel-name-input").fill("地铁广告")
        page.get_by_test_id(f"member-role-{userid}").select_option("primary")
        page.get_by_test_id("welcome-mode").select_option("own")
        page.get_by_test_id("variant-text-0").fill("您好{customer_name}")
        page.get_by_test_id("save-channel").click()
        expect(page.get_by_test_id("channel-title")).to_have_text("地铁广告")
        channel = Channel.objects.for_corp(corp).get(name="地铁广告")
        # and before anyone arrives, its analytics say nothing happened
        expect(page.get_by_test_id("stat-adds")).to_have_text("0")

        # and the worker creates its contact way, three customers scan it and one deletes the staff member
        send_due()
        channel.refresh_from_db()
        scans = [
            httpx.get(f"{sim.base_url}/_sim/scan/{channel.config_id}", trust_env=False).json()
            for _ in range(3)
        ]
        wait_for(
            lambda: InboxEvent.objects.for_corp(corp).filter(change_type="add_external_contact").count() == 3
        )
        drain_inbox(corp_id=corp.pk)
        sim.actions.customer_deletes_staff(external_userid=scans[0]["external_userid"], userid=userid)
        wait_for(lambda: InboxEvent.objects.for_corp(corp).filter(change_type="del_follow_user").exists())
        drain_inbox(corp_id=corp.pk)
        assert ChannelAdd.objects.for_corp(corp).filter(channel=channel).count() == 3

        # then the channel's page counts them: 3 adds, 1 deletion, net 2, every welcome sent
        page.goto(f"/channels/{channel.pk}/")
        expect(page.get_by_test_id("stat-adds")).to_have_text("3")
        expect(page.get_by_test_id("stat-deletions")).to_have_text("1")
        expect(page.get_by_test_id("stat-net")).to_have_text("2")
        expect(page.get_by_test_id("stat-welcome-rate")).to_have_text("100.0%")
        # and the charts are drawn
        expect(page.get_by_test_id("stats-line")).to_have_attribute("data-rendered", "1")
        expect(page.get_by_test_id("stats-bars")).to_have_attribute("data-rendered", "1")
        assert page.locator("[data-testid=stats-line] canvas").count() == 1
        # and the tables hold the same numbers: today's row, and the staff member's
        today = local(now(), corp.time_zone).date().isoformat()
        day_row = page.get_by_test_id(f"stats-period-{today}").locator("td")
        assert [day_row.nth(i).inner_text() for i in range(5)] == [today, "3", "0", "1", "2"]
        staff_row = page.get_by_test_id(f"stats-key-{member.pk}").locator("td")
        assert [staff_row.nth(i).inner_text() for i in range(5)] == ["店长小美", "3", "0", "1", "2"]

        # and the overview of all channels has the channel among its bars and rows
        page.goto("/channels/")
        page.get_by_test_id("channel-analytics").click()
        expect(page.get_by_test_id("stats-bars")).to_have_attribute("data-rendered", "1")
        channel_row = page.get_by_test_id(f"stats-key-{channel.pk}").locator("td")
        assert [channel_row.nth(i).inner_text() for i in range(5)] == ["地铁广告", "3", "0", "1", "2"]
        # and per ISO week the same three adds
        page.get_by_test_id("stats-granularity").select_option("week")
        page.get_by_test_id("stats-apply").click()
        expect(page.get_by_test_id("stats-total").locator("th").nth(1)).to_have_text("3")
        tokens.forget_cached()
