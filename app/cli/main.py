"""`webhooks`: run a worker, create topics, apply and inspect jobs and authorizations, make
and rotate the secret key.

Exit status: 0 done, 2 invalid input (nothing written), 1 anything else (broker unreachable,
...). Errors are one readable message on stderr, never a traceback.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson
from aiokafka.errors import KafkaError, UnknownTopicOrPartitionError

from app.cli import auth_commands, job_commands
from app.cli.auth_commands import KeyProblem
from app.cli.files import ConfigFileError
from app.domain.errors import ConfigError
from app.domain.job_log import parse_since
from app.domain.secrets import SecretBox, generate_key
from app.settings import get_settings
from app.topic_catalog import load_catalog
from app.transport.job_log import read_job_log
from app.transport.kafka import BrokerUnavailable
from app.transport.kafka_admin import ensure_topics
from app.transport.log_format import logging_config

T = TypeVar("T")


class UsageProblem(click.ClickException):
    """Invalid input: exit status 2."""

    exit_code = 2


def run_async(fn: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., T]:
    """Run an async command body; turn known failures into clear messages."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            check_secret_key()
            return asyncio.run(fn(*args, **kwargs))
        except (ConfigError, ConfigFileError) as exc:
            raise UsageProblem(str(exc)) from None
        except KeyProblem as exc:
            raise UsageProblem(str(exc)) from None
        except (BrokerUnavailable, job_commands.CommandFailed) as exc:
            raise click.ClickException(str(exc)) from None
        except UnknownTopicOrPartitionError:
            raise click.ClickException(
                "a topic of the service does not exist: run `webhooks topics create` "
                "(a worker creates them when it starts)"
            ) from None
        except KafkaError as exc:  # one line, not a traceback: the broker refused something
            raise click.ClickException(f"Kafka refused the request: {exc!r}") from None

    return wrapper


def check_secret_key(required: bool = False, warn: bool = False) -> SecretBox | None:
    """Stop with one line (exit 2) if WEBHOOKS_SECRET_KEY or _PREVIOUS is malformed, or
    missing where `required`; print a warning line for a legacy passphrase if `warn`."""
    try:
        box = auth_commands.secret_box(get_settings(), required=required)
    except KeyProblem as exc:
        raise UsageProblem(str(exc)) from None
    if warn:
        for line in auth_commands.key_warnings(box):
            click.echo(line, err=True)
    return box


@click.group()
@click.version_option(package_name="audience-webhooks")
def cli() -> None:
    """audience-webhooks: turn audience changes on Kafka into webhooks."""
    # aiokafka logs every failed connection attempt; the commands report the outcome.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


@cli.command()
@click.option("--loglevel", "-l", default="info", show_default=True)
def worker(loglevel: str) -> None:
    """Run a worker (router + delivery); scale out by starting more."""
    settings = get_settings()
    # Before Faust starts: a malformed key is one line on stderr and exit status 2.
    if check_secret_key(warn=True) is None:
        click.echo(
            "warning: WEBHOOKS_SECRET_KEY is not set: authorizations with secrets cannot be used",
            err=True,
        )
    try:
        created = asyncio.run(ensure_topics(settings, load_catalog(settings)))
    except BrokerUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    for spec in created:
        click.echo(f"created topic {spec.name}", err=True)
    from faust import Worker

    from app.main import app

    options: dict[str, Any] = {}
    if settings.log_format == "json":
        options["logging_config"] = logging_config(loglevel)
    Worker(app, loglevel=loglevel, quiet=True, **options).execute_from_commandline()


@cli.group()
def topics() -> None:
    """Kafka topics of the service."""


@topics.command("create")
@run_async
async def topics_create() -> None:
    """Create every declared topic that does not exist yet (idempotent)."""
    settings = get_settings()
    catalog = load_catalog(settings)
    created = await ensure_topics(settings, catalog)
    for spec in created:
        click.echo(f"created {spec.name} ({spec.partitions} partitions, {spec.cleanup_policy})")
    click.echo(f"{len(created)} created, {len(catalog) - len(created)} already existed")


