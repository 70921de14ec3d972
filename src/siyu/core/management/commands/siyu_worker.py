"""The background worker: the configured task backend's worker plus the periodic beat."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from siyu.core.scheduler import Beat


class Command(BaseCommand):
    help = "Run a background worker (database queue, or Redis when configured) with the periodic beat."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--no-beat", action="store_true", help="do not run periodic jobs in this worker")
        parser.add_argument("--beat-tick", type=float, default=5.0, help="seconds between periodic checks")

    def handle(self, *args: Any, **options: Any) -> None:
        beat = None if options["no_beat"] else Beat(tick=options["beat_tick"])
        if beat is not None:
            beat.start()
        try:
            if settings.TASK_BACKEND == "rq":
                # --with-scheduler lets RQ run deferred tasks (run_after) on time.
                call_command("rqworker", "default", job_class="django_tasks_rq.Job", with_scheduler=True)
            else:
                # A reloading worker can stop mid-task; restarts are the supervisor's job.
                call_command(
                    "db_worker",
                    interval=settings.SIYU["WORKER_POLL_SECONDS"],
                    startup_delay=False,
                    reload=False,
                )
        finally:
            if beat is not None:
                beat.stop()
