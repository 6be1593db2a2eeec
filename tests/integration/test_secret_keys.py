"""WEBHOOKS_SECRET_KEY against the real broker and the real CLI: malformed keys stop every
command and the worker with one line; generated keys; rotation with
WEBHOOKS_SECRET_KEY_PREVIOUS and `webhooks auth rotate-key`; unreadable authorizations named
(CLI and worker start) instead of a traceback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
import yaml

from app.domain.secrets import PREFIX, PREFIX_V2, parse_key
from app.settings import Settings
from tests.support.kafka_io import read_json
from tests.support.processes import WorkerProcess, run_cli

HEADER_SECRET = "hv-Header-Secret-1a2b3c"
PARAM_SECRET = "pv-Param-Secret-4d5e6f"


def write_auth(tmp_path: Path, auth_id: str = "crm") -> Path:
    path = tmp_path / f"{auth_id}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "id": auth_id,
                "label": "CRM",
                "method": "headers",
                "headers": f"Authorization: {HEADER_SECRET}",
                "params": f"api_key={PARAM_SECRET}",
            }
        )
    )
    return path


def new_key(env: dict[str, str]) -> str:
    result = run_cli(env, "secret-key", "generate")
    assert result.code == 0, result.err
    return result.out.strip()


def assert_one_line_error(result_err: str, *needles: str) -> None:
    lines = result_err.strip().splitlines()
    assert len(lines) == 1, result_err
    assert "Traceback" not in result_err
    for needle in needles:
        assert needle in lines[0], lines[0]


def stored_values(settings: Settings, auth_id: str) -> list[str]:
    rows = asyncio.run(read_json(settings, settings.authorizations_topic))
    latest = [doc for key, doc in rows if key == auth_id][-1]
    return [latest[f] for f in ("headers", "params")]


@pytest.mark.parametrize(
    "args",
    [("auth", "list"), ("auth", "apply", "missing.yaml"), ("jobs", "list"), ("topics", "create")],
)
@pytest.mark.parametrize("key", ["abc123", "awk1:abc123"])
def test_malformed_key_stops_commands_with_one_line(
    test_env: dict[str, str], args: tuple[str, ...], key: str
) -> None:
    result = run_cli({**test_env, "WEBHOOKS_SECRET_KEY": key}, *args)
    assert result.code == 2
    assert_one_line_error(result.err, "Error: WEBHOOKS_SECRET_KEY")
    assert "abc123" not in result.err  # the key is never echoed
    assert result.out == ""


def test_malformed_previous_key_stops_commands(test_env: dict[str, str]) -> None:
    env = {**test_env, "WEBHOOKS_SECRET_KEY_PREVIOUS": f"{new_key(test_env)},abc123"}
    result = run_cli(env, "auth", "list")
    assert result.code == 2
    assert_one_line_error(result.err, "WEBHOOKS_SECRET_KEY_PREVIOUS (entry 2)")


def test_malformed_key_stops_the_worker_before_it_starts(test_env: dict[str, str]) -> None:
    started = time.monotonic()
    result = run_cli({**test_env, "WEBHOOKS_SECRET_KEY": "abc123"}, "worker", timeout=60)
    assert result.code == 2
    assert_one_line_error(result.err, "Error: WEBHOOKS_SECRET_KEY is too short")
    assert "abc123" not in result.err
    assert time.monotonic() - started < 30


def test_missing_key_where_stored_secrets_need_it(test_env: dict[str, str], tmp_path: Path) -> None:
    assert run_cli(test_env, "topics", "create").code == 0
    assert run_cli(test_env, "auth", "apply", str(write_auth(tmp_path))).code == 0
    no_key = {k: v for k, v in test_env.items() if k != "WEBHOOKS_SECRET_KEY"}
    for args in (("auth", "list"), ("auth", "show", "crm"), ("auth", "rotate-key")):
        result = run_cli(no_key, *args)
        assert result.code == 2, (args, result)
        assert_one_line_error(result.err, "WEBHOOKS_SECRET_KEY is not set")


def test_generated_key_is_valid_and_used_without_warning(
    test_env: dict[str, str], test_settings: Settings, tmp_path: Path
) -> None:
    key = new_key(test_env)
    assert key.startswith("awk1:") and "\n" not in key
    assert not parse_key(key).legacy
    assert new_key(test_env) != key
    env = {**test_env, "WEBHOOKS_SECRET_KEY": key}
    checked = run_cli(env, "secret-key", "check")
    assert checked.code == 0, checked.err
    assert f"key {parse_key(key).key_id} (awk1)" in checked.out
    assert key not in checked.out + checked.err

    assert run_cli(env, "topics", "create").code == 0
    applied = run_cli(env, "auth", "apply", str(write_auth(tmp_path)))
    assert applied.code == 0, applied.err
    assert "warning" not in applied.err
    for value in stored_values(test_settings, "crm"):
        assert value.startswith(f"{PREFIX_V2}{parse_key(key).key_id}:")
    shown = run_cli(env, "auth", "show", "crm")
    assert shown.code == 0, shown.err
    doc = orjson.loads(shown.out)
    assert doc["headers"] == "Authorization: ***" and doc["params"] == "api_key=***"


def test_legacy_passphrase_is_accepted_with_a_warning(
    test_env: dict[str, str], test_settings: Settings, tmp_path: Path
) -> None:
    # test_env's key is a legacy passphrase: what every existing deployment has.
    assert run_cli(test_env, "topics", "create").code == 0
    applied = run_cli(test_env, "auth", "apply", str(write_auth(tmp_path)))
    assert applied.code == 0, applied.err
    assert_one_line_error(applied.err, "warning: WEBHOOKS_SECRET_KEY is a legacy passphrase")
    assert all(v.startswith(PREFIX) for v in stored_values(test_settings, "crm"))
    listed = run_cli(test_env, "auth", "list")
    assert listed.code == 0 and "Authorization: ***" in listed.out


def test_rotate_key_moves_every_authorization_to_the_new_key(
    test_env: dict[str, str], test_settings: Settings, tmp_path: Path
) -> None:
    key_a, key_b = new_key(test_env), new_key(test_env)
    legacy = test_env["WEBHOOKS_SECRET_KEY"]
    env_a = {**test_env, "WEBHOOKS_SECRET_KEY": key_a}
    env_b = {**test_env, "WEBHOOKS_SECRET_KEY": key_b}
    assert run_cli(env_a, "topics", "create").code == 0
    assert run_cli(env_a, "auth", "apply", str(write_auth(tmp_path, "crm"))).code == 0
    assert run_cli(test_env, "auth", "apply", str(write_auth(tmp_path, "old"))).code == 0
    id_a, id_b = parse_key(key_a).key_id, parse_key(key_b).key_id

    # B alone cannot read what A and the legacy passphrase stored: named, no traceback.
    listed = run_cli(env_b, "auth", "list")
    assert listed.code == 0
    lines = {orjson.loads(line)["id"]: orjson.loads(line) for line in listed.out.splitlines()}
    assert f"encrypted with key {id_a}" in lines["crm"]["note"]
    assert "legacy passphrase" in lines["old"]["note"]
    assert_one_line_error(listed.err, "2 authorization(s) not readable", "crm, old")
    shown = run_cli(env_b, "auth", "show", "crm")
    assert shown.code == 1
    assert_one_line_error(shown.err, "authorization crm: secrets not readable", id_a)
    refused = run_cli(env_b, "auth", "rotate-key")
    assert refused.code == 2
    assert_one_line_error(refused.err, "nothing re-encrypted", "crm (", "old (")

    # B with A and the passphrase as previous keys: readable, then rotated.
    env_rotate = {**env_b, "WEBHOOKS_SECRET_KEY_PREVIOUS": f"{key_a},{legacy}"}
    assert "not readable" not in run_cli(env_rotate, "auth", "list").err
    rotated = run_cli(env_rotate, "auth", "rotate-key")
    assert rotated.code == 0, rotated.err
    assert "re-encrypted authorization crm" in rotated.out
    assert "re-encrypted authorization old" in rotated.out
    assert f"2 re-encrypted, 0 already under the current key (key {id_b})" in rotated.out
    for secret in (HEADER_SECRET, PARAM_SECRET, key_a, key_b, legacy):
        assert secret not in rotated.out + rotated.err

    # Now B alone reads everything; A alone no longer does; rotating again changes nothing.
    for auth_id in ("crm", "old"):
        assert all(
            v.startswith(f"{PREFIX_V2}{id_b}:") for v in stored_values(test_settings, auth_id)
        )
        shown_b = run_cli(env_b, "auth", "show", auth_id)
        assert shown_b.code == 0, shown_b.err
        assert orjson.loads(shown_b.out)["headers"] == "Authorization: ***"
    listed_b = run_cli(env_b, "auth", "list")
    assert listed_b.err == "" and "not readable" not in listed_b.out
    listed_a = run_cli(env_a, "auth", "list")
    assert f"encrypted with key {id_b}" in listed_a.out
    again = run_cli(env_b, "auth", "rotate-key")
    assert again.code == 0 and "0 re-encrypted, 2 already under the current key" in again.out


def test_worker_start_names_unreadable_authorizations(
    test_env: dict[str, str],
    tmp_path: Path,
    worker_factory: Callable[..., WorkerProcess],
) -> None:
    key_a, key_b = new_key(test_env), new_key(test_env)
    env_a = {**test_env, "WEBHOOKS_SECRET_KEY": key_a}
    assert run_cli(env_a, "topics", "create").code == 0
    assert run_cli(env_a, "auth", "apply", str(write_auth(tmp_path, "crm"))).code == 0

    proc = worker_factory(WEBHOOKS_SECRET_KEY=key_b)
    log = proc.since_start()
    lines = [line for line in log.splitlines() if "not readable" in line]
    assert len(lines) == 1, log
    assert "1 authorization(s) not readable" in lines[0] and "crm (" in lines[0]
    assert parse_key(key_a).key_id in lines[0]
    assert "Traceback" not in log
    for secret in (HEADER_SECRET, PARAM_SECRET, key_a, key_b):
        assert secret not in log


def test_rotate_key_moves_job_signing_secrets_to_the_new_key(
    test_env: dict[str, str], test_settings: Settings, tmp_path: Path
) -> None:
    key_a, key_b = new_key(test_env), new_key(test_env)
    env_a = {**test_env, "WEBHOOKS_SECRET_KEY": key_a}
    env_b = {**test_env, "WEBHOOKS_SECRET_KEY": key_b}
    job = {
        "id": "signed-job",
        "type": "audience_triggers",
        "label": "signed",
        "audiences": ["a"],
        "webhook_url": "https://hooks.example.com/in",
        "signed": True,
    }
    path = tmp_path / "signed.yaml"
    path.write_text(yaml.safe_dump(job))
    applied = run_cli(env_a, "jobs", "apply", str(path))
    assert applied.code == 0 and "whsec_" in applied.out, applied.err

    def sealed() -> list[str]:
        rows = asyncio.run(read_json(test_settings, test_settings.jobs_topic))
        latest = [doc for key, doc in rows if key == "signed-job"][-1]
        return [k["sealed"] for k in latest["signing_keys"]]

    id_a, id_b = parse_key(key_a).key_id, parse_key(key_b).key_id
    assert all(v.startswith(f"{PREFIX_V2}{id_a}:") for v in sealed())
    refused = run_cli(env_b, "auth", "rotate-key")
    assert refused.code == 2
    assert_one_line_error(refused.err, "nothing re-encrypted", "signing secret of job signed-job")

    rotated = run_cli({**env_b, "WEBHOOKS_SECRET_KEY_PREVIOUS": key_a}, "auth", "rotate-key")
    assert rotated.code == 0, rotated.err
    assert "re-encrypted the signing secrets of job signed-job" in rotated.out
    assert all(v.startswith(f"{PREFIX_V2}{id_b}:") for v in sealed())
    assert "whsec_" not in rotated.out + rotated.err
    again = run_cli(env_b, "auth", "rotate-key")
    assert again.code == 0 and "signed-job" not in again.out
