"""A channel's QR code in print sizes, and a printable poster (title, text, QR), drawn with Pillow.

The QR code is WeCom's own image at the contact way's ``qr_code`` URL, fetched once through the gateway's HTTP
client (``wecom.gateway.http_client``) and cached; sizes are scaled from it (nearest neighbour, so the modules
stay sharp). The poster needs a font with Chinese glyphs: ``SIYU_POSTER_FONT`` names one, else the usual
system locations are tried (Debian's ``fonts-wqy-microhei``, Noto CJK).
"""

from __future__ import annotations

import hashlib
import io
import os
from functools import lru_cache

import httpx
from django.core.cache import cache
from django.utils.translation import gettext as _
from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

from siyu.channels.models import Channel
from siyu.core.errors import Invalid
from siyu.wecom.gateway import http_client

# WeChat's QR code print sizes (side in cm → pixels), as WeChat's own QR download offers them.
SIZES: dict[str, int] = {"8cm": 258, "12cm": 344, "15cm": 430, "30cm": 860, "50cm": 1280}
DEFAULT_SIZE = "12cm"
# A4 at 150 dpi: sharp enough to print, small enough to send.
POSTER_SIZE = (1240, 1754)
POSTER_QR = 760
CACHE_SECONDS = 24 * 3600  # WeCom's QR code URL of a contact way does not change
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
)
MAX_QR_BYTES = 2 << 20  # WeCom's QR images are a few KB; anything far larger is not one


def _not_available() -> Invalid:
    return Invalid(
        _("the channel has no QR code yet (its contact way is not created in WeCom)"), field="qr_code"
    )


def qr_image(channel: Channel) -> Image.Image:
    """WeCom's QR code image of the channel (fetched once, then cached)."""
    if not channel.qr_code:
        raise _not_available()
    key = "siyu:channel-qr:" + hashlib.sha1(channel.qr_code.encode(), usedforsecurity=False).hexdigest()
    data = cache.get(key)
    if data is None:
        try:
            response = http_client().get(channel.qr_code, follow_redirects=True)
        except httpx.HTTPError:
            raise Invalid(
                _("WeCom's QR code image could not be fetched; try again"), field="qr_code"
            ) from None
        if response.status_code != 200 or len(response.content) > MAX_QR_BYTES:
            raise Invalid(_("WeCom's QR code image could not be fetched; try again"), field="qr_code")
        data = response.content
        cache.set(key, data, CACHE_SECONDS)
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError):
        raise Invalid(_("WeCom's answer for the QR code is not an image"), field="qr_code") from None
    return image.convert("RGB")


def qr_png(channel: Channel, size: str = DEFAULT_SIZE) -> bytes:
    """The QR code as a PNG of one of ``SIZES``."""
    side = SIZES.get(size)
    if side is None:
        raise Invalid(_("size must be one of %(sizes)s") % {"sizes": ", ".join(SIZES)}, field="size")
    image = qr_image(channel)
    resample = Image.Resampling.NEAREST if side >= image.width else Image.Resampling.LANCZOS
    return _png(image.resize((side, side), resample))


@lru_cache(maxsize=8)
def _font_path() -> str | None:
    configured = os.environ.get("SIYU_POSTER_FONT", "")
    for path in (configured, *FONT_CANDIDATES):
        if path and os.path.exists(path):
            return path
    return None


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    path = _font_path()
    if path is None:
        return ImageFont.load_default(size=size)
    return ImageFont.truetype(path, size=size)


def _wrap(
    draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int
) -> list[str]:
    """Lines of ``text`` no wider than ``width``, broken between any characters (Chinese has no spaces)."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for char in paragraph:
            if draw.textlength(line + char, font=font) > width and line:
                lines.append(line)
                line = char
            else:
                line += char
        lines.append(line)
    return lines


def poster_png(channel: Channel, *, title: str = "", text: str = "", footer: str = "") -> bytes:
    """A printable poster: title, text, the QR code and a footer line, on A4 at 150 dpi."""
    width = POSTER_SIZE[0]
    poster = Image.new("RGB", POSTER_SIZE, "white")
    draw = ImageDraw.Draw(poster)
    band = 260
    draw.rectangle((0, 0, width, band), fill=(15, 118, 110))  # the console's brand colour
    title_font = _font(84)
    y = 80
    for line in _wrap(draw, (title or channel.name)[:60], title_font, width - 160)[:2]:
        draw.text((width / 2, y), line, font=title_font, fill="white", anchor="mt")
        y += 100
    body_font = _font(48)
    y = band + 70
    for line in _wrap(draw, text[:300], body_font, width - 200)[:5]:
        draw.text((width / 2, y), line, font=body_font, fill=(30, 41, 59), anchor="mt")
        y += 66
    qr = qr_image(channel).resize((POSTER_QR, POSTER_QR), Image.Resampling.NEAREST)
    qr_top = max(y + 40, 640)
    poster.paste(qr, ((width - POSTER_QR) // 2, qr_top))
    foot_font = _font(40)
    draw.text(
        (width / 2, qr_top + POSTER_QR + 60),
        footer[:60],
        font=foot_font,
        fill=(100, 116, 139),
        anchor="mt",
    )
    return _png(poster)


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()
