"""How every `webhooks` command runs: its async body on a fresh event loop, and the failures
it can meet turned into one readable line (exit 2 for invalid input, 1 for the rest)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click
from aiokafka.errors import KafkaError, UnknownTopicOrPartitionError

from app.cli.files import ConfigFileError
from app.domain.errors import ConfigError
from app.domain.secrets import SecretBox
from app.settings import SettingsError, get_settings
from app.transport.kafka import BrokerUnavailable
from app.transport.kafka_security import KafkaSecurityError
from app.usecases import authorizations as auth_commands
from app.usecases.errors import CommandFailed
from app.usecases.keys import KeyProblem, secret_box

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
        except (ConfigError, ConfigFileError, KeyProblem, SettingsError) as exc:
            raise UsageProblem(str(exc)) from None
        except (BrokerUnavailable, KafkaSecurityError, CommandFailed) as exc:
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
        box = secret_box(get_settings(), required=required)
    except (KeyProblem, SettingsError) as exc:
        raise UsageProblem(str(exc)) from None
    if warn:
        for line in auth_commands.key_warnings(box):
            click.echo(line, err=True)
    return box
