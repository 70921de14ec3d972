"""The outbox page: counts by status, a list filtered by API, status and age, each write's tries, error and
answer; payloads for admins only (audited); failed writes sent again (audited). Admins and operators only."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import User

from siyu.core import clock
from siyu.corps.models import AuditLog
from siyu.wecom.models import Outbox
from siyu.wecom.outbox import enqueue_write
from siyu.wecom.outbox_selectors import shown_json

pytestmark = pytest.mark.django_db

MARK_TAG = "externalcontact/mark_tag"
REMARK = "externalcontact/remark"


def login(client, actor) -> None:
    client.force_login(User.objects.get(pk=actor.user_id))


def write(corp, key: str, *, api: str = MARK_TAG, **values) -> Outbox:
    """A write as the services store it, then moved to the state a test needs."""
    payload = (
        {"userid": "wangfang", "external_userid": f"wm{key}", "add_tag": ["etTAG1"]}
        if api == MARK_TAG
        else {"userid": "wangfang", "external_userid": f"wm{key}", "remark": "王总"}
    )
    row = enqueue_write(corp=corp, api=api, payload=payload, idempotency_key=key)
    if values:
        Outbox.objects.filter(pk=row.pk).update(**values)
        row.refresh_from_db()
    return row


@pytest.mark.parametrize(
    ("persona", "status"), [("admin", 200), ("operator", 200), ("manager", 403), ("staff_wang", 403)]
)
def test_only_admins_and_operators_see_the_outbox(client, world, persona, status):
    row = write(world.corp, "k1", status=Outbox.Status.FAILED)
    login(client, getattr(world, persona))
    assert client.get("/wecom/outbox/").status_code == status
    assert client.get(f"/wecom/outbox/{row.pk}/").status_code == status
    assert client.post(f"/wecom/outbox/{row.pk}/requeue/").status_code == (302 if status == 200 else 403)
    nav = client.get("/customers/").content.decode()
    assert ('href="/wecom/outbox/"' in nav) == (status == 200)


def test_the_outbox_shows_counts_rows_errors_and_answers(client, world):
    # given writes in every state, and one of another corp
    write(world.corp, "waiting")
    write(
        world.corp,
        "failed",
        status=Outbox.Status.FAILED,
        attempts=5,
        last_error="errcode 40068: invalid tagid",
        errcode=40068,
    )
    write(world.corp, "done", api=REMARK, status=Outbox.Status.DONE, attempts=1, result={"msgid": "msgAB12"})
    write(world.other_corp, "theirs")
    login(client, world.operator)
    # when
    page = client.get("/wecom/outbox/").content.decode()
    # then
    assert 'data-testid="outbox-waiting">1<' in page
    assert 'data-testid="outbox-count-failed">1<' in page
    assert 'data-testid="outbox-count-done">1<' in page
    assert page.count('data-testid="outbox-row"') == 3
    assert "theirs" not in page
    assert "errcode 40068: invalid tagid" in page
    assert "msgAB12" in page
    assert page.count('data-testid="outbox-requeue"') == 1
    # and the payloads are not on the list, for anyone
    assert "wmwaiting" not in page


def test_the_list_filters_by_api_status_and_age(client, world):
    # given writes of two APIs, made at different times
    with clock.frozen_at(clock.now() - dt.timedelta(days=2)):
        old = write(world.corp, "old", api=REMARK)
    recent = write(world.corp, "recent", status=Outbox.Status.FAILED)
    login(client, world.admin)

    def ids(query: str) -> set[int]:
        page = client.get(f"/wecom/outbox/?{query}").content.decode()
        return {row.pk for row in (old, recent) if f'data-id="{row.pk}"' in page}

    # then
    assert ids("") == {old.pk, recent.pk}
    assert ids(f"api={REMARK}") == {old.pk}
    assert ids("status=failed") == {recent.pk}
    assert ids("age=lt1d") == {recent.pk}
    assert ids("age=gt1d") == {old.pk}
    assert ids("api=nonsense&status=nonsense&age=nonsense") == {old.pk, recent.pk}


def test_older_writes_page_with_a_cursor(client, world):
    for n in range(55):
        write(world.corp, f"page{n:02d}")
    login(client, world.admin)
    first = client.get("/wecom/outbox/").content.decode()
    assert first.count('data-testid="outbox-row"') == 50
    oldest_shown = Outbox.objects.for_corp(world.corp).order_by("-id")[49].pk
    more = client.get(f"/wecom/outbox/?before={oldest_shown}", HTTP_HX_REQUEST="true").content.decode()
    assert more.count('data-testid="outbox-row"') == 5
    assert "<html" not in more


def test_a_write_shows_its_payload_to_admins_only_and_audited(client, world):
    # given
    row = write(world.corp, "secretive", api=REMARK, status=Outbox.Status.DONE, result={"ok": True})
    # when an operator opens the write
    login(client, world.operator)
    as_operator = client.get(f"/wecom/outbox/{row.pk}/?payload=1").content.decode()
    # then the state and the answer are shown, the payload is not, and nothing is audited
    assert 'data-testid="outbox-result"' in as_operator
    assert 'data-testid="payload-admins-only"' in as_operator
    assert "王总" not in as_operator
    assert not AuditLog.objects.filter(action="wecom.outbox.read_payload").exists()
    # when an admin asks for the payload
    login(client, world.admin)
    closed = client.get(f"/wecom/outbox/{row.pk}/").content.decode()
    opened = client.get(f"/wecom/outbox/{row.pk}/?payload=1").content.decode()
    # then it is shown, and the reading is in the audit log
    assert "王总" not in closed and 'data-testid="show-payload"' in closed
    assert "王总" in opened and "wmsecretive" in opened
    [entry] = AuditLog.objects.filter(action="wecom.outbox.read_payload")
    assert (entry.corp_id, entry.object_id, entry.user_id) == (
        world.corp.pk,
        str(row.pk),
        world.admin.user_id,
    )


def test_another_corps_write_is_not_found(client, world):
    theirs = write(world.other_corp, "theirs", status=Outbox.Status.FAILED)
    login(client, world.admin)
    assert client.get(f"/wecom/outbox/{theirs.pk}/").status_code == 404
    assert client.post(f"/wecom/outbox/{theirs.pk}/requeue/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == Outbox.Status.FAILED


def test_a_failed_write_is_sent_again_and_audited(client, world):
    # given a write that failed after its tries
    row = write(world.corp, "again", status=Outbox.Status.FAILED, attempts=5, last_error="errcode -1: busy")
    login(client, world.operator)
    # when "send again" is pressed on the filtered list
    response = client.post(f"/wecom/outbox/{row.pk}/requeue/", {"next": "/wecom/outbox/?status=failed"})
    # then it is due again with its tries from zero, the operator is back on the list, and it is audited
    assert response.status_code == 302 and response["Location"] == "/wecom/outbox/?status=failed"
    row.refresh_from_db()
    assert (row.status, row.attempts) == (Outbox.Status.PENDING, 0)
    [entry] = AuditLog.objects.filter(action="wecom.outbox.requeue")
    assert (entry.object_id, entry.user_id) == (str(row.pk), world.operator.user_id)
    # when pressed again (the write is no longer failed), nothing changes and nothing more is audited
    client.post(f"/wecom/outbox/{row.pk}/requeue/")
    row.refresh_from_db()
    assert row.status == Outbox.Status.PENDING
    assert AuditLog.objects.filter(action="wecom.outbox.requeue").count() == 1


def test_send_again_never_redirects_off_site(client, world):
    row = write(world.corp, "offsite", status=Outbox.Status.FAILED)
    login(client, world.admin)
    response = client.post(f"/wecom/outbox/{row.pk}/requeue/", {"next": "https://evil.example/"})
    assert response["Location"] == f"/wecom/outbox/{row.pk}/"


def test_secrets_are_never_shown():
    shown = shown_json({"access_token": "T0K3N", "nested": [{"secret": "S3CR3T", "name": "VIP"}]})
    assert "T0K3N" not in shown and "S3CR3T" not in shown and "VIP" in shown
