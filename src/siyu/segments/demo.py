"""Segments of the demo corp, over the seed's tags, attributes and purchases."""

from __future__ import annotations

from siyu.corps.models import Corp
from siyu.segments.models import Segment
from siyu.segments.services import SegmentInput, create_segment, refresh_segment

DEMO_SEGMENTS = [
    (
        "北京女性·近30天未购买",
        "北京 AND 女 AND NOT purchased(30d)",
        "召回：北京的女性客户，最近 30 天没有下单",
    ),
    ("复购客户", "purchased(>=2, 90d)", "90 天内至少购买两次"),
    ("近7天活跃", "active(7d)", "最近 7 天聊天、购买或入群"),
    ("沉睡高意向", "tag:any(VIP, 高意向) AND NOT active(30d) AND status:active", "意向高但 30 天无互动"),
    ("美妆母婴", "tag:any(美妆, 母婴) AND gender:female", ""),
]


def seed_segments(*, corp: Corp) -> list[Segment]:
    """Create the demo segments (those not there yet) and take their first count."""
    made = []
    for name, text, description in DEMO_SEGMENTS:
        if Segment.objects.for_corp(corp).filter(name=name).exists():
            continue
        segment = create_segment(corp=corp, data=SegmentInput(name=name, text=text, description=description))
        refresh_segment(segment=segment)
        made.append(segment)
    return made
