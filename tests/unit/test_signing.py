"""Standard Webhooks signatures, checked with the `standardwebhooks` package (the reference
implementation a receiver would use), rotation, and the job signer's failure modes."""

from __future__ import annotations

import base64
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from app.delivery.job_signer import JobSigner
from app.domain.secrets import SecretBox, generate_key
from app.domain.signing import (
    SigningKey,
    SigningSecretError,
    generate_secret,
    live_keys,
    rotate,
    secret_bytes,
    signature_header,
)
from app.domain.stored_job import SealedSigningKey, signing_context
from app.transport.auth_resolver import AuthUnavailable


def headers(msg_id: str, timestamp: int, signature: str) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def test_a_generated_secret_is_whsec_and_32_random_bytes() -> None:
    first, second = generate_secret(), generate_secret()
    assert first.startswith("whsec_") and first != second
    assert len(secret_bytes(first)) == 32


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("abc", "starts with 'whsec_'"),
        ("whsec_***", "followed by base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "24 to 64 bytes, not 5"),
    ],
)
def test_malformed_secrets_are_refused_without_echoing_them(value: str, message: str) -> None:
    with pytest.raises(SigningSecretError, match=message) as caught:
        secret_bytes(value)
    assert value not in str(caught.value)


@settings(max_examples=200, deadline=None)
@given(
    body=st.text(max_size=2000).map(str.encode),
    msg_id=st.from_regex(r"msg_[0-9a-f]{32}", fullmatch=True),
)
def test_the_reference_library_verifies_every_signature(body: bytes, msg_id: str) -> None:
    secret = generate_secret()
    now = int(time.time())
    value = signature_header([secret_bytes(secret)], msg_id, now, body)
    assert value.startswith("v1,")
    Webhook(secret).verify(body, headers(msg_id, now, value), json_parse=False)


def test_a_changed_body_id_or_timestamp_fails_verification() -> None:
    secret = generate_secret()
    now = int(time.time())
    value = signature_header([secret_bytes(secret)], "msg_1", now, b'{"a":1}')
    hook = Webhook(secret)
    for body, msg_id, ts in (
        (b'{"a":2}', "msg_1", now),
        (b'{"a":1}', "msg_2", now),
        (b'{"a":1}', "msg_1", now + 1),
    ):
        with pytest.raises(WebhookVerificationError):
            hook.verify(body, headers(msg_id, ts, value), json_parse=False)
    with pytest.raises(WebhookVerificationError):  # another job's secret
        Webhook(generate_secret()).verify(
            b'{"a":1}', headers("msg_1", now, value), json_parse=False
        )


def test_rotation_signs_with_both_secrets_until_the_old_one_expires() -> None:
    old, new = generate_secret(), generate_secret()
    now = 1_000_000.0
    keys = rotate([SigningKey(old)], new, now, overlap_s=3600)
    assert keys == [SigningKey(new), SigningKey(old, now + 3600)]
    during = live_keys(keys, now + 10)
    assert [k.secret for k in during] == [new, old]  # the current one first
    assert [k.secret for k in live_keys(keys, now + 3600)] == [new]

    ts = int(time.time())
    value = signature_header([secret_bytes(k.secret) for k in during], "msg_r", ts, b"{}")
    assert len(value.split(" ")) == 2
    for secret in (old, new):  # a receiver on either secret accepts it
        Webhook(secret).verify(b"{}", headers("msg_r", ts, value), json_parse=False)

    again = rotate(keys, generate_secret(), now + 4000, overlap_s=3600)
    assert [k.secret for k in again][1:] == [new]  # the expired one is dropped
    assert again[1].expires_at == now + 4000 + 3600


def sealed(box: SecretBox, job_id: str, *keys: SigningKey) -> tuple[SealedSigningKey, ...]:
    return tuple(
        SealedSigningKey(
            sealed=box.encrypt(k.secret, signing_context(job_id)), expires_at=k.expires_at
        )
        for k in keys
    )


def test_the_job_signer_signs_with_its_live_keys_and_follows_updates() -> None:
    box = SecretBox(generate_key())
    first, second = generate_secret(), generate_secret()
    signer = JobSigner("job1")
    signer.update(sealed(box, "job1", SigningKey(first)), box)
    ts = int(time.time())
    Webhook(first).verify(b"x", headers("m", ts, signer.header("m", ts, b"x")), json_parse=False)

    signer.update(sealed(box, "job1", SigningKey(second), SigningKey(first, ts + 60)), box)
    value = signer.header("m", ts, b"x")
    for secret in (first, second):
        Webhook(secret).verify(b"x", headers("m", ts, value), json_parse=False)
    assert len(signer.header("m", ts + 61, b"x").split(" ")) == 1  # the old one expired


@pytest.mark.parametrize("case", ["no key", "other key", "other job", "no secrets"])
def test_a_signer_that_cannot_sign_refuses_rather_than_send_unsigned(case: str) -> None:
    box = SecretBox(generate_key())
    secret = generate_secret()
    keys = sealed(box, "job1", SigningKey(secret))
    signer = JobSigner("job2" if case == "other job" else "job1")
    if case == "no key":
        signer.update(keys, None)
    elif case == "other key":
        signer.update(keys, SecretBox(generate_key()))
    elif case == "no secrets":
        signer.update((), box)
    else:
        signer.update(keys, box)  # sealed for job1: the context does not match
    with pytest.raises(AuthUnavailable) as caught:
        signer.header("m", int(time.time()), b"x")
    assert secret not in str(caught.value)
