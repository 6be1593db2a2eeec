"""What a process and its descendants use, read from /proc (Linux): CPU seconds and sockets.

Cheap enough to call from the benchmark receiver's request path at the first and the last
event of a drain (a few small files per process, no subprocess)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """`pid` and every live descendant (from /proc/PID/task/TID/children)."""
    out: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        try:
            tasks = list(Path(f"/proc/{current}/task").iterdir())
        except OSError:
            continue  # gone
        for task in tasks:
            with contextlib.suppress(OSError):
                todo.extend(int(c) for c in (task / "children").read_text().split())
    return out


def _stat_seconds(pid: int) -> float:
    """utime + stime + cutime + cstime of one process (0 if it is gone). The last two hold
    the CPU of its children that exited and were reaped, so a tree's sum does not drop
    when one of its processes ends."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / CLOCK_TICKS


def cpu_seconds(pids: int | Iterable[int]) -> float:
    """User + system CPU seconds of the process(es) `pids` and all their descendants,
    including descendants that already exited (and were reaped)."""
    roots = [pids] if isinstance(pids, int) else list(pids)
    return sum(_stat_seconds(p) for root in roots for p in process_tree(root))


def _socket_links(pid: int) -> Iterator[str]:
    """`socket:[inode]` for every socket descriptor of a process and its descendants."""
    for member in process_tree(pid):
        with contextlib.suppress(OSError):  # gone meanwhile
            for fd in Path(f"/proc/{member}/fd").iterdir():
                with contextlib.suppress(OSError):  # closed meanwhile
                    target = os.readlink(fd)
                    if target.startswith("socket:"):
                        yield target


def socket_count(pid: int) -> int:
    """Open sockets of a process and its descendants (a worker's processes)."""
    return sum(1 for _ in _socket_links(pid))


def sockets_by_peer(pid: int, ports: dict[int, str]) -> dict[str, int]:
    """The TCP sockets of a process and its descendants, counted by the name `ports` gives
    their remote port (e.g. the broker's, the receiver's); "listening" for servers, "other"
    for the rest (pipes and Unix sockets are not counted)."""
    inodes = {int(link[8:-1]) for link in _socket_links(pid)}
    counts: dict[str, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            next(lines)  # header
            for line in lines:
                fields = line.split()
                if int(fields[9]) not in inodes:
                    continue
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                listening = fields[3] == "0A"  # TCP_LISTEN
                name = "listening" if listening else ports.get(remote_port, "other")
                counts[name] = counts.get(name, 0) + 1
    return counts
