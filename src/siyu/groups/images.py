"""Images of group codes: checking an uploaded group QR, and drawing the QR of a code's public link.

An upload is refused unless it is a PNG, JPEG or WebP file of sensible size that decodes as an image and
holds a QR code (read with zxing-cpp); what is kept is the image re-encoded as PNG, so no file the browser
sent is ever served back as it came (no metadata, no polyglot files).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import qrcode
import qrcode.constants
import zxingcpp
from django.utils.translation import gettext as _
from PIL import Image, ImageOps, UnidentifiedImageError

from siyu.core.errors import Invalid

# A WeCom group QR saved from the client is about 50 KB (430×430 px); a phone screenshot of one is a few
# hundred KB. 5 MB leaves room for a large screenshot and refuses anything that is not a QR picture.
MAX_UPLOAD_BYTES = 5 * 1024 * 1024
ALLOWED_FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "WEBP": "WebP"}
MIN_SIDE = 100  # below this a QR code cannot be scanned from a screen
MAX_SIDE = 4096
# Kept images are scaled down to this many pixels on the longer side: a phone screen shows ~1000 px, and a
# QR's modules stay sharp (a group QR has 33–41 modules per side).
KEEP_SIDE = 1080
# Sizes (px) of the printable QR of a code's public link: small for a screen, medium for A5/A4 posters,
# large for banners (a QR printed 10 cm wide at 300 dpi is ~1200 px).
POSTER_SIZES = {"s": 300, "m": 600, "l": 1200}


@dataclass(frozen=True)
class GroupQrImage:
    """An uploaded group QR, checked: the PNG to keep, its size, digest and the QR's text."""

    png: bytes
    width: int
    height: int
    sha256: str
    qr_content: str


def check_group_qr(data: bytes) -> GroupQrImage:
    """Check an uploaded group QR image; a clear ``Invalid`` says what is wrong with it."""
    if not data:
        raise Invalid(_("choose an image file"), field="image")
    if len(data) > MAX_UPLOAD_BYTES:
        raise Invalid(
            _("the image is larger than %(max)d MB") % {"max": MAX_UPLOAD_BYTES // (1024 * 1024)},
            field="image",
        )
    try:
        with Image.open(io.BytesIO(data)) as probe:
            kind = probe.format or ""
            width, height = probe.size
            probe.verify()  # a truncated or corrupt file fails here, before any pixel is decoded
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise Invalid(_("the file is not an image Siyu can read"), field="image") from exc
    if kind not in ALLOWED_FORMATS:
        raise Invalid(_("the image must be a PNG, JPEG or WebP file"), field="image")
    if min(width, height) < MIN_SIDE or max(width, height) > MAX_SIDE:
        raise Invalid(
            _("the image must be between %(min)d and %(max)d pixels on each side")
            % {"min": MIN_SIDE, "max": MAX_SIDE},
            field="image",
        )
    try:
        with Image.open(io.BytesIO(data)) as opened:
            image = ImageOps.exif_transpose(opened).convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise Invalid(_("the file is not an image Siyu can read"), field="image") from exc
    found = zxingcpp.read_barcodes(image, formats=zxingcpp.barcode_formats_from_str("QRCode"))
    if not found:
        raise Invalid(
            _("no QR code was found in the image: upload the group's QR code as WeCom shows it"),
            field="image",
        )
    if max(image.size) > KEEP_SIDE:
        image.thumbnail((KEEP_SIDE, KEEP_SIDE), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    png = out.getvalue()
    return GroupQrImage(
        png=png,
        width=image.size[0],
        height=image.size[1],
        sha256=hashlib.sha256(png).hexdigest(),
        qr_content=found[0].text[:500],
    )


def qr_png(text: str, *, size: int = POSTER_SIZES["m"]) -> bytes:
    """A PNG of a QR code for ``text``, about ``size`` pixels wide, with the quiet zone scanners need."""
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4, box_size=1)
    code.add_data(text)
    code.make(fit=True)
    modules = code.modules_count + 2 * code.border
    code.box_size = max(1, size // modules)
    image = code.make_image(fill_color="black", back_color="white").get_image()
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()
