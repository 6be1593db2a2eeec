"""Authorizations (contract section 6): header and parameter lines, OAuth 2.0 client
credentials, validation naming every wrong field, and the encrypted/redacted stored forms.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Literal
from urllib.parse import parse_qsl

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from app.domain.destinations import Network
from app.domain.errors import ConfigError, FieldProblem
from app.domain.jobs import ALLOWED_NETWORKS, check_destination_url
from app.domain.secrets import REDACTED, SecretBox

AuthMethod = Literal["none", "headers", "oauth2_client_credentials"]
SECRET_FIELDS = ("headers", "params", "client_secret")
OAUTH_FIELDS = ("token_url", "client_id", "client_secret", "scopes", "ping_atm_id", "token_auth")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
TOKEN_PLACEHOLDER = "{token}"


def parse_header_lines(text: str) -> list[tuple[str, str]]:
    """`key:value` lines (spaces trimmed, CRLF tolerated, blank lines skipped).

    Raises ValueError naming the first bad line by its number.
    """
    out: list[tuple[str, str]] = []
    for number, line in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        name, value = name.strip(), value.strip()
        if not sep or not _HEADER_NAME.match(name):
            raise ValueError(f"line {number} is not a 'key: value' header line")
        if "\r" in value or "\n" in value:
            raise ValueError(f"line {number} has a control character in its value")
        out.append((name, value))
    return out


def parse_params(text: str) -> list[tuple[str, str]]:
    """`k=v&k2=v2` URL parameters; raises ValueError on a part without `=`."""
    text = text.strip().lstrip("?")
    if not text:
        return []
    try:
        return parse_qsl(text, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise ValueError("must be k=v pairs joined by & (e.g. key1=value1&key2=value2)") from None


class Authorization(BaseModel):
    """A validated authorization, secrets in plaintext (only ever held in memory)."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    id: str
    label: str
    description: str = ""
    method: AuthMethod
    headers: str = ""
    params: str = ""
    token_url: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    scopes: str = ""
    ping_atm_id: str | None = None
    token_auth: Literal["basic", "body"] = "basic"

    @field_validator("id", mode="before")
    @classmethod
    def _id_shape(cls, value: Any) -> Any:
        """Judged as given, before whitespace is stripped (a padded id is refused)."""
        if isinstance(value, str) and not _ID_RE.fullmatch(value):
            raise ValueError("must be 1-64 of A-Z a-z 0-9 _ . - starting with a letter or digit")
        return value

    @field_validator("label")
    @classmethod
    def _label(cls, value: str) -> str:
        if not value:
            raise ValueError("required")
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: str) -> str:
        parse_header_lines(value)
        return value

    @field_validator("params")
    @classmethod
    def _params(cls, value: str) -> str:
        parse_params(value)
        return value

    @field_validator("token_url")
    @classmethod
    def _token_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else check_destination_url(value, info)

    @property
    def secret_names(self) -> tuple[list[str], list[str]]:
        """(header names, URL parameter names) this authorization adds to a request: what
        a redirect to another origin must not carry (`WebhookClient.send`'s
        `secret_headers` / `secret_params`)."""
        headers, params = self.request_parts("")
        return [k for k, _ in headers], [k for k, _ in params]

    @property
    def header_pairs(self) -> list[tuple[str, str]]:
        return parse_header_lines(self.headers)

    @property
    def param_pairs(self) -> list[tuple[str, str]]:
        return parse_params(self.params)

    def request_parts(
        self, token: str | None = None
    ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """(headers, URL parameters) to add to a webhook request.

        `{token}` in a header or parameter becomes the OAuth token; an OAuth authorization
        that places it nowhere sends `Authorization: Bearer <token>`.
        """
        headers, params = self.header_pairs, self.param_pairs
        if self.method != "oauth2_client_credentials" or token is None:
            return headers, params
        placed = any(TOKEN_PLACEHOLDER in v for _, v in headers + params)
        headers = [(k, v.replace(TOKEN_PLACEHOLDER, token)) for k, v in headers]
        params = [(k, v.replace(TOKEN_PLACEHOLDER, token)) for k, v in params]
        if not placed:
            headers.append(("Authorization", f"Bearer {token}"))
        return headers, params

    @property
    def secret_values(self) -> list[str]:
        """Every value that must never be shown: header and parameter values, the secret."""
        values = [v for _, v in self.header_pairs + self.param_pairs]
        return [*values, self.client_secret or ""]

    @property
    def has_secrets(self) -> bool:
        return any(getattr(self, f) for f in SECRET_FIELDS)

    def stored(self, box: SecretBox) -> dict[str, Any]:
        """The record written to the topic: every secret field encrypted."""
        doc = self.model_dump(mode="json")
        for name in SECRET_FIELDS:
            if doc.get(name):
                doc[name] = box.encrypt(doc[name], f"{self.id}/{name}")
        return doc

    def redacted(self) -> dict[str, Any]:
        """What the CLI, API and logs may show: header and parameter names, never values."""
        doc = self.model_dump(mode="json")
        doc["headers"] = "\n".join(f"{k}: {REDACTED}" for k, _ in self.header_pairs)
        doc["params"] = "&".join(f"{k}={REDACTED}" for k, _ in self.param_pairs)
        if self.client_secret:
            doc["client_secret"] = REDACTED
        return doc


def _rule(err: Mapping[str, Any]) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown field"
    if err["type"] == "missing":
        return "required"
    return str(err["msg"]).removeprefix("Value error, ")


def parse_authorization(raw: Any, *, allowed: Sequence[Network] | None = None) -> Authorization:
    """Validate an authorization document (plaintext secrets); name every wrong field.

    With `allowed` (the settings' allowed networks), a `token_url` whose host is a refused
    IP literal or a non-canonical numeric host is refused.
    """
    if not isinstance(raw, Mapping):
        raise ConfigError("authorization", [FieldProblem("(document)", "must be a mapping")])
    doc = dict(raw)
    doc.setdefault("id", uuid.uuid4().hex)
    problems: list[FieldProblem] = []
    method = doc.get("method")
    if method in ("none", "headers"):
        for key in OAUTH_FIELDS:
            if doc.get(key):
                problems.append(FieldProblem(key, "only for method oauth2_client_credentials"))
    if method == "none":
        for key in ("headers", "params"):
            if doc.get(key):
                problems.append(FieldProblem(key, "not allowed with method none"))
    if method == "headers":
        if not doc.get("headers") and not doc.get("params"):
            problems.append(FieldProblem("headers", "give headers or params for method headers"))
        for key in ("headers", "params"):
            if TOKEN_PLACEHOLDER in str(doc.get(key) or ""):
                problems.append(FieldProblem(key, "{token} is only for oauth2_client_credentials"))
    if method == "oauth2_client_credentials":
        for key in ("token_url", "client_id", "client_secret"):
            value = doc.get(key)
            if value is None or (isinstance(value, str) and not value.strip()):
                # an empty or blank secret is never "no secret" (issue 20)
                problems.append(FieldProblem(key, "required for oauth2_client_credentials"))
    try:
        context = None if allowed is None else {ALLOWED_NETWORKS: list(allowed)}
        auth = Authorization.model_validate(doc, context=context)
    except ValidationError as exc:
        problems.extend(
            FieldProblem(".".join(str(p) for p in e["loc"]) or "(document)", _rule(e))
            for e in exc.errors()
        )
        raise ConfigError("authorization", problems) from None
    for number, (name, value) in enumerate(parse_header_lines(auth.headers), start=1):
        # An empty credential is a mistake (an unset variable), never "no credential".
        # Judged at apply time only: a stored authorization still loads as it was.
        if not value:
            problems.append(FieldProblem("headers", f"header {number} ({name}) has an empty value"))
    if problems:
        raise ConfigError("authorization", problems)
    return auth


def load_stored_authorization(doc: Mapping[str, Any], box: SecretBox | None) -> Authorization:
    """Rebuild an Authorization from its topic record, decrypting the secret fields."""
    plain = dict(doc)
    auth_id = str(plain.get("id", ""))
    for name in SECRET_FIELDS:
        value = plain.get(name)
        if value and SecretBox.is_encrypted(str(value)):
            if box is None:
                raise ValueError("WEBHOOKS_SECRET_KEY is not set; cannot read stored secrets")
            plain[name] = box.decrypt(str(value), f"{auth_id}/{name}")
    return Authorization.model_validate(plain)
