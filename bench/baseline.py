"""The baseline: a plain aiokafka consumer posting with aiohttp, no framework, no router hop.

Reads the input topic, builds the same default body the service sends (all fields plus the
record's segment events), posts one request per event with `--concurrency` in flight
(unbatched) or arrays of `--batch-size` (batched), commits after each chunk is delivered.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import time
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer


def body_for(record: dict[str, Any]) -> dict[str, Any]:
    data = dict(record["data"])
    data["segment_events"] = record.get("segment_events", [])
    return {"id": record["id"], "data": data, "meta": {"object": "user", "timestamp": ""}}


async def run(args: argparse.Namespace) -> None:
    context = ssl.create_default_context(cafile=args.ca)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context, limit=0))
    consumer = AIOKafkaConsumer(
        args.topic,
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=2000,
    )
    await consumer.start()
    semaphore = asyncio.Semaphore(args.concurrency)
    done = 0
    deadline = time.monotonic() + args.timeout

    async def post(payload: bytes) -> None:
        async with semaphore:
            while True:
                try:
                    async with session.post(
                        args.url, data=payload, headers={"Content-Type": "application/json"}
                    ) as resp:
                        await resp.read()
                        if resp.status < 300:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)

    try:
        while done < args.count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            bodies = [body_for(orjson.loads(m.value)) for msgs in batches.values() for m in msgs]
            if not bodies:
                continue
            if args.batch_size > 1:
                chunks = [
                    orjson.dumps(bodies[i : i + args.batch_size])
                    for i in range(0, len(bodies), args.batch_size)
                ]
            else:
                chunks = [orjson.dumps(b) for b in bodies]
            await asyncio.gather(*(post(c) for c in chunks))
            await consumer.commit()
            done += len(bodies)
    finally:
        await consumer.stop()
        await session.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("bootstrap", "topic", "group", "url", "ca"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=600)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
