"""The mass message pages: compose with a live count, preview with skip reasons and the CSV, send, detail,
contact rules; and who may do what."""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from siyu.broadcasts.execution import execute_broadcast
from siyu.broadcasts.models import Broadcast, BroadcastPart, CapPolicy
from siyu.corps.models import AuditLog
from siyu.corps.services import set_corp_credentials
from siyu.tags.models import CustomerTag
from tests import factories
from tests.conftest import World

pytestmark = pytest.mark.django_db


def login(client: Client, username: str) -> Client:
    client.force_login(get_user_model().objects.get(username=username))
    return client


@pytest.fixture
def audience(world: World):
    """Three customers tagged 北京: two of 王芳's, one of 刘强's; one more untagged."""
    beijing = factories.make_tag(world.corp, "北京")
    tagged = []
    for n, staff in enumerate([world.wang, world.wang, world.liu]):
        customer = factories.make_customer(world.corp, f"北京客户{n}", external_userid=f"wmbj{n}")
        factories.follow(customer, staff)
        CustomerTag.objects.create(corp=world.corp, customer=customer, tag=beijing)
        tagged.append(customer)
    factories.follow(factories.make_customer(world.corp, "上海客户"), world.liu)
    set_corp_credentials(corp=world.corp, secret="app-secret", token="", aes_key="")  # connected to WeCom
    return beijing, tagged


def _compose(client: Client, tag, **extra) -> object:
    data = {
        "kind": "customers",
        "name": "北京周末活动",
        "text": "周末到店有礼",
        "audience_type": "tags",
        "tag_ids": [tag.pk],
        "match": "any",
        "request_key": "k1",
        **extra,
    }
    return client.post("/broadcasts/new/", data)


def test_compose_preview_send_detail(client: Client, world: World, audience) -> None:
    tag, _tagged = audience
    login(client, "operator1")
    # the live count
    count = client.post(
        "/broadcasts/count/", {"kind": "customers", "audience_type": "tags", "tag_ids": [tag.pk]}
    )
    assert 'data-testid="live-count-number">3<' in count.content.decode()
    # when composed (twice: a double submit)
    first = _compose(client, tag)
    second = _compose(client, tag)
    broadcast = Broadcast.objects.for_corp(world.corp).get()
    assert first["Location"] == second["Location"] == f"/broadcasts/{broadcast.pk}/preview/"
    # then the preview shows who receives it through whom
    page = client.get(first["Location"]).content.decode()
    assert 'data-testid="preview-recipients">3<' in page
    assert "王芳" in page and "刘强" in page
    # and the CSV lists them, and is audited
    rows = list(
        csv.reader(
            io.StringIO(
                b"".join(client.get(f"/broadcasts/{broadcast.pk}/preview.csv").streaming_content).decode(
                    "utf-8-sig"
                )
            )
        )
    )
    assert {r[0] for r in rows[1:]} == {"wmbj0", "wmbj1", "wmbj2"}
    assert AuditLog.objects.for_corp(world.corp).filter(action="broadcast.export").exists()
    # when sent (twice)
    client.post(f"/broadcasts/{broadcast.pk}/send/")
    response = client.post(f"/broadcasts/{broadcast.pk}/send/")
    assert response["Location"] == f"/broadcasts/{broadcast.pk}/"
    broadcast.refresh_from_db()
    assert broadcast.status == Broadcast.Status.SCHEDULED
    # the corp has no WeCom secret here: the worker plans and queues the parts all the same
    assert execute_broadcast(broadcast_id=broadcast.pk) == "sent"
    detail = client.get(f"/broadcasts/{broadcast.pk}/").content.decode()
    assert detail.count('data-testid="part-row"') == 2
    assert 'data-testid="progress-planned">3<' in detail


def test_the_self_refreshing_part_of_the_detail_page_carries_the_actions_of_the_moment(
    client: Client, world: World, audience
) -> None:
    # given a mass message sent but not yet planned by the worker, its page open in the browser
    tag, _tagged = audience
    login(client, "operator1")
    _compose(client, tag)
    broadcast = Broadcast.objects.for_corp(world.corp).get()
    client.post(f"/broadcasts/{broadcast.pk}/send/")

    def refreshed() -> str:
        return client.get(f"/broadcasts/{broadcast.pk}/", HTTP_HX_REQUEST="true").content.decode()

    # then its refresh offers to cancel, but nobody can be reminded yet and there is no list to download
    before = refreshed()
    assert 'data-testid="cancel-broadcast"' in before
    assert 'data-testid="remind-all"' not in before and 'data-testid="detail-csv"' not in before
    # when the worker has planned it and WeCom holds the parts, waiting for the staff
    assert execute_broadcast(broadcast_id=broadcast.pk) == "sent"
    BroadcastPart.objects.filter(broadcast=broadcast).update(status=BroadcastPart.Status.WAITING, msgid="m")
    # then the next refresh (not only a reload) brings the reminder and the list
    waiting = refreshed()
    assert 'data-testid="remind-all"' in waiting and 'data-testid="detail-csv"' in waiting
    assert 'data-testid="cancel-broadcast"' in waiting
    # when every part is sent and the message is done
    BroadcastPart.objects.filter(broadcast=broadcast).update(status=BroadcastPart.Status.SENT)
    Broadcast.objects.filter(pk=broadcast.pk).update(status=Broadcast.Status.DONE)
    # then the page keeps the list but offers no reminder nor cancel
    done = client.get(f"/broadcasts/{broadcast.pk}/").content.decode()
    assert 'data-testid="detail-csv"' in done
    assert 'data-testid="remind-all"' not in done and 'data-testid="cancel-broadcast"' not in done
    # and a staff member reading it gets no actions at all
    liu = login(Client(), "liu").get(f"/broadcasts/{broadcast.pk}/").content.decode()
    assert 'data-testid="broadcast-actions"' not in liu


