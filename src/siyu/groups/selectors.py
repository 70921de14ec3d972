"""Reads of customer groups, scoped to what the actor may see."""

from __future__ import annotations

from django.db.models import Exists, OuterRef, QuerySet

from siyu.core.errors import NotFound
from siyu.corps.access import Actor
from siyu.customers.models import Customer
from siyu.groups.models import GroupChat, GroupMember


def visible_group_chats(actor: Actor) -> QuerySet[GroupChat]:
    """Groups of the actor's corp they may see: all for admins and operators, else groups that a staff member
    in their scope is currently in (an owner is a member of their own group)."""
    groups = GroupChat.objects.for_corp(actor.corp)
    if actor.sees_all_customers:
        return groups
    in_scope = GroupMember.objects.filter(actor.visible_staff_ids_q(), group_id=OuterRef("pk"), left_at=None)
    return groups.filter(Exists(in_scope))


def list_group_chats(
    actor: Actor, *, status: str | None = GroupChat.Status.ACTIVE, search: str = ""
) -> QuerySet[GroupChat]:
    """The actor's groups, by name; ``status`` None lists dismissed ones too."""
    groups = visible_group_chats(actor).select_related("owner")
    if status:
        groups = groups.filter(status=status)
    if search.strip():
        groups = groups.filter(name__icontains=search.strip())
    return groups.order_by("name", "id")


def get_group_chat(actor: Actor, group_id: int) -> GroupChat:
    """One group the actor may see; anything else is a 404."""
    group = visible_group_chats(actor).filter(pk=group_id).first()
    if group is None:
        raise NotFound("customer group not found")
    return group


def group_members(group: GroupChat, *, current: bool = True) -> QuerySet[GroupMember]:
    """A group's members now (``current``), or every stay it ever had."""
    members = (
        GroupMember.objects.for_corp(group.corp_id).filter(group=group).select_related("staff", "customer")
    )
    if current:
        members = members.filter(left_at=None)
    return members.order_by("joined_at", "id")


def customer_group_stays(customer: Customer) -> QuerySet[GroupMember]:
    """Every stay of a customer in the corp's groups, the latest first."""
    return (
        GroupMember.objects.for_corp(customer.corp_id)
        .filter(customer=customer)
        .select_related("group")
        .order_by("-joined_at", "-id")
    )
