"""Operations on customers and their relations with staff. Each appends its timeline event atomically."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import NotSupportedError, connection, transaction
from django.db.models import Exists, F, Func, JSONField, Max, Q
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from siyu.core.bulk import in_list, insert_rows, key_list, select_rows, update_rows
from siyu.core.clock import now
from siyu.core.errors import Invalid, NotFound
from siyu.corps.access import Actor
from siyu.corps.models import Corp, Staff
from siyu.corps.services import audit
from siyu.customers.events import record_event
from siyu.customers.models import Customer, CustomField, Event, FollowRelation, Note
from siyu.customers.signals import relation_ended, remark_mobiles_changed
from siyu.wecom import services as wecom

MOBILE_RE = re.compile(r"^\+?[0-9][0-9 -]{4,19}$")
MAX_REMARK_MOBILES = 5  # WeCom's remark API accepts at most 5 remark mobiles
PROFILE_FIELDS = ("name", "unionid", "avatar", "gender", "type", "corp_name", "corp_full_name")


def build_search_text(customer: Customer, relations: Iterable[FollowRelation]) -> str:
    """What the list's substring search matches: name, remarks, remark mobiles, lower-cased.

    Not the external_userid, which the search matches whole instead: its 32 random characters were four
    fifths of the trigram index's entries, the largest cost of adding customers (a sync of 100,000 measured:
    their COPY 18.7 s with them, 4.8 s without; the index's WAL a fourth), for a fragment search of an opaque
    id that nobody types."""
    parts = [customer.name]
    for relation in relations:
        parts.extend([relation.remark, relation.remark_corp_name, *relation.remark_mobiles])
    return " ".join(p for p in parts if p).lower()


def refresh_search_text(customer: Customer) -> None:
    # In the order they were added, as the bulk import writes it (an index's order otherwise).
    text = build_search_text(customer, customer.relations.order_by("id"))
    if text != customer.search_text:
        customer.search_text = text
        Customer.objects.filter(pk=customer.pk).update(search_text=text)


@transaction.atomic
def upsert_customer(
    *,
    corp: Corp,
    external_userid: str,
    name: str,
    source: str,
    unionid: str = "",
    avatar: str = "",
    gender: int = Customer.Gender.UNKNOWN,
    type: int = Customer.Type.WECHAT,
    corp_name: str = "",
    corp_full_name: str = "",
    payload_extra: Mapping[str, Any] | None = None,
) -> Customer:
    """Create a customer or update their WeCom profile; a change is a ``profile_changed`` event."""
    if not external_userid or len(external_userid) > 64:
        raise Invalid(_("external_userid is required (at most 64 characters)"), field="external_userid")
    if gender not in Customer.Gender.values:
        raise Invalid(
            _("gender must be one of %(values)s") % {"values": ", ".join(map(str, Customer.Gender.values))},
            field="gender",
        )
    if type not in Customer.Type.values:
        raise Invalid(
            _("type must be one of %(values)s") % {"values": ", ".join(map(str, Customer.Type.values))},
            field="type",
        )
    values: dict[str, Any] = {
        "name": name[:64],
        "unionid": unionid,
        "avatar": avatar,
        "gender": gender,
        "type": type,
        "corp_name": corp_name,
        "corp_full_name": corp_full_name,
    }
    customer = (
        Customer.objects.for_corp(corp).select_for_update().filter(external_userid=external_userid).first()
    )
    if customer is None:
        customer = Customer(corp=corp, external_userid=external_userid, **values)
        customer.search_text = build_search_text(customer, [])
        customer.save()
        return customer
    changed = [f for f in PROFILE_FIELDS if getattr(customer, f) != values[f]]
    if changed:
        for f in changed:
            setattr(customer, f, values[f])
        customer.updated_at = now()
        customer.save(update_fields=[*changed, "updated_at"])
        refresh_search_text(customer)
        record_event(
            corp_id=corp.pk,
            customer_id=customer.pk,
            kind=Event.Kind.PROFILE_CHANGED,
            source=source,
            payload={"fields": changed, **(payload_extra or {})},
        )
    return customer


def _announce_mobiles(corp_id: int, relation_ids: Sequence[int]) -> None:
    """Tell listeners (offline members) after commit that these relations carry new remark mobiles."""
    if relation_ids:
        ids = list(relation_ids)
        transaction.on_commit(
            lambda: remark_mobiles_changed.send(sender=FollowRelation, corp_id=corp_id, relation_ids=ids),
            robust=True,
        )


def _clean_mobiles(mobiles: Iterable[str]) -> list[str]:
    cleaned = [m.strip() for m in mobiles if m and m.strip()]
    if len(cleaned) > MAX_REMARK_MOBILES:
        raise Invalid(
            _("at most %(max)d remark mobiles") % {"max": MAX_REMARK_MOBILES}, field="remark_mobiles"
        )
    for mobile in cleaned:
        if not MOBILE_RE.match(mobile):
            raise Invalid(_("not a phone number: “%(mobile)s”") % {"mobile": mobile}, field="remark_mobiles")
    return cleaned


@transaction.atomic
def add_follow_relation(
    *,
    customer: Customer,
    staff: Staff,
    source: str,
    remark: str = "",
    description: str = "",
    remark_mobiles: Iterable[str] = (),
    remark_corp_name: str = "",
    add_way: int = 0,
    state: str = "",
    oper_userid: str = "",
    added_at: dt.datetime | None = None,
    dedupe_key: str | None = None,
    payload_extra: Mapping[str, Any] | None = None,
    looked_up: bool = False,
) -> FollowRelation:
    """Record that ``staff`` added ``customer``. Idempotent while the relation is active.

    ``looked_up``: the caller has just found no active relation of the two, so it is not looked for again;
    should one appear meanwhile, the one-active-relation constraint refuses the second (an IntegrityError)."""
    if staff.corp_id != customer.corp_id:
        raise Invalid(_("staff member and customer belong to different corps"), field="staff")
    if not looked_up:
        existing = FollowRelation.objects.for_corp(customer.corp_id).filter(
            customer=customer, staff=staff, status=FollowRelation.Status.ACTIVE
        )
        relation = existing.first()
        if relation is not None:
            return relation
    added_at = added_at or now()
    relation = FollowRelation.objects.create(
        corp_id=customer.corp_id,
        customer=customer,
        staff=staff,
        remark=remark[:64],
        description=description[:256],
        remark_mobiles=_clean_mobiles(remark_mobiles),
        remark_corp_name=remark_corp_name[:64],
        add_way=add_way,
        state=state[:30],
        oper_userid=oper_userid,
        added_at=added_at,
    )
    if relation.remark_mobiles:
        _announce_mobiles(customer.corp_id, [relation.pk])
    # The customer's latest add, or their first relation's whatever the default said: one conditional UPDATE.
    first = ~Exists(FollowRelation.objects.filter(customer_id=customer.pk).exclude(pk=relation.pk))
    if Customer.objects.filter(Q(last_added_at__lt=added_at) | first, pk=customer.pk).update(
        last_added_at=added_at
    ):
        customer.last_added_at = added_at
    if relation.remark or relation.remark_corp_name or relation.remark_mobiles:
        # A relation without remarks adds nothing to the search text (it is the customer's name and remarks).
        refresh_search_text(customer)
    record_event(
        corp_id=customer.corp_id,
        customer_id=customer.pk,
        staff_id=staff.pk,
        kind=Event.Kind.ADDED,
        source=source,
        occurred_at=added_at,
        payload={"add_way": add_way, "state": state, "relation_id": relation.pk, **(payload_extra or {})},
        dedupe_key=dedupe_key
        or f"added:{customer.external_userid}:{staff.userid}:{int(added_at.timestamp())}",
    )
    return relation


@transaction.atomic
def end_follow_relation(
    *,
    relation: FollowRelation,
    by: str,
    source: str,
    at: dt.datetime | None = None,
    dedupe_key: str | None = None,
    payload_extra: Mapping[str, Any] | None = None,
) -> bool:
    """Mark an active relation deleted by the staff member or by the customer. False if it was not active."""
    statuses = {
        "staff": FollowRelation.Status.DELETED_BY_STAFF,
        "customer": FollowRelation.Status.DELETED_BY_CUSTOMER,
    }
    if by not in statuses:
        raise Invalid(_("by must be 'staff' or 'customer'"), field="by")
    at = at or now()
    updated = FollowRelation.objects.filter(pk=relation.pk, status=FollowRelation.Status.ACTIVE).update(
        status=statuses[by], status_changed_at=at
    )
    if not updated:
        return False
    relation.status = statuses[by]
    relation.status_changed_at = at
    record_event(
        corp_id=relation.corp_id,
        customer_id=relation.customer_id,
        staff_id=relation.staff_id,
        kind=str(statuses[by]),
        source=source,
        occurred_at=at,
        payload={"relation_id": relation.pk, **(payload_extra or {})},
        dedupe_key=dedupe_key or f"{statuses[by]}:relation:{relation.pk}",
    )
    relation_ended.send(
        sender=FollowRelation, corp_id=relation.corp_id, relation_id=relation.pk, by=by, at=at
    )
    return True


@transaction.atomic
def update_relation_remark(
    *,
    relation: FollowRelation,
    source: str,
    remark: str | None = None,
    description: str | None = None,
    remark_mobiles: Iterable[str] | None = None,
    remark_corp_name: str | None = None,
    dedupe_key: str | None = None,
    payload_extra: Mapping[str, Any] | None = None,
) -> list[str]:
    """Change what a staff member noted about a customer; returns the fields that changed.

    A change made in Siyu (``source`` console, api or system) in a corp connected to WeCom goes to WeCom
    (``remark``), so it must fit WeCom's limits, tighter than Siyu's columns (remark 20 characters,
    description 150, company 20).
    """
    new: dict[str, Any] = {}
    if remark is not None:
        if len(remark) > 64:  # WeCom: remark up to 64 characters
            raise Invalid(_("remark is at most 64 characters"), field="remark")
        new["remark"] = remark
    if description is not None:
        if len(description) > 256:  # WeCom: description up to 256 characters
            raise Invalid(_("description is at most 256 characters"), field="description")
        new["description"] = description
    if remark_mobiles is not None:
        new["remark_mobiles"] = _clean_mobiles(remark_mobiles)
    if remark_corp_name is not None:
        new["remark_corp_name"] = remark_corp_name[:64]
    changed = [k for k, v in new.items() if getattr(relation, k) != v]
    if not changed:
        return []
    wecom.check_remark(relation=relation, source=source, changed={k: new[k] for k in changed})
    before = {k: getattr(relation, k) for k in changed}
    for k in changed:
        setattr(relation, k, new[k])
    relation.save(update_fields=changed)
    if "remark_mobiles" in changed and relation.remark_mobiles:
        _announce_mobiles(relation.corp_id, [relation.pk])
    refresh_search_text(relation.customer)
    event = record_event(
        corp_id=relation.corp_id,
        customer_id=relation.customer_id,
        staff_id=relation.staff_id,
        kind=Event.Kind.REMARK_CHANGED,
        source=source,
        payload={
            "relation_id": relation.pk,
            "before": before,
            "after": {k: new[k] for k in changed},
            **(payload_extra or {}),
        },
        dedupe_key=dedupe_key,
    )
    wecom.relation_remark_changed(
        relation=relation,
        source=source,
        changed={k: new[k] for k in changed},
        change_id=f"event:{event.pk}" if event else None,
    )
    return changed


def clean_custom_value(field: CustomField, raw: Any) -> Any:
    """A custom field's value as stored (None for blank); ``Invalid`` says what is wrong with it."""
    return _clean_custom_value(field, raw)


