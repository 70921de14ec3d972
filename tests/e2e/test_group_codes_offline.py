"""In a real browser: a group code with two groups serves the second once the first is full; an import with
bad rows shows its report."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from siyu.customers.models import Event
from siyu.groups.images import qr_png
from siyu.groups.models import GroupChat, GroupCode
from siyu.groups.services import GroupChatInfo, GroupMemberInfo, apply_group_chat
from tests import factories
from tests.conftest import World
from tests.e2e.conftest import ARTIFACTS

pytestmark = pytest.mark.e2e


def make_group(world: World, chat_id: str, name: str, members: int) -> GroupChat:
    owner = GroupMemberInfo(userid=world.wang.userid, type=1)
    guests = [GroupMemberInfo(userid=f"{chat_id}-guest{i}", type=2) for i in range(members - 1)]
    info = GroupChatInfo(chat_id=chat_id, name=name, owner_userid=world.wang.userid, members=(owner, *guests))
    return apply_group_chat(corp=world.corp, info=info, source=Event.Source.WECOM).group


def test_a_code_with_two_groups_serves_the_second_when_the_first_is_full(
    logged_in: Callable[[str], Page], world: World, tmp_path: Path, live_server
) -> None:
    first = make_group(world, "wrE2eA", "一号会员群", 2)
    make_group(world, "wrE2eB", "二号会员群", 1)
    images = []
    for name in ("a", "b"):
        path = tmp_path / f"{name}.png"
        path.write_bytes(qr_png(f"https://work.weixin.qq.com/gm/{name}", size=300))
        images.append(path)
    page = logged_in("operator1")
    # given: a code with two groups, the first allowing 3 members
    page.goto("/groups/codes/")
    page.locator("#code-name").fill("门店群活码")
    page.locator("#code-title").fill("扫码加入会员群")
    page.get_by_test_id("create-code").click()
    for group_name, image, limit in (("一号会员群", images[0], "3"), ("二号会员群", images[1], "3")):
        page.locator("#entry-group").select_option(
            label=f"{group_name} (2)" if group_name.startswith("一") else f"{group_name} (1)"
        )
        page.locator("#entry-image").set_input_files(str(image))
        page.locator("#entry-limit").fill(limit)
        page.get_by_test_id("add-entry").click()
        expect(page.get_by_test_id("messages")).to_contain_text(group_name)
    code = GroupCode.objects.get(corp=world.corp)
    entries = list(code.entries.order_by("position"))
    landing = page.get_by_test_id("landing-url").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "group-code-detail.png"), full_page=True)
    # when: a visitor (no login) opens the public link: the first group is served
    visitor = page.context.browser.new_context()  # type: ignore[union-attr]
    public = visitor.new_page()
    public.goto(landing)
    expect(public.get_by_test_id("landing-qr")).to_have_attribute("data-entry", str(entries[0].pk))
    expect(public.get_by_test_id("landing-title")).to_have_text("扫码加入会员群")
    # and the first group fills up (a join mirrored from WeCom)
    make_group(world, "wrE2eA", "一号会员群", 3)
    first.refresh_from_db()
    assert first.member_count == 3
    # then: the same link serves the second group
    public.goto(landing)
    expect(public.get_by_test_id("landing-qr")).to_have_attribute("data-entry", str(entries[1].pk))
    assert public.locator("img").evaluate("img => img.naturalWidth") > 0
    public.screenshot(path=str(ARTIFACTS / "group-code-landing.png"))
    visitor.close()
    page.reload()
    expect(page.get_by_test_id(f"entry-{entries[0].pk}").get_by_test_id("entry-state")).to_have_attribute(
        "data-state", "full"
    )
    expect(page.get_by_test_id(f"entry-{entries[1].pk}").get_by_test_id("serving")).to_be_visible()


def test_import_a_file_with_bad_rows_and_see_the_report(
    logged_in: Callable[[str], Page], world: World, tmp_path: Path
) -> None:
    factories.make_tag(world.corp, "VIP", group="等级")
    path = tmp_path / "members.csv"
    path.write_text(
        "姓名,手机,标签,备注\n"
        "陈静,+86 138-0013-8000,VIP,门店老客\n"
        ",13900001111,,\n"
        "李四,12345,,\n"
        "陈静二号,13800138000,,\n"
        "王五,13900002222,火星,\n",
        encoding="utf-8",
    )
    page = logged_in("operator1")
    page.goto("/offline/")
    page.get_by_test_id("import-new").click()
    page.locator("input[name=file]").set_input_files(str(path))
    page.get_by_test_id("import-upload").click()
    expect(page.get_by_test_id("mapping-form")).to_be_visible()
    expect(page.get_by_test_id("column-0")).to_have_value("name")
    expect(page.get_by_test_id("column-1")).to_have_value("phone")
    page.get_by_test_id("start-import").click()
    # the worker runs in the test: the page polls until the job is done
    from tests.conftest import run_tasks

    run_tasks()
    expect(page.get_by_test_id("job-status")).to_have_attribute("class", "badge badge-ok", timeout=15_000)
    expect(page.get_by_test_id("created")).to_have_text("1")
    expect(page.get_by_test_id("rejected")).to_have_text("4")
    rows = page.get_by_test_id("rejection")
    expect(rows).to_have_count(4)
    assert [rows.nth(i).get_attribute("data-reason") for i in range(4)] == [
        "missing_name",
        "bad_phone",
        "duplicate_in_file",
        "unknown_tag",
    ]
    with page.expect_download() as download:
        page.get_by_test_id("download-rejections").click()
    assert "12345" in Path(download.value.path()).read_text(encoding="utf-8-sig")
    page.screenshot(path=str(ARTIFACTS / "offline-import-report.png"), full_page=True)
