"""Group welcome templates 入群欢迎语素材 (DOC-92366): add, edit, get, del.

A template holds text (``%NICKNAME%`` placeholders, ≤3000 bytes) and at most one other part; when several are
given WeCom keeps the first of image, link, miniprogram, file, video. The corp's library holds 100 templates
(41055). Only templates made through the API by the app may be edited or deleted (41058); the simulator
answers 41058 for an unknown template_id too, and 40058 to a ``get`` of one (WeCom's code there is
unconfirmed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from siyu.simulator.api.base import Request, Result, get_int, get_object, get_str, route
from siyu.simulator.api.welcome import (
    LINK_DESC_MAX,
    LINK_TITLE_MAX,
    MINIPROGRAM_TITLE_MAX,
    URL_MAX,
)
from siyu.simulator.errors import ApiError
from siyu.simulator.state import GroupWelcomeTemplate

if TYPE_CHECKING:
    from siyu.simulator.app import Simulator

TEMPLATES_MAX = 100  # wecom-api.md §6: group welcome templates, 100 per corp
TEXT_MAX_BYTES = 3000  # DOC-92366: text.content ≤ 3000 bytes
PARTS = ("image", "link", "miniprogram", "file", "video")  # WeCom keeps the first one given, in this order


def _content(data: dict[str, Any]) -> dict[str, Any]:
    """The template's text and kept part, checked; 40058 when all are empty or a part is malformed."""
    content: dict[str, Any] = {}
    text = get_object(data, "text")
    if text:
        words = get_str(text, "content", max_bytes=TEXT_MAX_BYTES)
        if words:
            content["text"] = {"content": words}
    for part in PARTS:
        body = get_object(data, part)
        if not body:
            continue
        if part == "image":
            media_id, pic_url = get_str(body, "media_id"), get_str(body, "pic_url", max_bytes=URL_MAX)
            if not media_id and not pic_url:
                raise ApiError(40058, "image needs media_id or pic_url")
            # get answers an image by its URL, whichever way it was given.
            kept = {"pic_url": pic_url or f"https://wework.qpic.cn/wwpic/{media_id}/0"}
        elif part == "link":
            kept = {
                "title": get_str(body, "title", required=True, max_bytes=LINK_TITLE_MAX),
                "picurl": get_str(body, "picurl", max_bytes=URL_MAX),
                "desc": get_str(body, "desc", max_bytes=LINK_DESC_MAX),
                "url": get_str(body, "url", required=True, max_bytes=URL_MAX),
            }
        elif part == "miniprogram":
            kept = {
                "title": get_str(body, "title", required=True, max_bytes=MINIPROGRAM_TITLE_MAX),
                "pic_media_id": get_str(body, "pic_media_id", required=True),
                "appid": get_str(body, "appid", required=True),
                "page": get_str(body, "page", required=True),
            }
        else:
            kept = {"media_id": get_str(body, "media_id", required=True)}
        content[part] = kept
        break
    if not content:
        raise ApiError(40058, "text, image, link, miniprogram, file and video are all empty")
    return content


def _owned(sim: Simulator, template_id: str) -> GroupWelcomeTemplate:
    template = sim.state.group_welcome_templates.get(template_id)
    if template is None or not template.owned:
        raise ApiError(41058)
    return template


@route("externalcontact/group_welcome_template/add")
def add(sim: Simulator, request: Request) -> Result:
    data = request.json()
    content = _content(data)
    notify = get_int(data, "notify", default=1, minimum=0, maximum=1)
    templates = sim.state.group_welcome_templates
    if len(templates) >= TEMPLATES_MAX:
        raise ApiError(41055)
    template_id = sim.state.random_id("msg", 32)
    templates[template_id] = GroupWelcomeTemplate(
        template_id=template_id, create_time=sim.clock.now(), content=content, notify=notify == 1
    )
    return {"template_id": template_id}


@route("externalcontact/group_welcome_template/edit")
def edit(sim: Simulator, request: Request) -> Result:
    data = request.json()
    template = _owned(sim, get_str(data, "template_id", required=True))
    template.content = _content(data)
    return {}


@route("externalcontact/group_welcome_template/get")
def get(sim: Simulator, request: Request) -> Result:
    data = request.json()
    template_id = get_str(data, "template_id", required=True)
    template = sim.state.group_welcome_templates.get(template_id)
    if template is None:
        raise ApiError(40058, "invalid template_id")
    return dict(template.content)


@route("externalcontact/group_welcome_template/del")
def delete(sim: Simulator, request: Request) -> Result:
    data = request.json()
    template = _owned(sim, get_str(data, "template_id", required=True))
    del sim.state.group_welcome_templates[template.template_id]
    return {}