@cli.group()
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
    applied: list[str] = []
    for line in await job_commands.apply(settings, file, applied):
        click.echo(line)
    if wait:
        for line in await job_commands.wait_applied(settings, applied, timeout_s):
            click.echo(line)


@jobs.command("list")
@run_async
async def jobs_list() -> None:
    """One line per job."""
    for line in await job_commands.list_jobs(get_settings()):
        click.echo(line)


@jobs.command("show")
@click.argument("job_id")
@run_async
async def jobs_show(job_id: str) -> None:
    """A job's config and state."""
    click.echo(await job_commands.show(get_settings(), job_id))


@jobs.command("backfill")
@click.argument("job_id")
@click.option("--no-wait", is_flag=True, help="Request it and return; `jobs show` tracks it.")
@run_async
async def jobs_backfill(job_id: str, no_wait: bool) -> None:
    """Send the job's current audience members as `enter` events (live events keep flowing)."""
    settings = get_settings()
    await job_commands.get_job(settings, job_id)
    request_id = await job_commands.request_backfill(settings, job_id)
    click.echo(f"backfill {request_id} requested for job {job_id}")
    if not no_wait:
        await job_commands.follow_backfill(settings, job_id, request_id)


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
    async for item in read_job_log(get_settings(), job_id, start, follow):
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


@cli.group()
def auth() -> None:
    """Apply, list, show and delete authorizations; re-encrypt them with a new key."""


@auth.command("apply")
@click.argument("file", type=click.Path(path_type=Path))
@run_async
async def auth_apply(file: Path) -> None:
    """Validate FILE and store it, secrets encrypted; all or nothing."""
    check_secret_key(warn=True)
    for line in await auth_commands.apply(get_settings(), file):
        click.echo(line)


@auth.command("list")
@run_async
async def auth_list() -> None:
    """Authorizations with their secrets redacted."""
    check_secret_key(warn=True)
    lines, problems = await auth_commands.list_authorizations(get_settings())
    for line in lines:
        click.echo(line)
    for line in problems:
        click.echo(line, err=True)


@auth.command("show")
@click.argument("auth_id")
@run_async
async def auth_show(auth_id: str) -> None:
    """One authorization, its secrets redacted; exit 1 if the keys cannot read them."""
    check_secret_key(warn=True)
    shown = await auth_commands.show(get_settings(), auth_id)
    click.echo(orjson.dumps(shown.doc, option=orjson.OPT_INDENT_2).decode())
    if shown.problem:
        raise click.ClickException(f"authorization {auth_id}: {shown.problem}")


@auth.command("delete")
@click.argument("auth_id")
@run_async
async def auth_delete(auth_id: str) -> None:
    """Delete an authorization; refused (exit 1) while any job uses it."""
    click.echo(await auth_commands.delete(get_settings(), auth_id))


@auth.command("rotate-key")
@run_async
async def auth_rotate_key() -> None:
    """Re-encrypt every stored authorization with WEBHOOKS_SECRET_KEY (reading with it or
    WEBHOOKS_SECRET_KEY_PREVIOUS); all or nothing."""
    check_secret_key(required=True)
    for line in await auth_commands.rotate_key(get_settings()):
        click.echo(line)


@cli.group("secret-key")
def secret_key() -> None:
    """The key that encrypts stored secrets (WEBHOOKS_SECRET_KEY)."""


@secret_key.command("generate")
def secret_key_generate() -> None:
    """Print a new key (awk1: + 32 random bytes, URL-safe base64)."""
    click.echo(generate_key())


@secret_key.command("check")
def secret_key_check() -> None:
    """Validate WEBHOOKS_SECRET_KEY and WEBHOOKS_SECRET_KEY_PREVIOUS; print their key ids."""
    box = check_secret_key(required=True, warn=True)
    assert box is not None
    for line in auth_commands.describe_keys(box):
        click.echo(line)


def main() -> None:
    try:
        cli(standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)
