"""`webhooks deadletters ...`: list a job's dead letters, replay chosen ones."""

from __future__ import annotations

import time

import click
import orjson

from app.cli.running import run_async
from app.domain.job_log import parse_since
from app.settings import get_settings
from app.usecases import deadletters


@click.group("deadletters")
def deadletters_group() -> None:
    """List a job's dead letters and replay them into its queue."""


def _when(value: str | None, option: str) -> float | None:
    if value is None:
        return None
    try:
        return parse_since(value, time.time())
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


@deadletters_group.command("list")
@click.argument("job_id")
@click.option(
    "--since", metavar="WHEN", help="From WHEN: a duration back (10m, 2h, 7d) or RFC 3339."
)
@click.option("--until", metavar="WHEN", help="Up to WHEN: a duration back or RFC 3339.")
@click.option(
    "--limit", type=click.IntRange(1, deadletters.MAX_LIMIT), default=100, show_default=True
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per dead letter and line.")
@run_async
async def deadletters_list(
    job_id: str, since: str | None, until: str | None, limit: int, as_json: bool
) -> None:
    """The job's latest dead letters, oldest first: id, time, status, reason."""
    letters = await deadletters.list_dead_letters(
        get_settings(), job_id, _when(since, "--since"), _when(until, "--until"), limit
    )
    for letter in letters:
        if as_json:
            click.echo(orjson.dumps(letter.to_json_dict()).decode())
        else:
            status = letter.status if letter.status is not None else "-"
            mark = "" if letter.replayable else "  (not replayable)"
            if letter.refusal:
                mark = "  (never replayed: its user was erased)"
            click.echo(
                f"{letter.id:<12} {letter.time or '?':<25} {status!s:<4} {letter.reason}{mark}"
            )
    if not letters:
        click.echo(f"no dead letters for job {job_id}", err=True)


@deadletters_group.command("replay")
@click.argument("job_id")
@click.argument("ids", nargs=-1, required=True)
@click.option("--force", is_flag=True, help="Replay even dead letters replayed before.")
@run_async
async def deadletters_replay(job_id: str, ids: tuple[str, ...], force: bool) -> None:
    """Queue the events of dead letters IDS (from `deadletters list`) again for the job.
    Each is delivered once more with its first webhook-id; one replayed before is refused
    (exit 1) unless --force."""
    result = await deadletters.replay(get_settings(), job_id, list(ids), force)
    for line in result.lines():
        click.echo(line)
