"""The inbox page: depth, lag, counts and a filterable list; an event's error, its payload for admins
(audited), and the replay button. Only admins and operators see it."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from siyu.corps.models import AuditLog
from siyu.wecom.inbox import store_message
from siyu.wecom.models import InboxEvent
from tests.wecom.inbound_support import event_xml

pytestmark = pytest.mark.django_db


def login(client, actor) -> None:
    client.force_login(User.objects.get(pk=actor.user_id))


def _event(corp, change_type: str = "del_follow_user", external_userid: str = "wmC1", **values) -> InboxEvent:
    xml = event_xml(
        "change_external_contact",
        change_type,
        UserID="wangfang",
        ExternalUserID=external_userid,
        State="手机号13800000000",
    )
    store_message(corp_id=corp.pk, plaintext=xml.encode())
    row = InboxEvent.objects.for_corp(corp).order_by("-id").first()
    if values:
        InboxEvent.objects.filter(pk=row.pk).update(**values)
        row.refresh_from_db()
    return row


@pytest.mark.parametrize(
    ("persona", "status"), [("admin", 200), ("operator", 200), ("manager", 403), ("staff_wang", 403)]
)
def test_only_admins_and_operators_see_the_inbox(client, world, persona, status):
    login(client, getattr(world, persona))
    assert client.get("/wecom/inbox/").status_code == status
    assert client.get("/wecom/sync/").status_code == status
    nav = client.get("/customers/").content.decode()
    assert ('href="/wecom/inbox/"' in nav) == (status == 200)


def test_the_inbox_shows_depth_lag_counts_and_rows(client, world):
    # given
    _event(world.corp, external_userid="wmA")
    _event(
        world.corp, external_userid="wmB", status=InboxEvent.Status.FAILED, last_error="ApiForbidden: 48002"
    )
    _event(world.other_corp, external_userid="wmOther")
    login(client, world.operator)
    # when
    page = client.get("/wecom/inbox/").content.decode()
    # then
    assert 'data-testid="inbox-depth">1<' in page
    assert 'data-testid="inbox-count-failed">1<' in page
    assert page.count('data-testid="inbox-row"') == 2
    assert "wmOther" not in page
    assert "ApiForbidden: 48002" in page
    # and filtered
    failed = client.get("/wecom/inbox/?status=failed").content.decode()
    assert failed.count('data-testid="inbox-row"') == 1 and "contact:wmB" in failed
    by_key = client.get("/wecom/inbox/?key=wmA").content.decode()
    assert by_key.count('data-testid="inbox-row"') == 1 and "contact:wmA" in by_key


def test_older_events_page_with_a_cursor(client, world):
    for n in range(55):
        _event(world.corp, external_userid=f"wmPage{n:02d}")
    login(client, world.admin)
    first = client.get("/wecom/inbox/").content.decode()
    assert first.count('data-testid="inbox-row"') == 50
    oldest_shown = InboxEvent.objects.for_corp(world.corp).order_by("-id")[49].pk
    more = client.get(f"/wecom/inbox/?before={oldest_shown}", HTTP_HX_REQUEST="true").content.decode()
    assert more.count('data-testid="inbox-row"') == 5
    assert "<html" not in more


def test_an_operator_sees_the_error_but_not_the_payload(client, world):
    row = _event(world.corp, status=InboxEvent.Status.FAILED, last_error="ApiForbidden: errcode 48002")
    login(client, world.operator)
    page = client.get(f"/wecom/inbox/{row.pk}/?payload=1").content.decode()
    assert "errcode 48002" in page
    assert 'data-testid="payload-admins-only"' in page
    assert "13800000000" not in page
    assert not AuditLog.objects.filter(action="wecom.inbox.read_payload").exists()


def test_an_admin_reads_the_payload_and_it_is_audited(client, world):
    row = _event(world.corp, status=InboxEvent.Status.FAILED, last_error="boom")
    login(client, world.admin)
    # the payload is not shown until asked for
    assert "13800000000" not in client.get(f"/wecom/inbox/{row.pk}/").content.decode()
    page = client.get(f"/wecom/inbox/{row.pk}/?payload=1").content.decode()
    assert 'data-testid="payload"' in page and "13800000000" in page
    entry = AuditLog.objects.for_corp(world.corp).get(action="wecom.inbox.read_payload")
    assert (entry.object_id, entry.user_id) == (str(row.pk), world.admin.user_id)


def test_replay_puts_a_failed_event_back_in_the_queue(client, world):
    row = _event(world.corp, status=InboxEvent.Status.FAILED, attempts=10, last_error="boom")
    login(client, world.operator)
    response = client.post(f"/wecom/inbox/{row.pk}/replay/")
    assert response.status_code == 302
    row.refresh_from_db()
    assert (row.status, row.attempts, row.last_error) == (InboxEvent.Status.PENDING, 0, "")
    assert (
        AuditLog.objects.for_corp(world.corp)
        .filter(action="wecom.inbox.replay", object_id=str(row.pk))
        .exists()
    )


def test_a_pending_event_cannot_be_replayed(client, world):
    row = _event(world.corp)
    login(client, world.admin)
    client.post(f"/wecom/inbox/{row.pk}/replay/")
    assert not AuditLog.objects.filter(action="wecom.inbox.replay").exists()


def test_another_corps_event_is_404(client, world):
    row = _event(world.other_corp, status=InboxEvent.Status.FAILED)
    login(client, world.admin)
    assert client.get(f"/wecom/inbox/{row.pk}/").status_code == 404
    assert client.post(f"/wecom/inbox/{row.pk}/replay/").status_code == 404
    row.refresh_from_db()
    assert row.status == InboxEvent.Status.FAILED


def test_staff_cannot_replay(client, world):
    row = _event(world.corp, status=InboxEvent.Status.FAILED)
    login(client, world.staff_wang)
    assert client.post(f"/wecom/inbox/{row.pk}/replay/").status_code == 403
