"""Signed requests as Standard Webhooks defines them (https://www.standardwebhooks.com).

A job with `signed: true` has a signing secret, `whsec_` + base64 of 32 random bytes,
generated when the job is applied and shown once. Each request then carries
`webhook-signature: v1,<base64 of HMAC-SHA256(secret, "<webhook-id>.<webhook-timestamp>.<body>")>`.
`webhook-id` stays the same across retries; `webhook-timestamp` is the time of each attempt,
as the specification says (receivers reject stale timestamps to stop replays, so a retry
an hour later must carry a fresh one and a fresh signature).

Rotation: the new secret signs at once, and the previous one keeps signing beside it
(space-separated signatures) until it expires, so receivers can switch without losing a
request. Pure: the secrets are sealed and unsealed by the callers (`SecretBox`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

PREFIX = "whsec_"
SECRET_BYTES = 32
MIN_SECRET_BYTES = 24  # the specification's minimum
MAX_SECRET_BYTES = 64
DEFAULT_OVERLAP_S = 24 * 3600.0


class SigningSecretError(ValueError):
    """A signing secret that is not `whsec_` + base64 of 24 to 64 bytes."""


def generate_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_bytes(secret: str) -> bytes:
    """The key of a `whsec_...` secret; the error never repeats the secret."""
    if not secret.startswith(PREFIX):
        raise SigningSecretError("a signing secret starts with 'whsec_'")
    try:
        key = base64.b64decode(secret[len(PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise SigningSecretError("a signing secret is 'whsec_' followed by base64") from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise SigningSecretError(
            f"a signing secret holds {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes, not {len(key)}"
        )
    return key


def signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64>` signature of the request."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A job's signing secret; `expires_at` (epoch seconds) is set once it was rotated out."""

    secret: str
    expires_at: float | None = None

    def valid_at(self, now: float) -> bool:
        return self.expires_at is None or now < self.expires_at


def live_keys(keys: Iterable[SigningKey], now: float) -> list[SigningKey]:
    """The keys that still sign at `now`, the current one (no expiry) first."""
    alive = [k for k in keys if k.valid_at(now)]
    return sorted(alive, key=lambda k: (k.expires_at is not None, -(k.expires_at or 0.0)))


def signature_header(keys: Sequence[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: one signature per live key, space-separated."""
    return " ".join(signature(key, msg_id, timestamp, body) for key in keys)


def rotate(
    keys: Iterable[SigningKey], new_secret: str, now: float, overlap_s: float
) -> list[SigningKey]:
    """The keys after a rotation: `new_secret` current, the current one expiring after
    `overlap_s`, keys already expired dropped (an earlier previous key keeps its expiry)."""
    secret_bytes(new_secret)
    out = [SigningKey(new_secret)]
    for key in live_keys(keys, now):
        expires = key.expires_at if key.expires_at is not None else now + overlap_s
        if expires > now:
            out.append(SigningKey(key.secret, expires))
    return out
