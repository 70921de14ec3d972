"""Welcome messages (§4.4) and the message-content rules shared with mass sending (§4.5)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from siyu.simulator.api.base import Request, Result, get_list, get_object, get_str, route
from siyu.simulator.errors import ApiError

if TYPE_CHECKING:
    from siyu.simulator.app import Simulator

ATTACHMENTS_MAX = 9  # §4.4 / §4.5 ≤ 9 attachments (41064)
TEXT_MAX_BYTES = 4000  # §4.4 / §4.5 text ≤ 4000 bytes
ATTACHMENT_TYPES = ("image", "link", "miniprogram", "video", "file")  # anything else is 41065
# §4.5 field limits, in bytes: link title ≤128, url/picurl ≤2048, desc ≤512; miniprogram title ≤64.
LINK_TITLE_MAX = 128
URL_MAX = 2048
LINK_DESC_MAX = 512
MINIPROGRAM_TITLE_MAX = 64


def check_content(
    data: dict[str, Any], *, required: bool = True
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """Validate ``text`` and ``attachments``; returns them normalised."""
    text = get_object(data, "text")
    content = get_str(text, "content", max_bytes=TEXT_MAX_BYTES) if text else ""
    attachments = get_list(data, "attachments", item=dict)
    if len(attachments) > ATTACHMENTS_MAX:
        raise ApiError(41064)
    for attachment in attachments:
        msgtype = attachment.get("msgtype")
        if msgtype not in ATTACHMENT_TYPES:
            raise ApiError(41065)
        body = attachment.get(msgtype)
        if not isinstance(body, dict):
            raise ApiError(40058, f"field `{msgtype}` must be an object")
        if msgtype == "image":
            if not body.get("media_id") and not body.get("pic_url"):
                raise ApiError(40058, "image needs media_id or pic_url")
        elif msgtype == "link":
            get_str(body, "title", required=True, max_bytes=LINK_TITLE_MAX)
            get_str(body, "url", required=True, max_bytes=URL_MAX)
            get_str(body, "picurl", max_bytes=URL_MAX)
            get_str(body, "desc", max_bytes=LINK_DESC_MAX)
        elif msgtype == "miniprogram":
            get_str(body, "title", required=True, max_bytes=MINIPROGRAM_TITLE_MAX)
            get_str(body, "pic_media_id", required=True)
            get_str(body, "appid", required=True)
            get_str(body, "page", required=True)
        else:
            get_str(body, "media_id", required=True)
    if required and not content and not attachments:
        raise ApiError(40058, "text and attachments are both empty")
    return ({"content": content} if content else None), attachments


@route("externalcontact/send_welcome_msg")
def send_welcome_msg(sim: Simulator, request: Request) -> Result:
    data = request.json()
    code = get_str(data, "welcome_code", required=True, missing=41049)
    welcome = sim.state.welcome_codes.get(code)
    if welcome is None or sim.clock.time() >= welcome.issued_at + sim.config.welcome_code_ttl:
        raise ApiError(41050)
    if welcome.used:
        raise ApiError(41051)
    text, attachments = check_content(data)
    welcome.used = True
    welcome.message = {"text": text, "attachments": attachments, "sent_at": sim.clock.time()}
    return {}
