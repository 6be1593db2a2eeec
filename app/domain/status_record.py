"""The job-status record (`topics/webhook-job-status.json`): one home for its key and value.

Key `<job id>/<worker id>`; value: which worker, when (`updated_at`, the heartbeat that
tells readers the worker is alive), the config version it runs, whether it is the worker's
last word (`final`, written on a clean stop) and the `JobStatus`. Workers write it
(`DeliveryService`); `webhooks jobs list/show` and `--wait` read it.
"""

from __future__ import annotations

from typing import Any

import orjson

from app.domain.job_state import JobStatus

# The key a worker's own liveness record uses in place of a job id (job ids cannot start
# with "_"): a worker that runs no job yet is still known as live, so `jobs apply --wait`
# waits for it too.
WORKER_RECORD = "_worker"


def status_key(job_id: str, worker_id: str) -> bytes:
    return f"{job_id}/{worker_id}".encode()


def split_status_key(key: str) -> tuple[str, str] | None:
    """(job id, worker id), or None for a key that is not a status key."""
    job_id, sep, worker_id = key.rpartition("/")
    return (job_id, worker_id) if sep and job_id else None


def encode_status_record(
    job_id: str,
    worker_id: str,
    status: JobStatus,
    version: str | None,
    now: float,
    final: bool = False,
) -> bytes:
    return orjson.dumps(
        {
            "job_id": job_id,
            "worker_id": worker_id,
            "updated_at": now,
            "version": version,
            "final": final,
            "status": status.to_dict(),
        }
    )


def decode_status_record(raw: bytes | str | None) -> dict[str, Any] | None:
    """The record as a dict, or None for a tombstone or a value that is not one."""
    if not raw:
        return None
    try:
        doc = orjson.loads(raw)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def decode_status(raw: bytes | None) -> JobStatus | None:
    """Just the `JobStatus` of a record (a worker reloading its own); None if unreadable."""
    doc = decode_status_record(raw)
    if doc is None:
        return None
    try:
        return JobStatus.from_dict(doc["status"])
    except (ValueError, KeyError, TypeError):
        return None
