"""Keeping the busiest tables lean on PostgreSQL, whether or not the server's autovacuum runs.

Queue-like tables (the inbox, the outbox, the task queue, the limiter's tickets, the periodic jobs) see every
row updated or deleted within seconds of its insert, and their workers' claims scan the open rows through
partial indexes: dead row versions pile up in those scans until a vacuum clears them. A burst of 25 adds a
second left thousands of dead tickets and inbox rows behind in two minutes, and each claim and limiter check
paid for them. Autovacuum looks once a minute — on a server where it is off (some CI and hosted setups turn
it off), never. ``vacuum_hot_tables`` (run by the beat) vacuums a registered table once its dead rows pass a
threshold, as autovacuum would, sooner; where autovacuum keeps up it finds nothing to do.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import connection

logger = logging.getLogger(__name__)

# A table is vacuumed when it has at least this many dead rows and they are this share of its live ones.
MIN_DEAD = 500
DEAD_SHARE = 0.1

# How often the beat looks at the tables' dead rows.
VACUUM_EVERY = timedelta(seconds=15)

_tables: set[str] = set()


def register_hot_table(db_table: str) -> None:
    """Have ``vacuum_hot_tables`` look after this table."""
    _tables.add(db_table)


def hot_tables() -> list[str]:
    return sorted(_tables)


def due_tables() -> list[str]:
    """The registered tables whose dead rows call for a vacuum now (PostgreSQL's statistics)."""
    if connection.vendor != "postgresql" or not _tables:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname FROM pg_stat_user_tables WHERE relname = ANY(%s) "
            "AND n_dead_tup >= %s AND n_dead_tup >= %s * n_live_tup ORDER BY relname",
            [hot_tables(), MIN_DEAD, DEAD_SHARE],
        )
        return [row[0] for row in cursor.fetchall()]


def vacuum_hot_tables() -> list[str]:
    """Vacuum (and analyze) the registered tables that need it; returns their names. PostgreSQL only, and
    outside a transaction (VACUUM cannot run in one)."""
    done = []
    for table in due_tables():
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM (ANALYZE) {connection.ops.quote_name(table)}")
        done.append(table)
    if done:
        logger.info("vacuumed %s", ", ".join(done))
    return done


def _vacuum_job() -> None:
    vacuum_hot_tables()


def register_all() -> None:
    """The beat's job, and the core's own busy tables (the task queue, the periodic jobs)."""
    from django_tasks_db.models import DBTaskResult

    from siyu.core.models import PeriodicJob
    from siyu.core.scheduler import register

    for model in (DBTaskResult, PeriodicJob):
        register_hot_table(model._meta.db_table)
    register("db.vacuum_hot_tables", VACUUM_EVERY, _vacuum_job)
