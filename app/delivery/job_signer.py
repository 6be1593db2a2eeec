"""A signed job's signing keys as its requests use them (`app/domain/signing.py`).

The delivery service updates them in place whenever the job's stored keys change, so a
rotation takes effect without restarting the job's delivery. When they cannot be used (no
WEBHOOKS_SECRET_KEY, a key that does not open them), requests fail with the reason and are
retried: the job goes to `error` where a person sees why. A signed job never sends an
unsigned request.
"""

from __future__ import annotations

from app.domain.job_signing import open_keys
from app.domain.secrets import SecretBox, SecretKeyError
from app.domain.signing import SigningKey, SigningSecretError, secret_bytes, signature_header
from app.domain.stored_job import SealedSigningKey
from app.transport.auth_resolver import AuthUnavailable


class JobSigner:
    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self._sealed: tuple[SealedSigningKey, ...] | None = None
        self._keys: list[tuple[bytes, SigningKey]] = []
        self.problem: str | None = "no signing secret loaded yet"

    def update(self, sealed: tuple[SealedSigningKey, ...], box: SecretBox | None) -> None:
        if sealed == self._sealed:
            return
        self._sealed = sealed
        self._keys, self.problem = [], None
        if not sealed:
            self.problem = "the job signs requests but has no signing secret: apply it again"
            return
        if box is None:
            self.problem = "WEBHOOKS_SECRET_KEY is not set: the job's signing secret cannot be read"
            return
        try:
            self._keys = [(secret_bytes(k.secret), k) for k in open_keys(self.job_id, sealed, box)]
        except (SecretKeyError, SigningSecretError) as exc:
            self._keys = []
            self.problem = f"the job's signing secret cannot be read: {exc}"

    def header(self, msg_id: str, timestamp: int, body: bytes) -> str:
        """The `webhook-signature` value for one attempt; AuthUnavailable when the job
        cannot sign (the request is retried, the job's state shows why)."""
        if self.problem is not None:
            raise AuthUnavailable(self.problem)
        live = [raw for raw, key in self._keys if key.valid_at(timestamp)]
        if not live:
            raise AuthUnavailable("every signing secret of the job has expired: rotate it")
        return signature_header(live, msg_id, timestamp, body)
