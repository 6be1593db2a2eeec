"""Encryption of stored secrets, the key formats, and rotation between keys."""

from __future__ import annotations

import base64

import pytest
from pydantic import SecretStr, ValidationError

from app.domain.secrets import (
    KEY_PREFIX,
    PREFIX,
    PREFIX_V2,
    InvalidSecretKey,
    SecretBox,
    SecretKeyError,
    box_from_settings,
    generate_key,
    parse_key,
    split_previous,
)
from app.settings import Settings

KEY = "correct horse battery staple"
# Written by the code before strong keys existed (HKDF of the passphrase, no salt): every
# deployment's stored authorizations look like this and must keep decrypting.
LEGACY_TOKEN = "enc:v1:c_AZOAK6utRV_GcKDoBD5Ng7KKp6pVOSTkLKcWw8bjXP6WMDO4pfkA=="


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
    for box in (SecretBox(KEY), SecretBox(generate_key())):
        token = box.encrypt("s3cr3t-value", "auth-1/headers")
        with pytest.raises(SecretKeyError):
            box.decrypt(token, "auth-2/headers")
        with pytest.raises(SecretKeyError):
            box.decrypt(token, "auth-1/params")


def test_altered_or_plain_value_is_refused() -> None:
    for box in (SecretBox(KEY), SecretBox(generate_key())):
        token = box.encrypt("s3cr3t-value", "c")
        tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
        for bad in (tampered, "plaintext", PREFIX_V2 + "no-key-id", PREFIX + "%%%"):
            with pytest.raises(SecretKeyError):
                box.decrypt(bad, "c")


@pytest.mark.parametrize("key", ["", "short", "x" * 15, "   padded   "])
def test_short_key_is_refused(key: str) -> None:
    with pytest.raises(InvalidSecretKey):
        SecretBox(key)


def test_legacy_values_still_decrypt() -> None:
    box = SecretBox(KEY)
    assert box.current.legacy
    assert box.decrypt(LEGACY_TOKEN, "auth-1/headers") == "s3cr3t-value"
    # A legacy key keeps writing the old format, which workers not yet upgraded can read.
    assert box.encrypt("v", "c").startswith(PREFIX)


def test_generated_key_is_strong_and_valid() -> None:
    key = generate_key()
    assert key.startswith(KEY_PREFIX)
    raw = base64.urlsafe_b64decode(key[len(KEY_PREFIX) :] + "=")
    assert len(raw) == 32
    assert generate_key() != key
    parsed = parse_key(key)
    assert not parsed.legacy
    assert parsed.key_id == parse_key(f"  {key}=\n").key_id  # padding, whitespace ignored
    assert len(parsed.key_id) == 8 and parsed.key_id not in key


@pytest.mark.parametrize(
    "key",
    [
        KEY_PREFIX,
        KEY_PREFIX + "abc",
        KEY_PREFIX + base64.urlsafe_b64encode(b"x" * 31).decode(),
        KEY_PREFIX + base64.urlsafe_b64encode(b"x" * 33).decode(),
        KEY_PREFIX + "!" * 43,
    ],
)
def test_malformed_strong_key_is_refused_without_echoing_it(key: str) -> None:
    with pytest.raises(InvalidSecretKey) as caught:
        parse_key(key)
    message = str(caught.value)
    assert "WEBHOOKS_SECRET_KEY" in message and "secret-key generate" in message
    assert "\n" not in message
    if len(key) > len(KEY_PREFIX):
        assert key[len(KEY_PREFIX) :] not in message


def test_short_key_message_does_not_echo_the_key() -> None:
    with pytest.raises(InvalidSecretKey) as caught:
        SecretBox("hunter2")
    assert "hunter2" not in str(caught.value)
    assert "too short" in str(caught.value)


def test_strong_key_writes_v2_with_its_key_id() -> None:
    box = SecretBox(generate_key())
    token = box.encrypt("s3cr3t-value", "a/headers")
    assert token.startswith(f"{PREFIX_V2}{box.current.key_id}:")
    assert box.decrypt(token, "a/headers") == "s3cr3t-value"


def test_previous_keys_read_but_never_write() -> None:
    old_key, new_key = generate_key(), generate_key()
    old = SecretBox(old_key)
    token = old.encrypt("s3cr3t-value", "a/params")
    legacy = SecretBox(KEY).encrypt("legacy-value", "a/headers")
    box = SecretBox(new_key, [old_key, KEY])
    assert box.decrypt(token, "a/params") == "s3cr3t-value"
    assert box.decrypt(legacy, "a/headers") == "legacy-value"
    assert box.decrypt(LEGACY_TOKEN, "auth-1/headers") == "s3cr3t-value"
    assert box.encrypt("v", "c").startswith(f"{PREFIX_V2}{box.current.key_id}:")


def test_unknown_key_is_named_in_the_error() -> None:
    writer = SecretBox(generate_key())
    token = writer.encrypt("s3cr3t-value", "crm/headers")
    reader = SecretBox(generate_key())
    with pytest.raises(SecretKeyError) as caught:
        reader.decrypt(token, "crm/headers")
    message = str(caught.value)
    assert "crm/headers" in message
    assert writer.current.key_id in message and reader.current.key_id in message
    assert "s3cr3t" not in message
    with pytest.raises(SecretKeyError, match="legacy passphrase"):
        reader.decrypt(LEGACY_TOKEN, "auth-1/headers")


def test_reseal_moves_values_to_the_current_key() -> None:
    new_key = generate_key()
    box = SecretBox(new_key, [KEY])
    resealed = box.reseal(LEGACY_TOKEN, "auth-1/headers")
    assert resealed is not None and resealed.startswith(PREFIX_V2)
    assert SecretBox(new_key).decrypt(resealed, "auth-1/headers") == "s3cr3t-value"
    assert box.reseal(resealed, "auth-1/headers") is None  # already current
    assert SecretBox(KEY).reseal(LEGACY_TOKEN, "auth-1/headers") is None
    with pytest.raises(SecretKeyError):
        SecretBox(generate_key()).reseal(resealed, "auth-1/headers")


def test_invalid_previous_key_names_its_entry() -> None:
    with pytest.raises(InvalidSecretKey, match=r"WEBHOOKS_SECRET_KEY_PREVIOUS \(entry 2\)"):
        SecretBox(generate_key(), [generate_key(), "short"])


def test_split_previous() -> None:
    assert split_previous(None) == []
    assert split_previous(" a , ,b,") == ["a", "b"]


def settings(key: str | None, previous: str | None = None) -> Settings:
    return Settings(
        secret_key=SecretStr(key) if key is not None else None,
        secret_key_previous=SecretStr(previous) if previous is not None else None,
    )


def test_box_from_settings() -> None:
    assert box_from_settings(settings(None)) is None
    new_key = generate_key()
    box = box_from_settings(settings(new_key, f"{KEY}, {generate_key()}"))
    assert box is not None and len(box.keys) == 3
    for bad in (settings(None, KEY), settings("short")):
        with pytest.raises(InvalidSecretKey):
            box_from_settings(bad)
    for blank in ("", "  "):  # refused by the settings themselves, never "no key"
        with pytest.raises(ValidationError, match="empty or only whitespace"):
            settings(blank)
