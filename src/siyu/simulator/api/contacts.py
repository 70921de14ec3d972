"""Address-book reads a sync needs: departments and members.

wecom-api.md does not cover these; paths and shapes are WeCom's own (通讯录管理: department/list,
department/simplelist, department/get, user/get, user/simplelist, user/list, user/list_id).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from siyu.simulator.api.base import Request, Result, get_int, get_str, route
from siyu.simulator.errors import ApiError
from siyu.simulator.state import Department, Staff

if TYPE_CHECKING:
    from siyu.simulator.app import Simulator

USER_LIST_ID_MAX = 10000  # user/list_id "limit 分页，预期请求的数据量，取值范围 1 ~ 10000"


def department_json(department: Department) -> dict[str, Any]:
    return {
        "id": department.id,
        "name": department.name,
        "name_en": department.name_en,
        "department_leader": list(department.leaders),
        "parentid": department.parentid,
        "order": department.order,
    }


def user_json(member: Staff, *, detailed: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {
        "userid": member.userid,
        "name": member.name,
        "department": list(member.departments),
        "open_userid": member.open_userid,
    }
    if detailed:
        data.update(
            {
                "order": [0 for _ in member.departments],
                "position": member.position,
                "mobile": member.mobile,
                "gender": str(member.gender),  # WeCom writes gender as a string here
                "email": member.email,
                "biz_mail": "",
                "is_leader_in_dept": list(member.is_leader_in_dept),
                "direct_leader": [],
                "avatar": member.avatar,
                "thumb_avatar": member.avatar.rsplit("/", 1)[0] + "/100",
                "telephone": "",
                "alias": member.alias,
                "address": "",
                "status": member.status,
                "main_department": member.main_department,
                "extattr": {"attrs": []},
                "qr_code": f"https://open.work.weixin.qq.com/wwopen/userQRCode?vcode={member.open_userid}",
                "external_position": member.position,
                "external_profile": {"external_corp_name": "", "external_attr": []},
            }
        )
    return data


def _department_ids(sim: Simulator, request: Request, name: str, *, required: bool) -> list[int]:
    raw = request.query.get(name, "")
    if not raw:
        if required:
            raise ApiError(40058, f"missing {name}")
        return sorted(sim.state.departments)
    dept_id = get_int(request.query, name)
    if dept_id not in sim.state.departments:
        raise ApiError(60123)
    return sim.state.department_and_children(dept_id)


@route("department/list", method="GET")
def department_list(sim: Simulator, request: Request) -> Result:
    ids = _department_ids(sim, request, "id", required=False)
    return {"department": [department_json(sim.state.departments[i]) for i in ids]}


@route("department/simplelist", method="GET")
def department_simplelist(sim: Simulator, request: Request) -> Result:
    ids = _department_ids(sim, request, "id", required=False)
    items = [sim.state.departments[i] for i in ids]
    return {"department_id": [{"id": d.id, "parentid": d.parentid, "order": d.order} for d in items]}


@route("department/get", method="GET")
def department_get(sim: Simulator, request: Request) -> Result:
    dept_id = get_int(request.query, "id", required=True)
    department = sim.state.departments.get(dept_id)
    if department is None:
        raise ApiError(60123)
    return {"department": department_json(department)}


@route("user/get", method="GET")
def user_get(sim: Simulator, request: Request) -> Result:
    userid = get_str(request.query, "userid", required=True, missing=41009)
    member = sim.state.active_staff(userid)
    if member is None:
        raise ApiError(60111)
    return user_json(member)


def _members(sim: Simulator, request: Request) -> list[Staff]:
    dept_id = get_int(request.query, "department_id", required=True)
    if dept_id not in sim.state.departments:
        raise ApiError(60123)
    fetch_child = request.query.get("fetch_child", "0") == "1"
    wanted = set(sim.state.department_and_children(dept_id) if fetch_child else [dept_id])
    return [s for s in sim.state.staff.values() if s.status != 5 and wanted.intersection(s.departments)]


@route("user/simplelist", method="GET")
def user_simplelist(sim: Simulator, request: Request) -> Result:
    return {"userlist": [user_json(m, detailed=False) for m in _members(sim, request)]}


@route("user/list", method="GET")
def user_list(sim: Simulator, request: Request) -> Result:
    return {"userlist": [user_json(m) for m in _members(sim, request)]}


@route("user/list_id")
def user_list_id(sim: Simulator, request: Request) -> Result:
    data = request.json()
    limit = get_int(data, "limit", default=USER_LIST_ID_MAX, minimum=1, maximum=USER_LIST_ID_MAX)
    cursor = get_str(data, "cursor")
    start = sim.cursors.decode("user/list_id", cursor) if cursor else 0
    pairs = [(s.userid, d) for s in sim.state.staff.values() if s.status != 5 for d in s.departments]
    chunk = pairs[start : start + limit]
    following = start + limit
    result: Result = {"dept_user": [{"userid": u, "department": d} for u, d in chunk]}
    result["next_cursor"] = sim.cursors.encode("user/list_id", following) if following < len(pairs) else ""
    return result
