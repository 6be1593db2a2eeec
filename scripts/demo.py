"""`make demo`: a worker, a local HTTPS receiver, example jobs and a stream of audience events,
with the webhooks shown as they arrive. Ctrl-C stops everything it started.

Runs against the broker `make demo` started (WEBHOOKS_KAFKA_BOOTSTRAP, default 127.0.0.1:9092).
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import yaml
from aiokafka import AIOKafkaProducer
from rich.console import Group
from rich.live import Live
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table

from app.devtools.receiver import WebhookReceiver
from app.devtools.tls import make_local_tls
from app.transport.waits import wait_event

ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = ROOT / ".demo"
RECEIVER_PORT = 8443
AUDIENCES = ["newsletter", "vip", "churn_risk"]
PLANS = ["free", "pro", "enterprise"]
FIRST_NAMES = ["Beth", "Joe", "Ana", "Li", "Sam", "Noor", "Ivan", "Mia"]


def demo_env() -> dict[str, str]:
    DEMO_DIR.mkdir(exist_ok=True)
    key_file = DEMO_DIR / "secret.key"
    if not key_file.exists():
        key_file.write_text("awk1:" + secrets.token_urlsafe(32))  # = webhooks secret-key generate
        key_file.chmod(0o600)
    return {
        "WEBHOOKS_KAFKA_BOOTSTRAP": os.environ.get("WEBHOOKS_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
        "WEBHOOKS_SECRET_KEY": key_file.read_text().strip(),
        "WEBHOOKS_CA_BUNDLE": str(DEMO_DIR / "ca.pem"),
        "WEBHOOKS_ALLOWED_PRIVATE_NETS": "127.0.0.0/8",
        "WEBHOOKS_DATA_DIR": str(DEMO_DIR / "worker-data"),
    }


def webhooks(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [str(Path(sys.executable).parent / "webhooks"), *args],
        env={**os.environ, **env},
        check=True,
    )


def demo_jobs(receiver: WebhookReceiver) -> list[dict[str, object]]:
    return [
        {
            "id": "demo-triggers",
            "type": "audience_triggers",
            "label": "Demo: enter/exit and plan changes",
            "audiences": ["newsletter", "vip"],
            "webhook_url": receiver.url("/hooks/triggers"),
            "export_fields": ["email", "first_name", "plan"],
            "trigger_fields": ["plan"],
        },
        {
            "id": "demo-cloudevents",
            "type": "audience_triggers",
            "label": "Demo: CloudEvents batches",
            "audiences": ["churn_risk"],
            "webhook_url": receiver.url("/hooks/cloudevents"),
            "cloudevents": True,
            "batch": True,
            "batch_size": 20,
        },
    ]


def random_event(n: int) -> bytes:
    user = f"user-{random.randrange(200)}"
    slug = random.choice(AUDIENCES)
    kind = random.choice(["enter", "exit", "change"])
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    segment_events = (
        [] if kind == "change" else [{"id": f"seg-{slug}", "slug": slug, "event": kind, kind: now}]
    )
    record = {
        "id": user,
        "data": {
            "email": f"{user}@example.com",
            "first_name": random.choice(FIRST_NAMES),
            "plan": random.choice(PLANS),
            "score": n,
        },
        "segment_events": segment_events,
        "by_fields": {"email": f"{user}@example.com"},
        "timestamp": now,
    }
    return orjson.dumps(record)


def view(receiver: WebhookReceiver, produced: int) -> Group:
    table = Table(title="audience-webhooks demo (Ctrl-C to stop)")
    table.add_column("endpoint")
    table.add_column("requests", justify="right")
    for path in ("/hooks/triggers", "/hooks/cloudevents"):
        table.add_row(path, str(len(receiver.for_path(path))))
    table.add_row("input events produced", str(produced))
    latest = receiver.requests[-1] if receiver.requests else None
    body = "waiting for the first webhook..."
    if latest is not None:
        payload = latest.json()
        more = ""
        if isinstance(payload, list):
            more = f"\n... and {len(payload) - 1} more in this batch" if len(payload) > 1 else ""
            payload = payload[0] if payload else payload
        lines = orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode().splitlines()
        body = "\n".join(lines[:30]) + more
    title = f"latest: {latest.method} {latest.path}" if latest else "latest"
    return Group(table, Panel(Syntax(body, "json"), title=title))


def start_broker() -> bool:
    """Start the local broker unless one answers; True when this demo started it."""
    status = subprocess.run([str(ROOT / "scripts" / "kafka.sh"), "status"], capture_output=True)
    if status.returncode == 0:
        return False
    subprocess.run([str(ROOT / "scripts" / "kafka.sh"), "start"], check=True)
    return True


async def main() -> None:
    started_broker = start_broker()
    env = demo_env()
    tls = make_local_tls(DEMO_DIR)
    receiver = WebhookReceiver(tls, port=RECEIVER_PORT)
    await receiver.start()
    webhooks(env, "topics", "create")
    jobs_file = DEMO_DIR / "jobs.yaml"
    jobs_file.write_text(yaml.safe_dump_all(demo_jobs(receiver)))
    webhooks(env, "jobs", "apply", str(jobs_file))
    log_path = DEMO_DIR / "worker.log"
    worker = subprocess.Popen(
        [str(Path(sys.executable).parent / "webhooks"), "worker"],
        env={**os.environ, **env},
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    print(f"worker pid {worker.pid}, log {log_path}")
    producer = AIOKafkaProducer(bootstrap_servers=env["WEBHOOKS_KAFKA_BOOTSTRAP"])
    await producer.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    produced = 0
    try:
        with Live(view(receiver, produced), refresh_per_second=4) as live:
            while not stop.is_set():
                for _ in range(5):
                    value = random_event(produced)
                    await producer.send(
                        "audience-events", key=orjson.loads(value)["id"].encode(), value=value
                    )
                    produced += 1
                live.update(view(receiver, produced))
                await wait_event(stop, 0.5)
    finally:
        await producer.stop()
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
        await receiver.stop()
        if started_broker:
            subprocess.run([str(ROOT / "scripts" / "kafka.sh"), "stop"], check=False)
        print(f"stopped: {produced} events produced, {len(receiver.requests)} webhooks received")


if __name__ == "__main__":
    asyncio.run(main())
