"""Signed requests end to end: a job with `signed: true` gets a secret shown once at apply;
every request, retries included, verifies with the `standardwebhooks` package; a rotation
signs with both secrets; the secrets appear in no log, status or command output."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import orjson
import yaml
from standardwebhooks import Webhook

from app.devtools.receiver import Behaviour, Received, WebhookReceiver
from app.settings import Settings
from tests.support.jobs import (
    job_status,
    run_cli_async,
    triggers_job,
    wait_for_log,
    wait_for_requests,
)
from tests.support.kafka_io import produce
from tests.support.processes import WorkerProcess
from tests.support.records import toggle

SECRET_RE = re.compile(r"whsec_[A-Za-z0-9+/=]+")


def verify(secret: str, request: Received) -> None:
    Webhook(secret).verify(request.body, request.headers, json_parse=False)


async def test_signed_job_requests_verify_across_retries_and_rotation(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker_factory: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    worker = worker_factory(WEBHOOKS_RETRY_BACKOFF_INITIAL_S="0.2")
    # the first request fails once, so a retry is signed too
    receiver.behaviours["/signed"] = Behaviour(
        respond=lambda n: (500, 0.0, {}, b"{}") if n == 0 else (200, 0.0, {}, b"{}")
    )
    job = triggers_job(receiver.url("/signed"), signed=True)
    path = tmp_path / "signed.yaml"
    path.write_text(yaml.safe_dump(job))
    applied = await run_cli_async(test_env, "jobs", "apply", str(path))
    assert applied.code == 0, applied.err
    secrets = SECRET_RE.findall(applied.out)
    assert len(secrets) == 1, applied.out
    first_secret = secrets[0]
    await wait_for_log(worker, f"delivery started for job {job['id']}")

    await produce(test_settings, test_settings.input_topic, [toggle("s1", 0)])
    got = await wait_for_requests(receiver, "/signed", 2)
    assert [r.status for r in got] == [500, 200]
    assert got[0].headers["webhook-id"] == got[1].headers["webhook-id"]
    for request in got:
        verify(first_secret, request)
        assert len(request.headers["webhook-signature"].split(" ")) == 1

    # applying the same file again keeps the secret (and shows none)
    again = await run_cli_async(test_env, "jobs", "apply", str(path))
    assert again.code == 0 and not SECRET_RE.search(again.out), again.out

    rotated = await run_cli_async(
        test_env, "jobs", "rotate-signing-secret", job["id"], "--overlap-hours", "1"
    )
    assert rotated.code == 0, rotated.err
    new_secrets = SECRET_RE.findall(rotated.out)
    assert len(new_secrets) == 1 and new_secrets[0] != first_secret
    second_secret = new_secrets[0]
    assert "also signs until" in rotated.out

    await produce(test_settings, test_settings.input_topic, [toggle("s1", 1)])
    got = await wait_for_requests(receiver, "/signed", 3)
    latest = got[2]
    assert latest.status == 200 and latest.json()["data"]["n"] == 1
    assert len(latest.headers["webhook-signature"].split(" ")) == 2
    verify(second_secret, latest)  # receivers already on the new secret
    verify(first_secret, latest)  # and those not switched yet

    shown = await job_status(test_env, job["id"])
    assert shown["signing"]["secrets"] == 2 and len(shown["signing"]["previous_until"]) == 1
    listed = await run_cli_async(test_env, "jobs", "list")
    logs = await run_cli_async(test_env, "jobs", "logs", job["id"], "--json")
    outputs = [orjson.dumps(shown).decode(), listed.out, logs.out, worker.log_path.read_text()]
    for secret in (first_secret, second_secret):
        for text in outputs:
            assert secret not in text and secret.removeprefix("whsec_") not in text


async def test_a_signed_job_without_the_secret_key_is_refused_at_apply(
    test_env: dict[str, str], receiver: WebhookReceiver, tmp_path: Path
) -> None:
    env = {k: v for k, v in test_env.items() if k != "WEBHOOKS_SECRET_KEY"}
    path = tmp_path / "signed.yaml"
    path.write_text(yaml.safe_dump(triggers_job(receiver.url("/x"), signed=True)))
    result = await run_cli_async(env, "jobs", "apply", str(path))
    assert result.code == 2
    assert "WEBHOOKS_SECRET_KEY is not set" in result.err