def _clean_custom_value(field: CustomField, raw: Any) -> Any:
    if raw is None or raw == "":
        return None
    if field.kind == CustomField.Kind.TEXT:
        text = str(raw).strip()
        if len(text) > 500:
            raise Invalid(_("%(label)s: at most 500 characters") % {"label": field.label}, field=field.key)
        return text
    if field.kind == CustomField.Kind.NUMBER:
        try:
            number = Decimal(str(raw))
        except InvalidOperation as exc:
            raise Invalid(_("%(label)s: not a number") % {"label": field.label}, field=field.key) from exc
        if not number.is_finite():
            raise Invalid(_("%(label)s: not a number") % {"label": field.label}, field=field.key)
        return int(number) if number == number.to_integral_value() else float(number)
    if field.kind == CustomField.Kind.DATE:
        try:
            return dt.date.fromisoformat(str(raw)).isoformat()
        except ValueError as exc:
            raise Invalid(
                _("%(label)s: not a date (YYYY-MM-DD)") % {"label": field.label}, field=field.key
            ) from exc
    if str(raw) not in field.choices:
        raise Invalid(
            _("%(label)s: must be one of %(choices)s")
            % {"label": field.label, "choices": ", ".join(field.choices)},
            field=field.key,
        )
    return str(raw)


