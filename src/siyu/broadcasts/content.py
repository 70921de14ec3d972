"""What a mass message may carry, checked before anything is stored or sent (WeCom's limits, wecom-api.md).

To customers and groups (``add_msg_template``, §4.5): text ≤ 4,000 bytes, up to 9 attachments of the kinds
image, link, miniprogram, video, file. To moments (``add_moment_task``, §4.6): text ≤ 4,000 bytes, and either
up to 9 images, or one video, or one link, each naming the media uploaded for it. Refusals are ``Invalid``
with a stable code and the offending field, so a page can show them next to the input.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from django.utils.translation import gettext as _

from siyu.core.errors import ErrorCode, Invalid

TEXT_MAX_BYTES = 4000  # §4.5 / §4.6
ATTACHMENTS_MAX = 9  # §4.5 ≤ 9 attachments (41064 beyond)
MOMENT_IMAGES_MAX = 9  # §4.6 up to 9 images, OR 1 video, OR 1 link
KINDS = ("image", "link", "miniprogram", "video", "file")  # §4.5; anything else is 41065
MOMENT_KINDS = ("image", "video", "link")
# §4.5 field limits, in bytes.
LINK_TITLE_MAX = 128
URL_MAX = 2048
LINK_DESC_MAX = 512
MINIPROGRAM_TITLE_MAX = 64
MEDIA_ID_MAX = 256  # WeCom's media ids are 64-odd characters; this bounds what is stored
# An attachment may name a file uploaded to Siyu (``BroadcastMedia``) instead of a WeCom media id: the send
# uploads it to WeCom and puts the media id in its place.
SIYU_MEDIA = "siyu_media"
# WeCom's upload limits (上传临时素材): image ≤ 10 MB (JPG, PNG), video ≤ 10 MB (MP4), file ≤ 20 MB.
MEDIA_MAX_BYTES = {"image": 10 << 20, "video": 10 << 20, "file": 20 << 20}


def _bytes(value: str) -> int:
    return len(value.encode("utf-8"))


def _text(body: dict[str, Any], name: str, where: str, *, required: bool, max_bytes: int) -> str:
    value = body.get(name, "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise Invalid(
            _("%(field)s must be text") % {"field": name}, field=where, code=ErrorCode.BAD_ATTACHMENT
        )
    value = value.strip()
    if required and not value:
        raise Invalid(
            _("%(field)s is required") % {"field": name}, field=where, code=ErrorCode.BAD_ATTACHMENT
        )
    if _bytes(value) > max_bytes:
        raise Invalid(
            _("%(field)s is longer than WeCom's %(max)d bytes") % {"field": name, "max": max_bytes},
            field=where,
            code=ErrorCode.BAD_ATTACHMENT,
        )
    return value


def _url(body: dict[str, Any], name: str, where: str, *, required: bool) -> str:
    value = _text(body, name, where, required=required, max_bytes=URL_MAX)
    if value and (urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).netloc):
        raise Invalid(
            _("%(field)s must be an http(s) address") % {"field": name},
            field=where,
            code=ErrorCode.BAD_ATTACHMENT,
        )
    return value


def _siyu_media(body: dict[str, Any], where: str) -> int | None:
    value = body.get(SIYU_MEDIA)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise Invalid(
            _("%(field)s must be an id") % {"field": SIYU_MEDIA}, field=where, code=ErrorCode.BAD_ATTACHMENT
        )
    return int(value)


def media_ids(attachments: Sequence[dict[str, Any]]) -> dict[int, str]:
    """The uploaded files (``siyu_media`` ids) the attachments name, with the kind each must be."""
    found: dict[int, str] = {}
    for item in attachments:
        kind = str(item.get("msgtype", ""))
        body = item.get(kind) or {}
        if isinstance(body, dict) and SIYU_MEDIA in body:
            found[int(body[SIYU_MEDIA])] = kind
    return found


def check_text(text: str) -> str:
    """The message text, refused beyond WeCom's 4,000 bytes."""
    if _bytes(text) > TEXT_MAX_BYTES:
        raise Invalid(
            _("the text is %(size)d bytes; WeCom takes at most %(max)d (a Chinese character is 3 bytes)")
            % {"size": _bytes(text), "max": TEXT_MAX_BYTES},
            field="text",
            code=ErrorCode.TEXT_TOO_LONG,
        )
    return text


