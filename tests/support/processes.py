"""Run the `webhooks` CLI and worker as real processes with a test's own settings."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.broker import ROOT

WEBHOOKS = str(Path(sys.executable).parent / "webhooks")


@dataclass
class CliResult:
    code: int
    out: str
    err: str


def run_cli(env: dict[str, str], *args: str, timeout: float = 60.0) -> CliResult:
    proc = subprocess.run(
        [WEBHOOKS, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@dataclass
class WorkerProcess:
    """A `webhooks worker` subprocess whose output goes to a log file."""

    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = field(default=0.0)
    log_offset: int = field(default=0)

    def start(
        self, ready_line: str = "router ready", timeout: float = 90.0, wait: bool = True
    ) -> None:
        """Launch the worker; unless `wait` is false, return once it logged `ready_line`."""
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [WEBHOOKS, "worker", "-l", "info"],
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
        self.started_at = time.monotonic()
        if wait:
            self.wait_ready(ready_line, timeout)

    def wait_ready(self, ready_line: str = "router ready", timeout: float = 90.0) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready_line in self.since_start():
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.tail()}")
            time.sleep(0.2)
        raise TimeoutError(f"worker not ready in {timeout} s:\n{self.tail()}")

    def since_start(self) -> str:
        """What this run of the worker has logged (the log file spans restarts)."""
        with self.log_path.open("rb") as f:
            f.seek(self.log_offset)
            return f.read().decode(errors="replace")

    def kill(self) -> None:
        """kill -9, as a crash would."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, grace: float = 15.0) -> None:
        if not self.proc or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.kill()

    def tail(self, lines: int = 80) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])
