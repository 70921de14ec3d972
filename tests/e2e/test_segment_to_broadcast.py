"""Issue #5's "Done when", in a real browser: an operator builds "北京 AND 女 AND NOT purchased(30d)" with the
live count, sends a mass message to that segment after reading the preview's skip reasons (and downloading the
list), and watches the simulated staff confirm and the deliveries arrive from the WeCom simulator.

The corp lives in the simulator, its customers marked 北京 and 女 by the staff in their clients, and is synced
into Siyu; then two customers delete the staff member they followed, which reaches Siyu as encrypted callbacks
through the real receiver and inbox. Purchases arrive as behaviour events; three customers already got a mass
message today under a one-per-day WeCom quota.

The worker's steps (the queued tasks, the outbox, the poll of WeCom the beat schedules) run in the test body
between looks at the page; the simulated staff confirm by themselves once reminded, after the simulator's
confirm delay. Every expected number is computed from the data generated here.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect
from pyroaring import BitMap

from siyu.broadcasts import caps
from siyu.broadcasts.execution import poll_broadcast
from siyu.broadcasts.models import Broadcast, BroadcastPart, CapPolicy, Delivery
from siyu.core import clock
from siyu.corps.models import Role
from siyu.corps.services import create_console_user
from siyu.customers.behaviour import record_behaviour
from siyu.customers.models import Customer, FollowRelation
from siyu.segments.models import Segment
from siyu.wecom import groupcommit
from siyu.wecom.models import SyncRun
from siyu.wecom.outbox import send_due
from siyu.wecom.sync import run_sync, start_sync
from tests.conftest import run_tasks
from tests.e2e.conftest import ARTIFACTS
from tests.wecom.inbound_support import WeComEnv, simulated_wecom

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct-horse-battery-staple"
# The simulated staff confirm only once reminded, then 1.5 to 4 s later (each at their own moment).
CONFIRM_DELAY, CONFIRM_SPREAD = 1.5, 2.5
# Long enough for every simulated confirmation and the worker's polls on a loaded machine.
ARRIVAL_TIMEOUT = 30.0


@pytest.fixture(autouse=True)
def _no_committer_left() -> Iterator[None]:
    """Callbacks are stored through the process's group committer on PostgreSQL; its thread's connection must
    be closed before the test database is dropped."""
    yield
    groupcommit.shutdown()


def _login(page: Page, username: str) -> None:
    page.goto("/login/")
    page.locator("input[name=username]").fill(username)
    page.locator("input[name=password]").fill(PASSWORD)
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(lambda url: "/login/" not in url)


def _synced(env: WeComEnv) -> None:
    run = start_sync(corp=env.corp, kind=SyncRun.Kind.FULL, enqueue=False)
    while run.status not in (SyncRun.Status.DONE, SyncRun.Status.FAILED):
        run = run_sync(run.pk).run
    assert run.status == SyncRun.Status.DONE, run.error


def _work() -> None:
    """What the worker does between two looks: run the queued tasks, then send the outbox to WeCom."""
    run_tasks()
    send_due(budget=50)


def _ids(corp: Any, external_userids: list[str]) -> BitMap:
    return BitMap(
        Customer.objects.for_corp(corp)
        .filter(external_userid__in=external_userids)
        .values_list("pk", flat=True)
    )


def test_segment_to_mass_message_to_deliveries(page: Page, live_server: Any, settings: Any) -> None:
    with simulated_wecom(
        settings,
        customers=40,
        staff=4,
        groups=1,
        msg_confirm_delay=CONFIRM_DELAY,
        msg_confirm_spread=CONFIRM_SPREAD,
        msg_confirm_share=0.0,
    ) as env:
        sim = env.sim
        customers = sorted(sim.state.customers.values(), key=lambda c: c.external_userid)
        single = [c for c in customers if len(c.follows) == 1]
        several = [c for c in customers if len(c.follows) > 1]
        # given 14 北京 women (two of them follow a single staff member, and will delete them), 3 北京 men and
        # 3 women elsewhere; the others carry neither tag
        leaving = single[:2]
        women_of_beijing = leaving + several[:4] + single[2:10]
        beijing_only, women_only = single[10:13], single[13:16]
        assert len(women_of_beijing) == 14 and len(women_only) == 3, "the simulated corp is too small"
        # and in WeCom the admin created the tags, and one staff member of each customer marked them
        beijing = sim.actions.console_create_tag(name="北京", group_name="地区")["tag_id"]
        female = sim.actions.console_create_tag(name="女", group_name="性别")["tag_id"]
        marked = [
            sim.actions.tag_in_client(
                userid=next(iter(customer.follows)), external_userid=customer.external_userid, add_tag=tags
            )
            for group, tags in (
                (women_of_beijing, [beijing, female]),
                (beijing_only, [beijing]),
                (women_only, [female]),
            )
            for customer in group
        ]
        # and all of it synced into Siyu when the corp was connected (its earlier callbacks, two per new tag
        # and group and one per marking, are not delivered: the full sync reads that state), and an operator
        assert len(env.receiver.wait_for(4 + len(marked))) == 4 + len(marked)
        env.forwarded = 4 + len(marked)
        _synced(env)
        create_console_user(corp=env.corp, username="ops", password=PASSWORD, role=Role.OPERATOR)
        # and later two of the 北京 women delete the one staff member they had
        for customer in leaving:
            (userid,) = customer.follows
            env.act("customer_deletes_staff", external_userid=customer.external_userid, userid=userid)
        corp = env.corp
        leavers = _ids(corp, [c.external_userid for c in leaving])
        assert (
            not FollowRelation.objects.for_corp(corp)
            .filter(customer_id__in=list(leavers), status=FollowRelation.Status.ACTIVE)
            .exists()
        )

        # and purchases reported by the shop: two 北京 women bought 3 days ago, one 45 days ago (still in)
        targets = _ids(corp, [c.external_userid for c in women_of_beijing])
        kept = sorted(targets - leavers)
        recent_buyers, old_buyer = BitMap(kept[:2]), kept[2]
        for customer_id in recent_buyers:
            record_behaviour(
                customer=Customer.objects.get(pk=customer_id),
                kind="purchased",
                occurred_at=clock.now() - dt.timedelta(days=3),
                payload={"amount": 199},
            )
        record_behaviour(
            customer=Customer.objects.get(pk=old_buyer),
            kind="purchased",
            occurred_at=clock.now() - dt.timedelta(days=45),
            payload={"amount": 88},
        )
        # and WeCom's quota of one mass message a day, which three of the segment reached already today
        policy = caps.policy_for(corp)
        policy.wecom_quota = CapPolicy.WeComQuota.ONE_PER_DAY
        policy.save()
        over_quota = BitMap(kept[3:6])
        caps.reserve(corp=corp, customer_ids=over_quota, at=clock.now())

        both_tags = len(targets)
        segment_members = targets - recent_buyers
        recipients = segment_members - leavers - over_quota

        # when the operator builds the segment: two tags typed, the purchase condition from the palette
        _login(page, "ops")
        page.goto("/segments/")
        page.get_by_test_id("new-segment").click()
        text = page.get_by_test_id("segment-text")
        text.fill("北京 AND 女")
        # then the live count follows
        expect(page.get_by_test_id("live-count")).to_have_text(str(both_tags))
        page.locator("#palette-condition").select_option("purchased(30d)")
        page.get_by_test_id("palette-and-not").click()
        expect(text).to_have_value("北京 AND 女 AND NOT purchased(30d)")
        expect(page.get_by_test_id("live-count")).to_have_text(str(len(segment_members)))
        expect(page.get_by_test_id("canonical-text")).to_have_text(
            "tag:北京 AND tag:女 AND NOT purchased(30d)"
        )
        page.locator("input[name=name]").fill("北京女士未购")
        page.get_by_test_id("save-segment").click()
        expect(page.get_by_test_id("segment-name")).to_contain_text("北京女士未购")
        segment = Segment.objects.for_corp(corp).get(name="北京女士未购")

        # when they write a mass message to that segment
        page.get_by_test_id("nav").get_by_role("link", name="群发").click()
        page.get_by_test_id("broadcast-new").click()
        page.get_by_test_id("compose-name").fill("北京女士专享")
        page.get_by_test_id("audience-type").locator("input[value=segment]").check()
        page.get_by_test_id("audience-segment").select_option(str(segment.pk))
        # then the compose form counts the segment's members, as the builder did
        expect(page.get_by_test_id("live-count-number")).to_have_text(str(len(segment_members)))
        page.get_by_test_id("compose-text").fill("北京门店新品到店，凭此消息享九折")
        page.get_by_test_id("compose-submit").click()

        # then the preview shows who receives it and who is skipped, by reason
        expect(page.get_by_test_id("preview-audience")).to_have_text(str(len(segment_members)))
        expect(page.get_by_test_id("preview-recipients")).to_have_text(str(len(recipients)))
        expect(page.get_by_test_id("preview-skipped")).to_have_text(str(len(leavers) + len(over_quota)))
        reasons = page.get_by_test_id("skip-reasons")
        expect(reasons.locator("tr[data-reason=not_friend]")).to_contain_text("已不是好友")
        expect(reasons.locator("tr[data-reason=not_friend] td.num")).to_have_text(str(len(leavers)))
        expect(reasons.locator("tr[data-reason=wecom_quota]")).to_contain_text("超过企业微信接收上限")
        expect(reasons.locator("tr[data-reason=wecom_quota] td.num")).to_have_text(str(len(over_quota)))
        expect(reasons.locator("tr")).to_have_count(2)
        expect(page.get_by_test_id("reason-chart").locator("canvas")).to_have_count(1)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "segment-broadcast-preview.png"), full_page=True)

        # when they download the list
        with page.expect_download() as download:
            page.get_by_test_id("preview-csv").click()
        rows = list(csv.reader(io.StringIO(download.value.path().read_text(encoding="utf-8-sig"))))
        # then it names every member of the segment once, with what happens to them
        external = dict(
            Customer.objects.for_corp(corp)
            .filter(pk__in=list(segment_members))
            .values_list("external_userid", "pk")
        )
        outcome = {row[0]: row[2] for row in rows[1:]}
        assert len(rows) - 1 == len(outcome) == len(segment_members)
        assert set(outcome) == set(external)
        by_outcome: dict[str, set[int]] = {}
        for external_userid, label in outcome.items():
            by_outcome.setdefault(label, set()).add(external[external_userid])
        assert by_outcome == {
            "将收到": set(recipients),
            "已不是好友": set(leavers),
            "超过企业微信接收上限": set(over_quota),
        }

        # when they send it and the worker plans it and sends it to WeCom, then polls WeCom
        page.get_by_test_id("send-button").click()
        expect(page.get_by_test_id("broadcast-status")).to_have_text("已计划")
        broadcast = Broadcast.objects.for_corp(corp).get(name="北京女士专享")
        _work()
        poll_broadcast(broadcast_id=broadcast.pk)
        parts = list(BroadcastPart.objects.for_corp(corp).filter(broadcast=broadcast))
        assert sum(p.size for p in parts) == len(recipients)
        assert all(p.msgid for p in parts)
        # then the page (refreshing itself) shows one WeCom task per sender, none sent by the staff yet
        expect(page.get_by_test_id("broadcast-status")).to_have_text("等待员工发送")
        expect(page.get_by_test_id("part-row")).to_have_count(len(parts))
        expect(page.get_by_test_id("progress-planned")).to_have_text(str(len(recipients)))
        expect(page.get_by_test_id("progress-sent")).to_have_text("0")
        expect(page.get_by_test_id("detail-skipped")).to_contain_text(f"已不是好友 {len(leavers)}")
        expect(page.get_by_test_id("detail-skipped")).to_contain_text(
            f"超过企业微信接收上限 {len(over_quota)}"
        )

        # when the operator reminds the staff, and the worker sends the reminders to WeCom
        page.get_by_test_id("remind-all").click()
        expect(page.locator(".message.success")).to_contain_text(str(len(parts)))
        _work()
        # then the simulated staff confirm, one after another, and each poll of the worker brings the news
        # to the page, which follows by itself
        seen_sent: list[int] = []
        deadline = time.monotonic() + ARRIVAL_TIMEOUT
        while time.monotonic() < deadline:
            if poll_broadcast(broadcast_id=broadcast.pk) == Broadcast.Status.DONE:
                break
            seen_sent.append(int(page.get_by_test_id("progress-sent").inner_text()))
            time.sleep(0.5)
        else:
            pytest.fail(f"the staff confirmations did not all arrive in {ARRIVAL_TIMEOUT:.0f} s")
        assert seen_sent == sorted(seen_sent), "the staff's progress went backwards"
        expect(page.get_by_test_id("broadcast-status")).to_have_text("已完成")
        expect(page.get_by_test_id("progress-sent")).to_have_text(str(len(recipients)))
        expect(page.get_by_test_id("progress-delivered")).to_have_text(str(len(recipients)))
        expect(page.get_by_test_id("part-row").locator("[data-testid=part-status]")).to_have_text(
            ["已发送"] * len(parts)
        )
        # and every recipient's delivery is listed, and only theirs
        delivered = Delivery.objects.for_corp(corp).filter(broadcast=broadcast, status=Delivery.Status.SENT)
        assert set(delivered.values_list("customer_id", flat=True)) == set(recipients)
        expect(page.get_by_test_id("result-row")).to_have_count(len(recipients))
        page.screenshot(path=str(ARTIFACTS / "segment-broadcast-delivered.png"), full_page=True)

        # and it is on the customer's timeline
        first = page.get_by_test_id("result-row").first.get_by_role("link")
        first.click()
        expect(page.locator("body")).to_contain_text("收到群发消息")
