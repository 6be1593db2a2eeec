"""`python -m bench.baselines [--records N]`: how long baselines take for existing members.

Issue 10, item 1: when a job with trigger fields is applied (or its trigger fields edited),
the router establishes each current member's baseline from their latest input record, so
the first change after the job exists is sent. This measures that for N members (default
1 000 000, one record each, all in the audience, 8 input partitions):

1. produce N records while no worker runs; start a worker; wait until the router drained them;
2. apply a job with `trigger_fields: [plan]`, then produce one record on every partition;
3. report, per partition, the time the router logged for its baselines, and the wall time
   from the first of those records to the last partition's baselines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import time
import uuid

import orjson
import yaml
from aiokafka import AIOKafkaProducer

from app.settings import Settings, settings_from_env
from bench.memory import BIN, PARTITIONS, ROOT, bench_env, drained, produce, rss_mib

LINE = re.compile(
    r"baselines established for job\(s\) .* on input partition (\d+): (\d+) of (\d+) "
    r"member\(s\).*, ([0-9.]+) s"
)


async def poke_every_partition(settings: Settings) -> None:
    prod = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    await prod.start()
    try:
        for p in range(PARTITIONS):
            value = orjson.dumps({"id": f"poke-{p}", "data": {"plan": "x"}, "segment_events": []})
            await prod.send_and_wait(settings.input_topic, value, key=b"poke", partition=p)
    finally:
        await prod.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument(
        "--bootstrap", default=os.environ.get("WEBHOOKS_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    )
    args = parser.parse_args()
    tag = uuid.uuid4().hex[:8]
    workdir = ROOT / ".cache" / f"bench-baselines-{tag}"
    workdir.mkdir(parents=True)
    env = {
        **bench_env("bl", tag, workdir, args.bootstrap),
        "WEBHOOKS_ALLOWED_PRIVATE_NETS": "127.0.0.0/8",
    }
    settings = settings_from_env(env)
    full_env = {**os.environ, **env}
    subprocess.run([str(BIN / "webhooks"), "topics", "create"], env=full_env, check=True)
    load_before = os.getloadavg()[0]
    produce_s = await produce(settings, args.records, 1)
    print(f"produced {args.records} members in {produce_s:.1f} s", flush=True)
    log_path = workdir / "worker.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [str(BIN / "webhooks"), "worker", "-l", "info"],
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
    try:
        while True:
            if await drained(settings):
                break
            await asyncio.sleep(1.0)
        print("router drained the members", flush=True)
        job = {
            "id": f"bl{tag}",
            "type": "audience_triggers",
            "label": "baselines bench",
            "audiences": ["newsletter"],
            "trigger_fields": ["plan"],
            "trigger_events": "enter",
            "webhook_url": "https://127.0.0.1:9/hook",
        }
        job_file = workdir / "job.yaml"
        job_file.write_text(yaml.safe_dump(job))
        subprocess.run(
            [str(BIN / "webhooks"), "jobs", "apply", str(job_file), "--wait"],
            env=full_env,
            check=True,
        )
        rss_before = rss_mib(proc.pid)
        started = time.monotonic()
        await poke_every_partition(settings)
        peak = rss_before
        found: dict[int, tuple[int, int, float]] = {}
        while len(found) < PARTITIONS:
            await asyncio.sleep(0.2)
            peak = max(peak, rss_mib(proc.pid))
            for m in LINE.finditer(log_path.read_text(errors="replace")):
                found[int(m[1])] = (int(m[2]), int(m[3]), float(m[4]))
        wall = time.monotonic() - started
    finally:
        proc.terminate()
        proc.wait(30)
    result = {
        "members": args.records,
        "partitions": PARTITIONS,
        "baselines_established": sum(v[0] for v in found.values()),
        "per_partition_s": {p: v[2] for p, v in sorted(found.items())},
        "wall_s": round(wall, 1),
        "members_per_s": round(sum(v[0] for v in found.values()) / wall),
        "rss_before_mib": round(rss_before, 1),
        "rss_peak_mib": round(peak, 1),
        "load_before": load_before,
    }
    out = workdir / "baselines.json"
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    print(f"result: {out}")


if __name__ == "__main__":
    asyncio.run(main())
