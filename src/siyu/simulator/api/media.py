"""Media uploads that attachments refer to (media/upload, media/upload_attachment; WeCom's 素材管理).

The simulator keeps only the file's name, type and size: a media_id is all the other APIs check.
"""

from __future__ import annotations

from email.parser import BytesParser
from email.policy import HTTP
from typing import TYPE_CHECKING

from siyu.simulator.api.base import Request, Result, route
from siyu.simulator.errors import ApiError

if TYPE_CHECKING:
    from siyu.simulator.app import Simulator

MEDIA_TYPES = ("image", "voice", "video", "file")
ATTACHMENT_MEDIA_TYPES = ("image", "video", "file")
# WeCom's upload limits (上传的媒体文件限制): image ≤ 10 MB, voice ≤ 2 MB, video ≤ 10 MB, file ≤ 20 MB.
SIZE_MAX = {"image": 10 << 20, "voice": 2 << 20, "video": 10 << 20, "file": 20 << 20}


def _media_part(request: Request) -> tuple[str, int]:
    """The uploaded file's name and size (the form field is ``media``); 44001 if there is none."""
    if not request.content_type.lower().startswith("multipart/form-data"):
        raise ApiError(44001, "empty media data")
    header = f"Content-Type: {request.content_type}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(header + request.body)
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "media":
            payload = part.get_payload(decode=True)
            size = len(payload) if isinstance(payload, bytes) else 0
            if not size:
                break
            return str(part.get_filename() or "media"), size
    raise ApiError(44001, "empty media data")


def _store(sim: Simulator, media_type: str, filename: str, size: int) -> str:
    if size > SIZE_MAX[media_type]:
        raise ApiError(40006, "invalid file size")
    media_id = sim.state.random_id("3", 64)
    sim.state.media[media_id] = {"type": media_type, "filename": filename, "size": size}
    return media_id


@route("media/upload")
def upload(sim: Simulator, request: Request) -> Result:
    media_type = request.query.get("type", "")
    if media_type not in MEDIA_TYPES:
        raise ApiError(40004, "invalid media type")
    filename, size = _media_part(request)
    media_id = _store(sim, media_type, filename, size)
    # WeCom writes created_at as a string here (and as a number in upload_attachment).
    return {"type": media_type, "media_id": media_id, "created_at": str(sim.clock.now())}


@route("media/upload_attachment")
def upload_attachment(sim: Simulator, request: Request) -> Result:
    media_type = request.query.get("media_type", "")
    if media_type not in ATTACHMENT_MEDIA_TYPES:
        raise ApiError(40004, "invalid media type")
    if request.query.get("attachment_type") not in ("1", "2"):  # 1 moments, 2 product albums
        raise ApiError(40058, "invalid attachment_type")
    filename, size = _media_part(request)
    media_id = _store(sim, media_type, filename, size)
    return {"type": media_type, "media_id": media_id, "created_at": sim.clock.now()}
