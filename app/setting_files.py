"""Credentials that may come from files (WEBHOOKS_<NAME>_FILE, as Kubernetes mounts
Secrets): which settings, which of them are never echoed, and reading them in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Settings that may instead be read from a file named by WEBHOOKS_<NAME>_FILE (a mounted
# Kubernetes Secret): the file's content, without a trailing newline, is the value.
FILE_SETTINGS = (
    "kafka_sasl_username",
    "kafka_sasl_password",
    "kafka_ssl_key_password",
    "kafka_oauth_client_id",
    "kafka_oauth_client_secret",
    "secret_key",
    "secret_key_previous",
    "api_token",
)
# Never echoed back in an error message.
SECRET_SETTINGS = frozenset(FILE_SETTINGS) - {"kafka_sasl_username", "kafka_oauth_client_id"}
EMPTY_CREDENTIAL = "is empty or only whitespace: give it a value, or leave the variable unset"


def env_name(field: str) -> str:
    return "WEBHOOKS_" + field.upper()


def read_setting_files(data: dict[str, Any]) -> dict[str, Any]:
    """`data` (setting name -> raw value) with each `<name>_file` read into `<name>`: the
    file's content without its trailing newline. ValueError, naming the variable (and the
    file), for a file that cannot be read, a value given both ways, an empty `_FILE`
    variable, or a file that holds nothing but whitespace: a credential is never empty."""
    data = dict(data)
    for name in FILE_SETTINGS:
        path = data.get(f"{name}_file")
        if path is None:
            continue
        if not str(path).strip():
            raise ValueError(f"{env_name(name)}_FILE is empty: name a file, or unset it")
        if data.get(name) not in (None, ""):
            raise ValueError(f"set {env_name(name)} or {env_name(name)}_FILE, not both")
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ValueError(f"{env_name(name)}_FILE: cannot read {path}: {reason}") from None
        text = text.removesuffix("\n").removesuffix("\r")
        if not text.strip():
            raise ValueError(f"{env_name(name)}_FILE: {path} {EMPTY_CREDENTIAL}")
        data[name] = text
    return data
