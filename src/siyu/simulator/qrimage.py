"""The images behind contact ways' ``qr_code`` URLs, served at WeCom's image path (``/wwpic/<id>/0``).

A real QR code (the ``qrcode`` library): it encodes the simulator's own scan link for the way, so opening the
code's target adds a customer through it (``GET /_sim/scan/<config_id>``), as scanning does in WeCom.
"""

from __future__ import annotations

import io
import threading
from typing import TYPE_CHECKING

import qrcode

if TYPE_CHECKING:
    from siyu.simulator.app import Simulator

PREFIX = "/wwpic/"
# WeCom's contact-way images are 430 px squares (WeChat's 15 cm QR size); 10-pixel modules come close.
BOX_SIZE = 10
BORDER = 4

_cache: dict[str, bytes] = {}
_lock = threading.Lock()


def image_for(sim: Simulator, path: str) -> bytes | None:
    """The PNG of the contact way whose ``qr_code`` ends with ``path``, or None."""
    with sim.state.lock:
        way = next((w for w in sim.state.contact_ways.values() if w.qr_code.endswith(path)), None)
        config_id = way.config_id if way is not None else ""
    if not config_id:
        return None
    with _lock:
        cached = _cache.get(config_id)
    if cached is not None:
        return cached
    code = qrcode.QRCode(box_size=BOX_SIZE, border=BORDER)
    code.add_data(f"{sim.base_url}/_sim/scan/{config_id}")
    code.make(fit=True)
    out = io.BytesIO()
    code.make_image().save(out)
    data = out.getvalue()
    with _lock:
        _cache[config_id] = data
    return data
