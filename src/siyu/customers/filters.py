"""The customer list's filter form: query string ⇄ ``CustomerFilter``, shared by the page, its fragments,
exports and bulk jobs. The choices (tags, staff, departments) are loaded once per request, in three queries.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any, cast

from django import forms
from django.conf import settings
from django.http import QueryDict
from django.utils.translation import gettext_lazy as _

from siyu.corps.access import Actor
from siyu.corps.models import Department, Role, Staff
from siyu.customers.models import FollowRelation
from siyu.customers.selectors import DEFAULT_SORT, SORTS, CustomerFilter
from siyu.tags.models import Tag, TagGroup

# A state (contact-way channel) is at most 30 characters in WeCom; a filter names at most this many.
MAX_STATES = 20
# Query-string parameters that only move through the list; a filter ignores them.
PAGING_PARAMS = ("cursor", "sort", "page_size")


@dataclass
class TagGroupChoices:
    group: TagGroup
    tags: list[Tag]


@dataclass
class FilterOptions:
    """What the filter dropdowns offer, loaded once per page."""

    tag_groups: list[TagGroupChoices]
    staff: list[Staff]
    departments: list[Department]
    show_staff_filters: bool

    @property
    def tag_ids(self) -> set[int]:
        return {tag.pk for group in self.tag_groups for tag in group.tags}


def load_filter_options(actor: Actor) -> FilterOptions:
    """Tags (by group), staff and departments of the actor's corp: three queries whatever their number."""
    groups: dict[int, TagGroupChoices] = {}
    for tag in (
        Tag.objects.for_corp(actor.corp).select_related("group").order_by("group__order", "group_id", "order")
    ):
        groups.setdefault(tag.group_id, TagGroupChoices(group=tag.group, tags=[])).tags.append(tag)
    staff = list(Staff.objects.for_corp(actor.corp).order_by("name", "id"))
    departments = list(Department.objects.for_corp(actor.corp).order_by("order", "wecom_id"))
    return FilterOptions(
        tag_groups=list(groups.values()),
        staff=staff,
        departments=departments,
        # Staff members see only their own customers: the staff and department pickers would offer nothing
        # useful, so the page hides them (a shared link that uses them still works).
        show_staff_filters=actor.role != Role.STAFF,
    )


class CustomerFilterForm(forms.Form):
    """The list's GET parameters. Unknown ids (another corp's tag, a made-up staff id) are form errors."""

    q = forms.CharField(
        required=False,
        max_length=100,
        strip=True,
        label=_("Search"),
        widget=forms.TextInput(
            attrs={
                "type": "search",
                "placeholder": _("Name, remark, phone or external user ID"),
                "autocomplete": "off",
            }
        ),
    )
    tag = forms.TypedMultipleChoiceField(coerce=int, required=False, label=_("Tags"))
    tag_mode = forms.ChoiceField(
        choices=[("any", _("Any of them")), ("all", _("All of them"))], required=False, label=_("Match")
    )
    staff = forms.TypedMultipleChoiceField(coerce=int, required=False, label=_("Following staff"))
    department = forms.TypedMultipleChoiceField(coerce=int, required=False, label=_("Department"))
    state = forms.CharField(
        required=False,
        max_length=MAX_STATES * 31,
        label=_("Channel (state)"),
        widget=forms.TextInput(attrs={"placeholder": _("e.g. expo2024, shop01")}),
    )
    status = forms.ChoiceField(required=False, label=_("Relation status"))
    added_from = forms.DateField(
        required=False,
        label=_("Added from"),
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    added_to = forms.DateField(
        required=False, label=_("Added to"), widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )
    sort = forms.ChoiceField(choices=[(s, s) for s in SORTS], required=False)
    cursor = forms.CharField(required=False, max_length=500)
    page_size = forms.IntegerField(required=False, min_value=1)

    def __init__(self, data: QueryDict | dict[str, Any] | None, *, options: FilterOptions) -> None:
        super().__init__(data)
        self.options = options
        tag_field: Any = self.fields["tag"]
        tag_field.choices = [(t.pk, t.name) for g in options.tag_groups for t in g.tags]
        staff_field: Any = self.fields["staff"]
        staff_field.choices = [(s.pk, s.name) for s in options.staff]
        department_field: Any = self.fields["department"]
        department_field.choices = [(d.pk, d.name) for d in options.departments]
        status_field: Any = self.fields["status"]
        status_field.choices = [("", _("Any status")), *FollowRelation.Status.choices]

    def clean_page_size(self) -> int | None:
        size: int | None = self.cleaned_data.get("page_size")
        maximum = cast(int, settings.SIYU["MAX_PAGE_SIZE"])
        if size is not None and size > maximum:
            raise forms.ValidationError(_("At most %(n)d customers per page.") % {"n": maximum})
        return size

    def clean_state(self) -> list[str]:
        raw: str = self.cleaned_data.get("state") or ""
        states = list(dict.fromkeys(s.strip() for s in raw.replace("，", ",").split(",") if s.strip()))
        if len(states) > MAX_STATES:
            raise forms.ValidationError(_("At most %(n)d channels at once.") % {"n": MAX_STATES})
        return states

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("added_from"), data.get("added_to")
        if start and end and start > end:
            self.add_error("added_to", _("The end date is before the start date."))
        return data

    @property
    def chosen_sort(self) -> str:
        cleaned = getattr(self, "cleaned_data", {})
        return cleaned.get("sort") or DEFAULT_SORT

    @property
    def chosen_cursor(self) -> str | None:
        return self.cleaned_data.get("cursor") or None

    @property
    def chosen_page_size(self) -> int | None:
        return self.cleaned_data.get("page_size") or None

    def to_filter(self) -> CustomerFilter:
        """The CustomerFilter for a valid form."""
        data = self.cleaned_data
        tags: list[int] = data.get("tag") or []
        match_all = data.get("tag_mode") == "all"
        return CustomerFilter(
            q=data.get("q") or "",
            tags_any=[] if match_all else tags,
            tags_all=tags if match_all else [],
            staff_ids=data.get("staff") or [],
            department_ids=data.get("department") or [],
            states=data.get("state") or [],
            status=data.get("status") or "",
            added_from=data.get("added_from"),
            added_to=data.get("added_to"),
        )

    @property
    def active_filter_count(self) -> int:
        """How many filters (not the search) are set, for the "Filters (n)" summary."""
        if not hasattr(self, "cleaned_data"):
            return 0
        data = self.cleaned_data
        keys = ("tag", "staff", "department", "state", "status", "added_from", "added_to")
        return sum(1 for key in keys if data.get(key))


def filter_query(query: QueryDict) -> QueryDict:
    """The query string of a filter without paging (cursor, sort, page size)."""
    copy = query.copy()
    for key in PAGING_PARAMS:
        copy.pop(key, None)
    return copy


def filter_to_params(flt: CustomerFilter) -> dict[str, Any]:
    """A CustomerFilter as JSON-safe data (stored in a Job's params)."""
    data = asdict(flt)
    for key in ("added_from", "added_to"):
        if data[key] is not None:
            data[key] = data[key].isoformat()
    return data


def filter_from_params(data: dict[str, Any]) -> CustomerFilter:
    """The inverse of ``filter_to_params``."""
    values = dict(data)
    for key in ("added_from", "added_to"):
        if values.get(key):
            values[key] = dt.date.fromisoformat(values[key])
    return CustomerFilter(**values)
