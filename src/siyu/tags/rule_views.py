"""Tagging rule pages (admins and operators): the list, and one form for both kinds of rule.

Time of add (分时段): adds on some weekdays and hours, optionally only through some channels. Group join:
any customer group, or some, optionally by how the customer joined. A channel's own tags are set on it.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from siyu.core.errors import DomainError
from siyu.core.timewindows import EVERY_DAY, mask_days
from siyu.corps.access import Actor
from siyu.groups.models import GroupChat
from siyu.tags.models import Tag, TaggingRule
from siyu.tags.rules import RuleInput, delete_tagging_rule, save_tagging_rule

WEEKDAYS = [
    (0, gettext_lazy("Mon")),
    (1, gettext_lazy("Tue")),
    (2, gettext_lazy("Wed")),
    (3, gettext_lazy("Thu")),
    (4, gettext_lazy("Fri")),
    (5, gettext_lazy("Sat")),
    (6, gettext_lazy("Sun")),
]
JOIN_SCENES = [(0, gettext_lazy("Invited, or by link")), (3, gettext_lazy("By the group's QR code"))]


def _configurer(request: HttpRequest) -> Actor:
    actor: Actor | None = getattr(request, "actor", None)
    if actor is None or not actor.can_configure:
        raise PermissionDenied("tagging rules are set by admins and operators")
    return actor


def _rule_or_404(actor: Actor, rule_id: int) -> TaggingRule:
    rule = TaggingRule.objects.for_corp(actor.corp).filter(pk=rule_id).first()
    if rule is None:
        raise Http404("rule not found")
    return rule


def _ids(values: list[str]) -> list[int]:
    return [int(v) for v in values if v.isdigit()]


def _input(request: HttpRequest) -> RuleInput:
    post = request.POST
    kind = post.get("kind", "")
    config: dict[str, Any]
    if kind == TaggingRule.Kind.TIME_OF_ADD:
        days = _ids(post.getlist("weekdays"))
        config = {
            "weekdays": sum(1 << d for d in set(days) if 0 <= d <= 6),
            "start": post.get("start", ""),
            "end": post.get("end", ""),
            "channel_ids": _ids(post.getlist("channels")),
        }
    else:
        config = {"group_ids": _ids(post.getlist("groups")), "join_scenes": _ids(post.getlist("join_scenes"))}
    return RuleInput(
        name=post.get("name", ""),
        kind=kind,
        tag_ids=_ids(post.getlist("tags")),
        config=config,
        enabled=post.get("enabled") == "1",
    )


def _form(
    request: HttpRequest, actor: Actor, rule: TaggingRule | None, *, data: RuleInput | None, error: str = ""
) -> HttpResponse:
    channel_model = apps.get_model("channels", "Channel")
    config = dict(data.config) if data else dict(rule.config) if rule else {}
    tag_ids = set(data.tag_ids if data else rule.rule_tags.values_list("tag_id", flat=True) if rule else [])
    context = {
        "rule": rule,
        "kind": data.kind if data else rule.kind if rule else TaggingRule.Kind.TIME_OF_ADD,
        "kinds": TaggingRule.Kind.choices,
        "name": data.name if data else rule.name if rule else "",
        "enabled": data.enabled if data else rule.enabled if rule else True,
        "weekdays": WEEKDAYS,
        "chosen_days": mask_days(int(config.get("weekdays", EVERY_DAY) or 0)),
        "start": config.get("start", ""),
        "end": config.get("end", ""),
        "channels": list(channel_model.objects.for_corp(actor.corp).exclude(status="archived")),
        "chosen_channels": set(config.get("channel_ids", [])),
        "groups": list(GroupChat.objects.for_corp(actor.corp).filter(status=GroupChat.Status.ACTIVE)[:500]),
        "chosen_groups": set(config.get("group_ids", [])),
        "join_scenes": JOIN_SCENES,
        "chosen_scenes": set(config.get("join_scenes", [])),
        "tags": list(
            Tag.objects.for_corp(actor.corp).select_related("group").order_by("group__order", "order")
        ),
        "chosen_tags": tag_ids,
        "error": error,
    }
    return render(request, "tags/rule_form.html", context, status=400 if error else 200)


@login_required
@require_GET
def rule_list(request: HttpRequest) -> HttpResponse:
    actor = _configurer(request)
    rules = TaggingRule.objects.for_corp(actor.corp).prefetch_related("rule_tags__tag").order_by("id")
    return render(request, "tags/rules.html", {"rules": rules})


@login_required
@require_http_methods(["GET", "POST"])
def rule_create(request: HttpRequest) -> HttpResponse:
    actor = _configurer(request)
    if request.method == "POST":
        data = _input(request)
        try:
            save_tagging_rule(corp=actor.corp, data=data)
        except DomainError as exc:
            return _form(request, actor, None, data=data, error=exc.message)
        messages.success(request, _("Tagging rule saved."))
        return HttpResponseRedirect(reverse("tagging:rules"))
    return _form(request, actor, None, data=None)


@login_required
@require_http_methods(["GET", "POST"])
def rule_edit(request: HttpRequest, rule_id: int) -> HttpResponse:
    actor = _configurer(request)
    rule = _rule_or_404(actor, rule_id)
    if request.method == "POST":
        data = _input(request)
        try:
            save_tagging_rule(corp=actor.corp, data=data, rule=rule)
        except DomainError as exc:
            return _form(request, actor, rule, data=data, error=exc.message)
        messages.success(request, _("Tagging rule saved."))
        return HttpResponseRedirect(reverse("tagging:rules"))
    return _form(request, actor, rule, data=None)


@login_required
@require_POST
def rule_delete(request: HttpRequest, rule_id: int) -> HttpResponse:
    actor = _configurer(request)
    delete_tagging_rule(rule=_rule_or_404(actor, rule_id))
    messages.success(request, _("Tagging rule deleted; the tags it applied stay."))
    return HttpResponseRedirect(reverse("tagging:rules"))
