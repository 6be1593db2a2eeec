"""Encryption of stored secrets."""

from __future__ import annotations

import pytest

from app.domain.secrets import SecretBox, SecretKeyError

KEY = "correct horse battery staple"


def test_round_trip() -> None:
    box = SecretBox(KEY)
    token = box.encrypt("s3cr3t-value", "auth-1/headers")
    assert SecretBox.is_encrypted(token)
    assert "s3cr3t-value" not in token
    assert box.decrypt(token, "auth-1/headers") == "s3cr3t-value"


def test_same_plaintext_encrypts_differently() -> None:
    box = SecretBox(KEY)
    assert box.encrypt("v", "c") != box.encrypt("v", "c")


def test_wrong_key_raises() -> None:
    token = SecretBox(KEY).encrypt("s3cr3t-value", "auth-1/headers")
    with pytest.raises(SecretKeyError):
        SecretBox("another key of enough length").decrypt(token, "auth-1/headers")


def test_ciphertext_is_bound_to_its_context() -> None:
    box = SecretBox(KEY)
    token = box.encrypt("s3cr3t-value", "auth-1/headers")
    with pytest.raises(SecretKeyError):
        box.decrypt(token, "auth-2/headers")
    with pytest.raises(SecretKeyError):
        box.decrypt(token, "auth-1/params")


def test_altered_or_plain_value_is_refused() -> None:
    box = SecretBox(KEY)
    token = box.encrypt("s3cr3t-value", "c")
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for bad in (tampered, "plaintext"):
        with pytest.raises(SecretKeyError):
            box.decrypt(bad, "c")


@pytest.mark.parametrize("key", ["", "short", "x" * 15])
def test_short_key_is_refused(key: str) -> None:
    with pytest.raises(SecretKeyError):
        SecretBox(key)
