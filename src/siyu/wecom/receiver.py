"""The callback receiver's logic: find the corp's callback configuration, verify, decrypt, store once.

Two HTTP fronts share it: ``views.callback`` (Django, the embedded mode and any web process) and the
asynchronous receiver ``receiver_app`` (``siyu receiver``, production on PostgreSQL). Everything both must do
alike lives here: the per-corp configuration cache, URL verification, envelope reading, signature check and
decryption, and the answer each refusal gets. Storing differs only in who commits the inbox row.
Nothing here logs message contents: only the corp, the event type and the outcome.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from siyu.core import crypto as field_crypto
from siyu.corps.models import Corp
from siyu.wecom import groupcommit
from siyu.wecom.crypto import CallbackCrypto, CallbackCryptoError, ReceiveIdError, SignatureError
from siyu.wecom.inbox import Stored, store_message, wake_worker
from siyu.wecom.messages import MessageError, parse_message

logger = logging.getLogger(__name__)

# How long a process answers from its copy of a corp's callback configuration: one query a second per corp and
# process instead of one per callback. A change saved in this process applies at once (the signal below), in
# the others within this long.
CONFIG_CACHE_SECONDS = 1.0
CONFIG_CACHE_SIZE = 1024  # corps (and unknown corpids, so probing them costs a query a second at most)
_configs: dict[str, tuple[float, tuple[int, str, str] | None]] = {}


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


def cached_config(corpid: str) -> CallbackConfig | None:
    """The corp's configuration from this process's copy while it is fresh (no query), else None.

    Raises ``UnknownCorp`` when the fresh copy says there is no such corp.
    """
    cached = _configs.get(corpid)
    if cached is None or cached[0] <= time.monotonic():
        return None
    return _config_from_row(corpid, cached[1])


def load_config(corpid: str) -> CallbackConfig:
    """Read the corp's configuration (one indexed query) and keep a copy for ``CONFIG_CACHE_SECONDS``."""
    moment = time.monotonic()
    row = Corp.objects.filter(corpid=corpid).values_list("pk", "token_encrypted", "aes_key_encrypted").first()
    if len(_configs) >= CONFIG_CACHE_SIZE:
        _configs.clear()
    _configs[corpid] = (moment + CONFIG_CACHE_SECONDS, row)
    return _config_from_row(corpid, row)


def _config_from_row(corpid: str, row: tuple[int, str, str] | None) -> CallbackConfig:
    if row is None:
        raise UnknownCorp(corpid)
    pk, token_encrypted, aes_key_encrypted = row
    crypto = _crypto(corpid, token_encrypted, aes_key_encrypted)
    if crypto is None:
        raise UnknownCorp(corpid)
    return CallbackConfig(corp_id=pk, crypto=crypto)


def callback_config(corpid: str) -> CallbackConfig:
    """The corp's callback configuration (an indexed query at most once a second), or ``UnknownCorp``."""
    return cached_config(corpid) or load_config(corpid)


@receiver([post_save, post_delete], sender=Corp, dispatch_uid="siyu.wecom.receiver.forget_configs")
def forget_configs(**kwargs: Any) -> None:
    """Drop this process's copies of callback configurations (a corp was saved or deleted here)."""
    _configs.clear()


def verify_url(
    config: CallbackConfig, *, msg_signature: str, timestamp: str, nonce: str, echostr: str
) -> bytes:
    """URL verification (GET): the decrypted ``echostr``, to be answered as it is (§2.3).

    The query arrives URL-decoded; a '+' that arrived unencoded became a space, so it is put back (base64 has
    no spaces).
    """
    echostr = echostr.replace(" ", "+")
    return config.crypto.verify_and_decrypt(msg_signature, timestamp, nonce, echostr)


def read_envelope(body: bytes) -> str:
    """The ``<Encrypt>`` text of a POSTed envelope (§2.4)."""
    try:
        envelope = parse_message(body)
    except MessageError as exc:
        raise BadCallback(str(exc)) from exc
    encrypt = envelope.get("Encrypt")
    if not encrypt:
        raise BadCallback("the envelope has no Encrypt element")
    return encrypt


