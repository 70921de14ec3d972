"""Temporary media (素材管理, ``media/upload``): the media_id a message attachment refers to.

WeCom keeps an uploaded file three days ("media_id仅三天内有效"), so callers keep the file and upload it again
when its media_id is older than ``MEDIA_REUSE``. Uploads go through the gateway like every call (token,
limits, retries); an upload repeated by a retry only leaves an unused media_id behind, which WeCom drops.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from siyu.core.clock import now
from siyu.corps.models import Corp
from siyu.wecom.gateway import Gateway, Upload
from siyu.wecom.limits import Priority

UPLOAD = "media/upload"
MEDIA_TYPES = ("image", "voice", "video", "file")
# media_id lasts 3 days; one is re-used for at most 2½, so a message queued with it still finds it valid.
MEDIA_LIFETIME = dt.timedelta(days=3)
MEDIA_REUSE = dt.timedelta(days=2, hours=12)
# WeCom's upload limits (上传的媒体文件限制): more than 5 bytes; image 10 MB (JPG, PNG), voice 2 MB (AMR),
# video 10 MB (MP4), file 20 MB.
MIN_BYTES = 6
MAX_BYTES = {"image": 10 << 20, "voice": 2 << 20, "video": 10 << 20, "file": 20 << 20}


@dataclass(frozen=True)
class Uploaded:
    """A media_id and when WeCom took the file."""

    media_id: str
    uploaded_at: dt.datetime


def still_valid(uploaded_at: dt.datetime | None, at: dt.datetime | None = None) -> bool:
    """Whether a media_id uploaded at ``uploaded_at`` may still be used in a message sent now."""
    return uploaded_at is not None and (at or now()) < uploaded_at + MEDIA_REUSE


def upload_media(
    *,
    corp: Corp,
    kind: str,
    filename: str,
    content: bytes,
    content_type: str = "application/octet-stream",
    priority: Priority = Priority.USER,
) -> Uploaded:
    """Upload a file as temporary media; returns its media_id. Raises ``WeComError`` when WeCom refuses."""
    if kind not in MEDIA_TYPES:
        raise ValueError(f"media type must be one of {', '.join(MEDIA_TYPES)}")
    gateway = Gateway(corp, priority=priority)
    data = gateway.call(
        UPLOAD,
        method="POST",
        params={"type": kind},
        upload=Upload(filename=filename, content=content, content_type=content_type),
        idempotent=True,
    )
    return Uploaded(media_id=str(data["media_id"]), uploaded_at=now())
