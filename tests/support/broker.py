"""The real local Kafka broker the integration and e2e tests use (scripts/kafka.sh)."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KAFKA_SH = ROOT / "scripts" / "kafka.sh"


def bootstrap() -> str:
    return os.environ.get("WEBHOOKS_KAFKA_BOOTSTRAP", "127.0.0.1:9092")


def reachable(address: str) -> bool:
    host, _, port = address.split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1.0):
            return True
    except OSError:
        return False


def ensure_running() -> None:
    """Start the project's broker unless one already answers (idempotent)."""
    if not reachable(bootstrap()):
        subprocess.run([str(KAFKA_SH), "start"], check=True)


def version() -> str:
    out = subprocess.run([str(KAFKA_SH), "version"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def log_tail(lines: int = 40) -> str:
    """The broker's last warnings and errors (its INFO lines drown everything else)."""
    out = subprocess.run(
        [str(KAFKA_SH), "logs", "5000"], capture_output=True, text=True, check=False
    )
    serious = [line for line in out.stdout.splitlines() if " WARN " in line or " ERROR " in line]
    return "\n".join(serious[-lines:]) or "(no warnings or errors)" + out.stderr
