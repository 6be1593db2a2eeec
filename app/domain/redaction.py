"""Keeping secrets out of text that is logged, stored or shown (errors, excerpts)."""

from __future__ import annotations

from collections.abc import Iterable

from app.domain.secrets import REDACTED

MIN_SECRET_LENGTH = 4  # shorter values would redact ordinary words


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every occurrence of each secret replaced by ***."""
    for secret in sorted(
        {s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True
    ):
        text = text.replace(secret, REDACTED)
    return text
