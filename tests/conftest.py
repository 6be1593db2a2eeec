"""Shared fixtures: the real broker, per-test isolated settings (own topics, own group)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from app.devtools.receiver import WebhookReceiver
from app.devtools.tls import LocalTLS, make_local_tls
from app.settings import Settings, settings_from_env
from app.transport import tracing
from tests.support import broker
from tests.support.processes import WorkerProcess

NEEDS_BROKER = ("integration", "e2e")


def pytest_report_header(config: pytest.Config) -> str:
    return f"kafka: Apache Kafka {broker.version()} (KRaft) at {broker.bootstrap()}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for kind in NEEDS_BROKER:
            if f"tests/{kind}/" in str(item.path).replace("\\", "/"):
                item.add_marker(getattr(pytest.mark, kind))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if terminalreporter.stats.get("failed") or terminalreporter.stats.get("error"):
        terminalreporter.write_sep("-", "last lines of the Kafka broker log")
        terminalreporter.write_line(broker.log_tail(40))


@pytest.fixture(scope="session")
def kafka() -> str:
    """The bootstrap address of a running broker (started by scripts/kafka.sh if needed)."""
    broker.ensure_running()
    return broker.bootstrap()


@pytest.fixture(scope="session")
def local_tls(tmp_path_factory: pytest.TempPathFactory) -> LocalTLS:
    """A test CA and a loopback server certificate; workers trust it via WEBHOOKS_CA_BUNDLE."""
    return make_local_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture
async def receiver(local_tls: LocalTLS) -> AsyncIterator[WebhookReceiver]:
    """A real HTTPS webhook receiver on 127.0.0.1 that records what it gets."""
    rec = WebhookReceiver(local_tls)
    await rec.start()
    yield rec
    await rec.stop()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """This process's spans (`app/transport/tracing.py`), caught by the SDK's in-memory
    exporter as they end; traces off again after the test."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    yield exporter
    tracing.install(None)


@pytest.fixture
def test_env(kafka: str, tmp_path: Path, local_tls: LocalTLS) -> dict[str, str]:
    """Environment for one test's processes: its own topics, consumer group and data dir."""
    tag = uuid.uuid4().hex[:10]
    return {
        "WEBHOOKS_KAFKA_BOOTSTRAP": kafka,
        "WEBHOOKS_APP_ID": f"aw-test-{tag}",
        "WEBHOOKS_INPUT_TOPIC": f"audience-events-{tag}",
        "WEBHOOKS_JOBS_TOPIC": f"webhook-jobs-{tag}",
        "WEBHOOKS_AUTHORIZATIONS_TOPIC": f"webhook-authorizations-{tag}",
        "WEBHOOKS_DEADLETTER_TOPIC": f"webhook-deadletter-{tag}",
        "WEBHOOKS_STATUS_TOPIC": f"webhook-job-status-{tag}",
        "WEBHOOKS_JOB_LOG_TOPIC": f"webhook-job-logs-{tag}",
        "WEBHOOKS_BACKFILLS_TOPIC": f"webhook-backfills-{tag}",
        "WEBHOOKS_BACKFILL_PROGRESS_TOPIC": f"webhook-backfill-progress-{tag}",
        "WEBHOOKS_WORKER_ID": f"worker-{tag}",
        "WEBHOOKS_ENRICHMENT_TOPIC": f"webhook_enrichment-{tag}",
        "WEBHOOKS_INPUT_PARTITIONS": "2",
        "WEBHOOKS_QUEUE_PARTITIONS": "2",
        "WEBHOOKS_PROCESSES": "1",  # one worker process each, unless a test asks for more
        "WEBHOOKS_DATA_DIR": str(tmp_path / "worker-data"),
        "WEBHOOKS_SECRET_KEY": f"test-secret-key-{tag}",
        "WEBHOOKS_ALLOWED_PRIVATE_NETS": "127.0.0.0/8",
        "WEBHOOKS_CA_BUNDLE": str(local_tls.ca_path),
        "WEBHOOKS_RETRY_BACKOFF_INITIAL_S": "0.1",
        "WEBHOOKS_RETRY_BACKOFF_MAX_S": "1.0",
    }


@pytest.fixture
def test_settings(test_env: dict[str, str]) -> Settings:
    """The same settings as `test_env`, for code running inside the test."""
    return settings_from_env(test_env)


@pytest.fixture
def worker(test_env: dict[str, str], tmp_path: Path) -> Iterator[WorkerProcess]:
    """A started `webhooks worker` for this test; its log is printed when the test fails."""
    proc = WorkerProcess(env=test_env, log_path=tmp_path / "worker.log")
    proc.start()
    yield proc
    proc.stop()
    print(f"--- worker log tail ({proc.log_path}) ---\n{proc.tail(60)}")


@pytest.fixture
def worker_factory(
    test_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """Start workers with settings overridden (`start(WEBHOOKS_X="1")`); all stopped after."""
    started: list[WorkerProcess] = []

    def start(**overrides: str) -> WorkerProcess:
        proc = WorkerProcess(
            env={**test_env, **overrides}, log_path=tmp_path / f"worker-{len(started)}.log"
        )
        proc.start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
        print(f"--- worker log tail ({proc.log_path}) ---\n{proc.tail(40)}")
