"""Job-log use cases: a job's entries, oldest first, from a time on (or followed live)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from app.domain.job_log import JobLogEntry
from app.settings import Settings
from app.transport.job_log import read_job_log
from app.usecases.job_reads import get_job

MAX_ENTRIES = 1000


async def recent_entries(
    settings: Settings, job_id: str, since: float | None = None, limit: int = 200
) -> list[JobLogEntry]:
    """The latest `limit` entries of an existing job's log from `since` (unix seconds)."""
    await get_job(settings, job_id)
    limit = max(1, min(limit, MAX_ENTRIES))
    out: list[JobLogEntry] = []
    async for item in read_job_log(settings, job_id, since):
        out.append(item)
        if len(out) > limit:
            del out[0]
    return out


def entries(
    settings: Settings, job_id: str, since: float | None = None, follow: bool = False
) -> AsyncIterator[JobLogEntry]:
    """Every entry from `since`, then new ones as they come with `follow` (the job may be
    deleted already: its log is kept 7 days)."""
    return read_job_log(settings, job_id, since, follow)
