"""`webhooks jobs ...`: apply, list, show, backfill, delete, logs, stop, resume,
rotate-signing-secret."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import click
import orjson
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from app.cli.files import load_documents
from app.cli.running import run_async
from app.domain.job_log import parse_since
from app.settings import Settings, get_settings
from app.usecases import job_reads, logs
from app.usecases import jobs as job_commands


@click.group()
def jobs() -> None:
    """Apply, list, show, stop, resume and delete jobs."""


@jobs.command("apply")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--wait", is_flag=True, help="Return once every live worker runs the applied version."
)
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="With --wait: seconds before giving up (exit 1, naming the workers).",
)
@run_async
async def jobs_apply(file: Path, wait: bool, timeout_s: float) -> None:
    """Validate FILE (YAML/JSON, one or more jobs) and store it; all or nothing."""
    settings = get_settings()
    applied = await job_commands.apply_documents(settings, load_documents(file))
    for job in applied:
        for line in job.lines():
            click.echo(line)
    if wait:
        ids = [job.id for job in applied]
        for line in await job_commands.wait_applied(settings, ids, timeout_s):
            click.echo(line)


@jobs.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per job and line.")
@run_async
async def jobs_list(as_json: bool) -> None:
    """One line per job: its real state (from live workers) and the wanted one."""
    rows = await job_reads.list_jobs(get_settings())
    if as_json:
        for row in rows:
            click.echo(orjson.dumps(row.to_json_dict()).decode())
        return
    if not rows:
        click.echo("no jobs")
        return
    width = max(8, *(len(r.state) for r in rows))
    click.echo(f"{'ID':<34} {'TYPE':<18} {'STATE':<{width}} {'WANTED':<8} LABEL")
    for r in rows:
        click.echo(f"{r.id:<34} {r.type:<18} {r.state:<{width}} {r.wanted:<8} {r.label}")


@jobs.command("show")
@click.argument("job_id")
@run_async
async def jobs_show(job_id: str) -> None:
    """A job's config and state."""
    report = await job_reads.job_report(get_settings(), job_id)
    click.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())


@jobs.command("backfill")
@click.argument("job_id")
@click.option("--no-wait", is_flag=True, help="Request it and return; `jobs show` tracks it.")
@run_async
async def jobs_backfill(job_id: str, no_wait: bool) -> None:
    """Send the job's current audience members as `enter` events (live events keep flowing)."""
    settings = get_settings()
    request_id = await job_commands.backfill(settings, job_id)
    click.echo(f"backfill {request_id} requested for job {job_id}")
    if not no_wait:
        await follow_backfill(settings, job_id, request_id)


@jobs.command("delete")
@click.argument("job_id")
@click.option("--force", is_flag=True, help="Delete even with undelivered events (they are lost).")
@run_async
async def jobs_delete(job_id: str, force: bool) -> None:
    """Delete a job everywhere: its delivery, queue topic, consumer group and statuses.
    Refused (exit 1) while its queue holds undelivered events, unless --force."""
    for line in await job_commands.delete(get_settings(), job_id, force):
        click.echo(line)


@jobs.command("logs")
@click.argument("job_id")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new entries until interrupted.")
@click.option(
    "--since",
    metavar="WHEN",
    help="Only entries from WHEN on: a duration back (90s, 10m, 2h, 7d) or an RFC 3339 time.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@run_async
async def jobs_logs(job_id: str, follow: bool, since: str | None, as_json: bool) -> None:
    """What happened to a job, oldest first: state changes with their reason, omitted
    requests (status, reason, events, event ids), errors, backfills, workers starting and
    stopping it. Kept 7 days (or 256 MiB a partition of the job-log topic)."""
    try:
        start = parse_since(since, time.time()) if since else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    count = 0
    async for item in logs.entries(get_settings(), job_id, start, follow):
        click.echo(orjson.dumps(item.to_json_dict()).decode() if as_json else item.line())
        count += 1
    if count == 0:
        click.echo(
            f"no log entries for job {job_id}" + (f" since {since}" if since else ""), err=True
        )


@jobs.command("stop")
@click.argument("job_id")
@run_async
async def jobs_stop(job_id: str) -> None:
    """Stop delivery; the backlog is kept."""
    click.echo(await job_commands.set_desired_state(get_settings(), job_id, "stopped"))


@jobs.command("resume")
@click.argument("job_id")
@run_async
async def jobs_resume(job_id: str) -> None:
    """Resume delivery, backlog first."""
    click.echo(await job_commands.set_desired_state(get_settings(), job_id, "running"))


@jobs.command("rotate-signing-secret")
@click.argument("job_id")
@click.option(
    "--overlap-hours",
    type=click.FloatRange(min=0, max=24 * 30),
    default=24.0,
    show_default=True,
    help="How long the current secret keeps signing beside the new one.",
)
@run_async
async def jobs_rotate_signing_secret(job_id: str, overlap_hours: float) -> None:
    """Give a signed job a new signing secret (shown once); the current one keeps signing
    beside it for --overlap-hours, so receivers can switch without losing a request."""
    settings = get_settings()
    rotation = await job_commands.rotate_signing_secret(settings, job_id, overlap_hours * 3600)
    for line in rotation.lines():
        click.echo(line)


async def follow_backfill(settings: Settings, job_id: str, request_id: str) -> None:
    """A progress bar until the backfill is done (Ctrl-C leaves it running in the workers)."""
    with Progress(
        TextColumn("backfill"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} partitions"),
        TextColumn("{task.fields[members]} members sent"),
        TimeElapsedColumn(),
    ) as bar:
        task = bar.add_task("backfill", total=None, members=0)
        while True:
            progress = await job_reads.backfill_progress(settings, job_id)
            if progress and progress.get("request_id") == request_id:
                bar.update(
                    task,
                    total=progress["total_partitions"] or None,
                    completed=len(progress["partitions_done"]),
                    members=progress["members_sent"],
                )
                if progress["state"] == "done":
                    return
            await asyncio.sleep(0.5)
