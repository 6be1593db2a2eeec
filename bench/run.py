"""`make bench` / `python -m bench.run [-n N]`: the service against a minimal baseline.

For each mode (unbatched: worker_count 20; batched: batch_size 100) it produces N events
(default 100 000) to a fresh input topic, lets a `webhooks worker` process deliver them to a
local HTTPS receiver (its own process), then does the same with the baseline consumer, and
reports delivered events/s, produce-to-receive latency p50/p99, CPU seconds per 1 000 events
while draining, and service/baseline ratios. Then the restart figure, many jobs on one worker
(`--jobs`) and job churn beside running jobs (`--churn`). Everything runs on this machine
against the local broker; nothing else is contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import trustme
import yaml
from aiokafka import AIOKafkaProducer

from app.cli.supervisor import usable_cpus
from app.domain.slots import SLOTS
from app.settings import settings_from_env
from app.transport.kafka_admin import admin_client
from bench.memory import drained, rss_mib
from bench.proc import cpu_seconds, socket_count, sockets_by_peer

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
USERS = 10_000
RECEIVER_PORT = 18443
CPU_RATIO_AIM = 2.0  # service CPU per event at most twice the baseline's
CHURN_GAP_AIM_MS = 1000.0


@functools.cache
def queue_topic_pattern() -> str:
    """How a job's queue topic is named: the declared `topics/webhook-queue-JOB_ID.json`
    (`webhook-queue-{job_id}`, see `app/topic_catalog.py`)."""
    try:
        doc = json.loads((ROOT / "topics" / "webhook-queue-JOB_ID.json").read_text())
        return str(doc["name"])
    except (OSError, ValueError, KeyError):
        return "webhook-queue-{job_id}"


def queue_topic(job_id: str) -> str:
    return queue_topic_pattern().format(job_id=job_id)


@dataclass
class Result:
    name: str
    events: int
    seconds: float
    p50_ms: float
    p99_ms: float
    peak_rss_mib: float | None = None
    cpu_s: float | None = None  # CPU of the process tree from the first to the N-th event
    cpu_events: int = 0  # events received in that window

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    @property
    def cpu_s_per_1000(self) -> float | None:
        if self.cpu_s is None or self.cpu_events <= 0:
            return None
        return self.cpu_s / self.cpu_events * 1000


def cpu_ratio(svc: Result, base: Result | None) -> float | None:
    """Service CPU per event over the baseline's."""
    if base is None or svc.cpu_s_per_1000 is None or not base.cpu_s_per_1000:
        return None
    return svc.cpu_s_per_1000 / base.cpu_s_per_1000


def largest_gap(times: list[float], start: float, end: float, observed: float) -> float:
    """The longest interval between consecutive receive `times` that overlaps [start, end];
    `observed` (when the times were read) closes the last interval, so a job that stopped
    receiving counts up to then."""
    ordered = [t for t in sorted(times) if t <= observed] + [observed]
    gaps = [b - a for a, b in itertools.pairwise(ordered) if b >= start and a <= end]
    if not any(t < start for t in ordered):  # nothing before the window: count from its start
        gaps.append(ordered[0] - start)
    return max(gaps, default=0.0)


SLOTS_LINE = re.compile(rb"\] \[(\d+)\] \[INFO\] delivery slots: .*\(holding (\d+)\)")


