"""Tagging rules: time of add and group join, applied once per subject, through WeCom's mark_tag."""

from __future__ import annotations

import datetime as dt

import pytest

from siyu.channels.models import ChannelAdd
from siyu.core.errors import Invalid
from siyu.customers.models import Event, FollowRelation
from siyu.tags.models import RelationTag, RuleApplication, TaggingRule
from siyu.tags.rules import RuleInput, save_tagging_rule
from tests import factories
from tests.channels.support import staff_like_sim
from tests.wecom.inbound_support import simulated_wecom

pytestmark = pytest.mark.django_db


def test_time_of_add_rule_tags_adds_inside_its_hours_only(settings, django_capture_on_commit_callbacks):
    with simulated_wecom(settings) as env:
        staff_like_sim(env)
        night = factories.make_tag(env.corp, "夜间咨询", group="时段")
        day = factories.make_tag(env.corp, "白天咨询", group="时段")
        now_local = dt.datetime.now(dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=8)))
        start = (now_local - dt.timedelta(hours=1)).strftime("%H:%M")
        end = (now_local + dt.timedelta(hours=1)).strftime("%H:%M")
        later = (now_local + dt.timedelta(hours=3)).strftime("%H:%M")
        later_end = (now_local + dt.timedelta(hours=5)).strftime("%H:%M")
        # given one rule whose window holds now and one whose window does not
        save_tagging_rule(
            corp=env.corp,
            data=RuleInput(
                name="此刻", kind="time_of_add", tag_ids=[night.pk], config={"start": start, "end": end}
            ),
        )
        save_tagging_rule(
            corp=env.corp,
            data=RuleInput(
                name="稍后", kind="time_of_add", tag_ids=[day.pk], config={"start": later, "end": later_end}
            ),
        )
        with django_capture_on_commit_callbacks(execute=True):
            added = env.act("add_customer")
        relation = FollowRelation.objects.for_corp(env.corp).get(
            customer__external_userid=added["external_userid"]
        )
        tags = set(RelationTag.objects.filter(relation=relation).values_list("tag_id", flat=True))
        assert tags == {night.pk}
        event = Event.objects.for_corp(env.corp).get(kind=Event.Kind.TAGGED, customer=relation.customer)
        assert event.payload["rule_name"] == "此刻"
        assert ChannelAdd.objects.for_corp(env.corp).get(relation=relation).automated_at is not None


def test_group_join_rule_tags_the_customers_relations_once(settings, django_capture_on_commit_callbacks):
    with simulated_wecom(settings) as env:
        staff_like_sim(env)
        vip = factories.make_tag(env.corp, "入群客户", group="社群")
        save_tagging_rule(
            corp=env.corp, data=RuleInput(name="入群", kind="group_join", tag_ids=[vip.pk], config={})
        )
        # given a customer of a member, and a group Siyu already knows
        with django_capture_on_commit_callbacks(execute=True):
            added = env.act("add_customer")
            chat_id = next(iter(env.sim.state.groups))
            env.act("group_join", chat_id=chat_id, external_userids=[env.sim.state.customer_ids[0]])
            # when the customer joins it
            env.act("group_join", chat_id=chat_id, external_userids=[added["external_userid"]])
        relation = FollowRelation.objects.for_corp(env.corp).get(
            customer__external_userid=added["external_userid"]
        )
        assert RelationTag.objects.filter(relation=relation, tag=vip).exists()
        assert RuleApplication.objects.for_corp(env.corp).filter(relation=relation).count() == 1


def test_rules_refuse_bad_input(world):
    tag = factories.make_tag(world.corp, "A")
    with pytest.raises(Invalid) as refused:
        save_tagging_rule(
            corp=world.corp,
            data=RuleInput(name="x", kind="time_of_add", tag_ids=[tag.pk], config={"start": "25:99"}),
        )
    assert refused.value.field == "start"
    with pytest.raises(Invalid):
        save_tagging_rule(
            corp=world.corp, data=RuleInput(name="x", kind="time_of_add", tag_ids=[], config={})
        )
    with pytest.raises(Invalid):
        save_tagging_rule(corp=world.corp, data=RuleInput(name="x", kind="nope", tag_ids=[tag.pk], config={}))
    assert not TaggingRule.objects.for_corp(world.corp).exists()