@transaction.atomic
def set_custom_fields(*, customer: Customer, values: Mapping[str, Any], source: str) -> list[str]:
    """Validate and set custom profile fields; all or nothing. Returns the keys that changed."""
    fields = {f.key: f for f in CustomField.objects.for_corp(customer.corp_id)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise Invalid(_("unknown custom field(s): %(keys)s") % {"keys": ", ".join(unknown)}, field=unknown[0])
    cleaned = {key: _clean_custom_value(fields[key], raw) for key, raw in values.items()}
    current = dict(customer.custom_fields)
    changed = [k for k, v in cleaned.items() if current.get(k) != v]
    if not changed:
        return []
    for k in changed:
        if cleaned[k] is None:
            current.pop(k, None)
        else:
            current[k] = cleaned[k]
    customer.custom_fields = current
    customer.updated_at = now()
    customer.save(update_fields=["custom_fields", "updated_at"])
    record_event(
        corp_id=customer.corp_id,
        customer_id=customer.pk,
        kind=Event.Kind.PROFILE_CHANGED,
        source=source,
        payload={"fields": [f"custom.{k}" for k in changed]},
    )
    return changed


@transaction.atomic
def create_custom_field(
    *, corp: Corp, key: str, label: str, kind: str = CustomField.Kind.TEXT, choices: list[str] | None = None
) -> CustomField:
    """Define a per-corp profile field."""
    if not re.match(r"^[a-z][a-z0-9_]{0,39}$", key):
        raise Invalid(_("key must start with a letter and use a–z, 0–9 and _ (at most 40)"), field="key")
    if kind not in CustomField.Kind.values:
        raise Invalid(
            _("kind must be one of %(kinds)s") % {"kinds": ", ".join(CustomField.Kind.values)}, field="kind"
        )
    if kind == CustomField.Kind.CHOICE and not choices:
        raise Invalid(_("a choice field needs choices"), field="choices")
    if CustomField.objects.for_corp(corp).filter(key=key).exists():
        raise Invalid(_("custom field “%(key)s” already exists") % {"key": key}, field="key")
    order = CustomField.objects.for_corp(corp).count()
    return CustomField.objects.create(
        corp=corp, key=key, label=label.strip() or key, kind=kind, choices=choices or [], order=order
    )


@transaction.atomic
def add_note(*, customer: Customer, author_id: int | None, text: str, source: str) -> Note:
    """Add a note to a customer; the timeline records that a note was added, not its text."""
    text = text.strip()
    if not text:
        raise Invalid(_("a note cannot be empty"), field="text")
    if len(text) > 2000:
        raise Invalid(_("a note is at most 2,000 characters"), field="text")
    note = Note.objects.create(corp_id=customer.corp_id, customer=customer, author_id=author_id, text=text)
    record_event(
        corp_id=customer.corp_id,
        customer_id=customer.pk,
        kind=Event.Kind.NOTE_ADDED,
        source=source,
        payload={"note_id": note.pk, "author_id": author_id},
        dedupe_key=f"note:{note.pk}",
    )
    return note


# --- custom field definitions, changed from the console by an admin or operator and audited ---------------

CUSTOM_FIELD_LABEL_MAX = CustomField._meta.get_field("label").max_length or 40
# A choice is one option of a drop-down on the customer page: short, and few enough to scan.
CUSTOM_FIELD_CHOICE_MAX = 50
CUSTOM_FIELD_CHOICES_MAX = 100


class _JsonWithoutKey(Func):
    """A JSON object column without one key: jsonb ``-`` on PostgreSQL, ``JSON_REMOVE`` on SQLite."""

    output_field = JSONField()

    def __init__(self, column: str, key: str) -> None:
        super().__init__(F(column))
        self.key = key

    def as_sql(  # pragma: no cover - other vendors
        self,
        compiler: Any,
        connection: Any,
        function: str | None = None,
        template: str | None = None,
        arg_joiner: str | None = None,
        **extra_context: Any,
    ) -> Any:
        raise NotSupportedError("removing a JSON key is written for PostgreSQL and SQLite")

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        column, params = compiler.compile(self.source_expressions[0])
        return f"({column} - %s::text)", [*params, self.key]

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        column, params = compiler.compile(self.source_expressions[0])
        # Keys are [a-z][a-z0-9_]* (create_custom_field), so the quoted path needs no escaping.
        return f"JSON_REMOVE({column}, %s)", [*params, f'$."{self.key}"']


def _clean_label(label: str) -> str:
    label = label.strip()
    if not label:
        raise Invalid(_("a label is required"), field="label")
    if len(label) > CUSTOM_FIELD_LABEL_MAX:
        raise Invalid(
            _("a label is at most %(max)d characters") % {"max": CUSTOM_FIELD_LABEL_MAX}, field="label"
        )
    return label


def _clean_choices(choices: Iterable[str]) -> list[str]:
    cleaned: list[str] = []
    for choice in (c.strip() for c in choices):
        if not choice:
            continue
        if len(choice) > CUSTOM_FIELD_CHOICE_MAX:
            raise Invalid(
                _("a choice is at most %(max)d characters") % {"max": CUSTOM_FIELD_CHOICE_MAX},
                field="choices",
            )
        if choice in cleaned:
            raise Invalid(_("the choice “%(choice)s” is listed twice") % {"choice": choice}, field="choices")
        cleaned.append(choice)
    if len(cleaned) > CUSTOM_FIELD_CHOICES_MAX:
        raise Invalid(_("at most %(max)d choices") % {"max": CUSTOM_FIELD_CHOICES_MAX}, field="choices")
    return cleaned


def _audit_field(actor: Actor, action: str, field: CustomField, **detail: object) -> None:
    audit(
        corp=actor.corp,
        action=action,
        object_type="custom_field",
        object_id=field.pk,
        user_id=actor.user_id,
        api_key_id=actor.api_key_id,
        detail={"key": field.key, **detail},
    )


@transaction.atomic
def create_custom_field_as(
    *, actor: Actor, key: str, label: str, kind: str, choices: Iterable[str] = ()
) -> CustomField:
    """An admin or operator defines a custom field; it goes last. Label and choices are checked. Audited."""
    actor.require_configure()
    label = _clean_label(label)
    cleaned = _clean_choices(choices) if kind == CustomField.Kind.CHOICE else []
    field = create_custom_field(corp=actor.corp, key=key.strip(), label=label, kind=kind, choices=cleaned)
    last = CustomField.objects.for_corp(actor.corp).exclude(pk=field.pk).aggregate(m=Max("order"))["m"]
    field.order = 0 if last is None else last + 1
    field.save(update_fields=["order"])
    _audit_field(actor, "custom_field.create", field, label=label, kind=kind)
    return field


@transaction.atomic
def rename_custom_field(*, actor: Actor, field: CustomField, label: str) -> CustomField:
    """Change a custom field's label (its key, kind and values stay). Audited."""
    actor.require_configure()
    if field.corp_id != actor.corp.pk:
        raise NotFound(_("custom field not found"))
    label = _clean_label(label)
    if label != field.label:
        before = field.label
        field.label = label
        field.save(update_fields=["label"])
        _audit_field(actor, "custom_field.rename", field, before=before, after=label)
    return field


@transaction.atomic
def reorder_custom_fields(*, actor: Actor, field_ids: Sequence[int]) -> None:
    """Put the corp's custom fields in this order; the list must name each of them once. Audited."""
    actor.require_configure()
    fields = {f.pk: f for f in CustomField.objects.for_corp(actor.corp).select_for_update()}
    if len(field_ids) != len(set(field_ids)) or set(field_ids) != set(fields):
        raise Invalid(_("the new order must list every custom field of the corp once"), field="field_ids")
    changed = []
    for order, pk in enumerate(field_ids):
        if fields[pk].order != order:
            fields[pk].order = order
            changed.append(fields[pk])
    if changed:
        CustomField.objects.bulk_update(changed, ["order"])
        audit(
            corp=actor.corp,
            action="custom_field.reorder",
            object_type="custom_field",
            user_id=actor.user_id,
            api_key_id=actor.api_key_id,
            detail={"keys": [fields[pk].key for pk in field_ids]},
        )


def customers_with_custom_value(field: CustomField) -> int:
    """How many customers hold a value for ``field``."""
    return Customer.objects.for_corp(field.corp_id).filter(custom_fields__has_key=field.key).count()


@transaction.atomic
def delete_custom_field(*, actor: Actor, field: CustomField) -> int:
    """Delete a custom field and every customer's value of it, together; returns how many values. Audited."""
    actor.require_configure()
    if field.corp_id != actor.corp.pk:
        raise NotFound(_("custom field not found"))
    holders = Customer.objects.for_corp(actor.corp).filter(custom_fields__has_key=field.key)
    removed = holders.update(custom_fields=_JsonWithoutKey("custom_fields", field.key))
    _audit_field(actor, "custom_field.delete", field, label=field.label, customers=removed)
    field.delete()
    return removed


@dataclass(frozen=True)
class RelationImport:
    """One customer–staff relation reported by WeCom (a sync page), for ``import_relations``."""

    external_userid: str
    name: str
    staff: Staff
    unionid: str = ""
    avatar: str = ""
    gender: int = Customer.Gender.UNKNOWN
    type: int = Customer.Type.WECHAT
    corp_name: str = ""
    corp_full_name: str = ""
    remark: str = ""
    description: str = ""
    remark_mobiles: tuple[str, ...] = ()
    remark_corp_name: str = ""
    add_way: int = 0
    state: str = ""
    oper_userid: str = ""
    added_at: dt.datetime | None = None


@dataclass(frozen=True)
class ImportedRelation:
    """A relation ``import_relations`` created: its ids, and who it joins."""

    pk: int
    corp_id: int
    customer_id: int
    staff_id: int
    external_userid: str
    userid: str


def _search_text(name: str, remarks: Iterable[tuple[str, str, Sequence[str]]]) -> str:
    """``build_search_text`` from plain values: (remark, remark_corp_name, remark_mobiles) per relation."""
    parts = [name]
    for remark, remark_corp_name, mobiles in remarks:
        parts.extend([remark, remark_corp_name, *mobiles])
    return " ".join(p for p in parts if p).lower()


GENDERS = frozenset(Customer.Gender.values)
TYPES = frozenset(Customer.Type.values)
CUSTOMER_COLUMNS = (
    "corp", "external_userid", "unionid", "name", "avatar", "gender", "type", "corp_name", "corp_full_name",
    "custom_fields", "last_added_at", "search_text", "created_at", "updated_at",
)  # fmt: skip
RELATION_COLUMNS = (
    "corp", "customer", "staff", "remark", "description", "remark_corp_name", "remark_mobiles", "add_way",
    "state", "oper_userid", "added_at", "status",
)  # fmt: skip
EVENT_COLUMNS = (
    "corp", "customer", "staff", "kind", "occurred_at", "source", "payload", "dedupe_key", "recorded_at",
)  # fmt: skip


@transaction.atomic(savepoint=False)  # set-based: all or nothing with the caller's transaction
def import_relations(
    *,
    corp: Corp,
    items: Sequence[RelationImport],
    source: str,
    dedupe_prefix: str,
    payload_extra: Mapping[str, Any] | None = None,
    customer_ids: Mapping[str, int] | None = None,
    active: Collection[tuple[int, int]] | None = None,
) -> list[ImportedRelation]:
    """Add, set-based, the relations of ``items`` that are not active yet, creating missing customers.

    The effects and ``added`` events (keyed ``<dedupe_prefix>:<external_userid>:<userid>:added``) are those of
    ``upsert_customer`` + ``add_follow_relation`` one at a time (a sync's first import of a corp is a hundred
    thousand of them); the profile of a customer who already exists is left as it is. Rows are written in a
    few multi-row statements (``core.bulk``), and a row a concurrent writer added first (a callback) is
    skipped, not doubled. ``customer_ids`` are the ids of the items' customers the caller has just read in
    this transaction (external_userid → id; the rest are looked up), ``active`` the (customer id, staff id)
    pairs of those customers' active relations read with them (else looked up). Returns the relations
    created.
    """
    if not items:
        return []
    for item in items:
        if not item.external_userid or len(item.external_userid) > 64:
            raise Invalid(_("external_userid is required (at most 64 characters)"), field="external_userid")
        if item.staff.corp_id != corp.pk:
            raise Invalid(_("staff member belongs to another corp"), field="staff")
    moment = now()
    by_customer: dict[str, dict[int, RelationImport]] = {}
    for item in items:
        by_customer.setdefault(item.external_userid, {}).setdefault(item.staff.pk, item)
    mobiles = {id(i): _clean_mobiles(i.remark_mobiles) for i in items}
    customers = {e: pk for e, pk in (customer_ids or {}).items() if e in by_customer}
    if customer_ids is None:
        customers.update(
            Customer.objects.for_corp(corp)
            .filter(external_userid__in=list(by_customer))
            .values_list("external_userid", "pk")
        )
    existing = set(customers)
    fresh = [e for e in by_customer if e not in customers]
    rows: list[tuple[Any, ...]] = []
    for external_userid in fresh:
        relation_items = by_customer[external_userid]
        first = next(iter(relation_items.values()))
        name = first.name[:64]
        rows.append(
            (
                corp.pk,
                external_userid,
                first.unionid,
                name,
                first.avatar,
                first.gender if first.gender in GENDERS else Customer.Gender.UNKNOWN.value,
                first.type if first.type in TYPES else Customer.Type.WECHAT.value,
                first.corp_name,
                first.corp_full_name,
                {},
                max(i.added_at or moment for i in relation_items.values()),
                # The list's search text, from the relations about to be created (as add_follow_relation
                # would leave it after the last of them).
                _search_text(
                    name,
                    (
                        (i.remark[:64], i.remark_corp_name[:64], mobiles[id(i)])
                        for i in relation_items.values()
                    ),
                ),
                moment,
                moment,
            )
        )
    customers.update(
        (external_userid, pk)
        for pk, external_userid in insert_rows(
            Customer, CUSTOMER_COLUMNS, rows, returning=("id", "external_userid")
        )
    )
    raced: list[str] = []
    if len(customers) < len(by_customer):  # a callback created some meanwhile: theirs stand
        raced = [e for e in by_customer if e not in customers]
        existing.update(raced)
        customers.update(
            Customer.objects.for_corp(corp)
            .filter(external_userid__in=raced)
            .values_list("external_userid", "pk")
        )
    if active is None or raced:
        active = (
            set(
                FollowRelation.objects.for_corp(corp)
                .filter(customer_id__in=[customers[e] for e in existing], status=FollowRelation.Status.ACTIVE)
                .values_list("customer_id", "staff_id")
            )
            if existing
            else set()
        )
    wanted: dict[tuple[int, int], RelationImport] = {}
    for external_userid, relation_items in by_customer.items():
        for staff_id, item in relation_items.items():
            pair = (customers[external_userid], staff_id)
            if pair not in active:
                wanted[pair] = item
    inserted = insert_rows(
        FollowRelation,
        RELATION_COLUMNS,
        (
            (
                corp.pk,
                customer_id,
                staff_id,
                i.remark[:64],
                i.description[:256],
                i.remark_corp_name[:64],
                mobiles[id(i)],
                i.add_way,
                i.state[:30],
                i.oper_userid,
                i.added_at or moment,
                FollowRelation.Status.ACTIVE.value,
            )
            for (customer_id, staff_id), i in wanted.items()
        ),
        # The one-active-relation constraint: a concurrent add wins, nothing doubles.
        returning=("id", "customer_id", "staff_id"),
    )
    created = []
    extra = dict(payload_extra or {})
    events = []
    for pk, customer_id, staff_id in sorted(inserted):
        item = wanted[(customer_id, staff_id)]
        created.append(
            ImportedRelation(
                pk=pk,
                corp_id=corp.pk,
                customer_id=customer_id,
                staff_id=staff_id,
                external_userid=item.external_userid,
                userid=item.staff.userid,
            )
        )
        events.append(
            (
                corp.pk,
                customer_id,
                staff_id,
                Event.Kind.ADDED.value,
                item.added_at or moment,
                source,
                {"add_way": item.add_way, "state": item.state[:30], "relation_id": pk, **extra},
                f"{dedupe_prefix}:{item.external_userid}:{item.staff.userid}:added"[:200],
                moment,
            )
        )
    insert_rows(Event, EVENT_COLUMNS, events)
    _announce_mobiles(corp.pk, [r.pk for r in created if mobiles[id(wanted[(r.customer_id, r.staff_id)])]])
    _refresh_list_columns(corp, [r for r in created if r.external_userid in existing])
    return created


# The customers who gained relations, with every relation of theirs in id order; the caller appends the
# condition on the customer ids.
LIST_COLUMNS_SQL = (
    "SELECT c.id, c.name, c.last_added_at, c.search_text, r.id, r.remark, r.remark_corp_name, "
    "r.remark_mobiles, r.added_at "
    "FROM customers_customer c JOIN customers_followrelation r ON r.customer_id = c.id "
    "WHERE c.corp_id = %s AND r.corp_id = %s AND "
)
# The same on PostgreSQL, a lookup per customer whatever the statistics (``core.bulk.key_list``).
LIST_COLUMNS_BY_KEY_SQL = (
    "SELECT x.* FROM {keys} CROSS JOIN LATERAL (SELECT c.id, c.name, c.last_added_at, c.search_text, r.id, "
    "r.remark, r.remark_corp_name, r.remark_mobiles, r.added_at "
    "FROM customers_customer c JOIN customers_followrelation r ON r.customer_id = c.id "
    "WHERE c.id = k.key AND c.corp_id = %s AND r.corp_id = %s OFFSET 0) x"
)


def _datetime(value: Any) -> dt.datetime:
    """A datetime column as a hand-written read returns it: aware on PostgreSQL, UTC text on SQLite."""
    if isinstance(value, str):
        parsed = parse_datetime(value)
        if parsed is None:
            raise ValueError(f"not a datetime: {value!r}")
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)
    return value


