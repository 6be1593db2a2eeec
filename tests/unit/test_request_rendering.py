"""What templates see when a request is rendered (`app/delivery/rendering.py`): a URL
template the whole profile ("a dynamic URL using data on the profile or the job
configuration"), a body template only the job's export fields."""

from __future__ import annotations

from typing import Any

import orjson

from app.delivery.rendering import RequestRenderer
from app.domain.jobs import parse_job_config
from app.domain.queue_record import QueuedEvent
from app.domain.templates import render
from app.transport.template_runner import TemplateRunner


class InProcessTemplates(TemplateRunner):
    """The template runner without its child processes: the same evaluation, in this one."""

    def __init__(self) -> None:
        super().__init__(processes=1, timeout_s=5)
        self.users: list[dict[str, Any]] = []

    async def render(self, source: str, user: dict[str, Any], job: dict[str, Any], key: str) -> Any:
        self.users.append(user)
        return render(source, user, job)


EVENT = QueuedEvent(
    event_id="ev1",
    user_id="u1",
    data={"email": "u1@example.com", "account": "acme-42", "ssn": "123-45-6789"},
    by_fields={"email": "u1@example.com", "crm_id": "c-7"},
    segment_events=[{"slug": "vip", "event": "enter"}],
    time=None,
    queued_at_ms=0,
)


def renderer(**fields: Any) -> tuple[RequestRenderer, InProcessTemplates]:
    job = parse_job_config(
        {
            "type": "user_enrichment",
            "label": "CRM",
            "audiences": ["vip"],
            "url_template": "'https://crm.example.com/crm/' + user.data.account",
            "export_fields": ["email"],
            **fields,
        },
        allowed=[],
    )
    templates = InProcessTemplates()
    return RequestRenderer(job, templates), templates


async def test_a_url_template_sees_the_whole_profile() -> None:
    rendering, templates = renderer(
        url_template="'https://crm.example.com/crm/' + user.data.account + '/' "
        "+ user.by_fields.crm_id + '/' + user.segment_events[0].slug"
    )
    assert await rendering.url(EVENT) == "https://crm.example.com/crm/acme-42/c-7/vip"
    assert templates.users == [EVENT.template_user(None)]


async def test_a_body_template_sees_only_the_export_fields() -> None:
    rendering, templates = renderer(
        body_template="{ email: user.data.email, fields: std.objectFields(user.data), "
        "by: std.objectFields(user.by_fields), id: user.id }"
    )
    kept, body, _, failed = await rendering.body([EVENT])
    assert (kept, failed) == ([EVENT], [])
    assert orjson.loads(body) == {
        "email": "u1@example.com",
        "fields": ["email"],
        "by": ["email"],
        "id": "u1",
    }
    assert templates.users[0]["data"] == {"email": "u1@example.com"}


async def test_a_dynamic_read_of_an_unselected_field_is_still_a_dead_letter() -> None:
    rendering, _ = renderer(body_template="local k = 'ss' + 'n'; { v: user.data[k] }")
    kept, body, _, failed = await rendering.body([EVENT])
    assert (kept, body) == ([], b"")
    [(event, reason)] = failed
    assert event is EVENT
    assert reason.startswith("body_template failed:")
    assert "ssn" in reason
