"""Corp tags and tagging relations (§4.2). None of these emit callbacks: API-made changes never do (§2.5)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from siyu.simulator.api.base import Request, Result, get_int, get_list, get_str, route
from siyu.simulator.api.customers import relation
from siyu.simulator.errors import ApiError
from siyu.simulator.state import CorpState, Tag, TagGroup

if TYPE_CHECKING:
    from siyu.simulator.app import Simulator

TAG_NAME_MAX = 30  # §4.2 names ≤ 30 chars
CORP_TAG_MAX = 3000  # §4.2 "每个企业最多可配置3000个企业标签" (40126)
ORDER_MAX = 2**32 - 1  # §4.2 order in [0, 2^32)


def tag_json(tag: Tag, *, with_deleted: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": tag.id,
        "name": tag.name,
        "create_time": tag.create_time,
        "order": tag.order,
    }
    if with_deleted:
        data["deleted"] = tag.deleted
    return data


def group_json(state: CorpState, group: TagGroup, tags: list[Tag], *, with_deleted: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "group_id": group.group_id,
        "group_name": group.name,
        "create_time": group.create_time,
        "order": group.order,
    }
    if with_deleted:
        data["deleted"] = group.deleted
    # "order 值大的排序靠前": larger orders first, ties by creation.
    ordered = sorted(tags, key=lambda t: (-t.order, t.create_time))
    data["tag"] = [tag_json(t, with_deleted=with_deleted) for t in ordered]
    return data


def _sorted_groups(groups: list[TagGroup]) -> list[TagGroup]:
    return sorted(groups, key=lambda g: (-g.order, g.create_time))


@route("externalcontact/get_corp_tag_list")
def get_corp_tag_list(sim: Simulator, request: Request) -> Result:
    data = request.json() if request.body.strip() else {}
    tag_ids = get_list(data, "tag_id")
    group_ids = get_list(data, "group_id")
    state = sim.state
    result = []
    if group_ids:  # "同时传递tag_id和group_id时，忽略tag_id"
        for group in _sorted_groups([state.tag_groups[g] for g in group_ids if g in state.tag_groups]):
            tags = [state.tags[t] for t in group.tag_ids]
            result.append(group_json(state, group, tags, with_deleted=True))
    elif tag_ids:
        wanted: dict[str, list[Tag]] = {}
        for tag_id in tag_ids:
            tag = state.tags.get(tag_id)
            if tag is not None:
                wanted.setdefault(tag.group_id, []).append(tag)
        for group in _sorted_groups([state.tag_groups[g] for g in wanted]):
            result.append(group_json(state, group, wanted[group.group_id], with_deleted=True))
    else:
        for group in _sorted_groups([g for g in state.tag_groups.values() if not g.deleted]):
            tags = [state.tags[t] for t in group.tag_ids if not state.tags[t].deleted]
            result.append(group_json(state, group, tags, with_deleted=False))
    return {"tag_group": result}


def create_tags(
    sim: Simulator, *, group_id: str, group_name: str, group_order: int, tags: list[dict[str, Any]]
) -> tuple[TagGroup, list[Tag], bool]:
    """The add_corp_tag rules (also used by console actions); returns the group, new tags, group created."""
    state = sim.state
    now = sim.clock.now()
    names: list[tuple[str, int]] = []
    for entry in tags:
        if not isinstance(entry, dict):
            raise ApiError(40058, "field `tag` must be an array of objects")
        name = get_str(entry, "name", required=True)
        if len(name) > TAG_NAME_MAX:
            raise ApiError(40072)
        order = get_int(entry, "order", default=0, minimum=0, maximum=ORDER_MAX)
        if name not in (n for n, _ in names):  # duplicate names in one request make one tag
            names.append((name, order))
    if not names:
        raise ApiError(40058, "tag list is empty")  # empty groups are not allowed
    if state.live_tags() + len(names) > CORP_TAG_MAX:
        raise ApiError(40126)
    created_group = False
    if group_id:
        group = state.tag_groups.get(group_id)
        if group is None or group.deleted:
            raise ApiError(40068)
    else:
        if not group_name:
            raise ApiError(40058, "missing group_id or group_name")
        if len(group_name) > TAG_NAME_MAX:
            raise ApiError(40072)
        existing = state.group_by_name(group_name)
        if existing is not None:
            group = existing
        else:
            group = TagGroup(group_id=state.new_tag_id(), name=group_name, create_time=now, order=group_order)
            created_group = True
    live_names = {state.tags[t].name for t in group.tag_ids if not state.tags[t].deleted}
    for name, _order in names:
        if name in live_names:
            raise ApiError(40071)
    if created_group:
        state.tag_groups[group.group_id] = group
    new_tags = []
    for name, order in names:
        tag = Tag(id=state.new_tag_id(), name=name, group_id=group.group_id, create_time=now, order=order)
        state.tags[tag.id] = tag
        group.tag_ids.append(tag.id)
        new_tags.append(tag)
    return group, new_tags, created_group


@route("externalcontact/add_corp_tag")
def add_corp_tag(sim: Simulator, request: Request) -> Result:
    data = request.json()
    tags = get_list(data, "tag", item=dict, required=True)
    group, new_tags, _created = create_tags(
        sim,
        group_id=get_str(data, "group_id"),
        group_name=get_str(data, "group_name"),
        group_order=get_int(data, "order", default=0, minimum=0, maximum=ORDER_MAX),
        tags=tags,
    )
    return {"tag_group": group_json(sim.state, group, new_tags, with_deleted=False)}


def edit_tag(sim: Simulator, *, item_id: str, name: str | None, order: int | None) -> str:
    """Rename or reorder a tag or a group; returns "tag" or "tag_group"."""
    state = sim.state
    tag = state.tags.get(item_id)
    group = state.tag_groups.get(item_id)
    if tag is not None and not tag.deleted:
        if name is not None:
            siblings = state.tag_groups[tag.group_id].tag_ids
            if any(
                state.tags[t].name == name and t != tag.id and not state.tags[t].deleted for t in siblings
            ):
                raise ApiError(40071)
            tag.name = name
        if order is not None:
            tag.order = order
        return "tag"
    if group is not None and not group.deleted:
        if name is not None:
            clash = state.group_by_name(name)
            if clash is not None and clash is not group:
                raise ApiError(40071)
            group.name = name
        if order is not None:
            group.order = order
        return "tag_group"
    raise ApiError(40068)


@route("externalcontact/edit_corp_tag")
def edit_corp_tag(sim: Simulator, request: Request) -> Result:
    data = request.json()
    item_id = get_str(data, "id", required=True)
    name = get_str(data, "name") if "name" in data else None
    if name is not None and (not name or len(name) > TAG_NAME_MAX):
        raise ApiError(40072)
    order = get_int(data, "order", minimum=0, maximum=ORDER_MAX) if "order" in data else None
    edit_tag(sim, item_id=item_id, name=name, order=order)
    return {}


def delete_tags(sim: Simulator, *, tag_ids: list[str], group_ids: list[str]) -> list[tuple[str, str]]:
    """Delete tags and groups; returns what was deleted as (id, "tag" | "tag_group")."""
    state = sim.state
    for tag_id in tag_ids:
        if tag_id not in state.tags or state.tags[tag_id].deleted:
            raise ApiError(40068)
    for group_id in group_ids:
        if group_id not in state.tag_groups or state.tag_groups[group_id].deleted:
            raise ApiError(40068)
    deleted: list[tuple[str, str]] = []
    gone: set[str] = set()
    for group_id in group_ids:
        group = state.tag_groups[group_id]
        group.deleted = True
        for tag_id in group.tag_ids:
            state.tags[tag_id].deleted = True
            gone.add(tag_id)
        deleted.append((group_id, "tag_group"))
    for tag_id in tag_ids:
        tag = state.tags[tag_id]
        if tag.deleted:
            continue
        tag.deleted = True
        gone.add(tag_id)
        deleted.append((tag_id, "tag"))
        group = state.tag_groups[tag.group_id]
        if all(state.tags[t].deleted for t in group.tag_ids):
            group.deleted = True  # deleting every tag of a group deletes the group (§4.2)
    state.drop_tag_from_relations(gone)
    return deleted


@route("externalcontact/del_corp_tag")
def del_corp_tag(sim: Simulator, request: Request) -> Result:
    data = request.json()
    tag_ids = get_list(data, "tag_id")
    group_ids = get_list(data, "group_id")
    if not tag_ids and not group_ids:
        raise ApiError(40058, "tag_id and group_id are both empty")
    delete_tags(sim, tag_ids=tag_ids, group_ids=group_ids)
    return {}


def change_relation_tags(
    sim: Simulator, follow_tag_ids: list[str], add: list[str], remove: list[str]
) -> list[str]:
    """The relation's tag list after adding and removing corp tags (40068 for an unknown tag)."""
    for tag_id in [*add, *remove]:
        tag = sim.state.tags.get(tag_id)
        if tag is None or tag.deleted:
            raise ApiError(40068)
    result = [t for t in follow_tag_ids if t not in set(remove)]
    for tag_id in add:
        if tag_id not in result:
            result.append(tag_id)
    return result


@route("externalcontact/mark_tag")
def mark_tag(sim: Simulator, request: Request) -> Result:
    data = request.json()
    add = get_list(data, "add_tag")
    remove = get_list(data, "remove_tag")
    if not add and not remove:
        raise ApiError(40058, "add_tag and remove_tag are both empty")
    _member, _customer, follow = relation(sim, get_str(data, "userid"), get_str(data, "external_userid"))
    follow.tag_ids = change_relation_tags(sim, follow.tag_ids, add, remove)
    return {}
