"""Who is acting, and what they may see: roles and data scope, for pages and API alike.

- admin: everything in the corp, including users and API keys;
- operator: all customers and configuration, no user management;
- manager: customers followed (active relation) by staff in their departments and the departments below;
- staff: customers they follow themselves.
A customer outside one's scope does not exist for them: lookups answer 404, not 403.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils.translation import gettext as _

from siyu.core.errors import NotFound, PermissionDenied

if TYPE_CHECKING:
    from siyu.customers.models import Customer
from siyu.corps.models import ApiKey, Corp, Department, Membership, Role, StaffDepartment


@dataclass(frozen=True)
class Actor:
    """A console user or API key acting inside one corp."""

    corp: Corp
    role: str
    user_id: int | None = None
    api_key_id: int | None = None
    staff_id: int | None = None
    department_ids: frozenset[int] = field(default_factory=frozenset)

    @property
    def sees_all_customers(self) -> bool:
        return self.role in (Role.ADMIN, Role.OPERATOR)

    @property
    def can_configure(self) -> bool:
        """Tags, custom fields, channels and other corp configuration."""
        return self.role in (Role.ADMIN, Role.OPERATOR)

    @property
    def can_manage_users(self) -> bool:
        return self.role == Role.ADMIN

    def require_configure(self) -> None:
        if not self.can_configure:
            raise PermissionDenied(_("this needs the admin or operator role"))

    def require_admin(self) -> None:
        if not self.can_manage_users:
            raise PermissionDenied(_("this needs the admin role"))

    def visible_staff_ids_q(self) -> Q:
        """A filter on FollowRelation.staff for the relations this actor may see."""
        if self.sees_all_customers:
            return Q()
        if self.role == Role.MANAGER and self.department_ids:
            in_departments = StaffDepartment.objects.filter(
                corp=self.corp, department_id__in=self.department_ids
            ).values("staff_id")
            return Q(staff_id__in=in_departments)
        if self.staff_id is not None:
            return Q(staff_id=self.staff_id)
        return Q(pk__in=[])  # a manager or staff login linked to nobody sees nothing


def _descendants(corp: Corp, roots: set[int]) -> frozenset[int]:
    if not roots:
        return frozenset()
    children: dict[int | None, list[int]] = {}
    for dept_id, parent_id in Department.objects.for_corp(corp).values_list("id", "parent_id"):
        children.setdefault(parent_id, []).append(dept_id)
    seen: set[int] = set()
    stack = list(roots)
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        stack.extend(children.get(current, []))
    return frozenset(seen)


def _department_scope(corp: Corp, membership: Membership | None, staff_id: int | None) -> frozenset[int]:
    roots: set[int] = set()
    if membership is not None:
        roots = set(membership.departments.values_list("id", flat=True))
    if not roots and staff_id is not None:
        roots = set(
            StaffDepartment.objects.filter(corp=corp, staff_id=staff_id).values_list(
                "department_id", flat=True
            )
        )
    return _descendants(corp, roots)


def actor_for_membership(membership: Membership) -> Actor:
    """The actor for a console user's membership in a corp."""
    departments = (
        _department_scope(membership.corp, membership, membership.staff_id)
        if membership.role == Role.MANAGER
        else frozenset()
    )
    return Actor(
        corp=membership.corp,
        role=membership.role,
        user_id=membership.user_id,
        staff_id=membership.staff_id,
        department_ids=departments,
    )


def actor_for_user(user_id: int, corp: Corp, *, is_superuser: bool = False) -> Actor:
    """The actor for a console user in ``corp``; a superuser without a membership acts as admin."""
    membership = Membership.objects.select_related("corp").filter(corp=corp, user_id=user_id).first()
    if membership is not None:
        return actor_for_membership(membership)
    if is_superuser:
        return Actor(corp=corp, role=Role.ADMIN, user_id=user_id)
    raise PermissionDenied(_("you have no role in this corp"))


def actor_for_api_key(api_key: ApiKey) -> Actor:
    """The actor for an API key: its role, and for a manager or staff key the staff member it acts as."""
    departments = (
        _department_scope(api_key.corp, None, api_key.staff_id)
        if api_key.role == Role.MANAGER
        else frozenset()
    )
    return Actor(
        corp=api_key.corp,
        role=api_key.role,
        api_key_id=api_key.pk,
        staff_id=api_key.staff_id,
        department_ids=departments,
    )


def scope_customers(actor: Actor, queryset: QuerySet[Customer]) -> QuerySet[Customer]:
    """Narrow a Customer queryset (already of actor.corp) to what the actor may see."""
    if actor.sees_all_customers:
        return queryset
    from siyu.customers.models import FollowRelation

    visible = FollowRelation.objects.filter(
        actor.visible_staff_ids_q(), customer_id=OuterRef("pk"), status=FollowRelation.Status.ACTIVE
    )
    return queryset.filter(Exists(visible))


def corps_for_user(user_id: int, *, is_superuser: bool) -> QuerySet[Corp]:
    """Corps a console user can switch between: all for a superuser, else the one(s) they belong to."""
    if is_superuser:
        return Corp.objects.all()
    return Corp.objects.filter(pk__in=Membership.objects.filter(user_id=user_id).values("corp_id"))


def require_visible(found: bool, what: str = "customer") -> None:
    if not found:
        raise NotFound(
            _("customer not found") if what == "customer" else _("%(what)s not found") % {"what": what}
        )
