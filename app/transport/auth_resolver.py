"""The authorization a job's requests carry, resolved from the registry for each request.

Decrypts a stored authorization once per version of its record (a rotation — `auth apply`
again — takes effect with the next request, no restart) and keeps one OAuth token provider
per authorization version, shared by every job and lane of this worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.domain.authorizations import Authorization, load_stored_authorization
from app.domain.secrets import SecretBox, SecretKeyError, box_from_settings
from app.transport.http import WebhookClient
from app.transport.oauth import TokenProvider
from app.transport.registry import ConfigRegistry


class AuthUnavailable(RuntimeError):
    """The job's authorization cannot be used right now; the request is retried later."""


@dataclass(frozen=True, slots=True)
class ResolvedAuth:
    auth: Authorization
    tokens: TokenProvider | None


class AuthResolver:
    def __init__(self, registry: ConfigRegistry, box: SecretBox | None, client: WebhookClient):
        self.registry = registry
        self.box = _with_previous_keys(box, registry)
        self.client = client
        self._cache: dict[str, tuple[Any, ResolvedAuth]] = {}

    def resolve(self, auth_id: str | None) -> ResolvedAuth | None:
        if not auth_id:
            return None
        doc = self.registry.authorizations.get(auth_id)
        if doc is None:
            raise AuthUnavailable(f"authorization {auth_id!r} does not exist")
        cached = self._cache.get(auth_id)
        if cached is not None and cached[0] is doc:
            return cached[1]
        try:
            auth = load_stored_authorization(doc, self.box)
        except ValueError as exc:
            raise AuthUnavailable(f"authorization {auth_id!r}: {exc}") from None
        tokens = None
        if auth.method == "oauth2_client_credentials":
            tokens = TokenProvider(auth, self.client)
        resolved = ResolvedAuth(auth, tokens)
        self._cache[auth_id] = (doc, resolved)
        return resolved


def _with_previous_keys(box: SecretBox | None, registry: ConfigRegistry) -> SecretBox | None:
    """`box` plus WEBHOOKS_SECRET_KEY_PREVIOUS, so that authorizations stored under an earlier
    key stay readable during a rotation (the caller may have built `box` from the current key
    alone). Any other box is used as given."""
    if box is None:
        return None
    try:
        configured = box_from_settings(registry.settings)
    except SecretKeyError:
        return box
    if configured is not None and configured.current.key_id == box.current.key_id:
        return configured
    return box
