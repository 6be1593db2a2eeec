"""`webhooks`: run a worker, create topics, apply and inspect jobs (`jobs_cli.py`) and
authorizations, make and rotate the secret key.

Exit status: 0 done, 2 invalid input (nothing written), 1 anything else (broker unreachable,
...). Errors are one readable message on stderr, never a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import click
import orjson

from app.api.server import ApiRefused, check_can_serve, serve
from app.cli.deadletters_cli import deadletters_group
from app.cli.files import load_documents
from app.cli.jobs_cli import jobs
from app.cli.running import UsageProblem, check_secret_key, run_async
from app.cli.supervisor import Supervisor, usable_cpus
from app.cli.users_cli import users_group
from app.domain.secrets import generate_key
from app.settings import Settings, SettingsError, get_settings
from app.topic_catalog import TopicSpec, load_catalog
from app.transport import tracing_config
from app.transport.kafka import BrokerUnavailable
from app.transport.kafka_admin import align_managed_configs, ensure_topics
from app.transport.kafka_security import KafkaSecurityError
from app.transport.log_format import logging_config
from app.usecases import authorizations as auth_commands


@click.group()
@click.version_option(package_name="audience-webhooks")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """audience-webhooks: turn audience changes on Kafka into webhooks."""
    # aiokafka logs every failed connection attempt; the commands report the outcome.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    if ctx.invoked_subcommand != "secret-key":  # a new key needs no other setting
        try:
            get_settings()
        except SettingsError as exc:  # one line naming every wrong variable, exit 2
            raise UsageProblem(str(exc)) from None


@cli.command()
@click.option("--loglevel", "-l", default="info", show_default=True)
@click.option(
    "--processes",
    "-p",
    type=click.IntRange(1, 256),
    help="Worker processes to run, one per core (default WEBHOOKS_PROCESSES, else the "
    "cores this machine or container may use).",
)
def worker(loglevel: str, processes: int | None) -> None:
    """Run a worker (router + delivery); scale out by starting more."""
    settings = get_settings()
    count = processes or settings.processes or usable_cpus()
    try:  # OTEL_* variables that would fail in each process: one line now, exit 2
        tracing_config.check(os.environ)
    except tracing_config.TracingError as exc:
        raise UsageProblem(str(exc)) from None
    # Before Faust starts: a malformed key is one line on stderr and exit status 2.
    if check_secret_key(warn=True) is None:
        click.echo(
            "warning: WEBHOOKS_SECRET_KEY is not set: authorizations with secrets cannot be used",
            err=True,
        )
    try:
        created, changes = asyncio.run(_prepare_topics(settings))
    except (BrokerUnavailable, KafkaSecurityError) as exc:
        raise click.ClickException(str(exc)) from None
    for spec in created:
        click.echo(f"created topic {spec.name}", err=True)
    for line in _change_lines(changes):
        click.echo(line, err=True)
    if count > 1:
        sys.exit(Supervisor(settings, count, loglevel).run())
    from faust import Worker

    from app.main import app

    options: dict[str, Any] = {}
    if settings.log_format == "json":
        options["logging_config"] = logging_config(loglevel)
    Worker(app, loglevel=loglevel, quiet=True, **options).execute_from_commandline()


async def _prepare_topics(
    settings: Settings,
) -> tuple[list[TopicSpec], list[tuple[str, str, str, str]]]:
    """Create the missing declared topics; set what settings decide on the others."""
    catalog = load_catalog(settings)
    created = await ensure_topics(settings, catalog)
    return created, await align_managed_configs(settings, catalog)


def _change_lines(changes: list[tuple[str, str, str, str]]) -> list[str]:
    return [f"set {key} of topic {topic}: {old} -> {new}" for topic, key, old, new in changes]


@cli.command("api")
@click.option("--host", help="Address to listen on (default WEBHOOKS_API_HOST, 127.0.0.1).")
@click.option(
    "--port", type=click.IntRange(0, 65535), help="Port (default WEBHOOKS_API_PORT, 8080)."
)
def api(host: str | None, port: int | None) -> None:
    """Serve the HTTP API under /v1 and the jobs dashboard at / (a process of its own: run
    it next to the workers, scale and expose it separately). Needs WEBHOOKS_API_TOKEN unless
    it listens on a loopback address."""
    settings = get_settings()
    updates: dict[str, Any] = {}
    if host is not None:
        updates["api_host"] = host
    if port is not None:
        updates["api_port"] = port
    settings = settings.model_copy(update=updates)
    check_secret_key(warn=True)
    try:
        check_can_serve(settings)
    except ApiRefused as exc:
        raise UsageProblem(str(exc)) from None
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] [%(levelname)s] %(message)s")
    asyncio.run(_serve_api(settings))


async def _serve_api(settings: Settings) -> None:
    runner = await serve(settings)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopped.set)
    auth = (
        "bearer token required"
        if settings.api_token is not None
        else "no token (loopback Host only, cross-site requests refused)"
    )
    logging.getLogger("app.api").info(
        "API listening on http://%s:%d (dashboard at /, OpenAPI at /v1/openapi.json; %s)",
        settings.api_host,
        settings.api_port,
        auth,
    )
    try:
        await stopped.wait()
    finally:
        await runner.cleanup()


@cli.group()
def topics() -> None:
    """Kafka topics of the service."""


@topics.command("create")
@run_async
async def topics_create() -> None:
    """Create every declared topic that does not exist yet (idempotent); set the dead-letter
    and erasures topics' retention to WEBHOOKS_DEADLETTER_RETENTION_DAYS."""
    settings = get_settings()
    created, changes = await _prepare_topics(settings)
    for spec in created:
        click.echo(f"created {spec.name} ({spec.partitions} partitions, {spec.cleanup_policy})")
    for line in _change_lines(changes):
        click.echo(line)
    existed = len(load_catalog(settings)) - len(created)
    click.echo(f"{len(created)} created, {existed} already existed")


cli.add_command(jobs)
cli.add_command(deadletters_group)
cli.add_command(users_group)


@cli.group()
def auth() -> None:
    """Apply, list, show and delete authorizations; re-encrypt them with a new key."""


@auth.command("apply")
@click.argument("file", type=click.Path(path_type=Path))
@run_async
async def auth_apply(file: Path) -> None:
    """Validate FILE and store it, secrets encrypted; all or nothing."""
    check_secret_key(warn=True)
    for stored in await auth_commands.apply_documents(get_settings(), load_documents(file)):
        click.echo(f"stored authorization {stored.id} ({stored.method}, {stored.label!r})")


@auth.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON lines (the default; kept for parity).")
@run_async
async def auth_list(as_json: bool) -> None:
    """Authorizations with their secrets redacted, one JSON object a line."""
    check_secret_key(warn=True)
    shown, problems = await auth_commands.list_authorizations(get_settings())
    if not shown and not as_json:
        click.echo("no authorizations")
    for item in shown:
        click.echo(orjson.dumps(item.doc).decode())
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
