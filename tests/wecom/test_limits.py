"""The limiter: buckets from the configured quota, reserves, priorities, concurrency caps, ticket expiry."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from siyu.core import clock
from siyu.wecom.errors import RateLimited
from siyu.wecom.limits import Limiter, Priority, purge_expired_tickets
from siyu.wecom.models import ApiLimit, GatewayTicket
from tests.wecom.outbound_support import make_wecom_corp

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SYNC_API = "externalcontact/batch/get_by_user"
WELCOME_API = "externalcontact/send_welcome_msg"


def limited(settings, **knobs: object) -> None:
    settings.SIYU = {**settings.SIYU, **knobs}


@pytest.mark.django_db
def test_the_minute_bucket_refills_continuously(settings) -> None:
    # given: 2 calls a minute for this API
    limited(settings, WECOM_API_LIMITS={SYNC_API: {"per_minute": 2}})
    corp = make_wecom_corp()
    limiter = Limiter()
    with clock.frozen_at(T0):
        for _ in range(2):
            GatewayTicket.objects.filter(
                pk=limiter.acquire(corp_id=corp.pk, api=SYNC_API, priority=Priority.USER, max_wait=0)
            ).delete()
        # when: the third call in the same instant
        with pytest.raises(RateLimited) as refused:
            limiter.acquire(corp_id=corp.pk, api=SYNC_API, priority=Priority.USER, max_wait=0)
        # then: one token comes back every 30 s
        assert refused.value.retry_at == T0 + timedelta(seconds=30)
        clock.advance(timedelta(seconds=30))
        assert limiter.acquire(corp_id=corp.pk, api=SYNC_API, priority=Priority.USER, max_wait=0)


@pytest.mark.django_db
def test_buckets_are_per_corp_and_per_api(settings) -> None:
    # given: one call a minute, spent by one corp on one API
    limited(settings, WECOM_API_PER_MINUTE=1)
    corp, other = make_wecom_corp(), make_wecom_corp()
    limiter = Limiter()
    with clock.frozen_at(T0):
        limiter.acquire(corp_id=corp.pk, api=SYNC_API, priority=Priority.USER, max_wait=0)
        # when / then
        with pytest.raises(RateLimited):
            limiter.acquire(corp_id=corp.pk, api=SYNC_API, priority=Priority.USER, max_wait=0)
        assert limiter.acquire(corp_id=corp.pk, api=WELCOME_API, priority=Priority.USER, max_wait=0)
        assert limiter.acquire(corp_id=other.pk, api=SYNC_API, priority=Priority.USER, max_wait=0)


@pytest.mark.django_db
def test_a_sync_leaves_a_reserve_of_the_bucket_to_people(settings) -> None:
    # given: 10 calls a minute; a sync may not take the last 20 %
    limited(settings, WECOM_API_PER_MINUTE=10)
    corp = make_wecom_corp()
    limiter = Limiter()
    with clock.frozen_at(T0):
        for _ in range(8):
            limiter.acquire(corp_id=corp.pk, api=SYNC_API, priority=Priority.SYNC, max_wait=0)
        # when / then
        with pytest.raises(RateLimited):
            limiter.acquire(corp_id=corp.pk, api=SYNC_API, priority=Priority.SYNC, max_wait=0)
        assert limiter.acquire(corp_id=corp.pk, api=SYNC_API, priority=Priority.USER, max_wait=0)
        assert limiter.acquire(corp_id=corp.pk, api=SYNC_API, priority=Priority.WELCOME, max_wait=0)


@pytest.mark.django_db
def test_concurrency_cap_lowered_by_45033_grows_back(settings) -> None:
    # given: up to 8 concurrent calls; two running when WeCom answers 45033
    limited(settings, WECOM_API_CONCURRENCY=8)
    corp = make_wecom_corp()
    limiter = Limiter()
    with clock.frozen_at(T0):
        running = [
            limiter.acquire(corp_id=corp.pk, api=SYNC_API, priority=Priority.USER, max_wait=0)
            for _ in range(2)
        ]
        # when
        cap = limiter.lower_concurrency(corp_id=corp.pk, api=SYNC_API)
        # then: halved to 1, and a second concurrent call has to wait
        assert cap == 1
        GatewayTicket.objects.filter(pk=running[1]).delete()
        with pytest.raises(RateLimited) as refused:
            limiter.acquire(corp_id=corp.pk, api=SYNC_API, priority=Priority.USER, max_wait=0)
        assert refused.value.reason == "API concurrency cap"
        # when: three minutes without 45033
        clock.advance(timedelta(minutes=3))
        limiter.acquire(corp_id=corp.pk, api=SYNC_API, priority=Priority.USER, max_wait=0)
        # then: the cap grew by one a minute
        assert ApiLimit.objects.for_corp(corp).get(api=SYNC_API).concurrency == 4


@pytest.mark.django_db
def test_a_waiting_welcome_in_another_process_holds_back_a_sync(settings) -> None:
    # given: the corp runs one call at a time and another process's welcome message is waiting for the slot
    limited(settings, WECOM_CORP_CONCURRENCY=1)
    corp = make_wecom_corp()
    limiter = Limiter()
    with clock.frozen_at(T0):
        GatewayTicket.objects.create(
            corp=corp,
            api=WELCOME_API,
            priority=Priority.WELCOME,
            state=GatewayTicket.State.WAITING,
            expires_at=T0 + timedelta(seconds=10),
        )
        # when / then: the free slot is left to the welcome message
        with pytest.raises(RateLimited) as refused:
            limiter.acquire(corp_id=corp.pk, api=SYNC_API, priority=Priority.SYNC, max_wait=0)
        assert refused.value.reason == "corp concurrency cap"
        # when: that process died and its ticket expired
        clock.advance(timedelta(seconds=11))
        # then
        assert limiter.acquire(corp_id=corp.pk, api=SYNC_API, priority=Priority.SYNC, max_wait=0)
        assert purge_expired_tickets(older_than=timedelta(0)) == 1


@pytest.mark.django_db
def test_a_running_ticket_of_a_dead_process_frees_its_slot_when_it_expires(settings) -> None:
    # given: one call at a time, held by a process that died
    limited(settings, WECOM_API_CONCURRENCY=1)
    corp = make_wecom_corp()
    limiter = Limiter(http_timeout=10)
    with clock.frozen_at(T0):
        limiter.acquire(corp_id=corp.pk, api=SYNC_API, priority=Priority.USER, max_wait=0)
        with pytest.raises(RateLimited):
            limiter.acquire(corp_id=corp.pk, api=SYNC_API, priority=Priority.USER, max_wait=0)
        # when: three HTTP timeouts plus the margin (60 s) later
        clock.advance(timedelta(seconds=59))
        with pytest.raises(RateLimited):
            limiter.acquire(corp_id=corp.pk, api=SYNC_API, priority=Priority.USER, max_wait=0)
        clock.advance(timedelta(seconds=2))
        # then
        assert limiter.acquire(corp_id=corp.pk, api=SYNC_API, priority=Priority.USER, max_wait=0)


# The SQLite test database is in memory with a shared cache, where concurrent threads get "table is locked"
# instead of waiting as they would on a database file; the single-thread test above covers SQLite.
@pytest.mark.skipif(connection.vendor != "postgresql", reason="threads need a real database server")
@pytest.mark.django_db(transaction=True)
def test_a_welcome_message_is_served_before_queued_sync_calls(settings) -> None:
    # given: one call at a time for the corp, held now; three sync calls queue for it, then a welcome message
    limited(settings, WECOM_CORP_CONCURRENCY=1)
    corp = make_wecom_corp()
    limiter = Limiter()
    holder = limiter.acquire(corp_id=corp.pk, api=SYNC_API, priority=Priority.SYNC, max_wait=1)
    served: list[str] = []
    failures: list[BaseException] = []

    def call(name: str, api: str, priority: Priority) -> None:
        try:
            with limiter.slot(corp_id=corp.pk, api=api, priority=priority, max_wait=30):
                served.append(name)
                time.sleep(0.05)
        except BaseException as exc:
            failures.append(exc)
        finally:
            connection.close()

    def waiting() -> int:
        return GatewayTicket.objects.filter(state=GatewayTicket.State.WAITING).count()

    def until(count: int) -> None:
        deadline = time.monotonic() + 10
        while waiting() < count and time.monotonic() < deadline:
            time.sleep(0.02)

    threads = [threading.Thread(target=call, args=(f"sync{i}", SYNC_API, Priority.SYNC)) for i in range(3)]
    for t in threads:
        t.start()
    until(3)
    welcome = threading.Thread(target=call, args=("welcome", WELCOME_API, Priority.WELCOME))
    welcome.start()
    until(4)
    # when
    GatewayTicket.objects.filter(pk=holder).delete()
    for t in [*threads, welcome]:
        t.join()
    # then
    assert failures == []
    assert served[0] == "welcome"
    assert sorted(served[1:]) == ["sync0", "sync1", "sync2"]
