"""The secret key configuration as commands need it: one home for the check and its error,
shared by the authorization and the job commands (signing secrets)."""

from __future__ import annotations

from app.domain.erasure import ErasureIds
from app.domain.secrets import KEY_VAR, InvalidSecretKey, SecretBox, box_from_settings
from app.settings import Settings


class KeyProblem(ValueError):
    """The key configuration stops this command (missing where needed, malformed, or
    unable to read stored authorizations); one line, shown as is, exit status 2."""


def secret_box(settings: Settings, required: bool = False) -> SecretBox | None:
    """The configured keys; KeyProblem for a malformed key, or a missing one if `required`."""
    try:
        box = box_from_settings(settings)
    except InvalidSecretKey as exc:
        raise KeyProblem(str(exc)) from None
    if box is None and required:
        raise KeyProblem(
            f"{KEY_VAR} is not set: it is needed to read stored secrets "
            "(`webhooks secret-key generate` makes one)"
        )
    return box


def erasure_ids(settings: Settings) -> ErasureIds:
    """What names erased users (`app/domain/erasure.py`), from the configured keys;
    KeyProblem for a malformed one."""
    return ErasureIds.from_box(secret_box(settings), settings.app_id)
