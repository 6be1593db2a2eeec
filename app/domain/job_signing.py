"""A signed job's sealed signing secrets (`StoredJob.signing_keys`): made at apply, opened
by workers and rotations, re-sealed by key rotation, summarised for `jobs show`. Pure: the
`SecretBox` does the cryptography, with the job id bound as associated data."""

from __future__ import annotations

from typing import Any

from app.domain.secrets import SecretBox
from app.domain.signing import SigningKey, generate_secret
from app.domain.stored_job import SealedSigningKey, signing_context
from app.domain.timefmt import rfc3339


def open_keys(
    job_id: str, sealed: tuple[SealedSigningKey, ...], box: SecretBox
) -> list[SigningKey]:
    """The secrets in the clear; SecretKeyError when no configured key opens one."""
    context = signing_context(job_id)
    return [SigningKey(box.decrypt(k.sealed, context), k.expires_at) for k in sealed]


def seal_keys(job_id: str, keys: list[SigningKey], box: SecretBox) -> tuple[SealedSigningKey, ...]:
    context = signing_context(job_id)
    return tuple(
        SealedSigningKey(sealed=box.encrypt(k.secret, context), expires_at=k.expires_at)
        for k in keys
    )


def keys_at_apply(
    job_id: str, before: tuple[SealedSigningKey, ...], box: SecretBox, now: float
) -> tuple[tuple[SealedSigningKey, ...], str | None]:
    """A signed job's keys when it is applied: those it has (expired ones dropped), or a
    new secret when it has no current one; the new secret is returned to be shown once."""
    kept = tuple(k for k in before if k.valid_at(now))
    if any(k.expires_at is None for k in kept):
        return kept, None
    secret = generate_secret()
    return (*seal_keys(job_id, [SigningKey(secret)], box), *kept), secret


def reseal_keys(
    job_id: str, sealed: tuple[SealedSigningKey, ...], box: SecretBox
) -> tuple[SealedSigningKey, ...] | None:
    """The keys re-encrypted under the current key, or None when they already are;
    SecretKeyError when no configured key opens one."""
    context = signing_context(job_id)
    changed = False
    out = []
    for key in sealed:
        resealed = box.reseal(key.sealed, context)
        changed = changed or resealed is not None
        out.append(key if resealed is None else key.model_copy(update={"sealed": resealed}))
    return tuple(out) if changed else None


def signing_summary(sealed: tuple[SealedSigningKey, ...], now: float) -> dict[str, Any]:
    """How many secrets sign the job's requests, and until when the previous ones do;
    never the secrets."""
    live = [k for k in sealed if k.valid_at(now)]
    return {
        "secrets": len(live),
        "previous_until": [rfc3339(k.expires_at) for k in live if k.expires_at is not None],
    }
