"""`webhooks users`: erase users (GDPR art. 17, CCPA deletion) without upstream."""

from __future__ import annotations

import click
import orjson

from app.cli.running import run_async
from app.settings import get_settings
from app.usecases import users
from app.usecases.keys import erasure_ids


@click.group("users")
def users_group() -> None:
    """Erase users: the same path as an upstream tombstone (README, "Deleting users")."""


@users_group.command("forget")
@click.argument("user_ids", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
@run_async
async def forget(user_ids: tuple[str, ...], as_json: bool) -> None:
    """Erase USER_IDS: write a tombstone (key = user id, no value) to the input topic for
    each. Jobs that send exits get an exit marked deleted per audience the user was in, the
    service forgets the user, and each affected job's log gets an `erased` entry naming the
    erasure id printed here (not the user id)."""
    for item in await users.forget(get_settings(), list(user_ids)):
        click.echo(orjson.dumps(item.to_json_dict()).decode() if as_json else item.line())


@users_group.command("erasure-id")
@click.argument("user_ids", nargs=-1, required=True)
@run_async
async def erasure_id(user_ids: tuple[str, ...]) -> None:
    """Print the erasure id of each of USER_IDS (what job logs and the erasures topic name
    an erased user by; keyed by WEBHOOKS_SECRET_KEY), to find an erasure's entries."""
    ids = erasure_ids(get_settings())
    for user_id in users.check_ids(list(user_ids)):
        click.echo(f"{user_id}\t{ids.erasure_id(user_id)}")
