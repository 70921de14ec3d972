"""The demo's segments over seeded data, and ``siyu segments rebuild``."""

from __future__ import annotations

import pytest

from siyu.config.cli import main
from siyu.corps.seed import seed
from siyu.customers.models import Event
from siyu.segments.demo import seed_segments
from siyu.segments.expressions import Expression
from siyu.segments.models import IndexSnapshot, Segment
from siyu.segments.reference import evaluate_sql
from siyu.segments.services import segment_customer_ids

pytestmark = pytest.mark.django_db


def test_demo_segments_count_the_seeded_data_as_sql_does() -> None:
    # given: a seeded corp, with purchases
    corp = seed(customers=300, seed_value=3, corpid="wwsegdemo").corp
    assert Event.objects.for_corp(corp).filter(kind="purchased").count() > 50
    # when
    made = seed_segments(corp=corp)
    # then
    assert len(made) == Segment.objects.for_corp(corp).count() >= 4
    for segment in made:
        members = segment_customer_ids(corp=corp, segment_id=segment.pk)
        assert members == evaluate_sql(corp=corp, expression=Expression.from_json(segment.expression)), (
            segment.name
        )
    acceptance = Segment.objects.for_corp(corp).get(name="北京女性·近30天未购买")
    assert acceptance.last_count
    assert seed_segments(corp=corp) == []  # a second run adds nothing


def test_the_rebuild_command_saves_a_fresh_index(capsys) -> None:  # type: ignore[no-untyped-def]
    # given
    corp = seed(customers=20, seed_value=1, corpid="wwsegcli").corp
    # when
    code = main(["segments", "rebuild", "--corp", "wwsegcli"])
    missing = main(["segments", "rebuild", "--corp", "wwnobody"])
    # then
    assert code == 0 and missing != 0
    assert "rebuilt 1 segment index" in capsys.readouterr().out
    assert IndexSnapshot.objects.for_corp(corp).get().customers == 20