def test_bad_input_is_shown_next_to_the_form(client: Client, world: World, audience) -> None:
    tag, _tagged = audience
    login(client, "operator1")
    response = _compose(client, tag, text="好" * 1400)
    assert response.status_code == 400
    assert 'data-code="text_too_long"' in response.content.decode()
    empty = factories.make_tag(world.corp, "无人")
    response = _compose(client, empty, request_key="k2")
    assert response.status_code == 400 and 'data-code="empty_audience"' in response.content.decode()
    assert not Broadcast.objects.for_corp(world.corp).exists()


def test_preview_shows_skip_reasons(client: Client, world: World, audience) -> None:
    tag, tagged = audience
    other = factories.make_tag(world.corp, "黑名单")
    CustomerTag.objects.create(corp=world.corp, customer=tagged[0], tag=other)
    login(client, "operator1")
    _compose(client, tag, exclude_tag_ids=[other.pk])
    broadcast = Broadcast.objects.for_corp(world.corp).get()
    page = client.get(f"/broadcasts/{broadcast.pk}/preview/").content.decode()
    assert 'data-reason="excluded"' in page and 'id="reason-chart"' in page
    assert 'data-testid="preview-recipients">2<' in page


def test_staff_see_only_their_own_parts(client: Client, world: World, audience) -> None:
    tag, _tagged = audience
    login(client, "operator1")
    _compose(client, tag)
    broadcast = Broadcast.objects.for_corp(world.corp).get()
    client.post(f"/broadcasts/{broadcast.pk}/send/")
    execute_broadcast(broadcast_id=broadcast.pk)
    # 刘强 sees the broadcast and his own part only
    liu = login(Client(), "liu")
    page = liu.get(f"/broadcasts/{broadcast.pk}/").content.decode()
    assert page.count('data-testid="part-row"') == 1 and "刘强" in page and "王芳" not in page
    assert liu.get("/broadcasts/").content.decode().count('data-testid="broadcast-row"') == 1
    # and may not compose, send, remind or cancel
    assert liu.get("/broadcasts/new/").status_code == 403
    assert liu.post(f"/broadcasts/{broadcast.pk}/cancel/").status_code == 403
    # a staff member with no part does not see it at all
    BroadcastPart.objects.filter(staff=world.liu).delete()
    assert liu.get(f"/broadcasts/{broadcast.pk}/").status_code == 404
    # nor does another corp
    other = factories.make_corp("别家")
    assert not Broadcast.objects.for_corp(other).exists()


def test_contact_rules_page(client: Client, world: World) -> None:
    login(client, "admin1")
    response = client.post(
        "/broadcasts/rules/",
        {
            "wecom_quota": "7_per_week",
            "business_cap_count": "3",
            "business_cap_days": "7",
            "quiet_start": "22:00",
            "quiet_end": "08:00",
            "quiet_action": "skip",
            "sender_policy": "recent",
        },
    )
    assert response.status_code == 302
    policy = CapPolicy.objects.for_corp(world.corp).get()
    assert (policy.wecom_quota, policy.business_cap_count, str(policy.quiet_start)) == (
        "7_per_week",
        3,
        "22:00:00",
    )
    bad = client.post("/broadcasts/rules/", {"wecom_quota": "7_per_week", "business_cap_days": "0"})
    assert bad.status_code == 400
    assert login(Client(), "wang").get("/broadcasts/rules/").status_code == 403


def test_the_list_costs_the_same_queries_for_one_or_many(client: Client, world: World, audience) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    tag, _tagged = audience
    login(client, "operator1")

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/broadcasts/").status_code == 200
        return len(captured)

    _compose(client, tag, request_key="one")
    one = queries()
    for n in range(4):
        _compose(client, tag, request_key=f"more-{n}")
    for broadcast in Broadcast.objects.for_corp(world.corp):
        client.post(f"/broadcasts/{broadcast.pk}/send/")
        execute_broadcast(broadcast_id=broadcast.pk)
    assert queries() == one
