"""Audience Triggers end to end: real broker, a worker process, a real HTTPS receiver."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from cloudevents.core.bindings.http import HTTPMessage, from_http_event
from cloudevents.core.formats.json import JSONFormat

from app.devtools.receiver import Behaviour, WebhookReceiver
from app.settings import Settings
from tests.support.jobs import apply_jobs, settle, triggers_job, wait_for_requests
from tests.support.kafka_io import produce, wait_for_records
from tests.support.processes import WorkerProcess
from tests.support.records import EVENT_TIME, input_record

ENTER_TIME = EVENT_TIME


def record(user: str, data: dict[str, Any], *events: tuple[str, str]) -> tuple[bytes, bytes]:
    return input_record(user, data, *events, timestamp=ENTER_TIME)


def kinds(requests: list[Any]) -> list[tuple[str, str]]:
    out = []
    for r in requests:
        body = r.json()
        for ev in body["data"]["segment_events"]:
            out.append((body["id"], ev["event"]))
    return out


async def test_trigger_events_filter_and_default_body(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    both = triggers_job(receiver.url("/both"), export_fields=["first_name", "last_name"])
    enter = triggers_job(receiver.url("/enter"), trigger_events="enter")
    exit_ = triggers_job(receiver.url("/exit"), trigger_events="exit")
    await apply_jobs(test_env, tmp_path, worker, both, enter, exit_)

    profile = {"first_name": "Joe", "last_name": "Flow", "email": "joe@example.com"}
    await produce(
        test_settings,
        test_settings.input_topic,
        [
            record("u1", profile, ("enter", "newsletter")),
            record("u1", profile, ("enter", "other-audience")),
            record("u1", profile, ("exit", "newsletter")),
        ],
    )
    got_both = await wait_for_requests(receiver, "/both", 2)
    await wait_for_requests(receiver, "/enter", 1)
    await wait_for_requests(receiver, "/exit", 1)
    await settle(receiver)
    assert kinds(receiver.for_path("/both")) == [("u1", "enter"), ("u1", "exit")]
    assert kinds(receiver.for_path("/enter")) == [("u1", "enter")]
    assert kinds(receiver.for_path("/exit")) == [("u1", "exit")]

    first = got_both[0]
    body = first.json()
    assert set(body) == {"id", "data", "meta"}
    assert body["data"] == {
        "first_name": "Joe",
        "last_name": "Flow",
        "segment_events": [
            {"id": "seg-newsletter", "slug": "newsletter", "event": "enter", "enter": ENTER_TIME}
        ],
    }
    assert body["meta"]["object"] == "user"
    assert body["meta"]["subscription_id"] == both["id"]
    assert body["meta"]["timestamp"].endswith("Z")
    assert first.method == "POST"
    assert first.headers["content-type"] == "application/json"
    assert first.headers["user-agent"].startswith("audience-webhooks/")
    assert first.headers["webhook-id"].startswith("msg_")
    assert first.headers["webhook-timestamp"].isdigit()
    # All fields are sent when no export fields are chosen.
    assert receiver.for_path("/enter")[0].json()["data"]["email"] == "joe@example.com"


async def test_field_change_triggers(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    job = triggers_job(receiver.url("/change"), trigger_fields=["plan"], trigger_events="enter")
    await apply_jobs(test_env, tmp_path, worker, job)
    await produce(
        test_settings,
        test_settings.input_topic,
        [
            record("u2", {"plan": "free", "city": "Oslo"}, ("enter", "newsletter")),
            record("u2", {"plan": "free", "city": "Bergen"}),  # not a trigger field
            record("u2", {"plan": "pro", "city": "Bergen"}),  # trigger field changed
            record("u3", {"plan": "pro"}),  # not in the audience: nothing
            record("u3", {"plan": "free"}),
        ],
    )
    await wait_for_requests(receiver, "/change", 2)
    await settle(receiver)
    assert kinds(receiver.for_path("/change")) == [("u2", "enter"), ("u2", "change")]
    change = receiver.for_path("/change")[1].json()["data"]["segment_events"][0]
    assert change == {"id": "seg-newsletter", "event": "change", "slug": "newsletter"}


async def test_cloudevents_single_and_batched(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    single = triggers_job(receiver.url("/ce"), cloudevents=True, cloudevents_type="com.example.t")
    batched = triggers_job(
        receiver.url("/ce-batch"), cloudevents=True, batch=True, batch_size=3, worker_count=1
    )
    await apply_jobs(test_env, tmp_path, worker, single, batched)
    await produce(
        test_settings,
        test_settings.input_topic,
        [record(f"ce{i}", {"n": i}, ("enter", "newsletter")) for i in range(4)],
    )
    got = await wait_for_requests(receiver, "/ce", 4)
    for req in got:
        assert req.headers["content-type"] == "application/cloudevents+json"
        event = from_http_event(HTTPMessage(headers=req.headers, body=req.body))
        assert event.get_type() == "com.example.t"
        assert event.get_source() == f"/work/{single['id']}"
        assert event.get_subject() == req.json()["subject"]
        assert req.headers["webhook-id"] == f"msg_{event.get_id()}"
    assert len({r.json()["id"] for r in got}) == 4

    # Batch of 3 flushes by size at once; the 4th goes 1 s later by the window.
    batches = await wait_for_requests(receiver, "/ce-batch", 2)
    assert [len(b.json()) for b in batches] == [3, 1]
    assert batches[1].at - batches[0].at >= 0.8
    for b in batches:
        assert b.headers["content-type"] == "application/cloudevents-batch+json"
        for item in b.json():
            event = JSONFormat().read(None, orjson.dumps(item))
            assert str(event.get_subject()).startswith("ce")


async def test_batch_flushes_by_size_and_by_window(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    job = triggers_job(receiver.url("/batch"), batch=True, batch_size=5, worker_count=1)
    await apply_jobs(test_env, tmp_path, worker, job)
    await produce(
        test_settings,
        test_settings.input_topic,
        [record(f"b{i}", {"n": i}, ("enter", "newsletter")) for i in range(12)],
    )
    got = await wait_for_requests(receiver, "/batch", 3)
    await settle(receiver)
    sizes = [len(r.json()) for r in receiver.for_path("/batch")]
    assert sizes == [5, 5, 2]
    assert got[2].at - got[1].at >= 0.8  # the last 2 waited for the 1-second window
    assert got[0].headers["content-type"] == "application/json"
    ids = [item["id"] for r in got for item in r.json()]
    assert sorted(ids, key=lambda i: int(i[1:])) == [f"b{i}" for i in range(12)]


async def test_worker_count_bounds_concurrency_and_keeps_user_order(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    job = triggers_job(receiver.url("/lanes"), worker_count=4)
    receiver.behaviours["/lanes"] = receiver_delay(0.05)
    await apply_jobs(test_env, tmp_path, worker, job)
    records = []
    for n in range(30):
        for user in range(10):
            kind = "enter" if n % 2 == 0 else "exit"
            records.append(record(f"user{user}", {"n": n}, (kind, "newsletter")))
    await produce(test_settings, test_settings.input_topic, records)
    got = await wait_for_requests(receiver, "/lanes", 300, wait_s=60)
    assert receiver.max_in_flight["/lanes"] <= 4
    assert receiver.max_in_flight["/lanes"] >= 2  # the lanes really run in parallel
    for user in range(10):
        seq = [r.json()["data"]["n"] for r in got if r.json()["id"] == f"user{user}"]
        assert seq == list(range(30)), f"user{user} out of order: {seq}"


async def test_http_methods_and_url_template(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    put = triggers_job(receiver.url("/put"), http_method="PUT")
    patch = triggers_job(receiver.url("/patch"), http_method="PATCH")
    base = receiver.url("")
    templated = triggers_job(receiver.url("/unused"))
    del templated["webhook_url"]
    templated["url_template"] = f'"{base}/users/" + user.data.region + "/" + user.id'
    await apply_jobs(test_env, tmp_path, worker, put, patch, templated)
    await produce(
        test_settings,
        test_settings.input_topic,
        [record("t1", {"region": "eu"}, ("enter", "newsletter"))],
    )
    assert (await wait_for_requests(receiver, "/put", 1))[0].method == "PUT"
    assert (await wait_for_requests(receiver, "/patch", 1))[0].method == "PATCH"
    assert (await wait_for_requests(receiver, "/users/eu/t1", 1))[0].method == "POST"


async def test_private_destination_refused_unless_allowed(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker_factory: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    # Applied while 127.0.0.0/8 is allowed (`jobs apply` refuses the literal otherwise);
    # the worker, with nothing allowed, must still refuse both at send time.
    proc = worker_factory(WEBHOOKS_ALLOWED_PRIVATE_NETS="")
    job = triggers_job(receiver.url("/private"))
    named = triggers_job(f"https://localhost:{receiver.port}/named")
    await apply_jobs(test_env, tmp_path, proc, job, named)
    await produce(
        test_settings,
        test_settings.input_topic,
        [record("p1", {"x": 1}, ("enter", "newsletter"))],
    )
    dead = await wait_for_records(test_settings, test_settings.deadletter_topic, 2)
    reasons = {doc["job_id"]: doc["reason"] for _, doc in dead}
    assert "127.0.0.1 is a loopback address" in reasons[job["id"]]
    assert "resolves to a refused address" in reasons[named["id"]]
    assert dead[0][1]["event"]["id"] == "p1"
    assert receiver.requests == []


def receiver_delay(seconds: float) -> Behaviour:
    return Behaviour(respond=lambda n: (200, seconds, {}, b"{}"))


async def test_redirect_to_a_refused_address_is_refused(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker_factory: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    env = {**test_env, "WEBHOOKS_ALLOWED_PRIVATE_NETS": "127.0.0.1/32"}
    proc = worker_factory(WEBHOOKS_ALLOWED_PRIVATE_NETS="127.0.0.1/32")
    target = f"https://127.0.0.2:{receiver.port}/elsewhere"
    receiver.behaviours["/moved"] = Behaviour(
        respond=lambda n: (307, 0.0, {"Location": target}, b"")
    )
    receiver.behaviours["/moved-ok"] = Behaviour(
        respond=lambda n: (308, 0.0, {"Location": "/landed"}, b"")
    )
    job = triggers_job(receiver.url("/moved"))
    ok = triggers_job(receiver.url("/moved-ok"))
    await apply_jobs(env, tmp_path, proc, job, ok)
    await produce(
        test_settings,
        test_settings.input_topic,
        [record("r1", {"x": 1}, ("enter", "newsletter"))],
    )
    dead = await wait_for_records(test_settings, test_settings.deadletter_topic, 1)
    landed = await wait_for_requests(receiver, "/landed", 1)
    assert "127.0.0.2 is a loopback address" in dead[0][1]["reason"]
    assert receiver.for_path("/elsewhere") == []
    assert landed[0].method == "POST" and landed[0].json()["id"] == "r1"
