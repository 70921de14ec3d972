"""Fixtures shared by the whole suite: two corps and named personas for every role."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from unittest import mock

import pytest
from django.core.management import call_command
from django.utils import translation

from siyu.corps.access import Actor, actor_for_user
from siyu.corps.models import Corp, Department, Role, Staff
from siyu.corps.services import create_console_user
from tests import factories


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:  # type: ignore[no-untyped-def]
    """Hashing a password costs ~0.3 s by design; tests create many users and need no such cost."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _default_language() -> Iterator[None]:
    """Every test starts in the default language (zh-hans), whatever the test before it asked for.

    LocaleMiddleware activates a request's language in the thread and leaves it active after the response,
    so a test that sent ``Accept-Language: en`` would otherwise turn the next test's messages English.
    """
    translation.deactivate()
    yield
    translation.deactivate()


@pytest.fixture(autouse=True)
def _fresh_segment_indexes() -> Iterator[None]:
    """Segment indexes live in the process; a test's rolled-back rows (and reused ids) must not leak into the
    next test's index."""
    from siyu.segments import engine

    engine.reset()
    yield
    engine.reset()


@dataclass
class World:
    """A corp with a small org chart and one console user per role.

    华东 (east) has staff 王芳 (wang); 华南 (south) has 刘强 (liu). The manager manages 华东.
    """

    corp: Corp
    other_corp: Corp
    east: Department
    south: Department
    wang: Staff
    liu: Staff
    admin: Actor
    operator: Actor
    manager: Actor
    staff_wang: Actor
    staff_liu: Actor
    password: str = "correct-horse-battery-staple"


@pytest.fixture
def world(db: None) -> World:
    corp = factories.make_corp("思域测试", corpid="wwworld000001")
    other = factories.make_corp("另一家企业", corpid="wwother000001")
    hq = factories.make_department(corp, "总部")
    east = factories.make_department(corp, "华东", parent=hq)
    south = factories.make_department(corp, "华南", parent=hq)
    wang = factories.make_staff(corp, "王芳", east, userid="wangfang")
    liu = factories.make_staff(corp, "刘强", south, userid="liuqiang")
    password = World.password
    users = {
        "admin": create_console_user(corp=corp, username="admin1", password=password, role=Role.ADMIN),
        "operator": create_console_user(
            corp=corp, username="operator1", password=password, role=Role.OPERATOR
        ),
        "manager": create_console_user(
            corp=corp, username="manager1", password=password, role=Role.MANAGER, departments=[east]
        ),
        "staff_wang": create_console_user(
            corp=corp, username="wang", password=password, role=Role.STAFF, staff=wang
        ),
        "staff_liu": create_console_user(
            corp=corp, username="liu", password=password, role=Role.STAFF, staff=liu
        ),
    }
    actors = {k: actor_for_user(u.pk, corp) for k, u in users.items()}
    return World(corp=corp, other_corp=other, east=east, south=south, wang=wang, liu=liu, **actors)


def run_tasks() -> None:
    """Run every queued background task with the real database worker, then return."""
    # Between tasks the worker closes connections it thinks stale, as a long-running process should. Inside a
    # test's transaction that would drop the test's data on PostgreSQL (SQLite's in-memory test database
    # ignores close()), so the worker keeps the test's connection here.
    with mock.patch("django_tasks_db.management.commands.db_worker.close_old_connections"):
        call_command("db_worker", batch=True, no_startup_delay=True, verbosity=0)
