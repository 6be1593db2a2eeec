"""`docker-compose.yml` (issue 12, items 5 and 6) validated against the compose-spec JSON
schema, read from docker-compose 1.29.2's wheel, which `make test` downloads into
`.cache/compose-spec` (`make compose-schema`), plus what the stack must have: a volume for
Kafka, restart policies, one image built once, a `cli` service to apply job files."""

from __future__ import annotations

import copy
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import validators

ROOT = Path(__file__).resolve().parents[2]
WHEEL = ROOT / ".cache/compose-spec/docker_compose-1.29.2-py2.py3-none-any.whl"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    assert WHEEL.is_file(), f"{WHEEL} is missing: run `make compose-schema`"
    with zipfile.ZipFile(WHEEL) as wheel:
        doc: dict[str, Any] = json.loads(wheel.read("compose/config/compose_spec.json"))
    return doc


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return doc


def errors(schema: dict[str, Any], doc: dict[str, Any]) -> list[str]:
    validator = validators.validator_for(schema, default=validators.Draft201909Validator)
    return [f"{list(e.path)}: {e.message}" for e in validator(schema).iter_errors(doc)]


def test_the_compose_file_matches_the_compose_spec(schema: dict[str, Any]) -> None:
    assert errors(schema, compose()) == []


def test_the_schema_check_can_fail(schema: dict[str, Any]) -> None:
    bad = copy.deepcopy(compose())
    bad["services"]["worker"]["restartt"] = "always"  # a typo
    assert errors(schema, bad)


def test_the_stack_is_built_once_restarts_and_keeps_kafka_data() -> None:
    services = compose()["services"]
    built = [name for name, svc in services.items() if "build" in svc]
    assert built == ["topics"]
    images = {svc["image"] for name, svc in services.items() if name != "kafka"}
    assert images == {"audience-webhooks:local"}
    assert services["worker"]["restart"] == "unless-stopped"
    assert services["kafka"]["restart"] == "unless-stopped"
    assert "kafka-data" in compose()["volumes"]
    assert any(v.startswith("kafka-data:") for v in services["kafka"]["volumes"])
    assert services["cli"]["profiles"] == ["cli"]
