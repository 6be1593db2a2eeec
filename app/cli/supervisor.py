"""`webhooks worker --processes N`: one worker process per core, supervised.

A Python process uses one core. Like Kafka Connect's tasks, a machine with N cores runs N
worker processes: each is a member of the router's group (input partitions spread over them)
and of the delivery-slots group (jobs spread over them), with its own worker id
(`<worker id>-<i>`), data directory and health port (`WEBHOOKS_HTTP_PORT + i`). The parent
only supervises: SIGTERM or SIGINT is passed to every child (each stops cleanly: commits,
snapshots, leaves its groups), and a child that dies is started again, after a pause that
doubles while it keeps dying (1 s up to 30 s).
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from app.settings import Settings

RESTART_PAUSE_S = (1.0, 30.0)
STABLE_AFTER_S = 60.0  # a child that ran this long restarts after the shortest pause


def usable_cpus(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """The cores this process may use: its CPU affinity, capped by a cgroup v2 CPU quota
    (a container's `resources.limits.cpu`), rounded up; at least 1."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    count = cpus or 1
    try:
        quota, period = (cgroup_root / "cpu.max").read_text().split()[:2]
        if quota != "max":
            count = min(count, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    return max(1, count)


def child_env(settings: Settings, index: int, processes: int = 1) -> dict[str, str]:
    """The settings that make child `index` (of `processes`) a worker of its own."""
    env = {
        "WEBHOOKS_PROCESSES": "1",
        "WEBHOOKS_SIBLINGS": str(processes),
        "WEBHOOKS_WORKER_ID": f"{settings.worker_id}-{index}",
        "WEBHOOKS_DATA_DIR": str(settings.data_dir / f"process-{index}"),
    }
    if settings.http_port:
        env["WEBHOOKS_HTTP_PORT"] = str(settings.http_port + index)
    return env


def _term_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent dies (prctl PR_SET_PDEATHSIG)."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1


@dataclass
class Child:
    index: int
    proc: subprocess.Popen[bytes]
    started: float
    pause_s: float = RESTART_PAUSE_S[0]
    restart_at: float | None = None
    exits: list[int] = field(default_factory=list)


class Supervisor:
    """Starts the children, passes stop signals on, starts again those that die."""

    def __init__(self, settings: Settings, processes: int, loglevel: str) -> None:
        self.settings = settings
        self.processes = processes
        self.command = [
            sys.executable,
            "-c",
            "from app.cli.main import main; main()",
            "worker",
            "--loglevel",
            loglevel,
            "--processes",
            "1",
        ]
        self.children: list[Child] = []
        self.stopping = False

    def spawn(self, index: int) -> subprocess.Popen[bytes]:
        """A child in a session of its own, so a signal reaches it once (from here), not
        also from the terminal; it is sent SIGTERM if this process dies (Linux)."""
        env = {**os.environ, **child_env(self.settings, index, self.processes)}
        Path(env["WEBHOOKS_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
        return subprocess.Popen(
            self.command, env=env, start_new_session=True, preexec_fn=_term_with_parent
        )

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop)
        now = time.monotonic()
        self.children = [Child(i, self.spawn(i), now) for i in range(self.processes)]
        pids = ", ".join(str(c.proc.pid) for c in self.children)
        print(f"worker: {self.processes} processes (pids {pids})", file=sys.stderr, flush=True)
        while True:
            alive = 0
            for child in self.children:
                alive += self._watch(child)
            if self.stopping and not alive:
                break
            time.sleep(0.2)
        codes = [c.proc.returncode for c in self.children]
        return 0 if all(code == 0 for code in codes) else 1

    def _watch(self, child: Child) -> int:
        """1 while the child runs (or will be started again), else 0."""
        code = child.proc.poll()
        if code is None:
            return 1
        if self.stopping:
            return 0
        now = time.monotonic()
        if child.restart_at is None:
            if now - child.started >= STABLE_AFTER_S:
                child.pause_s = RESTART_PAUSE_S[0]
            child.exits.append(code)
            child.restart_at = now + child.pause_s
            print(
                f"worker process {child.index} (pid {child.proc.pid}) exited with status "
                f"{code}; starting it again in {child.pause_s:.0f} s",
                file=sys.stderr,
                flush=True,
            )
            child.pause_s = min(child.pause_s * 2, RESTART_PAUSE_S[1])
        elif now >= child.restart_at:
            child.proc = self.spawn(child.index)
            child.started, child.restart_at = now, None
        return 1

    def _stop(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping = True
        for child in self.children:
            if child.proc.poll() is None:
                child.proc.send_signal(signum)
