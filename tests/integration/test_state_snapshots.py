"""Router state that survives restarts (issue 13, item 2): a clean stop writes each input
partition's state to a local snapshot; the next start loads it and reads only the changelog
written since. What the state decides (here: whether a trigger field changed) is the same as
after a full changelog restore, after a clean restart, a kill -9 (a snapshot older than the
changelog) and with a damaged snapshot."""

from __future__ import annotations

import re
from pathlib import Path

from app.devtools.receiver import WebhookReceiver
from app.settings import Settings
from app.topic_catalog import state_changelog_topic
from tests.support.jobs import apply_jobs, settle, triggers_job, wait_for_requests
from tests.support.kafka_io import produce
from tests.support.processes import WorkerProcess
from tests.support.records import input_record

USERS = 10


def enter(user: int, value: str) -> tuple[bytes, bytes]:
    return input_record(f"user-{user}", {"plan": value}, ("enter", "newsletter"))


def plan(user: int, value: str) -> tuple[bytes, bytes]:
    """A profile update without segment events: a webhook only if `plan` changed, which
    only the stored state (membership and the plan's fingerprint) can tell."""
    return input_record(f"user-{user}", {"plan": value})


def changed_users(receiver: WebhookReceiver, since: int) -> list[str]:
    return sorted(
        r.body.decode().split('"user-')[1].split('"')[0] for r in receiver.for_path("/snap")[since:]
    )


def restored_line(worker: WorkerProcess) -> str:
    match = re.search(r"state restored for partition\(s\) .*", worker.since_start())
    assert match, worker.tail()
    return match.group(0)


async def test_state_comes_back_from_local_snapshots_after_restarts_and_crashes(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    tmp_path: Path,
) -> None:
    topic = test_settings.input_topic
    snapshots = test_settings.data_dir / "state-snapshots" / state_changelog_topic(test_settings)
    worker = WorkerProcess(env=test_env, log_path=tmp_path / "worker.log")
    worker.start()
    try:
        job = triggers_job(receiver.url("/snap"), trigger_fields=["plan"])
        await apply_jobs(test_env, tmp_path, worker, job)
        await produce(test_settings, topic, [enter(u, "a") for u in range(USERS)])
        await wait_for_requests(receiver, "/snap", USERS)
        await settle(receiver)
        seen = len(receiver.for_path("/snap"))

        worker.stop()  # clean: snapshots written
        assert "state snapshots written for partition(s) [0, 1]" in worker.since_start()
        assert sorted(p.name for p in snapshots.iterdir()) == ["0.snapshot", "1.snapshot"]
        worker.start()
        line = restored_line(worker)
        # every user, and each partition's marker that the job's baselines are established
        assert f"0 changelog record(s) read, {USERS + 2} entries" in line, line
        assert "local snapshots of [0, 1]" in line, line
        # Unchanged plans send nothing; one changed plan sends one event.
        await produce(test_settings, topic, [plan(u, "a") for u in range(USERS)] + [plan(0, "b")])
        await wait_for_requests(receiver, "/snap", seen + 1)
        await settle(receiver)
        assert changed_users(receiver, seen) == ["0"]
        seen += 1

        worker.kill()  # the snapshots now lag the changelog (user-0 has plan b)
        worker.start()
        line = restored_line(worker)
        assert "local snapshots of [0, 1]" in line and " 0 changelog record(s)" not in line, line
        await produce(test_settings, topic, [plan(0, "b"), plan(1, "b")])
        await wait_for_requests(receiver, "/snap", seen + 1)
        await settle(receiver)
        assert changed_users(receiver, seen) == ["1"]
        seen += 1

        worker.stop()
        for path in snapshots.iterdir():  # damaged: every partition falls back to the changelog
            path.write_bytes(path.read_bytes()[:-10])
        worker.start()
        line = restored_line(worker)
        assert "local snapshots" not in line, line
        assert "checksum mismatch" in worker.since_start()
        await produce(test_settings, topic, [plan(1, "b"), plan(2, "b")])
        await wait_for_requests(receiver, "/snap", seen + 1)
        await settle(receiver)
        assert changed_users(receiver, seen) == ["2"]
    finally:
        worker.stop()
