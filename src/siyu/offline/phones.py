"""Phone numbers as people write them (+86 138-0013-8000, 0086 138 0013 8000, (138)00138000…), made
comparable: a mainland mobile becomes its 11 digits, any other number ``+`` and its digits (E.164)."""

from __future__ import annotations

import re

# Mainland China mobile numbers: 11 digits, 1 then 3–9 (MIIT numbering plan).
CN_MOBILE = re.compile(r"^1[3-9]\d{9}$")
# E.164: a country code and subscriber number, at most 15 digits; 8 is the shortest a real number has.
E164_DIGITS = re.compile(r"^[1-9]\d{7,14}$")
SEPARATORS = re.compile(r"[\s\-().·/]")


def normalise_phone(raw: object) -> str | None:
    """The comparable form of a phone number, or None when ``raw`` is not one."""
    if raw is None:
        return None
    if isinstance(raw, float):
        if not raw.is_integer():
            return None
        raw = int(raw)  # a spreadsheet cell that held the number as a number
    text = SEPARATORS.sub("", str(raw).strip())
    if not text:
        return None
    international = text.startswith("+") or text.startswith("00")
    digits = text.lstrip("+")
    if text.startswith("00"):
        digits = text[2:]
    if not digits.isdigit():
        return None
    if international or (len(digits) == 13 and digits.startswith("86")):
        if digits.startswith("86") and CN_MOBILE.match(digits[2:]):
            return digits[2:]
        return f"+{digits}" if E164_DIGITS.match(digits) and not digits.startswith("86") else None
    return digits if CN_MOBILE.match(digits) else None


def mask_phone(phone: str) -> str:
    """A phone number with its middle hidden (138****8000), for lists."""
    if len(phone) < 7:
        return "*" * len(phone)
    return f"{phone[:3]}{'*' * (len(phone) - 7)}{phone[-4:]}"
