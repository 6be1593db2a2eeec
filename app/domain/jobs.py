"""Job configs (contract section 5): the model, its defaults, and validation that names every
wrong field at once.

`parse_job_config` is the only way in: it checks unknown fields, fields of the other job type,
per-field rules (via pydantic) and cross-field rules, and refuses the config as a whole.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from app.domain.destinations import (
    DestinationRefused,
    Network,
    host_refusal,
    parse_url,
    template_refusal,
)
from app.domain.errors import ConfigError, FieldProblem, shown
from app.domain.template_fields import unselected_fields_rule
from app.domain.templates import syntax_error

JobType = Literal["audience_triggers", "user_enrichment"]
BUILTIN_DO_NOT_RETRY = frozenset({400, 404, 413})
MAX_TRIGGER_FIELDS = 75
# (lowest, highest) of the bounded numbers: one home for the model and its error messages.
RANGES = {"batch_size": (1, 1000), "worker_count": (1, 20)}
DEFAULT_CLOUDEVENTS_TYPE = "com.lytics.audience.user.event"

TRIGGERS_ONLY = frozenset(
    {"cloudevents", "cloudevents_type", "cloudevents_source", "trigger_events", "trigger_fields"}
)
ENRICHMENT_ONLY = frozenset({"stream", "body_template"})

_ID_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_TOPIC_RE = re.compile(r"^[A-Za-z0-9._-]{1,200}$")


def new_job_id() -> str:
    """A fresh job id: 32 lowercase hex digits."""
    return uuid.uuid4().hex


# The validation context key that turns on the destination check (see `allowed_networks`).
ALLOWED_NETWORKS = "allowed_networks"


def check_https_url(value: str) -> str:
    """Refuse anything but an absolute https URL with a host, read as the HTTP client reads
    it (yarl: the host IDNA-normalised)."""
    value = value.strip()
    try:
        url = parse_url(value)
    except DestinationRefused as exc:
        raise ValueError(str(exc)) from None
    if url.scheme != "https":
        raise ValueError(f"must be an https:// URL, got scheme {url.scheme or 'none'!r}")
    if not url.raw_host:
        raise ValueError("must name a host")
    return value


def allowed_networks(info: ValidationInfo) -> Sequence[Network] | None:
    """The networks destinations may be in, when the caller asked for the destination
    check (`{ALLOWED_NETWORKS: settings.allowed_networks}` as validation context); None
    when it did not (records read back from a topic are not re-judged: the worker's guard
    refuses them before each request)."""
    context = info.context
    if isinstance(context, Mapping) and ALLOWED_NETWORKS in context:
        return list(context[ALLOWED_NETWORKS])
    return None


def check_destination_url(value: str, info: ValidationInfo) -> str:
    """`check_https_url`, plus, with the destination check on, the guard's decision on a
    host that is an IP literal or numeric (names are judged when resolved)."""
    value = check_https_url(value)
    allowed = allowed_networks(info)
    if allowed is not None:
        reason = host_refusal(parse_url(value).raw_host or "", allowed)
        if reason is not None:
            raise ValueError(f"destination refused: {reason}")
    return value


class JobConfig(BaseModel):
    """A validated job config with every default filled in."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    id: str
    type: JobType
    label: str = Field(min_length=1)
    description: str = ""
    authorization: str | None = None
    audiences: tuple[str, ...] = Field(min_length=1)
    webhook_url: str | None = None
    url_template: str | None = None
    http_method: Literal["POST", "PUT", "PATCH"] = "POST"
    cloudevents: bool = False
    cloudevents_type: str = DEFAULT_CLOUDEVENTS_TYPE
    cloudevents_source: str = ""
    signed: bool = False
    existing_users: bool = False
    trigger_events: Literal["enter_exit", "enter", "exit"] = "enter_exit"
    export_fields: tuple[str, ...] | None = None
    trigger_fields: tuple[str, ...] = Field(default=(), max_length=MAX_TRIGGER_FIELDS)
    batch: bool = False
    batch_size: int = Field(default=10, ge=RANGES["batch_size"][0], le=RANGES["batch_size"][1])
    worker_count: int = Field(default=5, ge=RANGES["worker_count"][0], le=RANGES["worker_count"][1])
    do_not_retry: tuple[int, ...] = ()
    stream: str = "webhook_enrichment"
    body_template: str | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _id_shape(cls, value: Any) -> Any:
        """Judged as given, before whitespace is stripped: `" abc"` or `"abc\\n"` is
        refused, never stored as `abc` (issue 20)."""
        if isinstance(value, str) and not _ID_RE.fullmatch(value):
            raise ValueError("must be 1-64 of a-z 0-9 _ - starting with a letter or digit")
        return value

    @field_validator("http_method", mode="before")
    @classmethod
    def _upper_method(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("webhook_url")
    @classmethod
    def _https(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else check_destination_url(value, info)

    @field_validator("url_template", "body_template")
    @classmethod
    def _jsonnet_parses(cls, value: str | None) -> str | None:
        if value is not None:
            if not value.strip():
                raise ValueError("must not be empty")
            problem = syntax_error(value)
            if problem:
                raise ValueError(f"Jsonnet does not parse: {problem}")
        return value

    @field_validator("url_template")
    @classmethod
    def _template_destination(cls, value: str | None, info: ValidationInfo) -> str | None:
        allowed = allowed_networks(info)
        if value is not None and allowed is not None:
            reason = template_refusal(value, allowed)
            if reason is not None:
                raise ValueError(f"destination refused: {reason}")
        return value

    @field_validator("audiences", "export_fields", "trigger_fields")
    @classmethod
    def _names(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        if any(not v for v in value):
            raise ValueError("entries must be non-empty strings")
        return tuple(dict.fromkeys(value))  # keep order, drop repeats

    @field_validator("do_not_retry", mode="before")
    @classmethod
    def _statuses(cls, value: Any) -> Any:
        if not isinstance(value, list | tuple):
            return value
        out: list[int] = []
        for i, item in enumerate(value):
            text = str(item).strip()
            if isinstance(item, bool) or not text.isdigit() or not 100 <= int(text) <= 599:
                raise ValueError(f"entry {i} ({item!r}) is not an HTTP status (100-599)")
            out.append(int(text))
        return tuple(sorted(set(out)))

    @field_validator("stream")
    @classmethod
    def _topic_name(cls, value: str) -> str:
        if not _TOPIC_RE.match(value):
            raise ValueError("must be a Kafka topic name (1-200 of A-Z a-z 0-9 . _ -)")
        return value

    @property
    def is_triggers(self) -> bool:
        return self.type == "audience_triggers"

    @property
    def never_retry(self) -> frozenset[int]:
        """Statuses that are omitted instead of retried."""
        return BUILTIN_DO_NOT_RETRY | frozenset(self.do_not_retry)

    @property
    def queue_topic(self) -> str:
        """The job's own durable backlog."""
        return f"webhook-queue-{self.id}"

    def to_json_dict(self) -> dict[str, Any]:
        """The config as stored and shown: only the fields of its own job type."""
        other = ENRICHMENT_ONLY if self.is_triggers else TRIGGERS_ONLY
        return self.model_dump(mode="json", exclude=set(other))


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _rule(err: Mapping[str, Any]) -> str:
    """A pydantic error as a rule a user can act on, with the offending value."""
    kind, loc = err["type"], err["loc"]
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "too_short":
        return f"needs at least {err['ctx']['min_length']} entry"
    if kind == "too_long":
        return f"at most {err['ctx']['max_length']} entries, got {err['ctx'].get('actual_length')}"
    if loc and loc[0] in RANGES and kind in ("greater_than_equal", "less_than_equal"):
        low, high = RANGES[str(loc[0])]
        return f"must be between {low} and {high}, got {shown(err['input'])}"
    if kind == "literal_error":
        return f"must be one of {err['ctx']['expected']}, got {shown(err['input'])}"
    return str(err["msg"]).removeprefix("Value error, ")


def parse_job_config(raw: Any, *, allowed: Sequence[Network] | None = None) -> JobConfig:
    """Validate a job config document; raise ConfigError naming every wrong field.

    With `allowed` (the settings' allowed networks), destinations are judged too: a
    `webhook_url` whose host is a refused IP literal or a non-canonical numeric host, and
    a `url_template` that writes such a host literally, are refused. So is a
    `body_template` that reads a user field not in `export_fields` (it sees only those:
    `template_fields`). `allowed` marks apply time (the CLI and the API pass it): records
    read back from the jobs topic are parsed without it and not re-judged, so a job stored
    before a rule existed still loads.
    """
    if not isinstance(raw, Mapping):
        raise ConfigError("job config", [FieldProblem("(document)", "must be a mapping of fields")])
    doc = dict(raw)
    problems: list[FieldProblem] = []
    doc.setdefault("id", new_job_id())
    job_type = doc.get("type")
    if job_type == "audience_triggers":
        for key in sorted(ENRICHMENT_ONLY & doc.keys()):
            problems.append(FieldProblem(key, "only for user_enrichment jobs"))
            doc.pop(key)
    elif job_type == "user_enrichment":
        for key in sorted(TRIGGERS_ONLY & doc.keys()):
            problems.append(FieldProblem(key, "only for audience_triggers jobs"))
            doc.pop(key)
        if not doc.get("export_fields"):
            problems.append(FieldProblem("export_fields", "required for user_enrichment jobs"))
    if isinstance(doc.get("audiences"), str):
        doc["audiences"] = [doc["audiences"]]
    has_url, has_template = doc.get("webhook_url") is not None, doc.get("url_template") is not None
    if has_url == has_template:
        rule = "give exactly one of webhook_url / url_template" + (", not both" if has_url else "")
        problems.append(FieldProblem("webhook_url", rule))
    try:
        context = None if allowed is None else {ALLOWED_NETWORKS: list(allowed)}
        job = JobConfig.model_validate(doc, context=context)
    except ValidationError as exc:
        problems.extend(FieldProblem(_loc(e["loc"]), _rule(e)) for e in exc.errors())
        raise ConfigError("job config", problems) from None
    if allowed is not None:
        fields_rule = unselected_fields_rule(job.body_template, job.export_fields)
        if fields_rule is not None:
            problems.append(FieldProblem("body_template", fields_rule))
    if problems:
        raise ConfigError("job config", problems)
    if job.is_triggers and not job.cloudevents_source:
        job = job.model_copy(update={"cloudevents_source": f"/work/{job.id}"})
    return job
