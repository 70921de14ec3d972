"""Group welcome messages (入群欢迎语): templates in WeCom's library, made and changed from Siyu.

A template is text (``%NICKNAME%`` becomes each new member's nickname, as WeCom replaces it) and at most one
attachment. Every change goes to WeCom through the outbox (``group_welcome_template/add|edit|del``); WeCom
answers an add with the template's id, which ``template_written`` stores. An edit made before WeCom has
answered the add is sent once the id is known, and a template deleted meanwhile is deleted in WeCom then.
Corps not connected to WeCom keep their templates in Siyu only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils.translation import gettext as _

from siyu.core.clock import now
from siyu.core.errors import Invalid, NotFound
from siyu.corps.access import Actor
from siyu.groups.models import GroupWelcomeTemplate
from siyu.wecom import schemas as s
from siyu.wecom.limits import Priority
from siyu.wecom.models import Outbox
from siyu.wecom.outbox import enqueue_write
from siyu.wecom.services import sends_to_wecom

ADD = "externalcontact/group_welcome_template/add"
EDIT = "externalcontact/group_welcome_template/edit"
DELETE = "externalcontact/group_welcome_template/del"
KEY_PREFIX = "group_welcome_template:"
# WeCom (DOC-92366, wecom-api.md §6): 100 templates per corp; text ≤3000 bytes; link title ≤128 bytes,
# desc ≤512 bytes, urls ≤2048; mini-program title ≤64 bytes.
MAX_TEMPLATES = 100
TEXT_MAX_BYTES = 3000
LINK_TITLE_MAX_BYTES = 128
LINK_DESC_MAX_BYTES = 512
URL_MAX = 2048
MINIPROGRAM_TITLE_MAX_BYTES = 64
NAME_MAX = 64
# WeCom's only placeholder: the new member's nickname. It is case-sensitive, so a near miss is refused.
NICKNAME = "%NICKNAME%"
NEAR_NICKNAME = re.compile("%nickname%", re.IGNORECASE)
# The fields of each attachment type, as a form or API sends them; (name, required).
ATTACHMENT_FIELDS: dict[str, tuple[tuple[str, bool], ...]] = {
    "image": (("pic_url", False), ("media_id", False)),
    "link": (("title", True), ("url", True), ("desc", False), ("picurl", False)),
    "miniprogram": (("title", True), ("appid", True), ("page", True), ("pic_media_id", True)),
    "file": (("media_id", True),),
    "video": (("media_id", True),),
}


def _bytes(value: str) -> int:
    return len(value.encode())


def clean_text(text: str) -> str:
    """The template's text, checked against WeCom's limit and placeholder."""
    text = (text or "").strip()
    if _bytes(text) > TEXT_MAX_BYTES:
        raise Invalid(
            _("the text is at most %(max)d bytes (about 1,000 Chinese characters)") % {"max": TEXT_MAX_BYTES},
            field="text",
        )
    if any(m.group(0) != NICKNAME for m in NEAR_NICKNAME.finditer(text)):
        raise Invalid(
            _("placeholders are case-sensitive: write %(placeholder)s") % {"placeholder": NICKNAME},
            field="text",
        )
    return text


def clean_attachment(kind: str, values: Mapping[str, Any]) -> dict[str, str]:
    """One attachment's object as WeCom takes it, checked ("" kind: none)."""
    if not kind:
        return {}
    fields = ATTACHMENT_FIELDS.get(kind)
    if fields is None:
        raise Invalid(
            _("the attachment must be one of: %(kinds)s") % {"kinds": ", ".join(ATTACHMENT_FIELDS)},
            field="attachment_type",
        )
    cleaned: dict[str, str] = {}
    for name, required in fields:
        value = str(values.get(name) or "").strip()
        if required and not value:
            raise Invalid(_("the attachment needs %(field)s") % {"field": name}, field=f"attachment.{name}")
        if value:
            cleaned[name] = value
    if kind == "image" and not cleaned:
        raise Invalid(_("an image needs a pic_url or a media_id"), field="attachment.pic_url")
    limits = {
        "title": MINIPROGRAM_TITLE_MAX_BYTES if kind == "miniprogram" else LINK_TITLE_MAX_BYTES,
        "desc": LINK_DESC_MAX_BYTES,
        "url": URL_MAX,
        "picurl": URL_MAX,
        "pic_url": URL_MAX,
    }
    for name, value in cleaned.items():
        limit = limits.get(name)
        if limit is not None and _bytes(value) > limit:
            raise Invalid(
                _("%(field)s is at most %(max)d bytes") % {"field": name, "max": limit},
                field=f"attachment.{name}",
            )
        if name in ("url", "picurl", "pic_url") and not value.startswith(("https://", "http://")):
            raise Invalid(
                _("%(field)s must be an http(s) link") % {"field": name}, field=f"attachment.{name}"
            )
    return cleaned


