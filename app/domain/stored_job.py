"""A job as kept on the `webhook-jobs` topic: its validated config plus the control fields
(desired state, when it was updated or resumed) and, for a signed job, its sealed signing
secrets. `StoredJob.from_record` re-parses the config without the apply-time rules, so a
job stored before a rule existed still loads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from app.domain.jobs import JobConfig, parse_job_config


class SealedSigningKey(BaseModel):
    """A job's signing secret as stored: encrypted with WEBHOOKS_SECRET_KEY (`SecretBox`,
    context `signing_context(job id)`); `expires_at` set once a rotation replaced it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sealed: str
    expires_at: float | None = None

    def valid_at(self, now: float) -> bool:
        return self.expires_at is None or now < self.expires_at


def signing_context(job_id: str) -> str:
    return f"job:{job_id}:signing-secret"


class StoredJob(BaseModel):
    """A job as kept on `webhook-jobs`: its config plus whether the user stopped it, and
    its sealed signing secrets when it signs requests."""

    model_config = ConfigDict(frozen=True)

    config: JobConfig
    desired_state: Literal["running", "stopped"] = "running"
    updated_at: str = ""
    resumed_at: float = 0.0
    signing_keys: tuple[SealedSigningKey, ...] = ()

    def to_record(self) -> dict[str, Any]:
        """The topic value: the config's fields at top level, plus the control fields."""
        record = {
            **self.config.to_json_dict(),
            "desired_state": self.desired_state,
            "updated_at": self.updated_at,
            "resumed_at": self.resumed_at,
        }
        if self.signing_keys:
            record["signing_keys"] = [k.model_dump() for k in self.signing_keys]
        return record

    @classmethod
    def from_record(cls, doc: Mapping[str, Any]) -> StoredJob:
        fields = dict(doc)
        desired = fields.pop("desired_state", "running")
        updated_at = str(fields.pop("updated_at", ""))
        resumed_at = float(fields.pop("resumed_at", 0.0) or 0.0)
        keys = fields.pop("signing_keys", None) or ()
        return cls(
            config=parse_job_config(fields),
            desired_state=desired,
            updated_at=updated_at,
            resumed_at=resumed_at,
            signing_keys=tuple(SealedSigningKey.model_validate(k) for k in keys),
        )
