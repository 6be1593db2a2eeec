"""`python -m bench.memory [--records N]`: the worker's memory while it drains a backlog.

Produces N input records (default 1 000 000, one per user, every user entering an audience)
while no worker runs, starts a worker with no jobs, and samples its RSS every 0.2 s until
the router has committed every input partition to its end. Then stops it, produces N more
records for the same users (a field changed), starts a new worker, and samples again. Last,
it restarts the worker once more with nothing new to read: the time to its first
assignment is the restart cost with N users in state (from the local state snapshots the
previous clean stop wrote; `--no-snapshots` deletes them first, to compare with a full
changelog restore).

Reported: the RSS once the state is restored and before the backlog moves ("state RSS"),
the peak while draining, and the difference, which is what the backlog costs; plus the time
from start to the first assignment (state restored) and the drain rate. Issue 9 asks the
difference to stay under 400 MiB for a 1 000 000-record backlog.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from app.settings import Settings, settings_from_env
from app.transport.input_consumer import router_group
from app.transport.kafka_admin import admin_client

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PARTITIONS = 8


def rss_mib(pid: int) -> float:
    """Resident memory of `pid` and its children (the worker's template processes)."""
    total = 0
    for p in [pid, *children(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def children(pid: int) -> list[int]:
    try:
        out = subprocess.run(
            ["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False
        ).stdout
    except OSError:
        return []
    pids = [int(x) for x in out.split()]
    return pids + [c for p in pids for c in children(p)]


async def produce(settings: Settings, n: int, wave: int) -> float:
    started = time.monotonic()
    prod = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        acks="all",
        linger_ms=20,
        max_batch_size=512 * 1024,
        compression_type=None,
    )
    await prod.start()
    try:
        for i in range(n):
            value = orjson.dumps(
                {
                    "id": f"user-{i}",
                    "data": {"plan": f"p{wave}", "email": f"user{i}@example.com", "n": i},
                    "segment_events": [{"id": "s1", "slug": "newsletter", "event": "enter"}],
                }
            )
            await prod.send(settings.input_topic, value, key=f"user-{i}".encode())
        await prod.flush()
    finally:
        await prod.stop()
    return time.monotonic() - started


async def drained(settings: Settings) -> bool:
    async with admin_client(settings) as admin:
        committed = await admin.list_consumer_group_offsets(router_group(settings))
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers)
    await consumer.start()
    try:
        tps = [TopicPartition(settings.input_topic, p) for p in range(PARTITIONS)]
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    return all(committed.get(tp) is not None and committed[tp].offset == ends[tp] for tp in tps)


async def run_worker(env: dict[str, str], log_path: Path) -> dict[str, float]:
    settings = settings_from_env(env)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [str(BIN / "webhooks"), "worker", "-l", "info"],
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
    started = time.monotonic()
    offset = 0
    ready_at: float | None = None
    state_rss = 0.0
    peak = 0.0
    try:
        while True:
            await asyncio.sleep(0.2)
            rss = rss_mib(proc.pid)
            if ready_at is None:
                with log_path.open("rb") as f:
                    f.seek(offset)
                    text = f.read().decode(errors="replace")
                if "input partitions assigned" in text:
                    ready_at = time.monotonic() - started
                    state_rss = rss
                continue
            peak = max(peak, rss)
            if await drained(settings):
                break
        drain_s = time.monotonic() - started - ready_at
    finally:
        proc.terminate()
        proc.wait(30)
    return {
        "ready_s": round(ready_at, 2),
        "state_rss_mib": round(state_rss, 1),
        "peak_rss_mib": round(peak, 1),
        "backlog_cost_mib": round(peak - state_rss, 1),
        "drain_s": round(drain_s, 1),
    }


def bench_env(prefix: str, tag: str, workdir: Path, bootstrap: str) -> dict[str, str]:
    """A worker environment with its own topics, groups and data dir (`bench-PREFIX-*-TAG`)."""
    topics = {
        "INPUT": "in",
        "JOBS": "jobs",
        "AUTHORIZATIONS": "auth",
        "DEADLETTER": "dead",
        "STATUS": "status",
        "JOB_LOG": "joblog",
        "BACKFILLS": "bf",
        "BACKFILL_PROGRESS": "bfp",
        "ENRICHMENT": "enrich",
    }
    return {
        "WEBHOOKS_KAFKA_BOOTSTRAP": bootstrap,
        "WEBHOOKS_APP_ID": f"bench-{prefix}-{tag}",
        **{f"WEBHOOKS_{k}_TOPIC": f"bench-{prefix}-{v}-{tag}" for k, v in topics.items()},
        "WEBHOOKS_INPUT_PARTITIONS": str(PARTITIONS),
        "WEBHOOKS_DATA_DIR": str(workdir / "data"),
        "WEBHOOKS_WORKER_ID": "bench",
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--no-snapshots", action="store_true", help="restart without them")
    parser.add_argument(
        "--bootstrap", default=os.environ.get("WEBHOOKS_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    )
    args = parser.parse_args()
    tag = uuid.uuid4().hex[:8]
    workdir = ROOT / ".cache" / f"bench-memory-{tag}"
    workdir.mkdir(parents=True)
    env = bench_env("mem", tag, workdir, args.bootstrap)
    settings = settings_from_env(env)
    subprocess.run(
        [str(BIN / "webhooks"), "topics", "create"],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
    )
    results: dict[str, object] = {"records": args.records, "load_before": os.getloadavg()[0]}
    for wave in (1, 2, 3):
        if wave < 3:
            produce_s = await produce(settings, args.records, wave)
            print(f"wave {wave}: produced {args.records} records in {produce_s:.1f} s", flush=True)
        elif args.no_snapshots:
            shutil.rmtree(workdir / "data" / "state-snapshots", ignore_errors=True)
        stats = await run_worker(env, workdir / f"worker-{wave}.log")
        print(f"wave {wave}: {json.dumps(stats)}", flush=True)
        results[f"wave{wave}"] = stats
    results["restart_s"] = results["wave3"]["ready_s"]  # type: ignore[index]
    out = workdir / "memory.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"result: {out}")


if __name__ == "__main__":
    asyncio.run(main())