def decode_event(
    config: CallbackConfig, *, msg_signature: str, timestamp: str, nonce: str, body: bytes
) -> bytes:
    """The decrypted message of a POSTed event; raises (``BadCallback``, ``CallbackCryptoError``) for anything
    that is not WeCom's."""
    encrypt = read_envelope(body)
    return config.crypto.verify_and_decrypt(msg_signature, timestamp, nonce, encrypt)


def store_event(*, corp_id: int, plaintext: bytes) -> Stored:
    """Store a decrypted callback from a synchronous caller: through this process's group committer when it
    is on (PostgreSQL), else one INSERT. Returns once the row is committed."""
    if groupcommit.enabled():
        return groupcommit.store(corp_id=corp_id, plaintext=plaintext)
    return store_message(corp_id=corp_id, plaintext=plaintext)


def log_stored(corp_id: int, stored: Stored) -> None:
    # DEBUG: at thousands of callbacks a second a line each would be most of the log; the inbox is the record.
    logger.debug(
        "wecom callback corp=%s event=%s/%s %s",
        corp_id,
        stored.event,
        stored.change_type,
        "stored" if stored.created else "duplicate",
    )


def accept_event(
    config: CallbackConfig, *, msg_signature: str, timestamp: str, nonce: str, body: bytes
) -> None:
    """Verify and decrypt a POSTed event and store it in the inbox (once); raises before storing anything
    that is not WeCom's. Returns once the row is committed; a database error propagates (the view answers 5xx
    and WeCom delivers again)."""
    plaintext = decode_event(config, msg_signature=msg_signature, timestamp=timestamp, nonce=nonce, body=body)
    stored = store_event(corp_id=config.corp_id, plaintext=plaintext)
    log_stored(config.corp_id, stored)
    if stored.pending:  # new, or an identical message that makes the stored row worked again
        wake_worker(config.corp_id)


# --- the answers -------------------------------------------------------------------------------------------

# Most refusals are one short plain-text line; what WeCom reads is the status: 200 is an acknowledgement,
# anything else is delivered again (wecom-api.md §2.5).
PLAIN_TEXT = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class Refusal:
    """The answer to a callback that is not acknowledged."""

    status: int
    text: str


def refusal_for(exc: BaseException, corpid: str) -> Refusal | None:
    """The answer to a callback whose handling raised ``exc`` (logged here, without contents), or None for an
    exception that is a bug (the caller answers 500)."""
    if isinstance(exc, UnknownCorp):
        return Refusal(404, "unknown corp")
    if isinstance(exc, SignatureError | ReceiveIdError):
        logger.warning("wecom callback for %s refused: %s", corpid, type(exc).__name__)
        return Refusal(403, "signature check failed")
    if isinstance(exc, CallbackCryptoError | BadCallback):
        logger.warning("wecom callback for %s refused: %s", corpid, type(exc).__name__)
        return Refusal(400, "malformed callback")
    if isinstance(exc, DatabaseError):
        # Not stored, so not acknowledged: WeCom delivers it again (wecom-api.md §2.5).
        logger.error("wecom callback for %s not stored: %s", corpid, _describe(exc))
        return Refusal(503, "temporarily unavailable")
    return None


def _describe(exc: BaseException) -> str:
    # Exception types, and the committer's own content-free message: a database's message may quote a value.
    if isinstance(exc, groupcommit.NotStored):
        return f"{exc}"
    cause = exc.__cause__
    return type(exc).__name__ + (f" from {type(cause).__name__}" if cause is not None else "")


TOO_LARGE = Refusal(413, "request body too large")


__all__ = [
    "TOO_LARGE",
    "BadCallback",
    "CallbackConfig",
    "CallbackCryptoError",
    "Refusal",
    "UnknownCorp",
    "accept_event",
    "cached_config",
    "callback_config",
    "decode_event",
    "load_config",
    "read_envelope",
    "refusal_for",
    "store_event",
    "verify_url",
]
