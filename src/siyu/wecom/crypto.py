"""WeCom callback signatures and message encryption (企业微信 加解密方案).

- signature: SHA-1 over the lexicographically sorted ``[token, timestamp, nonce, encrypt]`` strings;
- cipher: AES-256-CBC with key ``b64decode(EncodingAESKey + "=")`` and IV = the key's first 16 bytes;
- plaintext: ``random(16) || len(msg) as big-endian uint32 || msg || receiveid``, PKCS#7-padded to **32-byte**
  blocks (WeCom's own block size, not AES's 16).
The AES primitive is the ``cryptography`` package's; padding is done here because WeCom's 32-byte variant is
not the standard one the library offers for AES.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 32  # WeCom PKCS#7 block size
RANDOM_PREFIX = 16


class CallbackCryptoError(Exception):
    """A callback that cannot be trusted or read. ``code`` is WeCom's sample-library error code."""

    code = -40000

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class SignatureError(CallbackCryptoError):
    code = -40001  # ValidateSignature_Error


class IllegalAesKeyError(CallbackCryptoError):
    code = -40004


class ReceiveIdError(CallbackCryptoError):
    code = -40005  # ValidateCorpid_Error


class DecryptError(CallbackCryptoError):
    code = -40007


class IllegalBufferError(CallbackCryptoError):
    code = -40008


class Base64Error(CallbackCryptoError):
    code = -40010


def signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    """WeCom's msg_signature: sha1 of the four strings sorted and concatenated, lower-case hex."""
    joined = "".join(sorted([token, timestamp, nonce, encrypt]))
    return hashlib.sha1(joined.encode(), usedforsecurity=False).hexdigest()


def aes_key_from_encoding_key(encoding_aes_key: str) -> bytes:
    if len(encoding_aes_key) != 43:
        raise IllegalAesKeyError(f"EncodingAESKey must be 43 characters, got {len(encoding_aes_key)}")
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except binascii.Error as exc:
        raise IllegalAesKeyError("EncodingAESKey is not base64") from exc
    if len(key) != 32:  # pragma: no cover - 43 base64 characters always give 32 bytes
        raise IllegalAesKeyError("EncodingAESKey must decode to 32 bytes")
    return key


def pad(data: bytes) -> bytes:
    amount = BLOCK - len(data) % BLOCK  # 1..32; a whole block when already aligned
    return data + bytes([amount]) * amount


def unpad(data: bytes) -> bytes:
    if not data:
        raise IllegalBufferError("empty plaintext")
    amount = data[-1]
    if amount < 1 or amount > BLOCK or amount > len(data) or data[-amount:] != bytes([amount]) * amount:
        raise DecryptError("bad padding: wrong EncodingAESKey or corrupted message")
    return data[:-amount]


@dataclass(frozen=True)
class CallbackCrypto:
    """Sign, verify, encrypt and decrypt for one callback configuration (token, key, receiveid)."""

    token: str
    encoding_aes_key: str
    receive_id: str

    @property
    def key(self) -> bytes:
        return aes_key_from_encoding_key(self.encoding_aes_key)

    def _cipher(self) -> Cipher[modes.CBC]:
        key = self.key
        return Cipher(algorithms.AES(key), modes.CBC(key[:16]))

    def verify(self, msg_signature: str, timestamp: str, nonce: str, encrypt: str) -> None:
        expected = signature(self.token, timestamp, nonce, encrypt)
        if not hmac.compare_digest(expected, (msg_signature or "").lower()):
            raise SignatureError("msg_signature does not match: wrong Token or a forged request")

    def decrypt(self, encrypt: str) -> bytes:
        """Decrypt an ``Encrypt`` value and check its receiveid; returns the message bytes."""
        try:
            ciphertext = base64.b64decode(encrypt, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise Base64Error("Encrypt is not valid base64") from exc
        if not ciphertext or len(ciphertext) % 16:
            raise DecryptError("ciphertext is not a whole number of AES blocks")
        decryptor = self._cipher().decryptor()
        plain = unpad(decryptor.update(ciphertext) + decryptor.finalize())
        if len(plain) < RANDOM_PREFIX + 4:
            raise IllegalBufferError("plaintext too short")
        (length,) = struct.unpack(">I", plain[RANDOM_PREFIX : RANDOM_PREFIX + 4])
        start = RANDOM_PREFIX + 4
        if start + length > len(plain):
            raise IllegalBufferError("message length exceeds the plaintext")
        message = plain[start : start + length]
        receive_id = plain[start + length :].decode("utf-8", errors="replace")
        if receive_id != self.receive_id:
            raise ReceiveIdError(f"receiveid {receive_id!r} is not {self.receive_id!r}")
        return message

    def verify_and_decrypt(self, msg_signature: str, timestamp: str, nonce: str, encrypt: str) -> bytes:
        self.verify(msg_signature, timestamp, nonce, encrypt)
        return self.decrypt(encrypt)

    def encrypt(self, message: bytes, *, random_prefix: bytes | None = None) -> str:
        """Encrypt a message as WeCom does (``random_prefix`` is fixed only to reproduce vectors)."""
        prefix = random_prefix if random_prefix is not None else os.urandom(RANDOM_PREFIX)
        if len(prefix) != RANDOM_PREFIX:
            raise ValueError("random prefix must be 16 bytes")
        plain = prefix + struct.pack(">I", len(message)) + message + self.receive_id.encode()
        encryptor = self._cipher().encryptor()
        return base64.b64encode(encryptor.update(pad(plain)) + encryptor.finalize()).decode()

    def sign(self, timestamp: str, nonce: str, encrypt: str) -> str:
        return signature(self.token, timestamp, nonce, encrypt)
