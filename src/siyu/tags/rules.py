"""Automatic tagging: rules that tag a customer's relation when something happens to them.

A *trigger* (a relation added, a group joined; later a keyword said, a behaviour seen, a purchase made) comes
with its ``Facts``. Every registered ``RuleKind`` for that trigger answers which of its rules match and with
which tags (``Match``); ``apply_rules`` applies them through ``mark_relation_tags`` — so they reach WeCom with
``mark_tag`` and the timeline records them — and remembers each (rule, subject) pair in ``RuleApplication``:
a rule fires once per subject, so a redelivered callback or a sync afterwards never tags again, not even a tag
someone has removed since.

Kinds here: ``time_of_add`` (分时段: adds on some weekdays and hours, optionally only from some channels) and
``group_join`` (joining any, or some, customer groups), both stored as ``TaggingRule`` rows. Channels register
their own kind (a channel's auto-tags) from ``siyu.channels``; later capabilities add theirs the same way
(``register_kind``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from django.db import IntegrityError, transaction
from django.db.models import Prefetch
from django.utils.translation import gettext as _

from siyu.core.errors import Invalid
from siyu.core.timewindows import EVERY_DAY, in_window, local
from siyu.corps.models import Corp
from siyu.customers.models import Event, FollowRelation
from siyu.tags.models import RuleApplication, Tag, TaggingRule, TaggingRuleTag
from siyu.tags.services import mark_relation_tags

SOURCE = Event.Source.SYSTEM


class Trigger(StrEnum):
    RELATION_ADDED = "relation_added"
    GROUP_JOINED = "group_joined"


@dataclass(frozen=True)
class Facts:
    """What happened, to which relation. ``subject_key`` names the occurrence (one add, one group stay) so a
    rule fires for it once; the other fields are what kinds may look at."""

    corp: Corp
    trigger: Trigger
    relation: FollowRelation
    subject_key: str
    at: dt.datetime
    channel_id: int | None = None
    state: str = ""
    group_id: int | None = None
    join_scene: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Match:
    """A rule that matched: its key (``rule:<id>``, ``channel:<id>``), a name for the timeline, its tags."""

    rule_key: str
    name: str
    tags: Sequence[Tag]


class RuleKind(Protocol):
    """A kind of rule: the triggers it listens to and, for given facts, the rules that match."""

    triggers: frozenset[Trigger]

    def matches(self, facts: Facts) -> list[Match]: ...


@dataclass(frozen=True)
class Applied:
    """A rule that fired for a subject, and how many tags it added (0 when all were there already)."""

    rule_key: str
    tags_added: int


_kinds: dict[str, RuleKind] = {}


def register_kind(name: str, kind: RuleKind) -> None:
    """Add a kind of rule (idempotent by name, so an app's ``ready`` may run twice)."""
    _kinds[name] = kind


def apply_rules(facts: Facts) -> list[Applied]:
    """Apply every matching rule of every kind listening to ``facts.trigger``; each once per subject."""
    if facts.relation.status != FollowRelation.Status.ACTIVE:
        return []
    applied: list[Applied] = []
    for kind in list(_kinds.values()):
        if facts.trigger not in kind.triggers:
            continue
        for match in kind.matches(facts):
            done = _apply(facts, match)
            if done is not None:
                applied.append(done)
    return applied


def _apply(facts: Facts, match: Match) -> Applied | None:
    with transaction.atomic():
        try:
            with transaction.atomic():  # a savepoint: a repeat must not break the caller's transaction
                record = RuleApplication.objects.create(
                    corp_id=facts.corp.pk,
                    rule_key=match.rule_key,
                    subject_key=facts.subject_key[:80],
                    relation=facts.relation,
                )
        except IntegrityError:
            return None  # this rule already fired for this subject
        result = mark_relation_tags(
            relation=facts.relation,
            add=list(match.tags),
            source=SOURCE,
            dedupe_prefix=f"{match.rule_key}:{facts.subject_key}",
            payload_extra={"rule": match.rule_key, "rule_name": match.name},
        )
        if result.added:
            RuleApplication.objects.filter(pk=record.pk).update(tags_added=len(result.added))
        return Applied(rule_key=match.rule_key, tags_added=len(result.added))


# --- the kinds stored as TaggingRule rows -------------------------------------------------------------------


def _rules(corp: Corp, kind: str) -> list[TaggingRule]:
    return list(
        TaggingRule.objects.for_corp(corp)
        .filter(kind=kind, enabled=True)
        .prefetch_related(
            Prefetch(
                "rule_tags",
                queryset=TaggingRuleTag.objects.for_corp(corp).select_related("tag").order_by("id"),
            )
        )
    )


def _match(rule: TaggingRule) -> Match:
    return Match(rule_key=f"rule:{rule.pk}", name=rule.name, tags=[rt.tag for rt in rule.rule_tags.all()])


def _time(value: Any) -> dt.time | None:
    return dt.time.fromisoformat(value) if isinstance(value, str) and value else None


class TimeOfAdd:
    """分时段: an add on one of ``weekdays`` between ``start`` and ``end`` (the corp's time), optionally only
    through some channels (``channel_ids``; empty: any add, with or without a channel)."""

    triggers = frozenset({Trigger.RELATION_ADDED})

    def matches(self, facts: Facts) -> list[Match]:
        moment = local(facts.at, facts.corp.time_zone)
        found = []
        for rule in _rules(facts.corp, TaggingRule.Kind.TIME_OF_ADD):
            config = rule.config or {}
            channels = config.get("channel_ids") or []
            if channels and facts.channel_id not in channels:
                continue
            weekdays = int(config.get("weekdays", EVERY_DAY))
            if in_window(
                moment, weekdays=weekdays, start=_time(config.get("start")), end=_time(config.get("end"))
            ):
                found.append(_match(rule))
        return found


class GroupJoin:
    """Joining a customer group: any group, or one of ``group_ids``; optionally only by ``join_scenes``
    (WeCom's JoinScene: 0 invited or by link, 3 by the group's QR code)."""

    triggers = frozenset({Trigger.GROUP_JOINED})

    def matches(self, facts: Facts) -> list[Match]:
        found = []
        for rule in _rules(facts.corp, TaggingRule.Kind.GROUP_JOIN):
            config = rule.config or {}
            groups = config.get("group_ids") or []
            scenes = config.get("join_scenes") or []
            if groups and facts.group_id not in groups:
                continue
            if scenes and facts.join_scene not in scenes:
                continue
            found.append(_match(rule))
        return found


register_kind("time_of_add", TimeOfAdd())
register_kind("group_join", GroupJoin())


# --- managing TaggingRule rows ------------------------------------------------------------------------------

RULE_NAME_MAX = 60


@dataclass(frozen=True)
class RuleInput:
    """What an operator sets on a rule; ``config`` as the kind reads it (validated by ``clean_config``)."""

    name: str
    kind: str
    tag_ids: Sequence[int]
    config: Mapping[str, Any]
    enabled: bool = True


def clean_config(corp: Corp, kind: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The kind's conditions, checked: times as HH:MM, weekdays a mask, ids that exist in the corp."""
    if kind == TaggingRule.Kind.TIME_OF_ADD:
        clean: dict[str, Any] = {}
        weekdays = config.get("weekdays", EVERY_DAY)
        if not isinstance(weekdays, int) or isinstance(weekdays, bool) or not 1 <= weekdays <= EVERY_DAY:
            raise Invalid(_("choose at least one weekday"), field="weekdays")
        clean["weekdays"] = weekdays
        for name in ("start", "end"):
            value = config.get(name) or ""
            try:
                clean[name] = dt.time.fromisoformat(value).strftime("%H:%M") if value else ""
            except (TypeError, ValueError):
                raise Invalid(_("times are written HH:MM"), field=name) from None
        if bool(clean["start"]) != bool(clean["end"]):
            raise Invalid(_("give both a start and an end time, or neither"), field="end")
        clean["channel_ids"] = _existing_channels(corp, config.get("channel_ids") or [])
        return clean
    if kind == TaggingRule.Kind.GROUP_JOIN:
        from siyu.groups.models import GroupChat

        group_ids = [int(g) for g in config.get("group_ids") or []]
        known = set(GroupChat.objects.for_corp(corp).filter(pk__in=group_ids).values_list("pk", flat=True))
        if set(group_ids) - known:
            raise Invalid(_("unknown customer group"), field="group_ids")
        scenes = [int(s) for s in config.get("join_scenes") or []]
        if any(s not in (0, 1, 2, 3) for s in scenes):
            raise Invalid(_("unknown way of joining a group"), field="join_scenes")
        return {"group_ids": group_ids, "join_scenes": scenes}
    raise Invalid(_("unknown kind of tagging rule"), field="kind")


def _existing_channels(corp: Corp, channel_ids: Sequence[Any]) -> list[int]:
    from django.apps import apps

    ids = [int(c) for c in channel_ids]
    if not ids:
        return []
    channel_model = apps.get_model("channels", "Channel")
    known = set(channel_model.objects.for_corp(corp).filter(pk__in=ids).values_list("pk", flat=True))
    if set(ids) - known:
        raise Invalid(_("unknown channel"), field="channel_ids")
    return ids


@transaction.atomic
def save_tagging_rule(*, corp: Corp, data: RuleInput, rule: TaggingRule | None = None) -> TaggingRule:
    """Create a tagging rule, or change ``rule``: its name, conditions, tags and whether it is on."""
    from siyu.core.clock import now
    from siyu.tags.services import resolve_tags

    name = (data.name or "").strip()
    if not name or len(name) > RULE_NAME_MAX:
        raise Invalid(
            _("a rule needs a name of at most %(max)d characters") % {"max": RULE_NAME_MAX}, field="name"
        )
    if data.kind not in TaggingRule.Kind.values:
        raise Invalid(_("unknown kind of tagging rule"), field="kind")
    if rule is not None and rule.kind != data.kind:
        raise Invalid(_("a rule's kind cannot change; make a new rule"), field="kind")
    tags = resolve_tags(corp, data.tag_ids)
    if not tags:
        raise Invalid(_("choose at least one tag"), field="tags")
    config = clean_config(corp, data.kind, data.config)
    if rule is None:
        rule = TaggingRule.objects.create(
            corp=corp, name=name, kind=data.kind, enabled=data.enabled, config=config
        )
    else:
        rule.name, rule.enabled, rule.config, rule.updated_at = name, data.enabled, config, now()
        rule.save(update_fields=["name", "enabled", "config", "updated_at"])
        TaggingRuleTag.objects.for_corp(corp).filter(rule=rule).exclude(tag__in=tags).delete()
    present = set(TaggingRuleTag.objects.for_corp(corp).filter(rule=rule).values_list("tag_id", flat=True))
    TaggingRuleTag.objects.bulk_create(
        [TaggingRuleTag(corp=corp, rule=rule, tag=t) for t in tags if t.pk not in present]
    )
    return rule


@transaction.atomic
def delete_tagging_rule(*, rule: TaggingRule) -> None:
    """Delete a rule; the tags it applied stay on the customers."""
    rule.delete()
