"""The text form of segment expressions, parsed with lark against one corp's tags, staff and fields.

Grammar (NOT binds tighter than AND, AND tighter than OR; keywords in any case)::

    tag:北京   tag:地区/北京   北京            a tag (a bare word is a tag name; group/name when ambiguous)
    tag:any(北京, 上海)  tag:all(…)  tag:none(…)  tag:any(…)@staff(zhangsan, lisi)
    gender:female  type:wechat  status:active  state:spring  staff:zhangsan  dept:销售部
    field:region=北京              a text, choice or date custom field
    added>=2024-01-01  added(30d)  an active relation added on/after a day, or within 30 days
    purchased(30d)  purchased(>=3, 30d)  purchased(ever)  chatted(>=2)      behaviour (NOT …: never)
    active(7d)

Words with spaces or punctuation go in double quotes. Every mistake is an ``Invalid`` with a stable code and a
translated message naming it (unknown tag, wrong operator, syntax error at a column, …).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from django.utils.translation import gettext as _
from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, VisitError

from siyu.core.errors import ErrorCode, Invalid
from siyu.corps.models import Corp, Department, Staff
from siyu.customers.models import CustomField
from siyu.segments.expressions import (
    BEHAVIOUR_KINDS,
    GENDERS,
    MAX_CONDITIONS,
    MAX_COUNT,
    MAX_DAYS,
    MAX_DEPTH,
    STATUSES,
    TAG_MODES,
    TYPES,
    ActiveCondition,
    AddedCondition,
    And,
    AttributeCondition,
    BehaviourCondition,
    DepartmentCondition,
    Expression,
    FieldCondition,
    Node,
    Not,
    Or,
    Ref,
    StaffCondition,
    TagCondition,
    walk,
)
from siyu.tags.models import Tag

GRAMMAR = r"""
start: expr
?expr: and_expr (_OR and_expr)*      -> or_
?and_expr: not_expr (_AND not_expr)* -> and_
?not_expr: _NOT not_expr             -> not_
         | atom
?atom: "(" expr ")"
     | condition
condition: word ":" target staff_clause?  -> prefixed
         | word "(" [arg ("," arg)*] ")"  -> call
         | word CMP word                  -> compare
         | ref                            -> bare
target: ref                               -> target_one
      | word "(" ref ("," ref)* ")"       -> target_set
      | word CMP word                     -> target_cmp
staff_clause: "@" word "(" word ("," word)* ")"
ref: word ("/" word)?
arg: word
   | CMP word                             -> arg_cmp