def _attachment(item: Any, index: int, *, moment: bool) -> dict[str, Any]:
    where = f"attachments.{index}"
    if not isinstance(item, dict):
        raise Invalid(_("an attachment must be an object"), field=where, code=ErrorCode.BAD_ATTACHMENT)
    msgtype = item.get("msgtype")
    kinds = MOMENT_KINDS if moment else KINDS
    if msgtype not in kinds:
        raise Invalid(
            _("attachments may be %(kinds)s") % {"kinds": ", ".join(kinds)},
            field=f"{where}.msgtype",
            code=ErrorCode.BAD_ATTACHMENT,
        )
    body = item.get(msgtype)
    if not isinstance(body, dict):
        raise Invalid(
            _("the attachment needs its %(kind)s object") % {"kind": msgtype},
            field=f"{where}.{msgtype}",
            code=ErrorCode.BAD_ATTACHMENT,
        )
    at = f"{where}.{msgtype}"
    clean: dict[str, Any] = {}
    uploaded = _siyu_media(body, f"{at}.{SIYU_MEDIA}") if msgtype in MEDIA_MAX_BYTES else None
    if uploaded is not None:
        clean = {SIYU_MEDIA: uploaded}
    elif msgtype == "image":
        media_id = _text(body, "media_id", f"{at}.media_id", required=moment, max_bytes=MEDIA_ID_MAX)
        pic_url = "" if moment else _url(body, "pic_url", f"{at}.pic_url", required=False)
        if not media_id and not pic_url:
            raise Invalid(
                _("an image needs its address (pic_url) or an uploaded media_id"),
                field=f"{at}.pic_url",
                code=ErrorCode.BAD_ATTACHMENT,
            )
        clean = {"media_id": media_id} if media_id else {"pic_url": pic_url}
    elif msgtype == "link":
        clean["title"] = _text(body, "title", f"{at}.title", required=True, max_bytes=LINK_TITLE_MAX)
        clean["url"] = _url(body, "url", f"{at}.url", required=True)
        if moment:
            clean["media_id"] = _text(
                body, "media_id", f"{at}.media_id", required=True, max_bytes=MEDIA_ID_MAX
            )
        else:
            picurl = _url(body, "picurl", f"{at}.picurl", required=False)
            desc = _text(body, "desc", f"{at}.desc", required=False, max_bytes=LINK_DESC_MAX)
            clean.update({k: v for k, v in (("picurl", picurl), ("desc", desc)) if v})
    elif msgtype == "miniprogram":
        clean["title"] = _text(body, "title", f"{at}.title", required=True, max_bytes=MINIPROGRAM_TITLE_MAX)
        for name in ("pic_media_id", "appid", "page"):
            clean[name] = _text(body, name, f"{at}.{name}", required=True, max_bytes=MEDIA_ID_MAX)
    else:  # video, file: uploaded media
        clean["media_id"] = _text(body, "media_id", f"{at}.media_id", required=True, max_bytes=MEDIA_ID_MAX)
    return {"msgtype": str(msgtype), str(msgtype): clean}


def check_content(
    *, text: str, attachments: Sequence[Any], moment: bool = False
) -> tuple[str, list[dict[str, Any]]]:
    """The text and attachments as they will be sent; ``Invalid`` for anything WeCom would refuse."""
    text = check_text((text or "").strip())
    if not isinstance(attachments, list | tuple):
        raise Invalid(_("attachments must be a list"), field="attachments", code=ErrorCode.BAD_ATTACHMENT)
    if len(attachments) > ATTACHMENTS_MAX:
        raise Invalid(
            _("at most %(max)d attachments (%(count)d given)")
            % {"max": ATTACHMENTS_MAX, "count": len(attachments)},
            field="attachments",
            code=ErrorCode.BAD_ATTACHMENT,
        )
    clean = [_attachment(item, i, moment=moment) for i, item in enumerate(attachments)]
    if moment and clean:
        kinds = {a["msgtype"] for a in clean}
        if len(kinds) > 1 or (kinds & {"video", "link"} and len(clean) > 1):
            raise Invalid(
                _("a moment carries up to %(max)d images, or one video, or one link")
                % {"max": MOMENT_IMAGES_MAX},
                field="attachments",
                code=ErrorCode.BAD_ATTACHMENT,
            )
    if not text and not clean:
        raise Invalid(_("write a text or add an attachment"), field="text")
    return text, clean
