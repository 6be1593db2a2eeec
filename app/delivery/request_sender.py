"""One webhook request, attempted until it is delivered or omitted.

Each attempt resolves the job's authorization (static headers/params, or an OAuth token),
sends, and turns what happened into an `AttemptResult`; `app/domain/attempt.decide` says
what to do next, and this module does it: report the outcome to the job's state machine,
write the job log, sleep, refresh the token, or hand the events to `on_omit` / the answer to
`on_answer`. Secrets never leave here unredacted (`Redactor`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import aiohttp
from prometheus_client import Counter

from app.delivery.job_signer import JobSigner
from app.domain.attempt import Action, AttemptResult, Decision, decide
from app.domain.destinations import DestinationRefused
from app.domain.job_state import JobStateMachine
from app.domain.jobs import JobConfig
from app.domain.payloads import webhook_id
from app.domain.queue_record import QueuedEvent
from app.domain.redaction import Redactor
from app.domain.retry import RetryPolicy
from app.domain.urls import merge_params
from app.transport import metrics, tracing
from app.transport.auth_resolver import AuthResolver, AuthUnavailable
from app.transport.http import WebhookClient, exception_text
from app.transport.job_log import JobLog
from app.transport.oauth import TokenError, TokenProvider

log = logging.getLogger(__name__)

# (events, reason, status, the part of the reason the receiver wrote)
OnOmit = Callable[[list[QueuedEvent], str, int | None, str], Awaitable[None]]
OnAnswer = Callable[[list[QueuedEvent], bytes], Awaitable[None]]


class Released(Exception):
    """The request's partitions are being given up: stop before its next attempt."""


