"""Browser tests: Playwright driving Debian's Chromium against pytest-django's live server.

Every test here is marked ``e2e`` (``make test-fast`` leaves them out). The browser is the system's
``/usr/bin/chromium`` (``make test`` installs it); Playwright never downloads one. A missing browser fails the
tests with a message saying how to install it: a skipped browser test would hide a broken page.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from tests.conftest import World

# Playwright's sync API keeps an event loop running in this thread, so Django would refuse ORM calls from the
# test body ("SynchronousOnlyOperation"). The calls are synchronous in fact; the guard does not apply.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("SIYU_CHROMIUM", "/usr/bin/chromium")
# Quiet, reproducible, sandbox-free (containers and CI run as root): no GPU, no QUIC, no background traffic.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}
# Long enough for a cold live server on a loaded 2-core machine, short enough to fail fast on a broken page.
TIMEOUT_MS = 15_000
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark everything under tests/e2e as ``e2e`` so ``-m "not e2e"`` can never pick up a browser test."""
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """Keep each phase's report on the item so the ``page`` fixture knows whether the test failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


def chromium_path() -> str:
    path = shutil.which(CHROMIUM) if not os.path.isabs(CHROMIUM) else CHROMIUM
    if not path or not os.access(path, os.X_OK):
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: the browser tests need Debian's chromium package. "
            "Run `make browser` (or `sudo apt-get install -y chromium`), or set SIYU_CHROMIUM to its path.",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    instance = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
    yield instance
    instance.close()


@pytest.fixture
def page(browser: Browser, live_server: Any, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh browser context (no cookies) on the live server; a screenshot is kept when the test fails."""
    context = browser.new_context(base_url=live_server.url, viewport=VIEWPORT, locale="zh-CN")  # type: ignore[arg-type]
    context.set_default_timeout(TIMEOUT_MS)
    new_page = context.new_page()
    yield new_page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)[-150:]
        new_page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        (ARTIFACTS / f"{name}.html").write_text(new_page.content(), encoding="utf-8")
    context.close()


@pytest.fixture
def logged_in(page: Page, world: World) -> Callable[[str], Page]:
    """``logged_in("wang")`` logs that console user in through the real login form and returns the page."""

    def login(username: str, password: str = World.password) -> Page:
        page.goto("/login/")
        page.locator("input[name=username]").fill(username)
        page.locator("input[name=password]").fill(password)
        page.get_by_test_id("login-submit").click()
        page.wait_for_url(lambda url: "/login/" not in url)
        return page

    return login
