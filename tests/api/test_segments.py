"""Segments over the API: who may build, scope of members, errors with stable codes, ad-hoc evaluation."""

from __future__ import annotations

from siyu.segments.models import Segment, SegmentOverride
from tests.api.conftest import error_of


def test_an_operator_creates_a_segment_from_text_and_reads_its_count(keys, book) -> None:  # type: ignore[no-untyped-def]
    # when
    response = keys.operator.post("/segments", {"name": "王的渠道", "text": "state:poster OR state:live"})
    # then
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["count"] == 2
    assert body["text"] == "state:poster OR state:live"
    assert body["expression"]["op"] == "or"
    assert keys.operator.get(f"/segments/{body['id']}/count").json() == {"count": 2}


def test_a_segment_can_be_created_from_its_json_tree(keys, book) -> None:  # type: ignore[no-untyped-def]
    # given
    tree = {"op": "staff", "staff": {"id": book.shared.relations.first().staff_id, "name": "wangfang"}}
    # when
    response = keys.admin.post("/segments", {"name": "王芳的客户", "expression": tree})
    # then
    assert response.status_code == 201, response.content
    assert response.json()["text"] == "staff:wangfang"


def test_staff_and_managers_cannot_build_segments(keys, book) -> None:  # type: ignore[no-untyped-def]
    # when
    responses = [
        k.post("/segments", {"name": "x", "text": "gender:female"}) for k in (keys.manager, keys.staff_wang)
    ]
    # then
    assert [error_of(r) for r in responses] == [(403, "permission_denied")] * 2
    assert not Segment.objects.exists()


def test_members_follow_the_readers_scope(keys, book, world) -> None:  # type: ignore[no-untyped-def]
    # given: a segment of every customer who has any relation
    segment = keys.admin.post("/segments", {"name": "全部", "text": "status:active"}).json()
    # when
    admin_ids = {m["id"] for m in keys.admin.get(f"/segments/{segment['id']}/members").json()["items"]}
    wang = keys.staff_wang.get(f"/segments/{segment['id']}/members").json()
    nobody = keys.staff_unlinked.get(f"/segments/{segment['id']}/count").json()
    # then
    assert admin_ids == {book.wang_only.pk, book.liu_only.pk, book.shared.pk}
    assert {m["id"] for m in wang["items"]} == {book.wang_only.pk, book.shared.pk}
    assert wang["total"] == 2
    assert nobody == {"count": 0}


def test_members_come_in_pages(keys, book) -> None:  # type: ignore[no-untyped-def]
    # given
    segment = keys.admin.post("/segments", {"name": "全部", "text": "status:active"}).json()
    # when
    first = keys.admin.get(f"/segments/{segment['id']}/members", page_size=2).json()
    second = keys.admin.get(
        f"/segments/{segment['id']}/members", page_size=2, cursor=first["next_cursor"]
    ).json()
    # then
    ids = [m["id"] for m in first["items"] + second["items"]]
    assert ids == sorted([book.wang_only.pk, book.liu_only.pk, book.shared.pk], reverse=True)
    assert second["next_cursor"] is None


def test_bad_expressions_are_refused_with_their_code(keys, book) -> None:  # type: ignore[no-untyped-def]
    # when
    cases = {
        "tag:不存在": "unknown_tag",
        "gender>female": "wrong_operator",
        "(tag:VIP": "expression_syntax",
        "bought(30d)": "unknown_condition",
    }
    got = {text: error_of(keys.admin.post("/segments/evaluate", {"text": text})) for text in cases}
    # then
    assert got == {text: (400, code) for text, code in cases.items()}


def test_an_unknown_tag_id_in_a_json_tree_is_refused(keys, book) -> None:  # type: ignore[no-untyped-def]
    # when
    response = keys.admin.post(
        "/segments/evaluate",
        {"expression": {"op": "tag", "mode": "any", "tags": [{"id": book.foreign_tag.pk}]}},
    )
    # then
    assert error_of(response) == (400, "unknown_tag")


def test_ad_hoc_evaluation_counts_and_samples_without_saving(keys, book) -> None:  # type: ignore[no-untyped-def]
    # when
    body = keys.staff_wang.post("/segments/evaluate", {"text": "status:active", "sample": 1}).json()
    # then
    assert body["count"] == 2
    assert [m["id"] for m in body["sample"]] == [book.shared.pk]
    assert not Segment.objects.exists()


def test_includes_and_excludes_survive_a_change_of_conditions(keys, book) -> None:  # type: ignore[no-untyped-def]
    # given
    segment = keys.admin.post("/segments", {"name": "海报", "text": "state:poster"}).json()
    url = f"/segments/{segment['id']}"
    keys.admin.post(f"{url}/overrides", {"customer_ids": [book.liu_only.pk], "mode": "include"})
    keys.admin.post(f"{url}/overrides", {"customer_ids": [book.wang_only.pk], "mode": "exclude"})
    # when
    keys.admin.patch(url, {"text": "state:poster OR state:live"})
    members = {m["id"] for m in keys.admin.get(f"{url}/members").json()["items"]}
    # then
    assert members == {book.liu_only.pk}
    assert SegmentOverride.objects.count() == 2


def test_a_foreign_customer_cannot_be_included(keys, book) -> None:  # type: ignore[no-untyped-def]
    # given
    segment = keys.admin.post("/segments", {"name": "海报", "text": "state:poster"}).json()
    # when
    response = keys.admin.post(
        f"/segments/{segment['id']}/overrides", {"customer_ids": [book.foreign.pk], "mode": "include"}
    )
    # then
    assert error_of(response) == (400, "unknown_customer")


def test_a_segment_using_a_deleted_tag_answers_a_clear_error(keys, book) -> None:  # type: ignore[no-untyped-def]
    # given
    segment = keys.admin.post("/segments", {"name": "VIP", "text": "tag:VIP"}).json()
    keys.admin.delete(f"/tags/{book.vip.pk}")
    # when
    response = keys.admin.get(f"/segments/{segment['id']}/count")
    # then
    assert error_of(response) == (400, "segment_references_deleted_tag")


def test_another_corps_segment_is_not_found(keys, book) -> None:  # type: ignore[no-untyped-def]
    # given
    segment = keys.admin.post("/segments", {"name": "VIP", "text": "tag:VIP"}).json()
    # when / then
    assert error_of(keys.other_corp.get(f"/segments/{segment['id']}")) == (404, "not_found")
    assert error_of(keys.other_corp.delete(f"/segments/{segment['id']}")) == (404, "not_found")