word: NAME | STRING
CMP: ">=" | "<=" | ">" | "<" | "="
_AND.2: /and(?![^\s()\[\]:,"@<>=!\/])/i
_OR.2: /or(?![^\s()\[\]:,"@<>=!\/])/i
_NOT.2: /not(?![^\s()\[\]:,"@<>=!\/])/i
NAME: /[^\s()\[\]:,"@<>=!\/]+/
STRING: /"(?:[^"\\]|\\.)*"/
%import common.WS
%ignore WS
"""

_parser = Lark(GRAMMAR, parser="lalr", maybe_placeholders=False)
MAX_TEXT = 4000  # characters: far beyond any audience someone types, small enough to parse in microseconds
# Chinese spellings of gender values are accepted on input (the console shows them).
_GENDER_ALIASES = {"男": "male", "女": "female", "未知": "unknown"}
_TYPE_ALIASES = {"微信": "wechat", "企业微信": "wecom"}
_DAYS = re.compile(r"(\d{1,5})d", re.IGNORECASE)


def _invalid(message: str, code: ErrorCode = ErrorCode.INVALID) -> Invalid:
    return Invalid(message, field="text", code=code)


@dataclass
class Catalog:
    """The names an expression may use in one corp, loaded once per parse."""

    corp: Corp
    _cache: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def tags(self) -> dict[str, list[tuple[int, str]]]:
        """tag name → [(id, group name)]"""
        by_name: dict[str, list[tuple[int, str]]] = {}
        for tag_id, name, group in Tag.objects.for_corp(self.corp).values_list("id", "name", "group__name"):
            by_name.setdefault(name, []).append((tag_id, group))
        return by_name

    def tag(self, group: str | None, name: str) -> Ref:
        candidates = self.tags.get(name, [])
        if group is not None:
            candidates = [c for c in candidates if c[1] == group]
        if not candidates:
            shown = f"{group}/{name}" if group is not None else name
            raise _invalid(_("unknown tag “%(name)s”") % {"name": shown}, ErrorCode.UNKNOWN_TAG)
        if len(candidates) > 1:
            raise _invalid(
                _("“%(name)s” is a tag in several groups (%(groups)s): write group/name, e.g. %(example)s")
                % {
                    "name": name,
                    "groups": ", ".join(c[1] for c in candidates),
                    "example": f"{candidates[0][1]}/{name}",
                },
                ErrorCode.AMBIGUOUS_TAG,
            )
        tag_id, group_name = candidates[0]
        return Ref(id=tag_id, name=name, group=group_name, qualified=len(self.tags.get(name, [])) > 1)

    def staff(self, word: str) -> Ref:
        rows = list(
            Staff.objects.for_corp(self.corp).filter(userid=word).values_list("id", "userid")
        ) or list(Staff.objects.for_corp(self.corp).filter(name=word).values_list("id", "userid")[:2])
        if len(rows) != 1:
            raise _invalid(
                _("unknown staff member “%(name)s” (give a userid)") % {"name": word}, ErrorCode.UNKNOWN_STAFF
            )
        return Ref(id=rows[0][0], name=rows[0][1])

    def department(self, word: str) -> Ref:
        rows = Department.objects.for_corp(self.corp)
        found = list(rows.filter(name=word).values_list("id", "name")[:2])
        if not found and word.isdigit():
            found = list(rows.filter(pk=int(word)).values_list("id", "name"))
        if len(found) > 1:
            raise _invalid(
                _("several departments are called “%(name)s”: give its id") % {"name": word},
                ErrorCode.UNKNOWN_DEPARTMENT,
            )
        if not found:
            raise _invalid(_("unknown department “%(name)s”") % {"name": word}, ErrorCode.UNKNOWN_DEPARTMENT)
        return Ref(id=found[0][0], name=found[0][1])

    def field_kind(self, key: str) -> str:
        kind = CustomField.objects.for_corp(self.corp).filter(key=key).values_list("kind", flat=True).first()
        if kind is None:
            raise _invalid(_("unknown custom field “%(key)s”") % {"key": key}, ErrorCode.UNKNOWN_CONDITION)
        return str(kind)


def _word(token: Any) -> str:
    if isinstance(token, Token) and token.type == "STRING":
        return re.sub(r"\\(.)", r"\1", str(token)[1:-1])
    return str(token)


def _days(word: str) -> int | None:
    """``30d`` → 30; ``ever`` → None."""
    if word.lower() == "ever":
        return None
    match = _DAYS.fullmatch(word)
    if not match:
        raise _invalid(_("“%(word)s” is not a window: write e.g. 30d or ever") % {"word": word})
    days = int(match.group(1))
    if not 1 <= days <= MAX_DAYS:
        raise _invalid(_("a window is from 1 to %(max)d days") % {"max": MAX_DAYS})
    return days


def _wrong_operator(name: str, example: str) -> Invalid:
    return _invalid(
        _("“%(name)s” does not take this operator: write e.g. %(example)s")
        % {"name": name, "example": example},
        ErrorCode.WRONG_OPERATOR,
    )


EXAMPLES = {
    "tag": "tag:北京",
    "gender": "gender:female",
    "type": "type:wechat",
    "status": "status:active",
    "state": "state:spring2024",
    "staff": "staff:zhangsan",
    "dept": "dept:销售部",
    "field": "field:region=北京",
    "added": "added>=2024-01-01 / added(30d)",
    "active": "active(7d)",
}


@v_args(inline=True)
class _Build(Transformer[Any, Node]):
    """Parse tree → expression nodes, resolving names through the catalog."""

    def __init__(self, catalog: Catalog):
        super().__init__()
        self.catalog = catalog

    def start(self, node: Node) -> Node:
        return node

    def or_(self, *args: Node) -> Node:
        return args[0] if len(args) == 1 else Or(tuple(args))

    def and_(self, *args: Node) -> Node:
        return args[0] if len(args) == 1 else And(tuple(args))

    def not_(self, arg: Node) -> Node:
        return Not(arg)

    def word(self, token: Token) -> str:
        return _word(token)

    def ref(self, first: str, second: str | None = None) -> tuple[str | None, str]:
        return (None, first) if second is None else (first, second)

    def target_one(self, ref: tuple[str | None, str]) -> tuple[str, Any]:
        return ("one", ref)

    def target_set(self, mode: str, *refs: tuple[str | None, str]) -> tuple[str, Any]:
        return ("set", (mode, refs))

    def target_cmp(self, left: str, op: Token, right: str) -> tuple[str, Any]:
        return ("cmp", (left, str(op), right))

    def staff_clause(self, head: str, *names: str) -> tuple[str, ...]:
        if head != "staff":
            raise _invalid(_("after @ write staff(userid, …)"), ErrorCode.WRONG_OPERATOR)
        return names

    def arg(self, word: str) -> tuple[str, str]:
        return ("", word)

    def arg_cmp(self, op: Token, word: str) -> tuple[str, str]:
        return (str(op), word)

    def bare(self, ref: tuple[str | None, str]) -> Node:
        group, name = ref
        return TagCondition(mode="any", tags=(self.catalog.tag(group, name),))

    def prefixed(self, head: str, target: tuple[str, Any], staff: tuple[str, ...] | None = None) -> Node:
        name = head.lower()
        shape, value = target
        if name == "tag":
            if shape == "one":
                tags: tuple[Ref, ...] = (self.catalog.tag(*value),)
                mode = "any"
            elif shape == "set":
                mode, refs = value
                mode = mode.lower()
                if mode not in TAG_MODES:
                    raise _invalid(
                        _("tag takes any(…), all(…) or none(…), not “%(mode)s”") % {"mode": mode},
                        ErrorCode.WRONG_OPERATOR,
                    )
                tags = tuple(dict.fromkeys(self.catalog.tag(*r) for r in refs))
            else:
                raise _wrong_operator("tag", EXAMPLES["tag"])
            staff_refs = tuple(dict.fromkeys(self.catalog.staff(s) for s in staff or ()))
            return TagCondition(mode=mode, tags=tags, staff=staff_refs)
        if staff:
            raise _invalid(_("only tag conditions take @staff(…)"), ErrorCode.WRONG_OPERATOR)
        if name == "field":
            if shape != "cmp" or value[1] != "=":
                raise _wrong_operator("field", EXAMPLES["field"])
            key, _op, wanted = value
            kind = self.catalog.field_kind(key)
            if kind == CustomField.Kind.NUMBER:
                raise _invalid(
                    _("“%(key)s” is a number field: only text, choice and date fields can be compared")
                    % {"key": key},
                    ErrorCode.WRONG_OPERATOR,
                )
            return FieldCondition(key=key, value=wanted)
        if shape != "one" or value[0] is not None:
            raise _wrong_operator(name, EXAMPLES.get(name, "tag:北京"))
        word = value[1]
        if name == "gender":
            gender = _GENDER_ALIASES.get(word, word.lower())
            if gender not in GENDERS:
                raise _invalid(
                    _("gender is one of %(values)s") % {"values": ", ".join(GENDERS)},
                    ErrorCode.WRONG_OPERATOR,
                )
            return AttributeCondition(attribute="gender", value=gender)
        if name == "type":
            kind = _TYPE_ALIASES.get(word, word.lower())
            if kind not in TYPES:
                raise _invalid(
                    _("type is one of %(values)s") % {"values": ", ".join(TYPES)}, ErrorCode.WRONG_OPERATOR
                )
            return AttributeCondition(attribute="type", value=kind)
        if name == "status":
            if word not in STATUSES:
                raise _invalid(
                    _("status is one of %(values)s") % {"values": ", ".join(STATUSES)},
                    ErrorCode.WRONG_OPERATOR,
                )
            return AttributeCondition(attribute="status", value=word)
        if name == "state":
            if len(word) > 30:
                raise _invalid(_("a channel state has at most 30 characters"))
            return AttributeCondition(attribute="state", value=word)
        if name == "staff":
            return StaffCondition(staff=self.catalog.staff(word))
        if name == "dept":
            return DepartmentCondition(department=self.catalog.department(word))
        if name == "stage":
            raise _invalid(_("lifecycle stages are not available yet"), ErrorCode.UNKNOWN_CONDITION)
        raise _unknown(head)

    def call(self, head: str, *args: tuple[str, str]) -> Node:
        name = head.lower()
        if name == "active":
            if len(args) != 1 or args[0][0]:
                raise _wrong_operator("active", EXAMPLES["active"])
            days = _days(args[0][1])
            if days is None:
                raise _wrong_operator("active", EXAMPLES["active"])
            return ActiveCondition(days=days)
        if name == "added":
            if len(args) != 1 or args[0][0]:
                raise _wrong_operator("added", EXAMPLES["added"])
            days = _days(args[0][1])
            if days is None:
                raise _wrong_operator("added", EXAMPLES["added"])
            return AddedCondition(days=days)
        if name not in BEHAVIOUR_KINDS:
            raise _unknown(head)
        min_count = 1
        window: int | None = None
        seen_window = False
        for op, word in args:
            if op:
                if op != ">=" or min_count != 1 or not word.isdigit():
                    raise _wrong_operator(name, f"{name}(>=3, 30d)")
                min_count = int(word)
                if not 1 <= min_count <= MAX_COUNT:
                    raise _invalid(_("a count is from 1 to %(max)d") % {"max": MAX_COUNT})
            elif seen_window:
                raise _wrong_operator(name, f"{name}(>=3, 30d)")
            else:
                window = _days(word)
                seen_window = True
        return BehaviourCondition(kind=name, min_count=min_count, days=window)

    def compare(self, head: str, op: Token, word: str) -> Node:
        name = head.lower()
        if name != "added":
            if name in EXAMPLES or name in BEHAVIOUR_KINDS:
                raise _wrong_operator(name, EXAMPLES.get(name, f"{name}(30d)"))
            raise _unknown(head)
        try:
            on = dt.date.fromisoformat(word)
        except ValueError as exc:
            raise _invalid(_("“%(word)s” is not a date (YYYY-MM-DD)") % {"word": word}) from exc
        return AddedCondition(comparator=str(op), on=on)


def _unknown(head: str) -> Invalid:
    return _invalid(
        _("“%(name)s” is not a condition; conditions are %(names)s and behaviours %(kinds)s")
        % {"name": head, "names": ", ".join(EXAMPLES), "kinds": ", ".join(BEHAVIOUR_KINDS)},
        ErrorCode.UNKNOWN_CONDITION,
    )


def _depth(node: Node) -> int:
    if isinstance(node, (And, Or)):
        return 1 + max(_depth(a) for a in node.args)
    if isinstance(node, Not):
        return 1 + _depth(node.arg)
    return 0


def _tree_depth(tree: Any) -> int:
    deepest = 0
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in getattr(node, "children", ()))
    return deepest


def parse(*, corp: Corp, text: str) -> Expression:
    """The expression of ``text`` in ``corp``; ``Invalid`` naming the problem otherwise."""
    if not text or not text.strip():
        raise _invalid(_("the expression is empty"))
    if len(text) > MAX_TEXT:
        raise _invalid(_("the expression is longer than %(max)d characters") % {"max": MAX_TEXT})
    try:
        tree = _parser.parse(text)
    except UnexpectedEOF as exc:
        raise _invalid(_("the expression ends too early"), ErrorCode.EXPRESSION_SYNTAX) from exc
    except UnexpectedCharacters as exc:
        raise _invalid(
            _("unexpected “%(near)s” at column %(column)d")
            % {"near": text[exc.pos_in_stream or 0], "column": exc.column},
            ErrorCode.EXPRESSION_SYNTAX,
        ) from exc
    except UnexpectedInput as exc:
        token = getattr(exc, "token", None)
        if token is None or token.type == "$END":
            raise _invalid(_("the expression ends too early"), ErrorCode.EXPRESSION_SYNTAX) from exc
        raise _invalid(
            _("unexpected “%(near)s” at column %(column)d") % {"near": str(token), "column": exc.column},
            ErrorCode.EXPRESSION_SYNTAX,
        ) from exc
    if _tree_depth(tree) > 2 * MAX_DEPTH + 4:  # before the (recursive) transform: a node is ≤ 2 tree levels
        raise _invalid(_("the expression is nested more than %(max)d levels deep") % {"max": MAX_DEPTH})
    try:
        root = _Build(Catalog(corp)).transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, Invalid):
            raise exc.orig_exc from None
        raise
    if _depth(root) > MAX_DEPTH:
        raise _invalid(_("the expression is nested more than %(max)d levels deep") % {"max": MAX_DEPTH})
    if len(walk(root)) > MAX_CONDITIONS:
        raise _invalid(_("the expression has more than %(max)d parts") % {"max": MAX_CONDITIONS})
    return Expression(root=root)
