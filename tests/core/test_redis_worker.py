"""The Redis-backed queue (RQ) end to end: a job enqueued by the app runs in a real RQ worker.

Runs when SIYU_TEST_REDIS_URL points at a Redis server (CI sets it); the embedded database queue is covered by
every other test that runs tasks.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

REDIS_URL = os.environ.get("SIYU_TEST_REDIS_URL", "")

pytestmark = pytest.mark.skipif(not REDIS_URL, reason="SIYU_TEST_REDIS_URL is not set (CI sets it)")

START_JOB = """
from django.contrib.auth.models import User
from siyu.corps.access import actor_for_user
from siyu.corps.models import Corp
from siyu.customers.bulk import start_bulk_tag
from siyu.customers.models import Customer
from siyu.tags.models import Tag
corp = Corp.objects.get()
tag = Tag.objects.for_corp(corp).get(name="VIP")
ids = list(Customer.objects.for_corp(corp).values_list("pk", flat=True))
actor = actor_for_user(User.objects.get(username="ops").pk, corp)
job = start_bulk_tag(actor=actor, add_tag_ids=[tag.pk], customer_ids=ids)
print("JOB", job.pk)
"""

CHECK_JOB = """
from siyu.core.models import Job
from siyu.customers.models import Customer
from siyu.tags.models import CustomerTag
job = Job.objects.get()
print("STATUS", job.status, job.done, job.total)
print("TAGGED", CustomerTag.objects.filter(tag__name="VIP").values("customer").distinct().count(),
      Customer.objects.count())
"""


def siyu(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "siyu.config.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_a_bulk_job_runs_in_an_rq_worker(tmp_path):
    import redis

    connection = redis.Redis.from_url(REDIS_URL)
    connection.flushdb()  # a database of its own (CI uses /15)
    env = {
        **{k: v for k, v in os.environ.items() if k not in {"DATABASE_URL"}},
        "SIYU_DATA_DIR": str(tmp_path),
        "REDIS_URL": REDIS_URL,
        "SIYU_TASK_BACKEND": "rq",
    }
    # given a small corp and a job enqueued to Redis
    siyu(env, "seed", "--customers", "40", "--quiet")
    siyu(env, "createadmin", "--username", "ops", "--password", "a-long-enough-password")
    assert "JOB" in siyu(env, "manage", "shell", "-c", START_JOB)
    assert connection.llen("rq:queue:default") >= 1
    # when a real RQ worker works the queue until it is empty
    siyu(env, "manage", "rqworker", "default", "--job-class", "django_tasks_rq.Job", "--burst")
    # then the job finished and every customer with an active relation carries the tag
    out = siyu(env, "manage", "shell", "-c", CHECK_JOB)
    status_line = next(line for line in out.splitlines() if line.startswith("STATUS"))
    _, status, done, total = status_line.split()
    assert status == "done" and done == total == "40"
    tagged_line = next(line for line in out.splitlines() if line.startswith("TAGGED"))
    _, tagged, customers = tagged_line.split()
    assert int(tagged) > 30 and customers == "40"
