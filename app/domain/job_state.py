"""A job's delivery state machine (product doc "Error Handling", contract section 8).

running --10 failed requests--> error (waits per the job retry schedule, then runs again)
error   --errors persisting for `failed_after_s`--> failed (waits for `resume`)
any     --Retry-After--> sleeping (until then, capped; not an error) --> running
any     --successful delivery--> running, failure count and schedule reset
Pure: callers pass `now` (unix seconds) and read `wait_s(now)` to know whether to send.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

State = Literal["running", "sleeping", "error", "failed", "stopped"]
FAILURES_BEFORE_ERROR = 10
EXCERPT_CHARS = 200


@dataclass(frozen=True, slots=True)
class JobRetrySchedule:
    """How long an erroring job waits before it runs again: doubling, capped."""

    initial_s: float = 60.0
    max_s: float = 3600.0

    def delay(self, attempt: int) -> float:
        return float(min(self.max_s, self.initial_s * 2.0 ** max(0, attempt - 1)))


@dataclass(slots=True)
class Counters:
    delivered_requests: int = 0
    delivered_events: int = 0
    omitted_events: int = 0
    failed_requests: int = 0  # failed attempts; each was retried (or the job stopped first)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Counters:
        """Known counters only (records of older versions had `retried_requests`)."""
        names = cls.__dataclass_fields__
        return cls(**{k: int(v) for k, v in doc.items() if k in names})


@dataclass(slots=True)
class LastError:
    at: float
    reason: str
    status: int | None = None


@dataclass(slots=True)
class Omission:
    """The latest events dead-lettered instead of delivered (`jobs show` names it)."""

    at: float
    reason: str
    status: int | None = None
    events: int = 0


@dataclass(slots=True)
class JobStatus:
    """What `webhooks jobs show` reports, and what survives a restart."""

    state: State = "running"
    since: float = 0.0
    next_run: float | None = None
    consecutive_failures: int = 0
    error_attempt: int = 0
    error_since: float | None = None
    last_error: LastError | None = None
    counters: Counters = field(default_factory=Counters)
    last_omission: Omission | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> JobStatus:
        last = doc.get("last_error")
        omission = doc.get("last_omission")
        return cls(
            state=doc.get("state", "running"),
            since=float(doc.get("since", 0.0)),
            next_run=doc.get("next_run"),
            consecutive_failures=int(doc.get("consecutive_failures", 0)),
            error_attempt=int(doc.get("error_attempt", 0)),
            error_since=doc.get("error_since"),
            last_error=LastError(**last) if last else None,
            counters=Counters.from_dict(doc.get("counters", {})),
            last_omission=Omission(**omission) if omission else None,
        )


def carry_state(into: JobStatus, previous: JobStatus) -> None:
    """A job that moved here from another worker keeps the state it had there, when that is
    newer than this worker's own: an erroring job keeps its retry schedule, a sleeping one
    its wake-up time, a failed one stays failed until resumed. Counters stay each worker's
    own (readers add them up)."""
    if previous.since <= into.since:
        return
    into.state = previous.state
    into.since = previous.since
    into.next_run = previous.next_run
    into.consecutive_failures = previous.consecutive_failures
    into.error_attempt = previous.error_attempt
    into.error_since = previous.error_since
    into.last_error = previous.last_error


class JobStateMachine:
    """Applies request outcomes to a JobStatus; `take_changed` tells whether it changed."""

    def __init__(
        self,
        status: JobStatus,
        schedule: JobRetrySchedule,
        failed_after_s: float,
        retry_after_max_s: float,
    ) -> None:
        self.status = status
        self._changed = True
        self.schedule = schedule
        self.failed_after_s = failed_after_s
        self.retry_after_max_s = retry_after_max_s

    def take_changed(self) -> bool:
        """Whether the status changed since the last call (then it is reported, once)."""
        changed, self._changed = self._changed, False
        return changed

    def _enter(self, state: State, now: float, next_run: float | None) -> None:
        self._changed = True
        if state != self.status.state:
            self.status.since = now
        self.status.state = state
        self.status.next_run = next_run

    def wait_s(self, now: float) -> float | None:
        """Seconds to wait before the next request; None = do not send (failed or stopped).

        A due `error` or `sleeping` job goes back to `running` here: it runs again.
        """
        st = self.status
        if st.state in ("failed", "stopped"):
            return None
        if st.state in ("error", "sleeping"):
            assert st.next_run is not None
            if now < st.next_run:
                return st.next_run - now
            if st.state == "error":
                st.consecutive_failures = 0  # a new run gets its own 10 requests
            self._enter("running", now, None)
        return 0.0

    def delivered(self, now: float, requests: int = 1, events: int = 1) -> None:
        st = self.status
        self._changed = True
        st.counters.delivered_requests += requests
        st.counters.delivered_events += events
        st.consecutive_failures = 0
        st.error_attempt = 0
        st.error_since = None
        if st.state != "running":
            self._enter("running", now, None)

    def omitted(
        self, events: int, now: float = 0.0, reason: str = "", status: int | None = None
    ) -> None:
        self._changed = True
        self.status.counters.omitted_events += events
        if reason:
            self.status.last_omission = Omission(now, reason[:EXCERPT_CHARS], status, events)

    def failed(self, now: float, reason: str, status: int | None = None) -> None:
        """A request failed (non-2xx to retry, or a transport error)."""
        st = self.status
        self._changed = True
        st.counters.failed_requests += 1
        st.consecutive_failures += 1
        st.last_error = LastError(at=now, reason=reason[:EXCERPT_CHARS], status=status)
        if st.state != "running" or st.consecutive_failures < FAILURES_BEFORE_ERROR:
            return
        if st.error_since is None:
            st.error_since = now
        if now - st.error_since >= self.failed_after_s:
            self._enter("failed", now, None)
            return
        st.error_attempt += 1
        self._enter("error", now, now + self.schedule.delay(st.error_attempt))

    def error_now(self, now: float, reason: str, status: int | None = None) -> None:
        """A failure that retrying cannot fix (e.g. the token endpoint refuses the
        credentials): count it and enter `error` at once, or `failed` if errors persist."""
        st = self.status
        st.consecutive_failures = FAILURES_BEFORE_ERROR - 1
        self.failed(now, reason, status)

    def retry_after(self, now: float, until: float) -> None:
        """The endpoint asked for a pause: sleep until then (capped), no error counted."""
        until = min(until, now + self.retry_after_max_s)
        if self.status.state in ("failed", "stopped"):
            return
        self._enter("sleeping", now, max(until, now))

    def resume(self, now: float) -> None:
        """Back to running from any state, with a fresh failure count and schedule."""
        st = self.status
        st.consecutive_failures = 0
        st.error_attempt = 0
        st.error_since = None
        self._enter("running", now, None)
