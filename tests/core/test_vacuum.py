"""The busiest tables are vacuumed once their dead rows pile up, autovacuum or not."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection

from siyu.core import vacuum
from siyu.wecom.models import GatewayTicket
from tests import factories

pytestmark = [
    pytest.mark.django_db(transaction=True),  # VACUUM cannot run inside a transaction
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's vacuum and statistics"),
]

TABLE = GatewayTicket._meta.db_table


def _dead_rows() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")
        cursor.execute("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = %s", [TABLE])
        return int(cursor.fetchone()[0])


def _tickets(corp, n: int) -> list[GatewayTicket]:
    at = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    return [GatewayTicket(corp=corp, api="x", priority=50, state="running", expires_at=at) for _ in range(n)]


def test_a_hot_table_is_vacuumed_once_its_dead_rows_pass_the_threshold():
    assert TABLE in vacuum.hot_tables()
    corp = factories.make_corp()
    # given a few dead limiter tickets: below the threshold, left alone
    GatewayTicket.objects.bulk_create(_tickets(corp, 100))
    GatewayTicket.objects.all().delete()
    assert 0 < _dead_rows() < vacuum.MIN_DEAD
    assert TABLE not in vacuum.due_tables()
    # given many more (every WeCom call leaves one)
    GatewayTicket.objects.bulk_create(_tickets(corp, 900))
    GatewayTicket.objects.all().delete()
    assert _dead_rows() >= vacuum.MIN_DEAD
    # when the beat's job runs, then the table is vacuumed and its dead rows are gone
    assert TABLE in vacuum.vacuum_hot_tables()
    assert _dead_rows() == 0
    assert TABLE not in vacuum.due_tables()
