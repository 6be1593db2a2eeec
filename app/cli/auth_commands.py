"""What `webhooks auth ...` does: validate, encrypt secrets, store, list redacted."""

from __future__ import annotations

from pathlib import Path

import orjson

from app.cli.files import load_documents
from app.cli.job_commands import load_compacted
from app.domain.authorizations import Authorization, load_stored_authorization, parse_authorization
from app.domain.errors import ConfigError, FieldProblem
from app.domain.secrets import SecretBox, SecretKeyError
from app.settings import Settings
from app.transport.kafka import write_record


def secret_box(settings: Settings) -> SecretBox | None:
    if settings.secret_key is None:
        return None
    try:
        return SecretBox(settings.secret_key.get_secret_value())
    except SecretKeyError as exc:
        raise ConfigError("settings", [FieldProblem("WEBHOOKS_SECRET_KEY", str(exc))]) from None


async def apply(settings: Settings, file: Path) -> list[str]:
    docs = load_documents(file)
    problems: list[FieldProblem] = []
    auths: list[Authorization] = []
    for i, doc in enumerate(docs):
        prefix = f"[{i}]." if len(docs) > 1 else ""
        try:
            auths.append(parse_authorization(doc))
        except ConfigError as exc:
            problems.extend(FieldProblem(prefix + p.field, p.rule) for p in exc.problems)
    if problems:
        raise ConfigError("authorization", problems)
    box = secret_box(settings)
    if box is None and any(a.has_secrets for a in auths):
        raise ConfigError(
            "authorization",
            [FieldProblem("WEBHOOKS_SECRET_KEY", "not set: refusing to store secrets unencrypted")],
        )
    out = []
    for auth in auths:
        stored = auth.stored(box) if box is not None else auth.model_dump(mode="json")
        await write_record(settings, settings.authorizations_topic, auth.id, orjson.dumps(stored))
        out.append(f"stored authorization {auth.id} ({auth.method}, {auth.label!r})")
    return out


async def list_authorizations(settings: Settings) -> list[str]:
    records = await load_compacted(settings, settings.authorizations_topic)
    if not records:
        return ["no authorizations"]
    box = secret_box(settings)
    lines = []
    for _, raw in sorted(records.items()):
        doc = orjson.loads(raw)
        try:
            shown = load_stored_authorization(doc, box).redacted()
        except (ValueError, SecretKeyError) as exc:
            shown = {k: v for k, v in doc.items() if k in ("id", "label", "method")}
            shown["note"] = f"secrets not readable: {exc}"
        lines.append(orjson.dumps(shown).decode())
    return lines
