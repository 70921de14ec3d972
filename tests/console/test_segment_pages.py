"""Segment pages: list with counts and chart data, builder with live count and inline errors, members page
within the reader's scope, roles."""

from __future__ import annotations

import json

from django.contrib.auth.models import User
from django.test import Client

from siyu.segments.models import Segment, SegmentOverride
from siyu.segments.services import SegmentInput, create_segment, refresh_segment
from tests import factories


def login(username: str) -> Client:
    client = Client()
    client.force_login(User.objects.get(username=username))
    return client


def _customers(world):  # type: ignore[no-untyped-def]
    beijing = factories.make_tag(world.corp, "北京")
    wang_c = factories.make_customer(world.corp, "王的北京客户", gender=2)
    factories.follow(wang_c, world.wang)
    liu_c = factories.make_customer(world.corp, "刘的北京客户", gender=2)
    factories.follow(liu_c, world.liu)
    from siyu.tags.services import tag_customers

    tag_customers(
        actor=world.admin, customer_ids=[wang_c.pk, liu_c.pk], add_tag_ids=[beijing.pk], source="console"
    )
    return wang_c, liu_c


def test_the_builder_counts_as_the_operator_types(world) -> None:  # type: ignore[no-untyped-def]
    # given
    _customers(world)
    client = login("operator1")
    # when
    good = client.post("/segments/preview/", {"text": "北京 AND gender:female AND NOT purchased(30d)"})
    bad = client.post("/segments/preview/", {"text": "北京 AND gender>female"})
    # then
    assert good.status_code == 200
    assert 'data-testid="live-count">2<' in good.content.decode()
    assert "tag:北京 AND gender:female AND NOT purchased(30d)" in good.content.decode()
    assert 'data-testid="segment-error"' in bad.content.decode()
    assert "gender:female" in bad.content.decode()  # the message shows how to write it


def test_saving_a_segment_and_reading_its_members(world) -> None:  # type: ignore[no-untyped-def]
    # given
    _customers(world)
    client = login("operator1")
    # when
    response = client.post("/segments/new/", {"name": "北京女", "kind": "dynamic", "text": "北京 AND 女"})
    # then: 女 is no tag here: the error is shown inline, nothing is saved
    assert response.status_code == 400
    assert "女" in response.content.decode() and not Segment.objects.exists()
    # when
    response = client.post(
        "/segments/new/", {"name": "北京女", "kind": "dynamic", "text": "北京 AND gender:female"}
    )
    segment = Segment.objects.get()
    page = client.get(f"/segments/{segment.pk}/")
    # then
    assert response.status_code == 302
    assert page.status_code == 200
    assert page.content.decode().count('data-testid="customer-row"') == 2


def test_members_page_follows_the_readers_scope(world) -> None:  # type: ignore[no-untyped-def]
    # given
    wang_c, liu_c = _customers(world)
    segment = create_segment(corp=world.corp, data=SegmentInput(name="北京", text="tag:北京"))
    # when
    page = login("wang").get(f"/segments/{segment.pk}/").content.decode()
    # then
    assert f'data-customer-id="{wang_c.pk}"' in page
    assert f'data-customer-id="{liu_c.pk}"' not in page


def test_staff_may_read_but_not_build(world) -> None:  # type: ignore[no-untyped-def]
    # given
    _customers(world)
    segment = create_segment(corp=world.corp, data=SegmentInput(name="北京", text="tag:北京"))
    client = login("wang")
    # when / then
    assert client.get("/segments/").status_code == 200
    assert client.get("/segments/new/").status_code == 403
    assert client.post("/segments/preview/", {"text": "北京"}).status_code == 403
    assert client.post(f"/segments/{segment.pk}/delete/").status_code == 403
    assert Segment.objects.filter(pk=segment.pk).exists()


def test_the_list_shows_counts_and_the_trend(world) -> None:  # type: ignore[no-untyped-def]
    # given
    _customers(world)
    segment = create_segment(corp=world.corp, data=SegmentInput(name="北京", text="tag:北京"))
    refresh_segment(segment=segment)
    # when
    manager = login("manager1").get("/segments/").content.decode()
    html = login("operator1").get("/segments/").content.decode()
    # then: the manager (华东) counts 王芳's customer only, and sees no whole-segment trend
    assert 'data-testid="segment-count">1<' in manager
    assert "segment-trend-data" not in manager
    assert 'data-testid="segment-count">2<' in html
    chart = json.loads(
        html.split('id="segment-trend-data" type="application/json">')[1].split("</script>")[0]
    )
    assert chart["series"][0]["name"] == "北京" and chart["series"][0]["points"][0][1] == 2
    assert "echarts.min.js" in html


def test_excluding_members_from_the_page(world) -> None:  # type: ignore[no-untyped-def]
    # given
    wang_c, _liu_c = _customers(world)
    segment = create_segment(corp=world.corp, data=SegmentInput(name="北京", text="tag:北京"))
    # when
    login("admin1").post(f"/segments/{segment.pk}/exclude/", {"ids": [wang_c.pk], "mode": "exclude"})
    # then
    assert SegmentOverride.objects.get().customer_id == wang_c.pk
    page = login("admin1").get(f"/segments/{segment.pk}/").content.decode()
    assert f'data-customer-id="{wang_c.pk}"' not in page


def test_the_navigation_links_segments(world) -> None:  # type: ignore[no-untyped-def]
    # when
    html = login("wang").get("/segments/").content.decode()
    # then
    assert 'href="/segments/" aria-current="page"' in html
