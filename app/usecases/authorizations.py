"""Authorization use cases: validate, encrypt secrets, store, list and show redacted,
delete (refused while a job uses it), re-encrypt everything with the current key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from app.domain.authorizations import (
    SECRET_FIELDS,
    Authorization,
    load_stored_authorization,
    parse_authorization,
)
from app.domain.errors import ConfigError, FieldProblem
from app.domain.job_signing import reseal_keys
from app.domain.secrets import (
    KEY_VAR,
    PREVIOUS_VAR,
    SecretBox,
    SecretKeyError,
)
from app.domain.stored_job import StoredJob
from app.settings import Settings
from app.transport.kafka import producer, write_record
from app.usecases.errors import CommandFailed, NotFound
from app.usecases.job_reads import ensure_declared_topics, load_compacted, load_jobs
from app.usecases.keys import KeyProblem, secret_box


def key_warnings(box: SecretBox | None) -> list[str]:
    """One line per configured key that should be replaced (legacy passphrases)."""
    if box is None:
        return []
    out = []
    if box.current.legacy:
        out.append(
            f"warning: {KEY_VAR} is a legacy passphrase key; replace it with "
            f"`webhooks secret-key generate`: set the new key as {KEY_VAR}, the old one in "
            f"{PREVIOUS_VAR}, then run `webhooks auth rotate-key`"
        )
    return out


def describe_keys(box: SecretBox) -> list[str]:
    """The configured keys by id and kind, never their value."""
    lines = [f"{KEY_VAR}: key {box.current.key_id} ({box.current.kind})"]
    lines.extend(
        f"{PREVIOUS_VAR}: key {k.key_id} ({k.kind}), read only"
        for k in box.keys
        if k is not box.current
    )
    return lines


async def apply_documents(settings: Settings, docs: list[object]) -> list[Authorization]:
    """Validate `docs` (all or nothing) and store them, secrets encrypted; the stored ones."""
    problems: list[FieldProblem] = []
    unlisted = 0
    auths: list[Authorization] = []
    for i, doc in enumerate(docs):
        prefix = f"[{i}]." if len(docs) > 1 else ""
        try:
            auths.append(parse_authorization(doc, allowed=settings.allowed_networks))
        except ConfigError as exc:
            problems.extend(FieldProblem(prefix + p.field, p.rule) for p in exc.problems)
            unlisted += exc.unlisted
    if problems:
        raise ConfigError("authorization", problems, unlisted)
    box = secret_box(settings)
    await ensure_declared_topics(settings)
    if box is None and any(a.has_secrets for a in auths):
        raise ConfigError(
            "authorization",
            [FieldProblem(KEY_VAR, "not set: refusing to store secrets unencrypted")],
        )
    async with producer(settings) as prod:
        for auth in auths:
            stored = auth.stored(box) if box is not None else auth.model_dump(mode="json")
            await prod.send_and_wait(
                settings.authorizations_topic, key=auth.id.encode(), value=orjson.dumps(stored)
            )
    return auths


@dataclass(frozen=True, slots=True)
class Shown:
    """One authorization as the CLI may show it; `problem` when its secrets are unreadable."""

    auth_id: str
    doc: dict[str, Any]
    problem: str | None = None


def _needs_key(doc: dict[str, Any]) -> bool:
    return any(
        isinstance(doc.get(f), str) and SecretBox.is_encrypted(doc[f]) for f in SECRET_FIELDS
    )


def show_stored(auth_id: str, raw: bytes, box: SecretBox | None) -> Shown:
    """The redacted form of a stored record, or what can be shown without its secrets."""
    try:
        doc = orjson.loads(raw)
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        return Shown(auth_id, {"id": auth_id}, f"record unreadable: {exc}")
    try:
        return Shown(auth_id, load_stored_authorization(doc, box).redacted())
    except ValueError as exc:  # SecretKeyError, or a record that no longer validates
        shown = {k: v for k, v in doc.items() if k in ("id", "label", "method")}
        problem = f"secrets not readable: {exc}"
        shown["note"] = problem
        return Shown(auth_id, shown, problem)


async def _stored(settings: Settings) -> dict[str, bytes]:
    return await load_compacted(settings, settings.authorizations_topic)


async def list_authorizations(settings: Settings) -> tuple[list[Shown], list[str]]:
    """(every authorization redacted, problems to report: those the keys cannot read)."""
    records = await _stored(settings)
    if not records:
        return [], []
    box = secret_box(settings, required=any(_needs_key(_loads(r)) for r in records.values()))
    shown = [show_stored(auth_id, raw, box) for auth_id, raw in sorted(records.items())]
    unreadable = [s.auth_id for s in shown if s.problem]
    problems = []
    if unreadable:
        problems.append(
            f"{len(unreadable)} authorization(s) not readable with the configured keys: "
            f"{', '.join(unreadable)} (set the key that stored them in {PREVIOUS_VAR})"
        )
    return shown, problems


async def show(settings: Settings, auth_id: str) -> Shown:
    records = await _stored(settings)
    raw = records.get(auth_id)
    if raw is None:
        raise NotFound(
            "authorization id", "id", f"no authorization {auth_id!r} (see `webhooks auth list`)"
        )
    return show_stored(auth_id, raw, secret_box(settings, required=_needs_key(_loads(raw))))


def _loads(raw: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(raw)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def reseal_record(doc: dict[str, Any], box: SecretBox) -> dict[str, Any] | None:
    """`doc` with every secret field encrypted by the current key, or None if it already is.

    SecretKeyError (naming the field) if a field cannot be opened by any configured key.
    A secret stored unencrypted (written before a key was configured) gets encrypted.
    """
    auth_id = str(doc.get("id", ""))
    out = dict(doc)
    changed = False
    for name in SECRET_FIELDS:
        value = doc.get(name)
        if not value or not isinstance(value, str):
            continue
        context = f"{auth_id}/{name}"
        if SecretBox.is_encrypted(value):
            new = box.reseal(value, context)
        else:
            new = box.encrypt(value, context)
        if new is not None:
            out[name] = new
            changed = True
    return out if changed else None


async def rotate_key(settings: Settings) -> list[str]:
    """Re-encrypt every stored authorization with the current key; all or nothing: if any
    cannot be read with the configured keys, none is written and KeyProblem names them."""
    box = secret_box(settings, required=True)
    assert box is not None
    records = await _stored(settings)
    updates: dict[str, dict[str, Any]] = {}
    unreadable: list[str] = []
    current = 0
    for auth_id, raw in sorted(records.items()):
        doc = _loads(raw)
        if not doc:
            continue  # not written by this tool; the worker skips it too
        try:
            resealed = reseal_record(doc, box)
        except SecretKeyError as exc:
            unreadable.append(f"{auth_id} ({exc})")
            continue
        if resealed is None:
            current += 1
        else:
            updates[auth_id] = resealed
    job_updates: dict[str, StoredJob] = {}
    for job_id, job in sorted((await load_jobs(settings)).items()):
        try:
            keys = reseal_keys(job_id, job.signing_keys, box)
        except SecretKeyError as exc:
            unreadable.append(f"signing secret of job {job_id} ({exc})")
            continue
        if keys is not None:
            job_updates[job_id] = job.model_copy(update={"signing_keys": keys})
    if unreadable:
        raise KeyProblem(
            f"nothing re-encrypted: {len(unreadable)} secret(s) not readable with "
            f"{KEY_VAR} or {PREVIOUS_VAR}: {'; '.join(unreadable)}"
        )
    out = []
    if updates:
        async with producer(settings) as prod:
            for auth_id, doc in updates.items():
                await prod.send_and_wait(
                    settings.authorizations_topic, key=auth_id.encode(), value=orjson.dumps(doc)
                )
                out.append(f"re-encrypted authorization {auth_id}")
    for job_id, job in job_updates.items():
        await write_record(settings, settings.jobs_topic, job_id, orjson.dumps(job.to_record()))
        out.append(f"re-encrypted the signing secrets of job {job_id}")
    out.append(
        f"{len(updates)} re-encrypted, {current} already under the current key "
        f"(key {box.current.key_id})"
    )
    return out


async def delete(settings: Settings, auth_id: str) -> str:
    """Tombstone an authorization; CommandFailed (exit 1) naming the jobs that use it."""
    if auth_id not in await _stored(settings):
        raise NotFound(
            "authorization id", "id", f"no authorization {auth_id!r} (see `webhooks auth list`)"
        )
    users = sorted(
        j for j, job in (await load_jobs(settings)).items() if job.config.authorization == auth_id
    )
    if users:
        raise CommandFailed(
            f"authorization {auth_id} is used by job(s) {', '.join(users)}; nothing deleted. "
            "Delete those jobs or change their authorization first"
        )
    await write_record(settings, settings.authorizations_topic, auth_id, None)
    return f"authorization {auth_id} deleted"
