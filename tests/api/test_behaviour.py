"""Behaviour reported by other systems: ``POST /customers/{id}/events``."""

from __future__ import annotations

from siyu.customers.models import Event
from tests.api.conftest import error_of


def test_a_purchase_is_recorded_once_per_external_id(keys, book) -> None:  # type: ignore[no-untyped-def]
    # given
    body = {
        "kind": "purchased",
        "external_id": "order-1",
        "amount": "99.5",
        "occurred_at": "2025-01-02T10:00:00+08:00",
    }
    # when
    first = keys.admin.post(f"/customers/{book.shared.pk}/events", body)
    again = keys.admin.post(f"/customers/{book.shared.pk}/events", body)
    # then
    assert first.status_code == 201 and first.json()["recorded"] is True
    assert again.status_code == 200 and again.json()["recorded"] is False
    event = Event.objects.get(kind="purchased")
    assert (event.source, event.payload["amount"], event.customer_id) == ("api", "99.50", book.shared.pk)


def test_bad_reports_are_refused_and_record_nothing(keys, book) -> None:  # type: ignore[no-untyped-def]
    # when
    cases = [
        ({"kind": "purchased"}, (400, "invalid")),  # no amount
        ({"kind": "purchased", "amount": -1}, (400, "invalid")),
        ({"kind": "visited", "amount": 3}, (400, "invalid")),
        ({"kind": "purchased", "amount": 1, "occurred_at": "2999-01-01T00:00:00+08:00"}, (400, "invalid")),
        ({"kind": "stole"}, (422, "invalid")),
    ]
    got = [error_of(keys.admin.post(f"/customers/{book.shared.pk}/events", body)) for body, _ in cases]
    # then
    assert got == [expected for _, expected in cases]
    assert not Event.objects.filter(kind__in=["purchased", "visited"]).exists()


def test_a_customer_outside_the_scope_is_not_found(keys, book) -> None:  # type: ignore[no-untyped-def]
    # when
    response = keys.staff_wang.post(f"/customers/{book.liu_only.pk}/events", {"kind": "visited"})
    # then
    assert error_of(response) == (404, "unknown_customer")