def slots_settled(log: bytes, processes: int) -> bool:
    """Whether a worker's log shows its `processes` processes holding every delivery slot
    (the last `delivery slots` line of each process); until then a slot may still move, and
    its jobs pause while they are handed over."""
    holding: dict[bytes, int] = {}
    for pid, count in SLOTS_LINE.findall(log):
        holding[pid] = int(count)
    return len(holding) == processes and sum(holding.values()) == SLOTS


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Bench:
    def __init__(self, n: int, bootstrap: str, workdir: Path) -> None:
        self.n = n
        self.workers = 1
        self.processes: int | None = None  # per worker; None: the worker's default (cores)
        self.latency_rate = 1000
        self.latency_seconds = 10
        self.bootstrap = bootstrap
        self.workdir = workdir
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1")
        self.ca_path = workdir / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_path))
        cert.private_key_pem.write_to_path(str(workdir / "key.pem"))
        cert.cert_chain_pems[0].write_to_path(str(workdir / "cert.pem"))
        self.url = f"https://127.0.0.1:{RECEIVER_PORT}/hook"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.tags: list[str] = []  # every run's tag: its topics are deleted at the end

    def spawn(self, args: list[str], env: dict[str, str], log: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            args,
            env={**os.environ, **env},
            stdout=(self.workdir / log).open("wb"),
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    async def receiver_call(self, method: str, path: str, body: Any = None) -> Any:
        ctx_ssl = __import__("ssl").create_default_context(cafile=str(self.ca_path))
        data = None if body is None else orjson.dumps(body)
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                method, f"https://127.0.0.1:{RECEIVER_PORT}{path}", data=data, ssl=ctx_ssl
            ) as r,
        ):
            return orjson.loads(await r.read()) if r.status == 200 else None

    async def watch_cpu(self, pids: list[int], count: int) -> None:
        """Have the receiver sample the CPU of `pids` (with their descendants) at the first
        event and at the `count`-th (see `bench/receiver.py`)."""
        watch = await self.receiver_call("POST", "/watch", {"pids": pids, "count": count})
        if watch is None or watch["late"]:
            print("CPU watch set after the first event: no CPU figure for this run", flush=True)

    async def start_receiver(self) -> None:
        self.spawn(
            [
                str(BIN / "python"),
                "-m",
                "bench.receiver",
                "--port",
                str(RECEIVER_PORT),
                "--cert",
                str(self.workdir / "cert.pem"),
                "--key",
                str(self.workdir / "key.pem"),
            ],
            {},
            "receiver.log",
        )
        for _ in range(100):
            try:
                await self.receiver_call("GET", "/stats")
                return
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
        raise RuntimeError("benchmark receiver did not start")

    async def produce(self, topic: str, count: int, rate: float = 0.0, first: int = 0) -> None:
        """Produce `count` events (each an enter or exit: one webhook each); `rate` paces them
        (events/s; 0 = as fast as possible)."""
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=5)
        await producer.start()
        started = time.monotonic()
        try:
            for i in range(first, first + count):
                if rate and i % 50 == 0:
                    ahead = (i - first) / rate - (time.monotonic() - started)
                    if ahead > 0:
                        await asyncio.sleep(ahead)
                user = f"user-{i % USERS}"
                kind = "enter" if (i // USERS) % 2 == 0 else "exit"
                record = {
                    "id": user,
                    "data": {"email": f"{user}@example.com", "n": i, "produced_at": time.time()},
                    "segment_events": [{"id": "s1", "slug": "bench", "event": kind}],
                }
                await producer.send(topic, orjson.dumps(record), key=user.encode())
            await producer.flush()
        finally:
            await producer.stop()

    async def produce_entries(self, topic: str, users: int, slug: Callable[[int], str]) -> None:
        """Users user-0.. each entering audience `slug(i)` (with `produced_at`)."""
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=20)
        await producer.start()
        try:
            for i in range(users):
                record = {
                    "id": f"user-{i}",
                    "data": {"email": f"user-{i}@example.com", "produced_at": time.time()},
                    "segment_events": [{"id": "s2", "slug": slug(i), "event": "enter"}],
                }
                await producer.send(topic, orjson.dumps(record), key=f"user-{i}".encode())
            await producer.flush()
        finally:
            await producer.stop()

    async def create_topic(self, topic: str) -> None:
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, num_partitions=8, replication_factor=1)])
        finally:
            await admin.close()

    async def drop_topics(self) -> None:
        """Delete the topics this run created (named with its tags), so runs do not pile up
        topics on the broker: every Kafka client's bootstrap reads the metadata of every
        topic, and thousands of leftover topics slowed the many-jobs start by seconds."""
        settings = settings_from_env({"WEBHOOKS_KAFKA_BOOTSTRAP": self.bootstrap})
        try:
            async with admin_client(settings) as admin:
                names = [t for t in await admin.list_topics() if any(g in t for g in self.tags)]
                if names:
                    await admin.delete_topics(names)
        except Exception as exc:  # the figures are still good; say what is left behind
            print(f"could not delete this run's topics: {exc!r}", flush=True)

    async def wait_for(self, count: int, name: str, limit_s: float = 900) -> dict[str, Any]:
        deadline = time.monotonic() + limit_s
        stats: dict[str, Any] = {}
        while time.monotonic() < deadline:
            stats = await self.receiver_call("GET", "/stats")
            if stats["events"] >= count:
                return stats
            await asyncio.sleep(0.2)
        raise RuntimeError(f"{name}: only {stats.get('events')} of {count} delivered")

    async def measure(self, name: str, topic: str) -> Result:
        """Throughput draining a backlog of N (and the CPU it cost, if `watch_cpu` was
        called); then latency of events paced below capacity."""
        drained = await self.wait_for(self.n, name)
        seconds = drained["last"] - drained["first"]
        cpu_s, cpu_events = None, 0
        watch = drained.get("cpu")
        if watch and not watch["late"] and watch["last_cpu_s"] is not None:
            cpu_s = watch["last_cpu_s"] - watch["first_cpu_s"]
            cpu_events = watch["last_events"] - watch["first_events"]
        await self.receiver_call("POST", "/reset")
        paced = self.latency_rate * self.latency_seconds
        await self.produce(topic, paced, rate=self.latency_rate, first=self.n)
        timed = await self.wait_for(paced, name)
        latencies = timed["latencies_ms"]
        return Result(
            name=name,
            events=self.n,
            seconds=seconds,
            p50_ms=percentile(latencies, 0.50),
            p99_ms=percentile(latencies, 0.99),
            cpu_s=cpu_s,
            cpu_events=cpu_events,
        )

    def env(self, tag: str) -> dict[str, str]:
        self.tags.append(tag)
        return {
            "WEBHOOKS_KAFKA_BOOTSTRAP": self.bootstrap,
            "WEBHOOKS_APP_ID": f"bench-{tag}",
            "WEBHOOKS_INPUT_TOPIC": f"bench-events-{tag}",
            "WEBHOOKS_JOBS_TOPIC": f"bench-jobs-{tag}",
            "WEBHOOKS_AUTHORIZATIONS_TOPIC": f"bench-auth-{tag}",
            "WEBHOOKS_DEADLETTER_TOPIC": f"bench-deadletter-{tag}",
            "WEBHOOKS_CA_BUNDLE": str(self.ca_path),
            "WEBHOOKS_ALLOWED_PRIVATE_NETS": "127.0.0.0/8",
            "WEBHOOKS_DATA_DIR": str(self.workdir / f"data-{tag}"),
        } | ({"WEBHOOKS_PROCESSES": str(self.processes)} if self.processes else {})

    def cli(self, env: dict[str, str], *args: str) -> None:
        """Run a `webhooks` command with `env`; its failure stops the benchmark."""
        subprocess.run(
            [str(BIN / "webhooks"), *args],
            env={**os.environ, **env},
            check=True,
            capture_output=True,
        )

    def create_job(
        self, env: dict[str, str], tag: str, label: str, job_fields: dict[str, Any]
    ) -> None:
        """Topics for `env`, and an audience-triggers job on audience `bench` to the receiver."""
        self.cli(env, "topics", "create")
        job = {
            "id": f"bench-{tag}",
            "type": "audience_triggers",
            "label": label,
            "audiences": ["bench"],
            "webhook_url": self.url,
            **job_fields,
        }
        (self.workdir / f"job-{tag}.yaml").write_text(yaml.safe_dump(job))
        self.cli(env, "jobs", "apply", str(self.workdir / f"job-{tag}.yaml"))

    async def service(self, name: str, job_fields: dict[str, Any]) -> Result:
        tag = uuid.uuid4().hex[:8]
        env = self.env(tag)
        webhooks = str(BIN / "webhooks")
        self.create_job(env, tag, name, job_fields)
        topic = env["WEBHOOKS_INPUT_TOPIC"]
        await self.receiver_call("POST", "/reset")
        await self.produce(topic, self.n)
        workers = [
            self.spawn([webhooks, "worker", "-l", "info"], env, f"worker-{tag}-{i}.log")
            for i in range(self.workers)
        ]
        await self.watch_cpu([w.pid for w in workers], self.n)
        peak = [0.0]

        async def sample() -> None:
            while True:
                peak[0] = max(peak[0], sum(rss_mib(w.pid) for w in workers))
                await asyncio.sleep(0.5)

        sampler = asyncio.create_task(sample())
        try:
            result = await self.measure(name, topic)
            result.peak_rss_mib = round(peak[0], 1)
            return result
        finally:
            sampler.cancel()
            for worker in workers:
                self.stop(worker)

    async def restart(self, users: int) -> dict[str, Any]:
        """Restart to first delivery with `users` users in state: a worker builds the state
        (every user enters an audience no job watches), stops cleanly (writing its state
        snapshots), and a new worker starts; one event is produced at its start, and the
        time from spawning the worker to that event's webhook is the figure."""
        tag = uuid.uuid4().hex[:8]
        env = {**self.env(tag), "WEBHOOKS_INPUT_PARTITIONS": "8"}
        settings = settings_from_env(env)
        webhooks = str(BIN / "webhooks")
        self.create_job(env, tag, "restart", {})
        await self.produce_entries(settings.input_topic, users, lambda i: "warm")
        first = self.spawn([webhooks, "worker", "-l", "info"], env, f"worker-{tag}-build.log")
        started = time.monotonic()
        for _ in range(3600):  # polls the router group's commits, up to 30 min
            if await drained(settings):
                break
            await asyncio.sleep(0.5)
        build_s = time.monotonic() - started
        state_rss = rss_mib(first.pid)
        self.stop(first)
        await self.receiver_call("POST", "/reset")
        second = self.spawn([webhooks, "worker", "-l", "info"], env, f"worker-{tag}-restart.log")
        started = time.monotonic()
        try:
            await self.produce(settings.input_topic, 1)
            await self.wait_for(1, "restart", limit_s=300)
            first_delivery_s = time.monotonic() - started
        finally:
            self.stop(second)
        log = (self.workdir / f"worker-{tag}-restart.log").read_text(errors="replace")
        return {
            "users": users,
            "build_state_s": round(build_s, 1),
            "state_rss_mib": round(state_rss, 1),
            "restart_to_first_delivery_s": round(first_delivery_s, 2),
            "restored_from_snapshots": "local snapshots of" in log,
        }

    async def topic_partitions(self, names: list[str]) -> dict[str, int]:
        """Partitions of each of the topics `names` that exists (one metadata request for
        every topic, so a missing one is not auto-created)."""
        settings = settings_from_env({"WEBHOOKS_KAFKA_BOOTSTRAP": self.bootstrap})
        wanted = set(names)
        async with admin_client(settings) as admin:
            topics = await admin.describe_topics()
        return {
            t["topic"]: len(t["partitions"])
            for t in topics
            if t["topic"] in wanted and not t["error_code"]
        }

    async def many_jobs(self, jobs: int) -> dict[str, Any]:
        """`jobs` audience-triggers jobs on one worker (queue topics as the default makes): one
        event per job produced before the worker starts; the time from spawning it until
        every job delivered its event, then (15 s later: a worker settled into idleness, see
        `IDLE_AFTER_S` in `app/transport/queue_reader.py`) its sockets and its CPU while
        idle for 10 s; then the partitions of the jobs' queue topics (`queue_topic`), per job."""
        tag = uuid.uuid4().hex[:8]
        env = self.env(tag)
        settings = settings_from_env(env)
        webhooks = str(BIN / "webhooks")
        self.cli(env, "topics", "create")
        docs = [
            {
                "id": f"bench-{tag}-{i}",
                "type": "audience_triggers",
                "label": f"many jobs {i}",
                "audiences": [f"a{i}"],
                "webhook_url": f"{self.url}/bench-{tag}-{i}",  # per job: its first request's time
            }
            for i in range(jobs)
        ]
        path = self.workdir / f"jobs-{tag}.yaml"
        path.write_text(yaml.safe_dump_all(docs))
        started = time.monotonic()
        self.cli(env, "jobs", "apply", str(path))
        apply_s = time.monotonic() - started
        await self.produce_entries(settings.input_topic, jobs, lambda i: f"a{i}")
        await self.receiver_call("POST", "/reset")
        spawned_at = time.time()
        worker = self.spawn([webhooks, "worker", "-l", "info"], env, f"worker-{tag}-jobs.log")
        try:
            delivered = await self.wait_for(jobs, "many jobs", limit_s=600)
            every_job_s = delivered["last"] - spawned_at
            first_job_s = delivered["first"] - spawned_at
            paths = await self.receiver_call("GET", "/paths")
            firsts = sorted(min(times) - spawned_at for times in paths.values() if times)
            await asyncio.sleep(15)
            sockets = socket_count(worker.pid)
            broker_port = int(self.bootstrap.rsplit(":", 1)[1])
            peers = sockets_by_peer(worker.pid, {broker_port: "kafka", RECEIVER_PORT: "webhook"})
            before = cpu_seconds(worker.pid)
            await asyncio.sleep(10)
            idle_cpu = (cpu_seconds(worker.pid) - before) / 10
        finally:
            self.stop(worker)
        partitions = await self.topic_partitions([queue_topic(str(d["id"])) for d in docs])
        return {
            "jobs": jobs,
            "apply_s": round(apply_s, 1),
            "start_to_first_job_delivered_s": round(first_job_s, 1),
            "start_to_every_job_delivered_s": round(every_job_s, 1),
            # when each job's first request arrived: half of them, nine in ten
            "start_to_job_delivered_p50_p90_s": [
                round(percentile(firsts, 0.5), 1),
                round(percentile(firsts, 0.9), 1),
            ],
            "sockets": sockets,
            # by peer: Kafka connections are a few per process whatever the jobs; webhook
            # ones are HTTPS connections kept alive (30 s) after the jobs' first requests
            "sockets_by_peer": peers,
            "idle_cpu_of_a_core": round(idle_cpu, 3),
            "queue_topics_found": len(partitions),
            "queue_partitions_per_job": round(sum(partitions.values()) / jobs, 2),
        }

    async def stream(
        self, topic: str, audiences: list[str], rate: float, stop: asyncio.Event
    ) -> list[int]:
        """Until `stop`: `rate` events a second for each audience in `audiences` (each event
        an enter or exit of one of 500 users of that audience: one webhook each), paced on a
        fixed schedule. Returns the count produced per audience."""
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=5)
        await producer.start()
        produced = [0] * len(audiences)
        started = time.monotonic()
        tick = 0
        try:
            while not stop.is_set():
                ahead = tick / rate - (time.monotonic() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
                for j, slug in enumerate(audiences):
                    user = f"{slug}-u{tick % 500}"
                    kind = "enter" if (tick // 500) % 2 == 0 else "exit"
                    record = {
                        "id": user,
                        "data": {
                            "email": f"{user}@example.com",
                            "n": tick,
                            "produced_at": time.time(),
                        },
                        "segment_events": [{"id": f"s-{slug}", "slug": slug, "event": kind}],
                    }
                    await producer.send(topic, orjson.dumps(record), key=user.encode())
                    produced[j] += 1
                tick += 1
            await producer.flush()
        finally:
            await producer.stop()
        return produced

    async def cli_async(self, env: dict[str, str], *args: str) -> tuple[int, str]:
        """Run a `webhooks` command at nice 10 (its Python start-up shares this machine's two
        cores with the worker under test); its exit code and output."""
        proc = await asyncio.create_subprocess_exec(
            "nice",
            "-n",
            "10",
            str(BIN / "webhooks"),
            *args,
            env={**os.environ, **env},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=ROOT,
        )
        out, _ = await proc.communicate()
        return proc.returncode or 0, out.decode(errors="replace").strip()

    async def churn(self, running: int, rate: float, churned: int, parallel: int) -> dict[str, Any]:
        """Job churn beside running jobs: one worker delivers `running` unbatched jobs, each
        fed `rate` events/s to its own receiver path (`/hook/<job id>`); meanwhile `churned`
        new jobs are created (one `webhooks jobs apply --wait`) and then deleted
        (`webhooks jobs delete ID --force`, `parallel` at a time). The figure is the longest
        time a running job went without a delivery during that window."""
        tag = uuid.uuid4().hex[:8]
        env = self.env(tag)
        settings = settings_from_env(env)
        self.cli(env, "topics", "create")
        ids = [f"bench-{tag}-r{j}" for j in range(running)]
        docs = [
            {
                "id": job_id,
                "type": "audience_triggers",
                "label": f"churn running {j}",
                "audiences": [f"r{j}"],
                "webhook_url": f"{self.url}/{job_id}",
            }
            for j, job_id in enumerate(ids)
        ]
        (self.workdir / f"churn-{tag}-running.yaml").write_text(yaml.safe_dump_all(docs))
        self.cli(env, "jobs", "apply", str(self.workdir / f"churn-{tag}-running.yaml"))
        churn_ids = [f"bench-{tag}-c{i}" for i in range(churned)]
        churn_path = self.workdir / f"churn-{tag}-new.yaml"
        churn_path.write_text(
            yaml.safe_dump_all(
                [
                    {
                        "id": job_id,
                        "type": "audience_triggers",
                        "label": f"churn new {i}",
                        "audiences": [f"c{i}"],  # no events: only their start and stop count
                        "webhook_url": f"{self.url}/{job_id}",
                    }
                    for i, job_id in enumerate(churn_ids)
                ]
            )
        )
        await self.receiver_call("POST", "/reset")
        worker = self.spawn(
            [str(BIN / "webhooks"), "worker", "-l", "info"], env, f"worker-{tag}-churn.log"
        )
        stop = asyncio.Event()
        stream = asyncio.create_task(
            self.stream(settings.input_topic, [f"r{j}" for j in range(running)], rate, stop)
        )
        failures: list[str] = []
        try:
            deadline = time.monotonic() + 300
            while True:  # every running job delivers
                paths = await self.receiver_call("GET", "/paths")
                if all(paths.get(job_id) for job_id in ids):
                    break
                if time.monotonic() > deadline or stream.done():
                    raise RuntimeError(f"churn: {len(paths)} of {running} jobs delivering")
                await asyncio.sleep(0.5)
            log_path = self.workdir / f"worker-{tag}-churn.log"
            processes = self.processes or usable_cpus()
            while not slots_settled(log_path.read_bytes(), processes):
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"churn: the worker's {processes} processes never held every slot"
                    )
                await asyncio.sleep(0.2)
            await asyncio.sleep(5)  # steady state, the reference for the gaps
            started = time.time()
            code, out = await self.cli_async(
                env, "jobs", "apply", str(churn_path), "--wait", "--timeout", "120"
            )
            created = time.time()
            if code:
                failures.append(f"apply: exit {code}: {out[-300:]}")
            limit = asyncio.Semaphore(parallel)

            async def delete(job_id: str) -> None:
                async with limit:
                    code, out = await self.cli_async(env, "jobs", "delete", job_id, "--force")
                if code:
                    failures.append(f"delete {job_id}: exit {code}: {out[-300:]}")

            await asyncio.gather(*(delete(job_id) for job_id in churn_ids))
            ended = time.time()
            await asyncio.sleep(3)  # deliveries after the window close its last gaps
            paths = await self.receiver_call("GET", "/paths")
            observed = time.time()
        finally:
            stop.set()
            produced = await stream
            self.stop(worker)
        gaps = {j: largest_gap(paths.get(j, []), started, ended, observed) for j in ids}
        steady = {j: largest_gap(paths.get(j, []), started - 5, started, started) for j in ids}
        worst = max(gaps, key=lambda j: gaps[j])
        return {
            "running_jobs": running,
            "events_per_s_per_job": rate,
            "churned_jobs": churned,
            "delete_parallel": parallel,
            "create_s": round(created - started, 2),
            "delete_s": round(ended - created, 2),
            "max_gap_ms": round(gaps[worst] * 1000),
            "max_gap_job": worst,
            "max_gap_ms_per_job": [round(gaps[j] * 1000) for j in ids],
            "steady_max_gap_ms": round(max(steady.values()) * 1000),
            "min_deliveries_per_s_in_window": round(
                min(sum(started <= t <= ended for t in paths.get(j, [])) for j in ids)
                / max(ended - started, 1e-9),
                1,
            ),
            "produced": sum(produced),
            "failures": failures,
        }

    async def baseline(self, name: str, batch_size: int) -> Result:
        tag = uuid.uuid4().hex[:8]
        self.tags.append(tag)
        topic = f"bench-baseline-{tag}"
        await self.receiver_call("POST", "/reset")
        await self.create_topic(topic)
        await self.produce(topic, self.n)
        paced = self.latency_rate * self.latency_seconds
        proc = self.spawn(
            [
                str(BIN / "python"),
                "-m",
                "bench.baseline",
                "--bootstrap",
                self.bootstrap,
                "--topic",
                topic,
                "--group",
                f"baseline-{tag}",
                "--url",
                self.url,
                "--ca",
                str(self.ca_path),
                "--count",
                str(self.n + paced),
                "--concurrency",
                "20",
                "--batch-size",
                str(batch_size),
            ],
            {},
            f"baseline-{tag}.log",
        )
        await self.watch_cpu([proc.pid], self.n)
        try:
            return await self.measure(name, topic)
        finally:
            self.stop(proc)


def write_result(
    path: Path,
    args: argparse.Namespace,
    load_before: float,
    results: list[tuple[Result, Result | None, float]],
    restart: dict[str, Any] | None,
    many: dict[str, Any] | None,
    churn: dict[str, Any] | None,
) -> None:
    """The run as JSON next to its logs, so runs can be compared (`bench/README.md`)."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    runs = []
    for svc, base, aim in results:
        for r in (svc, base):
            if r is None:
                continue
            entry: dict[str, Any] = {
                "name": r.name,
                "events": r.events,
                "events_per_s": round(r.rate, 1),
                "p50_ms": r.p50_ms,
                "p99_ms": r.p99_ms,
            }
            if r.peak_rss_mib is not None:
                entry["peak_rss_mib"] = r.peak_rss_mib
            per_1000 = r.cpu_s_per_1000
            entry["cpu_s_per_1000"] = None if per_1000 is None else round(per_1000, 4)
            entry["cpu_s"] = None if r.cpu_s is None else round(r.cpu_s, 2)
            entry["cpu_events"] = r.cpu_events
            if r is svc and base is not None:
                entry["ratio"] = round(svc.rate / base.rate, 3)
                entry["aim"] = aim
                ratio = cpu_ratio(svc, base)
                entry["cpu_ratio"] = None if ratio is None else round(ratio, 3)
                entry["cpu_ratio_aim"] = CPU_RATIO_AIM
            runs.append(entry)
    doc = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": commit,
        "load_average_before": round(load_before, 2),
        "cpus": os.cpu_count(),
        "events": args.events,
        "workers": args.workers,
        "processes": args.processes,
        "runs": runs,
        "restart": restart,
        "many_jobs": many,
        "churn": churn,
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"result: {path}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", "--events", type=int, default=100_000)
    parser.add_argument(
        "--bootstrap", default=os.environ.get("WEBHOOKS_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    )
    parser.add_argument("--modes", default="unbatched,batched", help="comma-separated")
    parser.add_argument("--no-baseline", action="store_true", help="service runs only")
    parser.add_argument("--workers", type=int, default=1, help="`webhooks worker`s (scale-out)")
    parser.add_argument(
        "--processes",
        type=int,
        default=None,
        help="processes of each worker (WEBHOOKS_PROCESSES; default: the worker's, the cores)",
    )
    parser.add_argument(
        "--users", type=int, default=200_000, help="users in state for the restart figure (0: skip)"
    )
    parser.add_argument("--jobs", type=int, default=1000, help="jobs on one worker (0: skip)")
    parser.add_argument(
        "--churn",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="job churn beside running jobs (--no-churn: skip)",
    )
    parser.add_argument("--churn-running", type=int, default=10, help="jobs delivering")
    parser.add_argument("--churn-rate", type=float, default=50, help="events/s to each running job")
    parser.add_argument("--churn-jobs", type=int, default=50, help="jobs created then deleted")
    parser.add_argument(
        "--churn-parallel", type=int, default=10, help="`jobs delete` commands at a time"
    )
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    workdir = ROOT / ".cache" / "bench" / time.strftime("%Y%m%d-%H%M%S")
    workdir.mkdir(parents=True)
    bench = Bench(args.events, args.bootstrap, workdir)
    bench.workers = args.workers
    bench.processes = args.processes
    await bench.start_receiver()
    results: list[tuple[Result, Result | None, float]] = []
    restart: dict[str, Any] | None = None
    many: dict[str, Any] | None = None
    churn: dict[str, Any] | None = None
    try:
        for mode, fields, batch_size, aim in (
            ("unbatched", {"worker_count": 20}, 1, 0.75),
            ("batched", {"batch": True, "batch_size": 100, "worker_count": 20}, 100, 0.9),
        ):
            if mode not in args.modes.split(","):
                continue
            svc = await bench.service(f"service {mode}", fields)
            print(f"{svc.name}: {svc.rate:,.0f} events/s, {cpu_text(svc)}", flush=True)
            base = (
                None if args.no_baseline else await bench.baseline(f"baseline {mode}", batch_size)
            )
            if base is not None:
                print(f"{base.name}: {base.rate:,.0f} events/s, {cpu_text(base)}", flush=True)
            results.append((svc, base, aim))
        restart = await bench.restart(args.users) if args.users else None
        if restart is not None:
            print(f"restart: {json.dumps(restart)}", flush=True)
        many = await bench.many_jobs(args.jobs) if args.jobs else None
        if many is not None:
            print(f"many jobs: {json.dumps(many)}", flush=True)
        if args.churn:
            try:
                churn = await bench.churn(
                    args.churn_running, args.churn_rate, args.churn_jobs, args.churn_parallel
                )
            except Exception as exc:  # keep the figures measured so far
                churn = {"error": repr(exc)}
            print(f"churn: {json.dumps(churn)}", flush=True)
    finally:
        for proc in bench.procs:
            bench.stop(proc)
        await bench.drop_topics()
    print(f"\nlogs in {workdir}")
    write_result(workdir / "result.json", args, load_before, results, restart, many, churn)
    if results:
        print(
            f"\nthroughput: a backlog of {args.events:,} events drained; latency: "
            f"{bench.latency_rate * bench.latency_seconds:,} events paced at "
            f"{bench.latency_rate}/s, produce to receive; CPU: the worker (with its child "
            "processes) or the baseline, from the first event received to the last of the "
            "backlog\n"
        )
        print(
            f"{'run':<22}{'events/s':>12}{'p50 ms':>10}{'p99 ms':>10}{'ratio':>8}{'aim':>6}"
            f"{'CPU s/1k':>10}{'CPU ratio':>11}{'aim':>6}"
        )
    for svc, base, aim in results:
        for r in (svc, base):
            if r is None:
                continue
            per_1000 = r.cpu_s_per_1000
            cpu = "-" if per_1000 is None else f"{per_1000:.3f}"
            print(f"{r.name:<22}{r.rate:>12,.0f}{r.p50_ms:>10.0f}{r.p99_ms:>10.0f}", end="")
            if r is svc and base is not None:
                c_ratio = cpu_ratio(svc, base)
                c_text = "-" if c_ratio is None else f"{c_ratio:.2f}"
                print(
                    f"{svc.rate / base.rate:>8.2f}{aim:>6.2f}{cpu:>10}"
                    f"{c_text:>11}{'<=' + f'{CPU_RATIO_AIM:g}':>6}"
                )
            else:
                print(f"{'':>14}{cpu:>10}")
    if many is not None:
        print(
            f"\n{many['jobs']} jobs: spawn to first / every job delivered "
            f"{many['start_to_first_job_delivered_s']} / {many['start_to_every_job_delivered_s']} s"
            f" (half / nine in ten: {many.get('start_to_job_delivered_p50_p90_s')})"
            f", {many['sockets']} sockets ({many.get('sockets_by_peer')}), "
            f"idle CPU {many['idle_cpu_of_a_core']:.0%} of a core, "
            f"{many['queue_partitions_per_job']} queue partitions a job "
            f"({many['queue_topics_found']} queue topics found)"
        )
    if churn is not None and "error" in churn:
        print(f"\nchurn failed: {churn['error']}")
    elif churn is not None:
        print(
            f"\nchurn: {churn['churned_jobs']} jobs created in {churn['create_s']} s and "
            f"deleted in {churn['delete_s']} s beside {churn['running_jobs']} jobs at "
            f"{churn['events_per_s_per_job']:g} events/s each; longest gap between deliveries "
            f"{churn['max_gap_ms']} ms (aim <= {CHURN_GAP_AIM_MS:.0f}; "
            f"{churn['steady_max_gap_ms']} ms in the 5 s before)"
        )
        for failure in churn["failures"]:
            print(f"  failed: {failure}")


def cpu_text(r: Result) -> str:
    per_1000 = r.cpu_s_per_1000
    if per_1000 is None:
        return "no CPU figure"
    return f"{per_1000:.3f} CPU s per 1 000 events ({r.cpu_s:.1f} s over {r.cpu_events:,})"


if __name__ == "__main__":
    asyncio.run(main())
