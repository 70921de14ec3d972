"""Segment expressions: a tree of conditions joined by AND / OR / NOT, its JSON form and its text form.

The JSON form is what a segment stores; it names tags, staff and departments by id (and carries their names so
the text form can be printed without a database). The text form reads like
``tag:北京 AND tag:女 AND NOT purchased(30d)``; ``siyu.segments.parser`` turns it back into a tree against a
corp's tags, staff and fields. Both directions are validated: ``from_json`` refuses a malformed tree with a
clear ``Invalid`` naming the problem.

Conditions (one dataclass each):

- ``TagCondition``: has any / all / none of a set of tags, on any relation or on relations with given staff;
- ``AttributeCondition``: gender, type, relation status, channel ``state``;
- ``FieldCondition``: a text, choice or date custom field equals a value (``field:region=北京``);
- ``StaffCondition`` / ``DepartmentCondition``: followed (active relation) by a staff member / by anyone in a
  department or the departments below it;
- ``AddedCondition``: an active relation added on a day in a range, or within the last D days;
- ``BehaviourCondition``: did X at least N times within the last D days (or ever); ``NOT`` of it is "never";
- ``ActiveCondition``: did any of ``ACTIVITY_KINDS`` within the last D days.

Windows are calendar days in the corp's time zone, today included: ``purchased(30d)`` means since local
midnight 29 days ago. A lifecycle stage condition (``stage:``) is reserved for when stages exist.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext as _

from siyu.core.errors import ErrorCode, Invalid

GENDERS = {"unknown": 0, "male": 1, "female": 2}
TYPES = {"wechat": 1, "wecom": 2}
STATUSES = ("active", "deleted_by_staff", "deleted_by_customer")
TAG_MODES = ("any", "all", "none")
# Kinds of timeline event a behaviour condition may count: what a customer does (not what staff do to them).
BEHAVIOUR_KINDS = (
    "chatted",
    "purchased",
    "refunded",
    "visited",
    "group_joined",
    "group_left",
    "deleted_by_customer",
)
# What counts as being active for ``active(Nd)``.
ACTIVITY_KINDS = ("chatted", "purchased", "visited", "group_joined", "added")
COMPARATORS = (">=", "<=", ">", "<", "=")
# Windows up to ten years and counts up to 10,000: beyond these a condition is a typo, not a wish.
MAX_DAYS = 3650
MAX_COUNT = 10_000
# Nesting deeper than this is refused: the evaluators recurse, and no audience needs it.
MAX_DEPTH = 32
MAX_CONDITIONS = 200

# A word of the text form that needs no quotes.
_BARE = re.compile(r'[^\s()\[\]:,"@<>=!/]+')
_KEYWORDS = {"and", "or", "not"}


@dataclass(frozen=True)
class Ref:
    """A tag, staff member or department by id, with the name it is shown by (a tag also by its group)."""

    id: int
    name: str
    group: str = ""
    qualified: bool = False  # print as group/name: the name alone is ambiguous in the corp

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "name": self.name}
        if self.group:
            data["group"] = self.group
        if self.qualified:
            data["qualified"] = True
        return data


@dataclass(frozen=True)
class And:
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    arg: Node


@dataclass(frozen=True)
class TagCondition:
    mode: str  # any | all | none
    tags: tuple[Ref, ...]
    staff: tuple[Ref, ...] = ()  # empty: on any relation


@dataclass(frozen=True)
class AttributeCondition:
    attribute: str  # gender | type | status | state
    value: str


@dataclass(frozen=True)
class FieldCondition:
    key: str
    value: str


@dataclass(frozen=True)
class StaffCondition:
    staff: Ref


@dataclass(frozen=True)
class DepartmentCondition:
    department: Ref


@dataclass(frozen=True)
class AddedCondition:
    comparator: str = ""  # with ``on``; empty with ``days``
    on: dt.date | None = None
    days: int | None = None


@dataclass(frozen=True)
class BehaviourCondition:
    kind: str
    min_count: int = 1
    days: int | None = None  # None: ever


@dataclass(frozen=True)
class ActiveCondition:
    days: int


Node = (
    And
    | Or
    | Not
    | TagCondition
    | AttributeCondition
    | FieldCondition
    | StaffCondition
    | DepartmentCondition
    | AddedCondition
    | BehaviourCondition
    | ActiveCondition
)


@dataclass(frozen=True)
class Expression:
    """A validated segment expression; ``to_json`` / ``from_json`` and ``to_text`` round-trip."""

    root: Node

    def __post_init__(self) -> None:
        # AND inside AND (OR inside OR) reads the same without its parentheses: one canonical tree, so the
        # text form parses back to an equal expression.
        object.__setattr__(self, "root", _flatten(self.root))

    @classmethod
    def from_json(cls, data: dict[str, Any] | str) -> Expression:
        """The expression of a JSON tree (a dict, or its JSON text); a malformed tree is ``Invalid``."""
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except ValueError as exc:
                raise Invalid(_("the expression is not valid JSON"), field="expression") from exc
        counter = [0]
        return cls(root=_node_from_json(data, depth=0, counter=counter))

    def to_json(self) -> dict[str, Any]:
        return _node_to_json(self.root)

    def to_text(self) -> str:
        return _text(self.root, parent=None)

    def tag_ids(self) -> set[int]:
        """Every tag the expression names."""
        return {ref.id for node in walk(self.root) if isinstance(node, TagCondition) for ref in node.tags}

    def __str__(self) -> str:
        return self.to_text()


def _flatten(node: Node) -> Node:
    if isinstance(node, (And, Or)):
        kind = type(node)
        args: list[Node] = []
        for arg in node.args:
            flat = _flatten(arg)
            args.extend(flat.args if isinstance(flat, kind) else [flat])
        return kind(tuple(args))
    if isinstance(node, Not):
        return Not(_flatten(node.arg))
    return node


def walk(node: Node) -> list[Node]:
    """The node and every node below it."""
    found: list[Node] = [node]
    if isinstance(node, (And, Or)):
        for arg in node.args:
            found.extend(walk(arg))
    elif isinstance(node, Not):
        found.extend(walk(node.arg))
    return found


# --- JSON ---------------------------------------------------------------------------------------------------


def _node_to_json(node: Node) -> dict[str, Any]:
    if isinstance(node, And):
        return {"op": "and", "args": [_node_to_json(a) for a in node.args]}
    if isinstance(node, Or):
        return {"op": "or", "args": [_node_to_json(a) for a in node.args]}
    if isinstance(node, Not):
        return {"op": "not", "arg": _node_to_json(node.arg)}
    if isinstance(node, TagCondition):
        data: dict[str, Any] = {"op": "tag", "mode": node.mode, "tags": [r.to_json() for r in node.tags]}
        if node.staff:
            data["staff"] = [r.to_json() for r in node.staff]
        return data
    if isinstance(node, AttributeCondition):
        return {"op": node.attribute, "value": node.value}
    if isinstance(node, FieldCondition):
        return {"op": "field", "key": node.key, "value": node.value}
    if isinstance(node, StaffCondition):
        return {"op": "staff", "staff": node.staff.to_json()}
    if isinstance(node, DepartmentCondition):
        return {"op": "dept", "dept": node.department.to_json()}
    if isinstance(node, AddedCondition):
        if node.days is not None:
            return {"op": "added", "days": node.days}
        assert node.on is not None
        return {"op": "added", "cmp": node.comparator, "date": node.on.isoformat()}
    if isinstance(node, BehaviourCondition):
        return {"op": "did", "kind": node.kind, "min": node.min_count, "days": node.days}
    if isinstance(node, ActiveCondition):
        return {"op": "active", "days": node.days}
    raise TypeError(f"not an expression node: {node!r}")


def _bad(message: str) -> Invalid:
    return Invalid(message, field="expression")


def _int(data: dict[str, Any], key: str, *, low: int, high: int, what: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _bad(
            _("%(what)s must be a whole number from %(low)d to %(high)d")
            % {"what": what, "low": low, "high": high}
        )
    return value


def _str(data: dict[str, Any], key: str, what: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise _bad(_("%(what)s must be a non-empty text of at most 200 characters") % {"what": what})
    return value


def _ref(data: Any, what: str) -> Ref:
    if not isinstance(data, dict):
        raise _bad(_("%(what)s must be an object with an id and a name") % {"what": what})
    ref_id = data.get("id")
    name = data.get("name", "")
    group = data.get("group", "")
    if isinstance(ref_id, bool) or not isinstance(ref_id, int) or ref_id < 1:
        raise _bad(_("%(what)s needs a positive integer id") % {"what": what})
    if not isinstance(name, str) or not isinstance(group, str):
        raise _bad(_("%(what)s: name and group must be text") % {"what": what})
    return Ref(id=ref_id, name=name or str(ref_id), group=group, qualified=bool(data.get("qualified")))


def _node_from_json(data: Any, *, depth: int, counter: list[int]) -> Node:
    if depth > MAX_DEPTH:
        raise _bad(_("the expression is nested more than %(max)d levels deep") % {"max": MAX_DEPTH})
    counter[0] += 1
    if counter[0] > MAX_CONDITIONS:
        raise _bad(_("the expression has more than %(max)d parts") % {"max": MAX_CONDITIONS})
    if not isinstance(data, dict):
        raise _bad(_("every part of the expression must be an object with an “op”"))
    op = data.get("op")
    if op in ("and", "or"):
        args = data.get("args")
        if not isinstance(args, list) or len(args) < 2:
            raise _bad(_("“%(op)s” needs a list of at least two parts in “args”") % {"op": op})
        children = tuple(_node_from_json(a, depth=depth + 1, counter=counter) for a in args)
        return And(children) if op == "and" else Or(children)
    if op == "not":
        return Not(_node_from_json(data.get("arg"), depth=depth + 1, counter=counter))
    if op == "tag":
        mode = data.get("mode", "any")
        if mode not in TAG_MODES:
            raise Invalid(
                _("tag mode must be one of %(modes)s") % {"modes": ", ".join(TAG_MODES)},
                field="expression",
                code=ErrorCode.WRONG_OPERATOR,
            )
        tags = data.get("tags")
        if not isinstance(tags, list) or not tags:
            raise _bad(_("a tag condition needs at least one tag"))
        staff = data.get("staff", [])
        if not isinstance(staff, list):
            raise _bad(_("“staff” must be a list"))
        return TagCondition(
            mode=mode,
            tags=tuple(_ref(t, _("a tag")) for t in tags),
            staff=tuple(_ref(s, _("a staff member")) for s in staff),
        )
    if op in ("gender", "type", "status"):
        allowed: tuple[str, ...] = {"gender": tuple(GENDERS), "type": tuple(TYPES), "status": STATUSES}[op]
        value = data.get("value")
        if value not in allowed:
            raise _bad(
                _("%(attribute)s must be one of %(values)s") % {"attribute": op, "values": ", ".join(allowed)}
            )
        return AttributeCondition(attribute=op, value=value)
    if op == "state":
        value = _str(data, "value", _("the channel state"))
        if len(value) > 30:  # FollowRelation.state holds 30 characters (WeCom's limit)
            raise _bad(_("a channel state has at most 30 characters"))
        return AttributeCondition(attribute="state", value=value)
    if op == "field":
        key = _str(data, "key", _("the field key"))
        if not re.fullmatch(r"[-a-zA-Z0-9_]{1,40}", key):
            raise _bad(_("“%(key)s” is not a custom field key") % {"key": key})
        return FieldCondition(key=key, value=_str(data, "value", _("the field value")))
    if op == "staff":
        return StaffCondition(staff=_ref(data.get("staff"), _("a staff member")))
    if op == "dept":
        return DepartmentCondition(department=_ref(data.get("dept"), _("a department")))
    if op == "added":
        if "days" in data:
            return AddedCondition(days=_int(data, "days", low=1, high=MAX_DAYS, what=_("days")))
        comparator = data.get("cmp")
        if comparator not in COMPARATORS:
            raise Invalid(
                _("the added date compares with one of %(ops)s") % {"ops": " ".join(COMPARATORS)},
                field="expression",
                code=ErrorCode.WRONG_OPERATOR,
            )
        try:
            on = dt.date.fromisoformat(str(data.get("date")))
        except ValueError as exc:
            raise _bad(_("the added date must be a date (YYYY-MM-DD)")) from exc
        return AddedCondition(comparator=comparator, on=on)
    if op == "did":
        kind = data.get("kind")
        if kind not in BEHAVIOUR_KINDS:
            raise Invalid(
                _("“%(kind)s” is not a behaviour; one of %(kinds)s")
                % {"kind": kind, "kinds": ", ".join(BEHAVIOUR_KINDS)},
                field="expression",
                code=ErrorCode.UNKNOWN_CONDITION,
            )
        days = data.get("days")
        return BehaviourCondition(
            kind=kind,
            min_count=_int(data, "min", low=1, high=MAX_COUNT, what=_("the count")) if "min" in data else 1,
            days=None if days is None else _int(data, "days", low=1, high=MAX_DAYS, what=_("days")),
        )
    if op == "active":
        return ActiveCondition(days=_int(data, "days", low=1, high=MAX_DAYS, what=_("days")))
    raise Invalid(
        _("“%(op)s” is not a kind of condition") % {"op": op},
        field="expression",
        code=ErrorCode.UNKNOWN_CONDITION,
    )


# --- text ---------------------------------------------------------------------------------------------------


def quote(word: str) -> str:
    """A word of the text form, in double quotes when it would not read back as one word."""
    if _BARE.fullmatch(word) and word.lower() not in _KEYWORDS:
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ref_text(ref: Ref) -> str:
    return f"{quote(ref.group)}/{quote(ref.name)}" if ref.qualified and ref.group else quote(ref.name)


def _window(days: int | None) -> str:
    return "ever" if days is None else f"{days}d"


def _text(node: Node, parent: type | None) -> str:
    if isinstance(node, (And, Or)):
        joiner = " AND " if isinstance(node, And) else " OR "
        inner = joiner.join(_text(a, type(node)) for a in node.args)
        # NOT binds tighter than AND, AND tighter than OR: parentheses only where the reading would change.
        needs = parent is Not or (parent is And and isinstance(node, Or))
        return f"({inner})" if needs else inner
    if isinstance(node, Not):
        return f"NOT {_text(node.arg, Not)}"
    if isinstance(node, TagCondition):
        if node.mode == "any" and len(node.tags) == 1:
            text = f"tag:{_ref_text(node.tags[0])}"
        else:
            text = f"tag:{node.mode}({', '.join(_ref_text(t) for t in node.tags)})"
        if node.staff:
            text += f"@staff({', '.join(quote(s.name) for s in node.staff)})"
        return text
    if isinstance(node, AttributeCondition):
        return f"{node.attribute}:{quote(node.value)}"
    if isinstance(node, FieldCondition):
        return f"field:{quote(node.key)}={quote(node.value)}"
    if isinstance(node, StaffCondition):
        return f"staff:{quote(node.staff.name)}"
    if isinstance(node, DepartmentCondition):
        return f"dept:{quote(node.department.name)}"
    if isinstance(node, AddedCondition):
        if node.days is not None:
            return f"added({node.days}d)"
        assert node.on is not None
        return f"added{node.comparator}{node.on.isoformat()}"
    if isinstance(node, BehaviourCondition):
        args = ([f">={node.min_count}"] if node.min_count > 1 else []) + [_window(node.days)]
        if node.min_count > 1 and node.days is None:
            args = [f">={node.min_count}"]
        return f"{node.kind}({', '.join(args)})"
    if isinstance(node, ActiveCondition):
        return f"active({node.days}d)"
    raise TypeError(f"not an expression node: {node!r}")
