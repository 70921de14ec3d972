"""The sync pages: start a full sync or a reconciliation, watch its progress (htmx), history, resume."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from siyu.corps.models import AuditLog
from siyu.wecom.models import SyncRun
from tests.wecom.inbound_support import simulated_wecom

pytestmark = pytest.mark.django_db


def login(client, actor) -> None:
    client.force_login(User.objects.get(pk=actor.user_id))


def test_starting_a_full_sync_from_the_console(client, world, django_capture_on_commit_callbacks):
    login(client, world.admin)
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post("/wecom/sync/start/", {"kind": "full"})
    run = SyncRun.objects.for_corp(world.corp).get()
    assert response.status_code == 302 and response["Location"] == f"/wecom/sync/{run.pk}/"
    assert (run.kind, run.status, run.created_by_id) == ("full", "pending", world.admin.user_id)
    assert AuditLog.objects.for_corp(world.corp).filter(action="wecom.sync.full").exists()
    # the detail page polls its progress while the run is under way
    page = client.get(f"/wecom/sync/{run.pk}/").content.decode()
    assert f'hx-get="/wecom/sync/{run.pk}/progress/"' in page
    fragment = client.get(f"/wecom/sync/{run.pk}/progress/").content.decode()
    assert 'data-testid="sync-progress"' in fragment and "<html" not in fragment
    # a second start is refused while it runs
    client.post("/wecom/sync/start/", {"kind": "reconcile"})
    assert SyncRun.objects.for_corp(world.corp).count() == 1


def test_an_unknown_kind_is_refused(client, world):
    login(client, world.operator)
    client.post("/wecom/sync/start/", {"kind": "everything"})
    assert not SyncRun.objects.exists()


def test_a_finished_sync_shows_its_counts_and_stops_polling(client, world, settings):
    from siyu.wecom.sync import run_sync, start_sync

    with simulated_wecom(settings, customers=15) as env:
        # given an admin of the simulated corp
        from siyu.corps.services import set_membership

        set_membership(corp=env.corp, user=User.objects.get(pk=world.admin.user_id), role="admin")
        session = client.session
        session["siyu_corp_id"] = env.corp.pk
        session.save()
        login(client, world.admin)
        run = start_sync(corp=env.corp, kind=SyncRun.Kind.FULL, enqueue=False)
        while run_sync(run.pk).run.status not in ("done", "failed"):
            pass
        # when
        page = client.get(f"/wecom/sync/{run.pk}/").content.decode()
        listing = client.get("/wecom/sync/").content.decode()
        # then
        assert 'data-testid="sync-percent">100%<' in page
        assert "hx-trigger" not in page.split('data-testid="sync-progress"')[1].split(">")[0]
        assert "relations" in page
        assert f'data-id="{run.pk}"' in listing
        assert 'data-testid="next-reconciliation"' in listing


def test_a_failed_sync_can_be_resumed(client, world):
    run = SyncRun.objects.create(corp=world.corp, kind="full", status="failed", stage="customers", error="x")
    login(client, world.admin)
    assert 'data-testid="resume-sync"' in client.get(f"/wecom/sync/{run.pk}/").content.decode()
    client.post(f"/wecom/sync/{run.pk}/resume/")
    run.refresh_from_db()
    assert (run.status, run.error) == ("pending", "")


def test_another_corps_sync_is_404(client, world):
    run = SyncRun.objects.create(corp=world.other_corp, kind="full")
    login(client, world.admin)
    assert client.get(f"/wecom/sync/{run.pk}/").status_code == 404
    assert client.get(f"/wecom/sync/{run.pk}/progress/").status_code == 404
    assert client.post(f"/wecom/sync/{run.pk}/resume/").status_code == 404


def test_staff_cannot_start_a_sync(client, world):
    login(client, world.staff_liu)
    assert client.post("/wecom/sync/start/", {"kind": "full"}).status_code == 403
    assert not SyncRun.objects.exists()