class RequestSender:
    """Sends requests for one job; `send` returns once the request is settled."""

    def __init__(
        self,
        job: JobConfig,
        auths: AuthResolver,
        client: WebhookClient,
        machine: JobStateMachine,
        backoff: RetryPolicy,
        joblog: JobLog,
        on_omit: OnOmit,
        on_answer: OnAnswer,
        signer: JobSigner | None = None,
    ) -> None:
        self.job = job
        self.signer = signer
        self.auths = auths
        self.client = client
        self.machine = machine
        self.backoff = backoff
        self.joblog = joblog
        self._on_omit = on_omit
        self._on_answer = on_answer
        # This job's metric series, looked up once: `labels()` per request cost 4 % of an
        # unbatched worker's CPU. A deleted job's series are removed after its delivery
        # stopped; a job re-created with the same id gets a new sender.
        self._batch_events = metrics.BATCH_EVENTS.labels(job.id)
        self._request_seconds = metrics.REQUEST_SECONDS.labels(job.id)
        self._delivered = metrics.EVENTS_DELIVERED.labels(job.id)
        self._requests: dict[str, Counter] = {}

    def _count_request(self, status: int | None) -> None:
        status_class = metrics.status_class(status)
        counter = self._requests.get(status_class)
        if counter is None:
            counter = self._requests[status_class] = metrics.REQUESTS.labels(
                self.job.id, status_class
            )
        counter.inc()

    async def send(
        self,
        events: list[QueuedEvent],
        url: str,
        body: bytes,
        content_type: str,
        check_owned: Callable[[], None],
    ) -> None:
        """Attempt until delivered or omitted; `check_owned` raises `Released` when the
        request's partitions move (checked before each attempt and while waiting)."""
        wid = webhook_id(events)
        self._batch_events.observe(len(events))
        traced = tracing.request_trace(
            self.job.id, self.job.type, self.job.http_method, events, wid
        )
        failures = 0
        attempts = 0
        refreshed = False
        while True:
            await self._wait_until_runnable(check_owned)
            started = time.monotonic()
            attempts += 1
            span = traced.attempt(attempts) if traced is not None else None
            try:
                result, answer, token, tokens = await self._attempt(
                    url, body, content_type, wid, span.headers if span is not None else None
                )
            except BaseException:
                if span is not None:
                    span.abandon()
                raise
            if result.refused is None and result.token_error is None:
                self._request_seconds.observe(time.monotonic() - started)
                self._count_request(result.status)
            now = time.time()
            decision = decide(
                result,
                failures=failures,
                used_token=token is not None,
                token_refreshed=refreshed,
                never_retry=self.job.never_retry,
                backoff=self.backoff,
                now=now,
            )
            if span is not None:
                span.end(result, decision.action)
            match decision.action:
                case Action.DELIVERED:
                    if not self.job.is_triggers:
                        await self._on_answer(events, answer)
                    self.machine.delivered(now, requests=1, events=len(events))
                    self._delivered.inc(len(events))
                    return
                case Action.OMIT:
                    await self._on_omit(events, decision.reason, decision.status, decision.outside)
                    return
                case Action.REFRESH_TOKEN:
                    refreshed = True  # once per request: the token may have expired
                    if tokens is not None and token is not None:
                        with contextlib.suppress(TokenError):
                            await tokens.refresh_after_401(token)
                case Action.SLEEP_UNTIL:
                    assert decision.until is not None
                    log.info(
                        "job %s: HTTP %s with Retry-After; sleeping", self.job.id, result.status
                    )
                    self.machine.retry_after(now, decision.until)
                case Action.ERROR_NOW:  # wrong credentials do not fix themselves
                    self.machine.error_now(now, decision.reason, decision.status)
                    log.error("job %s: %s", self.job.id, decision.reason)
                    await self.joblog.write(
                        self.job.id,
                        "error",
                        decision.reason,
                        outside=decision.outside,
                        reason=decision.reason,
                        status=decision.status,
                        attempt=failures,
                    )
                case Action.RETRY:
                    failures = decision.retry
                    self.machine.failed(now, decision.reason, decision.status)
                    metrics.RETRIES.labels(self.job.id).inc()
                    await self._log_retry(wid, len(events), decision, failures)
                    await self._sleep(decision.delay_s, check_owned)

    async def _attempt(
        self, url: str, body: bytes, content_type: str, wid: str, trace: dict[str, str] | None
    ) -> tuple[AttemptResult, bytes, str | None, TokenProvider | None]:
        """One attempt: (what happened, the answer's body, the token used, its provider);
        `trace`: the attempt span's `traceparent` (and `tracestate`) headers."""
        redactor = Redactor()
        token: str | None = None
        tokens: TokenProvider | None = None
        try:
            resolved = self.auths.resolve(self.job.authorization)
            if resolved is not None:
                redactor = Redactor.for_auth(resolved.auth)
                tokens = resolved.tokens
                if tokens is not None:
                    token = await tokens.token()
                    redactor = Redactor.for_auth(resolved.auth, token)
                extra_headers, params = resolved.auth.request_parts(token)
                secret_headers, secret_params = resolved.auth.secret_names
            else:
                extra_headers, params = [], []
                secret_headers, secret_params = [], []
            timestamp = int(time.time())
            headers = {
                "Content-Type": content_type,
                "webhook-id": wid,
                "webhook-timestamp": str(timestamp),
            }
            if trace:
                headers.update(trace)
            headers.update(extra_headers)
            if self.signer is not None:  # after the authorization's: it cannot replace it
                headers["webhook-signature"] = self.signer.header(wid, timestamp, body)
            response = await self.client.send(
                self.job.http_method,
                merge_params(url, params),
                body,
                headers,
                secret_headers=secret_headers,
                secret_params=secret_params,
            )
        except DestinationRefused as exc:
            return AttemptResult(refused=redactor.text(str(exc))), b"", token, tokens
        except TokenError as exc:
            result = AttemptResult(
                status=exc.status, token_error=str(exc), token_error_permanent=exc.permanent
            )
            return result, b"", token, tokens
        except (aiohttp.ClientError, OSError, TimeoutError, AuthUnavailable) as exc:
            return (
                AttemptResult(transport_error=redactor.text(exception_text(exc))),
                b"",
                token,
                tokens,
            )
        result = AttemptResult(
            status=response.status,
            headers=response.headers,
            excerpt=redactor.text(response.excerpt),
        )
        return result, response.body, token, tokens

    async def _log_retry(self, wid: str, events: int, decision: Decision, retry: int) -> None:
        reason, delay = decision.reason, decision.delay_s
        log.warning(
            "job %s: request %s failed (%s); retry %d in %.1f s",
            self.job.id,
            wid,
            reason[:200],
            retry,
            delay,
        )
        await self.joblog.write(
            self.job.id,
            "error",
            f"request of {events} event(s) failed: {reason}; retry {retry} in {delay:.1f} s",
            outside=decision.outside,
            reason=reason,
            status=decision.status,
            attempt=retry,
            retry_in_s=round(delay, 3),
            events=events,
        )

    async def _wait_until_runnable(self, check_owned: Callable[[], None]) -> None:
        """Hold the request while the job sleeps, errors (until its next run) or has failed."""
        while True:
            check_owned()
            wait = self.machine.wait_s(time.time())
            if wait == 0.0:
                return
            await asyncio.sleep(1.0 if wait is None else min(wait, 1.0))

    async def _sleep(self, delay: float, check_owned: Callable[[], None]) -> None:
        until = time.monotonic() + delay
        while time.monotonic() < until:
            check_owned()
            await asyncio.sleep(min(1.0, until - time.monotonic()))
