"""Authenticated encryption of stored secrets (AES-256-GCM) and the keys that protect them.

Keys (WEBHOOKS_SECRET_KEY, and for reading only WEBHOOKS_SECRET_KEY_PREVIOUS):

- Strong key, the documented format: `awk1:` + 32 random bytes in URL-safe base64 (padding
  optional), made by `webhooks secret-key generate`. The AES key is derived from those bytes
  with HKDF-SHA256. Values it encrypts are written `enc:v2:<key id>:<base64>`.
- Legacy passphrase: any other string of 16+ characters, as accepted before the strong
  format existed. The AES key is derived from the passphrase exactly as before (HKDF-SHA256,
  no salt), and values are still written `enc:v1:<base64>`, so existing deployments keep
  working unchanged; callers warn that it should be replaced (see `SecretKey.legacy`).

Every key has a public `key_id` (8 hex digits, derived one-way from the key) to say which
key a value needs. Each ciphertext is bound to its authorization id and field name (GCM
associated data), so a ciphertext copied into another record or field fails to decrypt
instead of leaking. A `SecretBox` encrypts with its current key and decrypts with the current
or any previous key; `reseal` moves a value to the current key (rotation).
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

if TYPE_CHECKING:
    from app.settings import Settings

PREFIX = "enc:v1:"  # legacy passphrase keys: enc:v1:<base64(nonce + sealed)>
PREFIX_V2 = "enc:v2:"  # strong keys: enc:v2:<key id>:<base64(nonce + sealed)>
KEY_PREFIX = "awk1:"
KEY_BYTES = 32
MIN_KEY_LENGTH = 16  # legacy passphrases
REDACTED = "***"
KEY_VAR = "WEBHOOKS_SECRET_KEY"
PREVIOUS_VAR = "WEBHOOKS_SECRET_KEY_PREVIOUS"
_NONCE = 12


class SecretKeyError(ValueError):
    """No usable key, or a ciphertext that the configured keys cannot open."""


class InvalidSecretKey(SecretKeyError):
    """A configured key that is malformed (too short, bad strong key); the message names
    the variable and never holds the key."""


def _hkdf(material: bytes, info: bytes, length: int = 32) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(material)


@dataclass(frozen=True, slots=True)
class SecretKey:
    """One parsed key: its public id, whether it is a legacy passphrase, its cipher."""

    key_id: str
    legacy: bool
    aead: AESGCM = field(repr=False, compare=False)
    # Keys the erasure ids of deleted users (`app/domain/erasure.py`): another HKDF output
    # of the same material, so knowing erasure ids tells nothing of the cipher key.
    erasure_mac: bytes = field(default=b"", repr=False, compare=False)

    @property
    def kind(self) -> str:
        return "legacy passphrase" if self.legacy else "awk1"


def generate_key() -> str:
    """A new strong key: `awk1:` + 32 random bytes, URL-safe base64 without padding."""
    return KEY_PREFIX + base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode().rstrip("=")


def parse_key(value: str, variable: str = KEY_VAR) -> SecretKey:
    """Parse a key (surrounding whitespace ignored); InvalidSecretKey naming `variable`."""
    value = value.strip()
    if value.startswith(KEY_PREFIX):
        encoded = value[len(KEY_PREFIX) :]
        try:
            raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != KEY_BYTES or not encoded.rstrip("=").isascii():
            raise InvalidSecretKey(
                f"{variable} is not a valid {KEY_PREFIX} key ({KEY_PREFIX} followed by "
                f"{KEY_BYTES} bytes in URL-safe base64); make one with "
                "`webhooks secret-key generate`"
            )
        key_id = _hkdf(raw, b"audience-webhooks/awk1/key-id", 4).hex()
        return SecretKey(
            key_id,
            False,
            AESGCM(_hkdf(raw, b"audience-webhooks/awk1/aes-gcm")),
            _hkdf(raw, b"audience-webhooks/awk1/erasure-id"),
        )
    if len(value) < MIN_KEY_LENGTH:
        raise InvalidSecretKey(
            f"{variable} is too short ({len(value)} characters); use a key made by "
            f"`webhooks secret-key generate` (a legacy passphrase needs {MIN_KEY_LENGTH}+)"
        )
    material = value.encode()
    key_id = _hkdf(material, b"audience-webhooks/v1/key-id", 4).hex()
    return SecretKey(
        key_id,
        True,
        AESGCM(_hkdf(material, b"audience-webhooks/v1")),
        _hkdf(material, b"audience-webhooks/v1/erasure-id"),
    )


def split_previous(value: str | None) -> list[str]:
    """The keys of a comma-separated WEBHOOKS_SECRET_KEY_PREVIOUS (blanks skipped)."""
    return [part.strip() for part in (value or "").split(",") if part.strip()]


class SecretBox:
    """Encrypts with the current key; decrypts with the current or a previous key."""

    def __init__(self, key: str, previous: Iterable[str] = ()) -> None:
        self.current = parse_key(key)
        self.previous = [
            parse_key(p, f"{PREVIOUS_VAR} (entry {i})")
            for i, p in enumerate(previous, start=1)
            if p.strip()
        ]
        self._by_id = {k.key_id: k for k in [*self.previous, self.current]}

    @property
    def keys(self) -> list[SecretKey]:
        """Current key first, then the previous ones."""
        return [self.current, *(k for k in self.previous if k.key_id != self.current.key_id)]

    @staticmethod
    def is_encrypted(value: str) -> bool:
        return value.startswith((PREFIX, PREFIX_V2))

    def encrypt(self, plaintext: str, context: str) -> str:
        key = self.current
        nonce = os.urandom(_NONCE)
        sealed = key.aead.encrypt(nonce, plaintext.encode(), context.encode())
        blob = base64.urlsafe_b64encode(nonce + sealed).decode()
        return PREFIX + blob if key.legacy else f"{PREFIX_V2}{key.key_id}:{blob}"

    def decrypt(self, token: str, context: str) -> str:
        return self.open(token, context)[0]

    def open(self, token: str, context: str) -> tuple[str, SecretKey]:
        """The plaintext and the key that opened it; SecretKeyError naming `context` (the
        authorization id and field) and which key the value needs, never the value."""
        if token.startswith(PREFIX_V2):
            key_id, sep, blob = token[len(PREFIX_V2) :].partition(":")
            key = self._by_id.get(key_id)
            if not sep:
                raise SecretKeyError(f"{context}: malformed encrypted value")
            if key is None:
                raise SecretKeyError(
                    f"{context}: encrypted with key {key_id}, which is neither {KEY_VAR} "
                    f"(key {self.current.key_id}) nor in {PREVIOUS_VAR}"
                )
            candidates = [key]
        elif token.startswith(PREFIX):
            blob = token[len(PREFIX) :]
            candidates = [k for k in self.keys if k.legacy]
            if not candidates:
                raise SecretKeyError(
                    f"{context}: encrypted with a legacy passphrase key, and neither {KEY_VAR} "
                    f"nor {PREVIOUS_VAR} holds one"
                )
        else:
            raise SecretKeyError(f"{context}: value is not encrypted")
        try:
            raw = base64.urlsafe_b64decode(blob)
        except (binascii.Error, ValueError):
            raise SecretKeyError(f"{context}: malformed encrypted value") from None
        for key in candidates:
            try:
                opened = key.aead.decrypt(raw[:_NONCE], raw[_NONCE:], context.encode())
                return opened.decode(), key
            except (InvalidTag, ValueError):
                continue
        which = "key " + candidates[0].key_id if token.startswith(PREFIX_V2) else "legacy keys"
        raise SecretKeyError(
            f"{context}: cannot decrypt with {which} of {KEY_VAR}/{PREVIOUS_VAR} (stored with "
            "another key, or the value was altered)"
        )

    def is_current(self, token: str) -> bool:
        """Whether `token` is written in the current key's format and names it (v2); a v1
        value is current only if the current key is legacy and opens it (see `reseal`)."""
        if self.current.legacy:
            return token.startswith(PREFIX)
        return token.startswith(f"{PREFIX_V2}{self.current.key_id}:")

    def reseal(self, token: str, context: str) -> str | None:
        """`token` re-encrypted with the current key, or None if the current key already
        protects it. SecretKeyError if no configured key opens it."""
        plaintext, key = self.open(token, context)
        if key is self.current and self.is_current(token):
            return None
        return self.encrypt(plaintext, context)


def box_from_settings(settings: Settings) -> SecretBox | None:
    """The box of WEBHOOKS_SECRET_KEY (+ WEBHOOKS_SECRET_KEY_PREVIOUS); None without a key.

    InvalidSecretKey for a malformed key, or for previous keys without a current one.
    """
    previous_value = settings.secret_key_previous
    previous = split_previous(previous_value.get_secret_value() if previous_value else None)
    if settings.secret_key is None:
        if previous:
            raise InvalidSecretKey(f"{PREVIOUS_VAR} is set but {KEY_VAR} is not")
        return None
    key = settings.secret_key.get_secret_value()
    if not key.strip():
        raise InvalidSecretKey(f"{KEY_VAR} is set but empty")
    return SecretBox(key, previous)
