"""Console pages of offline members: upload, map, import with a progress page and a report of rejected rows;
phones masked in the list, shown and audited on a member's page; who sees what."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from siyu.corps.models import AuditLog
from siyu.offline.models import OfflineImport, OfflineMember
from tests import factories
from tests.conftest import World, run_tasks

pytestmark = pytest.mark.django_db


def login(username: str) -> Client:
    client = Client()
    assert client.login(username=username, password=World.password)
    return client


def test_upload_map_import_and_read_the_report(world: World, django_capture_on_commit_callbacks) -> None:
    factories.make_tag(world.corp, "VIP", group="等级")
    client = login("operator1")
    content = "客户,电话,标签\n陈静,13800138000,VIP\n李四,12345,\n,13900001111,\n".encode()
    response = client.post(
        "/offline/imports/new/", {"file": SimpleUploadedFile("m.csv", content, content_type="text/csv")}
    )
    upload = OfflineImport.objects.get(corp=world.corp)
    assert response["Location"] == f"/offline/imports/{upload.pk}/"
    page = client.get(f"/offline/imports/{upload.pk}/").content.decode()
    assert 'data-testid="mapping-form"' in page and "陈静" in page
    # "客户" and "电话" are not guessed as name and phone here: the operator maps them
    refused = client.post(f"/offline/imports/{upload.pk}/", {"column_0": "", "column_1": "phone"})
    assert refused.status_code == 400
    with django_capture_on_commit_callbacks(execute=True):
        started = client.post(
            f"/offline/imports/{upload.pk}/", {"column_0": "name", "column_1": "phone", "column_2": "tags"}
        )
    assert started.status_code == 302
    run_tasks()
    report = client.get(f"/offline/imports/{upload.pk}/").content.decode()
    assert 'data-row="3" data-reason="bad_phone"' in report
    assert 'data-row="4" data-reason="missing_name"' in report
    csv_text = b"".join(client.get(f"/offline/imports/{upload.pk}/rejected.csv").streaming_content).decode()
    assert "12345" in csv_text and csv_text.count("\n") == 3
    # the list masks phones; the member page shows it, audited
    listing = client.get("/offline/").content.decode()
    assert "138****8000" in listing and "13800138000" not in listing
    member = OfflineMember.objects.get(corp=world.corp)
    assert "13800138000" in client.get(f"/offline/{member.pk}/").content.decode()
    assert AuditLog.objects.filter(corp=world.corp, action="offline_member.view").count() == 1


def test_staff_see_only_merged_members_of_their_customers_and_cannot_import(world: World) -> None:
    pending = OfflineMember.objects.create(corp=world.corp, name="待合并", phone="13800000001")
    customer = factories.make_customer(world.corp, "王芳的客户")
    relation = factories.follow(customer, world.wang)
    merged = OfflineMember.objects.create(
        corp=world.corp,
        name="已合并",
        phone="13800000002",
        status="merged",
        customer=customer,
        relation=relation,
    )
    other = OfflineMember.objects.create(corp=world.other_corp, name="别家", phone="13800000003")
    wang, liu = login("wang"), login("liu")
    assert "已合并" in wang.get("/offline/").content.decode()
    assert "待合并" not in wang.get("/offline/").content.decode()
    assert wang.get(f"/offline/{merged.pk}/").status_code == 200
    assert liu.get(f"/offline/{merged.pk}/").status_code == 404
    assert wang.get(f"/offline/{pending.pk}/").status_code == 404
    assert wang.get("/offline/imports/new/").status_code == 403
    assert login("admin1").get(f"/offline/{other.pk}/").status_code == 404
    export = b"".join(wang.get("/offline/export.csv").streaming_content).decode()
    assert "已合并" in export and "待合并" not in export
