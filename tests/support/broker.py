"""The real local Kafka broker the integration and e2e tests use (scripts/kafka.sh)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from dataclasses import dataclass
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


@dataclass(frozen=True)
class SecuredListeners:
    """The broker's SASL_SSL and mTLS listeners, their test CA, client certificate and user."""

    sasl_ssl: str
    ssl: str
    tls_dir: Path
    sasl_username: str
    sasl_password: str

    @property
    def ca_file(self) -> Path:
        return self.tls_dir / "ca.pem"

    @property
    def client_cert(self) -> Path:
        return self.tls_dir / "client-cert.pem"

    @property
    def client_key(self) -> Path:
        return self.tls_dir / "client-key.pem"


def secured_listeners() -> SecuredListeners:
    """What scripts/kafka.sh wrote for the running broker (its run directory is per port)."""
    port = bootstrap().split(",")[0].rpartition(":")[2]
    cache = Path(os.environ.get("KAFKA_CACHE_DIR", ROOT / ".cache" / "kafka"))
    path = cache / f"run-{port}" / "listeners.json"
    if not path.exists():
        raise RuntimeError(
            f"{path} is missing: the broker on port {port} was not started by this checkout's "
            "scripts/kafka.sh with its secured listeners (scripts/kafka.sh reset, then start)"
        )
    doc = json.loads(path.read_text())
    return SecuredListeners(
        sasl_ssl=doc["sasl_ssl"],
        ssl=doc["ssl"],
        tls_dir=Path(doc["tls_dir"]),
        sasl_username=doc["sasl_username"],
        sasl_password=doc["sasl_password"],
    )
