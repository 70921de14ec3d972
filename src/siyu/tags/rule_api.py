"""Tagging rules over the REST API (admins and operators)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.http import HttpRequest
from django.utils.translation import gettext as _
from ninja import Field, Router, Schema
from ninja.responses import Status

from siyu.api.schemas import ERRORS, BodyId, Deleted, current_actor
from siyu.core.errors import NotFound
from siyu.corps.access import Actor
from siyu.tags.models import TaggingRule
from siyu.tags.rules import RuleInput, delete_tagging_rule, save_tagging_rule

router = Router(tags=["tagging rules"])


class TaggingRuleIn(Schema):
    name: str = Field(description="At most 60 characters.")
    kind: str = Field(description="time_of_add or group_join; cannot change later.")
    enabled: bool = True
    tag_ids: list[BodyId] = Field(description="Tags the rule applies (at least one).")
    config: dict[str, Any] = Field(
        {},
        description="time_of_add: weekdays (bit mask, Monday is bit 0), start and end (HH:MM, both or "
        "none), channel_ids. group_join: group_ids, join_scenes (0 invited or by link, 3 by QR code). Empty "
        "lists: any.",
    )


class TaggingRuleOut(Schema):
    id: int
    name: str
    kind: str
    enabled: bool
    tag_ids: list[int]
    config: dict[str, Any]
    created_at: dt.datetime

    @classmethod
    def of(cls, rule: TaggingRule) -> TaggingRuleOut:
        return cls(
            id=rule.pk,
            name=rule.name,
            kind=rule.kind,
            enabled=rule.enabled,
            tag_ids=sorted(rule.rule_tags.values_list("tag_id", flat=True)),
            config=rule.config,
            created_at=rule.created_at,
        )


def _rule(actor: Actor, rule_id: int) -> TaggingRule:
    actor.require_configure()
    rule = TaggingRule.objects.for_corp(actor.corp).filter(pk=rule_id).first()
    if rule is None:
        raise NotFound(_("tagging rule not found"))
    return rule


def _input(payload: TaggingRuleIn) -> RuleInput:
    return RuleInput(
        name=payload.name,
        kind=payload.kind,
        tag_ids=payload.tag_ids,
        config=payload.config,
        enabled=payload.enabled,
    )


@router.get("/tagging-rules", response={200: list[TaggingRuleOut], **ERRORS}, summary="List tagging rules")
def list_rules(request: HttpRequest) -> list[TaggingRuleOut]:
    actor = current_actor(request)
    actor.require_configure()
    return [TaggingRuleOut.of(r) for r in TaggingRule.objects.for_corp(actor.corp).order_by("id")]


@router.post("/tagging-rules", response={201: TaggingRuleOut, **ERRORS}, summary="Create a tagging rule")
def create_rule(request: HttpRequest, payload: TaggingRuleIn) -> Status[TaggingRuleOut]:
    actor = current_actor(request)
    actor.require_configure()
    return Status(201, TaggingRuleOut.of(save_tagging_rule(corp=actor.corp, data=_input(payload))))


@router.put(
    "/tagging-rules/{rule_id}", response={200: TaggingRuleOut, **ERRORS}, summary="Change a tagging rule"
)
def update_rule(request: HttpRequest, rule_id: int, payload: TaggingRuleIn) -> TaggingRuleOut:
    actor = current_actor(request)
    rule = _rule(actor, rule_id)
    return TaggingRuleOut.of(save_tagging_rule(corp=actor.corp, data=_input(payload), rule=rule))


@router.delete("/tagging-rules/{rule_id}", response={200: Deleted, **ERRORS}, summary="Delete a tagging rule")
def delete_rule(request: HttpRequest, rule_id: int) -> Deleted:
    """The tags the rule applied stay on the customers."""
    actor = current_actor(request)
    delete_tagging_rule(rule=_rule(actor, rule_id))
    return Deleted()