def _refresh_list_columns(corp: Corp, created: Sequence[ImportedRelation]) -> None:
    """Customers who were already here and gained relations: ``last_added_at`` and ``search_text`` follow,
    as ``add_follow_relation`` leaves them (the newest add; the newest new one if they had no relation).

    One hand-written read of the customers with their relations (a first sync meets a customer again in
    another member's pages for one relation in five): the ORM's two reads cost more client CPU than the
    rest of the import of those relations."""
    if not created:
        return
    new = {r.pk for r in created}
    if connection.vendor == "postgresql":
        keys, params = key_list({r.customer_id for r in created}, "bigint")
        rows = select_rows(LIST_COLUMNS_BY_KEY_SQL.format(keys=keys), [*params, corp.pk, corp.pk])
    else:
        of_customers, params = in_list("c.id", {r.customer_id for r in created})
        rows = select_rows(LIST_COLUMNS_SQL + of_customers, [corp.pk, corp.pk, *params])
    customers: dict[int, tuple[str, dt.datetime | None, str]] = {}
    relations: dict[int, list[tuple[str, str, list[str], dt.datetime, int]]] = {}
    for pk, name, last_added_at, search_text, relation_id, remark, corp_name, mobiles, added_at in sorted(
        rows,
        key=lambda row: (row[0], row[4]),
    ):
        if pk not in customers:
            customers[pk] = (name, None if last_added_at is None else _datetime(last_added_at), search_text)
        relations.setdefault(pk, []).append(
            (
                remark,
                corp_name,
                json.loads(mobiles) if isinstance(mobiles, str) else mobiles,
                _datetime(added_at),
                relation_id,
            )
        )
    changed = []
    for pk, (name, last_added_at, search_text) in customers.items():
        rows = relations[pk]
        text = _search_text(name, ((r[0], r[1], r[2]) for r in rows))
        newest = max(r[3] for r in rows if r[4] in new)
        last = (
            newest if all(r[4] in new for r in rows) or last_added_at is None else max(newest, last_added_at)
        )
        if text != search_text or last != last_added_at:
            changed.append((pk, text, last))
    update_rows(Customer, ["search_text", "last_added_at"], changed)