def content_request(template: GroupWelcomeTemplate) -> dict[str, Any]:
    """The template's parts in WeCom's shape (``GroupWelcomeContent``)."""
    body: dict[str, Any] = {}
    if template.text:
        body["text"] = {"content": template.text}
    if template.attachment_type:
        body[template.attachment_type] = dict(template.attachment)
    return body


# --- reads ------------------------------------------------------------------------------------------------


def live_templates(actor: Actor) -> QuerySet[GroupWelcomeTemplate]:
    """The corp's templates, newest first (deleted ones are gone)."""
    actor.require_configure()
    return (
        GroupWelcomeTemplate.objects.for_corp(actor.corp)
        .filter(deleted_at=None)
        .order_by("-created_at", "-id")
    )


def get_template(actor: Actor, template_id: int) -> GroupWelcomeTemplate:
    """One live template of the actor's corp; anything else is a 404."""
    template = live_templates(actor).filter(pk=template_id).first()
    if template is None:
        raise NotFound(_("group welcome message not found"))
    return template


@dataclass(frozen=True)
class TemplateState:
    """Where a template stands with WeCom: ``state`` is local, syncing, in_wecom or failed."""

    state: str
    error: str = ""


def template_states(corp_id: int, templates: list[GroupWelcomeTemplate]) -> dict[int, TemplateState]:
    """Each template's standing with WeCom, from its outbox rows (one query for all)."""
    rows: dict[int, list[Outbox]] = {}
    if templates:
        for row in (
            Outbox.objects.for_corp(corp_id)
            .filter(idempotency_key__startswith=KEY_PREFIX)
            .only("idempotency_key", "status", "last_error", "errcode")
            .order_by("id")
        ):
            pk = row.idempotency_key.removeprefix(KEY_PREFIX).split(":", 1)[0]
            if pk.isdigit():
                rows.setdefault(int(pk), []).append(row)
    states = {}
    for template in templates:
        mine = rows.get(template.pk, [])
        failed = [r for r in mine if r.status == Outbox.Status.FAILED]
        if not mine and not template.template_id:
            states[template.pk] = TemplateState("local")
        elif failed and (not template.template_id or template.sent_version < template.version):
            states[template.pk] = TemplateState("failed", failed[-1].last_error)
        elif not template.template_id or template.sent_version < template.version:
            states[template.pk] = TemplateState("syncing")
        else:
            states[template.pk] = TemplateState("in_wecom")
    return states


# --- changes ----------------------------------------------------------------------------------------------


def _key(template: GroupWelcomeTemplate, action: str) -> str:
    return f"{KEY_PREFIX}{template.pk}:{action}:v{template.version}"


def _send_add(template: GroupWelcomeTemplate) -> None:
    body = {**content_request(template), "notify": 1 if template.notify else 0}
    enqueue_write(
        corp=template.corp,
        api=ADD,
        payload=s.GroupWelcomeTemplateRequest.model_validate(body),
        idempotency_key=f"{KEY_PREFIX}{template.pk}:add:v{template.version}",
        priority=Priority.USER,
    )


def _send_edit(template: GroupWelcomeTemplate) -> None:
    body = {**content_request(template), "template_id": template.template_id}
    enqueue_write(
        corp=template.corp,
        api=EDIT,
        payload=s.EditGroupWelcomeTemplateRequest.model_validate(body),
        idempotency_key=_key(template, "edit"),
        priority=Priority.USER,
    )


def _send_delete(template: GroupWelcomeTemplate) -> None:
    enqueue_write(
        corp=template.corp,
        api=DELETE,
        payload=s.GroupWelcomeTemplateIdRequest(template_id=template.template_id),
        idempotency_key=f"{KEY_PREFIX}{template.pk}:del",
        priority=Priority.USER,
    )


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise Invalid(_("a name is required"), field="name")
    if len(name) > NAME_MAX:
        raise Invalid(_("a name is at most %(max)d characters") % {"max": NAME_MAX}, field="name")
    return name


