"""Authenticated encryption of stored secrets (AES-256-GCM, key derived from WEBHOOKS_SECRET_KEY).

Each ciphertext is bound to its authorization id and field name (GCM associated data), so a
ciphertext copied into another record or field fails to decrypt instead of leaking.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "enc:v1:"
MIN_KEY_LENGTH = 16
REDACTED = "***"


class SecretKeyError(ValueError):
    """No usable key, or a ciphertext that this key cannot open."""


class SecretBox:
    """Encrypts and decrypts secret strings with one key."""

    def __init__(self, key: str) -> None:
        if len(key) < MIN_KEY_LENGTH:
            raise SecretKeyError(
                f"WEBHOOKS_SECRET_KEY must be at least {MIN_KEY_LENGTH} characters"
            )
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"audience-webhooks/v1"
        ).derive(key.encode())
        self._aead = AESGCM(derived)

    @staticmethod
    def is_encrypted(value: str) -> bool:
        return value.startswith(PREFIX)

    def encrypt(self, plaintext: str, context: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), context.encode())
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()

    def decrypt(self, token: str, context: str) -> str:
        if not token.startswith(PREFIX):
            raise SecretKeyError(f"{context}: value is not encrypted")
        try:
            blob = base64.urlsafe_b64decode(token[len(PREFIX) :])
            return self._aead.decrypt(blob[:12], blob[12:], context.encode()).decode()
        except (InvalidTag, ValueError):
            raise SecretKeyError(
                f"{context}: cannot decrypt (WEBHOOKS_SECRET_KEY differs from the one that "
                "stored it, or the value was altered)"
            ) from None
