"""Operating a worker (issue 12, items 2 and 3): `/healthz`, `/readyz` and `/metrics` on
`WEBHOOKS_HTTP_PORT`, scraped from a worker that delivered, retried and omitted, parsed with
prometheus-client's own parser; `WEBHOOKS_LOG_FORMAT=json` lines an operator can parse."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from prometheus_client.parser import text_string_to_metric_families

from app.devtools.receiver import Behaviour, WebhookReceiver
from app.settings import Settings
from tests.support.dashboard import exposed_names, used_metrics
from tests.support.jobs import apply_jobs, triggers_job, wait_for_requests
from tests.support.kafka_io import produce, wait_for_dead_letters
from tests.support.polling import eventually
from tests.support.processes import WorkerProcess
from tests.support.records import input_record

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "audience-webhooks.json"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.text()


async def scrape(port: int) -> Samples:
    status, text = await get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


async def test_a_worker_reports_health_readiness_and_metrics_of_what_it_did(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker_factory: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    port = free_port()
    worker = worker_factory(WEBHOOKS_HTTP_PORT=str(port), WEBHOOKS_LOG_FORMAT="json")
    receiver.behaviours["/bad"] = Behaviour(respond=lambda n: (400, 0.0, {}, b"no"))
    receiver.behaviours["/flaky"] = Behaviour(
        respond=lambda n: (503 if n < 2 else 200, 0.0, {}, b"{}")
    )
    ok = triggers_job(receiver.url("/ok"), audiences=["a-ok"])
    bad = triggers_job(receiver.url("/bad"), audiences=["a-bad"])
    flaky = triggers_job(receiver.url("/flaky"), audiences=["a-flaky"])
    await apply_jobs(test_env, tmp_path, worker, ok, bad, flaky)

    assert await get(f"http://127.0.0.1:{port}/healthz") == (200, '{"status": "ok"}')
    ready = await eventually(
        lambda: get(f"http://127.0.0.1:{port}/readyz"), lambda r: r[0] == 200, wait_s=30
    )
    assert orjson.loads(ready[1]) == {"status": "ready"}

    records = [
        input_record(f"{slug}-{i}", {"n": i}, ("enter", slug))
        for slug in ("a-ok", "a-bad")
        for i in range(3)
    ] + [input_record("f-0", {"n": 0}, ("enter", "a-flaky"))]
    await produce(test_settings, test_settings.input_topic, records)
    await wait_for_requests(receiver, "/ok", 3)
    await wait_for_dead_letters(test_settings, lambda key, _doc: key == bad["id"], 3)
    await wait_for_requests(receiver, "/flaky", 3)

    def settled(s: Samples) -> bool:
        return (
            value(s, "webhooks_events_delivered_total", job_id=flaky["id"]) == 1.0
            and value(s, "webhooks_events_omitted_total", job_id=bad["id"]) == 3.0
            and value(s, "webhooks_job_backlog_records", job_id=ok["id"]) == 0.0
        )

    samples = await eventually(lambda: scrape(port), settled, wait_s=30, what="metrics")
    ok_id, bad_id, flaky_id = ok["id"], bad["id"], flaky["id"]
    assert value(samples, "webhooks_events_delivered_total", job_id=ok_id) == 3.0
    assert value(samples, "webhooks_requests_total", job_id=ok_id, status_class="2xx") == 3.0
    assert value(samples, "webhooks_requests_total", job_id=bad_id, status_class="4xx") == 3.0
    assert value(samples, "webhooks_requests_total", job_id=flaky_id, status_class="5xx") == 2.0
    assert value(samples, "webhooks_retries_total", job_id=flaky_id) == 2.0
    assert value(samples, "webhooks_retries_total", job_id=ok_id) in (None, 0.0)
    assert value(samples, "webhooks_request_duration_seconds_count", job_id=ok_id) == 3.0
    assert value(samples, "webhooks_batch_size_events_count", job_id=ok_id) == 3.0
    assert value(samples, "webhooks_batch_size_events_sum", job_id=ok_id) == 3.0
    assert value(samples, "webhooks_job_state", job_id=ok_id, state="running") == 1.0
    assert value(samples, "webhooks_job_state", job_id=ok_id, state="error") == 0.0
    routed = value(samples, "webhooks_input_records_routed_total")
    assert routed is not None and routed >= len(records)
    assert value(samples, "webhooks_input_records_dead_lettered_total") == 0.0
    entries = value(samples, "webhooks_state_entries")
    assert entries is not None and entries >= len(records)

    # The Grafana dashboard names only metrics this worker exposes (issue 23).
    _status, text = await get(f"http://127.0.0.1:{port}/metrics")
    used = used_metrics(orjson.loads(DASHBOARD.read_bytes()))
    assert used and used <= exposed_names(text), sorted(used - exposed_names(text))

    # JSON logs: every line is an object; lines about a job carry its id
    text = worker.log_path.read_text()
    assert not [line for line in text.splitlines() if line.startswith("[20")]  # no text lines
    lines = [line for line in text.splitlines() if line.startswith("{")]
    docs: list[dict[str, Any]] = [orjson.loads(line) for line in lines]
    assert docs and all({"time", "level", "logger", "message"} <= d.keys() for d in docs)
    started = [d for d in docs if "delivery started for job" in d["message"]]
    assert {d.get("job_id") for d in started} >= {ok_id, bad_id, flaky_id}