@transaction.atomic
def create_group_welcome(
    *,
    actor: Actor,
    name: str,
    text: str = "",
    attachment_type: str = "",
    attachment: Mapping[str, Any] | None = None,
    notify: bool = True,
) -> GroupWelcomeTemplate:
    """Create a template and, in a connected corp, add it to WeCom's library."""
    actor.require_configure()
    name = _clean_name(name)
    text = clean_text(text)
    cleaned = clean_attachment(attachment_type, attachment or {})
    if not text and not cleaned:
        raise Invalid(_("write a text or add an attachment"), field="text")
    if live_templates(actor).count() >= MAX_TEMPLATES:
        raise Invalid(
            _("WeCom keeps at most %(max)d group welcome messages per corp: delete one first")
            % {"max": MAX_TEMPLATES},
            field="name",
        )
    template = GroupWelcomeTemplate.objects.create(
        corp=actor.corp,
        name=name,
        text=text,
        attachment_type=attachment_type,
        attachment=cleaned,
        notify=notify,
        created_by_id=actor.user_id,
    )
    if sends_to_wecom(corp=actor.corp, source="console"):
        _send_add(template)
    return template


@transaction.atomic
def update_group_welcome(
    *,
    actor: Actor,
    template: GroupWelcomeTemplate,
    name: str | None = None,
    text: str | None = None,
    attachment_type: str | None = None,
    attachment: Mapping[str, Any] | None = None,
) -> GroupWelcomeTemplate:
    """Change a template; a change of its content is a new version, sent to WeCom (``edit``)."""
    actor.require_configure()
    template = GroupWelcomeTemplate.objects.select_for_update().get(pk=template.pk, corp=actor.corp)
    if template.deleted_at is not None:
        raise NotFound(_("group welcome message not found"))
    if name is not None:
        template.name = _clean_name(name)
    new_text = template.text if text is None else clean_text(text)
    new_type = template.attachment_type if attachment_type is None else attachment_type
    new_attachment = (
        template.attachment
        if attachment_type is None and attachment is None
        else clean_attachment(new_type, attachment or {})
    )
    if not new_text and not new_attachment:
        raise Invalid(_("write a text or add an attachment"), field="text")
    changed = (new_text, new_type, new_attachment) != (
        template.text,
        template.attachment_type,
        template.attachment,
    )
    template.text, template.attachment_type, template.attachment = new_text, new_type, new_attachment
    if changed:
        template.version += 1
    template.updated_at = now()
    template.save()
    if changed and template.template_id and sends_to_wecom(corp=actor.corp, source="console"):
        _send_edit(template)
    # Not in WeCom yet: the add on its way sends the older version; ``template_written`` sends this one.
    return template


@transaction.atomic
def delete_group_welcome(*, actor: Actor, template: GroupWelcomeTemplate) -> None:
    """Delete a template here and from WeCom's library (once WeCom has it)."""
    actor.require_configure()
    template = GroupWelcomeTemplate.objects.select_for_update().get(pk=template.pk, corp=actor.corp)
    if template.deleted_at is not None:
        return
    template.deleted_at = now()
    template.save(update_fields=["deleted_at"])
    if template.template_id and sends_to_wecom(corp=actor.corp, source="console"):
        _send_delete(template)


def template_written(row: Outbox) -> None:
    """WeCom took an add or edit: store the template's id and the version it has, and send what changed
    here meanwhile (a newer version, or the deletion)."""
    rest = row.idempotency_key.removeprefix(KEY_PREFIX)
    pk, _sep, action_version = rest.partition(":")
    action, _sep, version = action_version.partition(":v")
    if not pk.isdigit() or action not in ("add", "edit") or not version.isdigit():
        return
    with transaction.atomic():
        template = (
            GroupWelcomeTemplate.objects.for_corp(row.corp_id).select_for_update().filter(pk=int(pk)).first()
        )
        if template is None:
            return
        if action == "add":
            created = s.GroupWelcomeTemplateCreated.model_validate(row.result)
            template.template_id = created.template_id
        template.sent_version = max(template.sent_version, int(version))
        template.save(update_fields=["template_id", "sent_version"])
        if not template.template_id:
            return
        if template.deleted_at is not None:
            _send_delete(template)
        elif action == "add" and template.sent_version < template.version:
            _send_edit(template)
