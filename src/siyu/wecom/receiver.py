"""The callback receiver's logic: find the corp's callback configuration, verify, decrypt, store once.

HTTP lives in ``views.callback``; this module is plain functions so tests and the benchmark can call them.
Nothing here logs message contents: only the corp, the event type and the outcome.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

from siyu.core import crypto as field_crypto
from siyu.corps.models import Corp
from siyu.wecom.crypto import CallbackCrypto, CallbackCryptoError
from siyu.wecom.inbox import store_message, wake_worker
from siyu.wecom.messages import MessageError, parse_xml

logger = logging.getLogger(__name__)


class UnknownCorp(Exception):
    """No corp with this corpid, or one without a callback Token and EncodingAESKey."""


class BadCallback(Exception):
    """A callback that is not WeCom's well-formed envelope (before any signature check)."""


@dataclass(frozen=True)
class CallbackConfig:
    """What the receiver needs of a corp: its id and the cipher of its callback configuration."""

    corp_id: int
    crypto: CallbackCrypto


@functools.lru_cache(maxsize=1024)
def _crypto(corpid: str, token_encrypted: str, aes_key_encrypted: str) -> CallbackCrypto | None:
    # Keyed on the encrypted values, so a changed Token or key is a new entry: nothing stale is ever used, and
    # the two Fernet decryptions are paid once per configuration instead of once per callback.
    token = field_crypto.decrypt(token_encrypted)
    aes_key = field_crypto.decrypt(aes_key_encrypted)
    if not token or not aes_key:
        return None
    return CallbackCrypto(token=token, encoding_aes_key=aes_key, receive_id=corpid)


def callback_config(corpid: str) -> CallbackConfig:
    """The corp's callback configuration (one indexed query), or ``UnknownCorp``."""
    row = Corp.objects.filter(corpid=corpid).values_list("pk", "token_encrypted", "aes_key_encrypted").first()
    if row is None:
        raise UnknownCorp(corpid)
    pk, token_encrypted, aes_key_encrypted = row
    crypto = _crypto(corpid, token_encrypted, aes_key_encrypted)
    if crypto is None:
        raise UnknownCorp(corpid)
    return CallbackConfig(corp_id=pk, crypto=crypto)


def verify_url(
    config: CallbackConfig, *, msg_signature: str, timestamp: str, nonce: str, echostr: str
) -> bytes:
    """URL verification (GET): the decrypted ``echostr``, to be answered as it is (§2.3).

    Django has already URL-decoded the query; a '+' that arrived unencoded became a space, so it is put back
    (base64 has no spaces).
    """
    echostr = echostr.replace(" ", "+")
    return config.crypto.verify_and_decrypt(msg_signature, timestamp, nonce, echostr)


def read_envelope(body: bytes) -> str:
    """The ``<Encrypt>`` text of a POSTed envelope (§2.4)."""
    try:
        root = parse_xml(body)
    except MessageError as exc:
        raise BadCallback(str(exc)) from exc
    encrypt = root.findtext("Encrypt")
    if not encrypt:
        raise BadCallback("the envelope has no Encrypt element")
    return encrypt.strip()


def accept_event(
    config: CallbackConfig, *, msg_signature: str, timestamp: str, nonce: str, body: bytes
) -> None:
    """Verify and decrypt a POSTed event and store it in the inbox (once); raises before storing anything
    that is not WeCom's. A database error propagates: the view answers 5xx and WeCom delivers again."""
    encrypt = read_envelope(body)
    plaintext = config.crypto.verify_and_decrypt(msg_signature, timestamp, nonce, encrypt)
    stored = store_message(corp_id=config.corp_id, plaintext=plaintext)
    logger.info(
        "wecom callback corp=%s event=%s/%s %s",
        config.corp_id,
        stored.event,
        stored.change_type,
        "stored" if stored.created else "duplicate",
    )
    if stored.pending:  # new, or an identical message that makes the stored row worked again
        wake_worker(config.corp_id)


__all__ = [
    "BadCallback",
    "CallbackConfig",
    "CallbackCryptoError",
    "UnknownCorp",
    "accept_event",
    "callback_config",
    "read_envelope",
    "verify_url",
]
