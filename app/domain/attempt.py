"""What to do after one attempt of a webhook request. Pure: one function, every rule.

The rules (product doc "Error Handling", contract section 8), in the order they apply:

1. The destination was refused by the guard (private address, bad scheme): omit the events
   (dead letters with the reason); never an error of the job.
2. The token endpoint refused: wrong credentials do not fix themselves, so the job is in
   `error` at once (`ERROR_NOW`); a token endpoint that is down is retried like any failure.
3. A transport error (refused, reset, timeout, TLS): retry with backoff.
4. 401 with an OAuth token that was not refreshed during this request yet: refresh the token
   and try again at once (the token may have expired); once per request.
5. 2xx: delivered.
6. A status in the job's do-not-retry list (400, 404, 413 and `do_not_retry`): omit.
7. Any other status with a readable `Retry-After`: sleep until then (no error counted).
8. Any other status: retry with backoff.

A new retry rule is a change here and a test in `tests/unit/test_attempt.py`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum

from app.domain.retry import RetryPolicy
from app.domain.retry_after import retry_after_until


class Action(Enum):
    DELIVERED = "delivered"
    OMIT = "omit"
    REFRESH_TOKEN = "refresh_token"
    SLEEP_UNTIL = "sleep_until"
    RETRY = "retry"
    ERROR_NOW = "error_now"


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one attempt gave: an HTTP answer (`status`, `headers`, `excerpt` of the body), or
    a failure before one (`refused`, `token_error`, `transport_error`). Texts are redacted."""

    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    excerpt: str = ""
    refused: str | None = None
    token_error: str | None = None
    token_error_permanent: bool = False
    transport_error: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reason: str = ""
    status: int | None = None
    until: float | None = None  # SLEEP_UNTIL: unix time
    retry: int = 0  # RETRY: which retry this is (1 = the first)
    delay_s: float = 0.0  # RETRY: how long to wait before it
    outside: str = ""  # the part of `reason` the receiver wrote (its answer's excerpt)


def decide(
    result: AttemptResult,
    *,
    failures: int,
    used_token: bool,
    token_refreshed: bool,
    never_retry: frozenset[int],
    backoff: RetryPolicy,
    now: float,
    rng: random.Random | None = None,
) -> Decision:
    """The next step for a request after an attempt; `failures` counts the attempts of this
    request that failed before this one."""

    def retry(reason: str, status: int | None) -> Decision:
        n = failures + 1
        return Decision(Action.RETRY, reason, status, retry=n, delay_s=backoff.delay(n, rng))

    if result.refused is not None:
        return Decision(Action.OMIT, f"destination refused: {result.refused}")
    if result.token_error is not None:
        if result.token_error_permanent:
            return Decision(Action.ERROR_NOW, result.token_error, result.status)
        return retry(result.token_error, result.status)
    if result.transport_error is not None or result.status is None:
        return retry(result.transport_error or "no answer", None)
    status = result.status
    if status == 401 and used_token and not token_refreshed:
        return Decision(
            Action.REFRESH_TOKEN, f"HTTP 401: {result.excerpt}", status, outside=result.excerpt
        )
    if 200 <= status < 300:
        return Decision(Action.DELIVERED, status=status)
    if status in never_retry:
        return Decision(
            Action.OMIT,
            f"omitted: HTTP {status} is not retried: {result.excerpt}",
            status,
            outside=result.excerpt,
        )
    reason = f"HTTP {status}: {result.excerpt}"
    until = retry_after_until(_header(result.headers, "Retry-After"), now)
    if until is not None:
        return Decision(Action.SLEEP_UNTIL, reason, status, until=until, outside=result.excerpt)
    return replace(retry(reason, status), outside=result.excerpt)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lower = name.lower()
    for key, val in headers.items():
        if key.lower() == lower:
            return val
    return None
