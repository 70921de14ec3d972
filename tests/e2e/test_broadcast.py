"""In a real browser: an operator composes a mass message to a tag audience with a live count, previews it
with the skip reasons (a chart), sends it, and watches the staff confirmations and deliveries arrive from the
WeCom simulator on the message page (it refreshes itself).

The worker's steps (plan, send the outbox, poll WeCom) run in the test between looks at the page, exactly as
the worker would run them; the simulated staff confirm in the simulator.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect
from pyroaring import BitMap

from siyu.broadcasts import caps
from siyu.broadcasts.execution import execute_broadcast, poll_broadcast
from siyu.broadcasts.models import Broadcast, BroadcastPart, CapPolicy
from siyu.core import clock
from siyu.corps.models import Role
from siyu.corps.services import create_console_user
from siyu.tags.models import CustomerTag, Tag
from siyu.wecom.models import SyncRun
from siyu.wecom.outbox import send_due
from siyu.wecom.sync import run_sync, start_sync
from tests.wecom.inbound_support import simulated_wecom

pytestmark = pytest.mark.e2e

PASSWORD = "correct-horse-battery-staple"


def _login(page: Page, username: str) -> None:
    page.goto("/login/")
    page.locator("input[name=username]").fill(username)
    page.locator("input[name=password]").fill(PASSWORD)
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(lambda url: "/login/" not in url)


def test_compose_preview_send_and_watch_deliveries(page: Page, live_server, settings) -> None:
    with simulated_wecom(settings, customers=60, staff=4, groups=2) as env:
        # given the simulated corp synced into Siyu, an operator, and 1 message per day as WeCom's quota
        run = start_sync(corp=env.corp, kind=SyncRun.Kind.FULL, enqueue=False)
        while run.status not in (SyncRun.Status.DONE, SyncRun.Status.FAILED):
            run = run_sync(run.pk).run
        create_console_user(corp=env.corp, username="ops", password=PASSWORD, role=Role.OPERATOR)
        policy = caps.policy_for(env.corp)
        policy.wecom_quota = CapPolicy.WeComQuota.ONE_PER_DAY
        policy.save()
        tag = max(
            Tag.objects.for_corp(env.corp),
            key=lambda t: CustomerTag.objects.for_corp(env.corp).filter(tag=t).count(),
        )
        tagged = sorted(
            CustomerTag.objects.for_corp(env.corp).filter(tag=tag).values_list("customer_id", flat=True)
        )
        assert len(tagged) >= 4
        # two of them already got a mass message today
        caps.reserve(corp=env.corp, customer_ids=BitMap(tagged[:2]), at=clock.now())

        # when the operator composes it
        _login(page, "ops")
        page.get_by_test_id("nav").get_by_role("link", name="群发").click()
        page.get_by_test_id("broadcast-new").click()
        page.get_by_test_id("compose-name").fill("周末到店礼")
        page.get_by_test_id("audience-tags").locator(f"input[value='{tag.pk}']").check()
        # then the live count follows the audience
        expect(page.get_by_test_id("live-count-number")).to_have_text(str(len(tagged)))
        page.get_by_test_id("compose-text").fill("周末到店，凭此消息领取小礼品")
        page.get_by_test_id("compose-submit").click()

        # then the preview shows who receives it and who is skipped, with the reason and its chart
        expect(page.get_by_test_id("preview-recipients")).to_have_text(str(len(tagged) - 2))
        expect(page.get_by_test_id("skip-reasons")).to_contain_text("超过企业微信接收上限")
        expect(page.get_by_test_id("reason-chart").locator("canvas")).to_have_count(1)

        # when sent
        page.get_by_test_id("send-button").click()
        expect(page.get_by_test_id("broadcast-status")).to_have_text("已计划")
        broadcast = Broadcast.objects.for_corp(env.corp).get()
        assert execute_broadcast(broadcast_id=broadcast.pk) == "sent"
        send_due(budget=30)
        poll_broadcast(broadcast_id=broadcast.pk)
        # then the page shows the staff have not sent yet
        expect(page.get_by_test_id("broadcast-status")).to_have_text("等待员工发送", timeout=15_000)
        parts = list(BroadcastPart.objects.for_corp(env.corp).filter(broadcast=broadcast))
        expect(page.get_by_test_id("part-row")).to_have_count(len(parts))
        expect(page.get_by_test_id("progress-sent")).to_have_text("0")

        # when the first staff member confirms in WeCom, then the rest
        env.sim.actions.confirm_msg(msgid=parts[0].msgid)
        poll_broadcast(broadcast_id=broadcast.pk)
        expect(page.get_by_test_id("progress-sent")).to_have_text(str(parts[0].size), timeout=15_000)
        for part in parts[1:]:
            env.sim.actions.confirm_msg(msgid=part.msgid)
        poll_broadcast(broadcast_id=broadcast.pk)

        # then every delivery arrived, each on the customer's timeline, and the message is done
        expect(page.get_by_test_id("broadcast-status")).to_have_text("已完成", timeout=15_000)
        expect(page.get_by_test_id("progress-delivered")).to_have_text(str(len(tagged) - 2))
        expect(page.get_by_test_id("result-row")).to_have_count(len(tagged) - 2)
        first = page.get_by_test_id("result-row").first.get_by_role("link")
        first.click()
        expect(page.locator("body")).to_contain_text(re.compile("收到群发消息"))
