"""What a job's request says: its URL (`url_template` or `webhook_url`) and its body (the
Lytics or CloudEvents shape for triggers; the `body_template` or the default item per user
for enrichment). Templates run in the template runner's child processes. A `url_template`
sees the whole profile ("a dynamic URL using data on the profile or the job
configuration"): the id, every field of `data` and `by_fields`, the segment events. A
`body_template` sees only the job's export fields ("the user's fields selected during
configuration", `QueuedEvent.template_user`); one that reads another field is refused when
the job is applied (`app.domain.template_fields`).
"""

from __future__ import annotations

from typing import Any

from app.domain.enrichment import enrichment_body, enrichment_item
from app.domain.jobs import JobConfig
from app.domain.payloads import JSON, build_request_body
from app.domain.queue_record import QueuedEvent
from app.domain.templates import TemplateError, url_from_template
from app.transport.template_runner import TemplateRunner


class RequestRenderer:
    def __init__(self, job: JobConfig, templates: TemplateRunner) -> None:
        self.job = job
        self.templates = templates
        self._job_json = job.to_json_dict()
        # The URL when it is the same for every user (no `url_template`): taken without a
        # coroutine per event (that await was 8 % of a batched worker's CPU).
        self.fixed_url: str | None = None if job.url_template else job.webhook_url

    async def url(self, event: QueuedEvent) -> str:
        """The user's URL; raises TemplateError (or what a hostile template makes the code
        raise) when the `url_template` fails for this user."""
        if self.job.url_template:
            value = await self.templates.render(
                self.job.url_template,
                event.template_user(None),  # the whole profile, not only the export fields
                self._job_json,
                self.job.id,
            )
            return url_from_template(value)
        assert self.job.webhook_url is not None
        return self.job.webhook_url

    async def body(
        self, events: list[QueuedEvent]
    ) -> tuple[list[QueuedEvent], bytes, str, list[tuple[QueuedEvent, str]]]:
        """(the events the request carries, its body, its content type, the events whose
        `body_template` failed with the reason): those are dead-lettered, the rest sent."""
        if self.job.is_triggers:
            body, content_type = build_request_body(self.job, events)
            return events, body, content_type, []
        kept: list[QueuedEvent] = []
        parts: list[Any] = []
        failed: list[tuple[QueuedEvent, str]] = []
        for event in events:
            try:
                if self.job.body_template:
                    part = await self.templates.render(
                        self.job.body_template,
                        event.template_user(self.job.export_fields),
                        self._job_json,
                        self.job.id,
                    )
                else:
                    part = enrichment_item(self.job, event, self._job_json)
            except TemplateError as exc:
                failed.append((event, f"body_template failed: {exc}"))
                continue
            parts.append(part)
            kept.append(event)
        return kept, (enrichment_body(self.job, parts) if kept else b""), JSON, failed
