"""The dashboard in a real headless browser (Debian's chromium through chromium-driver and
selenium) against the API and a worker that delivered and omitted events: a person sees the
job, its state and counters, opens it, sees its config without secrets, its log and the
omitted event as a dead letter, clicks Replay and sees the event delivered. Screenshots go
to the test's directory (and to `docs/` with DASHBOARD_SCREENSHOTS=docs)."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from app.devtools.receiver import Behaviour, Received, WebhookReceiver
from app.settings import Settings
from tests.support.api import running_api
from tests.support.broker import ROOT
from tests.support.jobs import apply_jobs, triggers_job, wait_for_requests
from tests.support.kafka_io import produce
from tests.support.polling import eventually
from tests.support.processes import WorkerProcess
from tests.support.records import toggle

TOKEN = "dashboard-token-" + uuid.uuid4().hex
WAIT_S = 30


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, "run `make browser` (Debian chromium + chromium-driver)"
    options = Options()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1400,900",
    ):
        options.add_argument(arg)
    session = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    try:
        yield session
    finally:
        session.quit()


def text_of(session: WebDriver, testid: str) -> str:
    return str(session.find_element(By.CSS_SELECTOR, f"[data-testid='{testid}']").text)


def wait_until(session: WebDriver, check: Callable[[WebDriver], object], what: str) -> None:
    WebDriverWait(session, WAIT_S, poll_frequency=0.2).until(check, message=what)


async def test_dashboard_shows_jobs_and_replays_a_dead_letter(
    test_env: dict[str, str],
    test_settings: Settings,
    receiver: WebhookReceiver,
    worker_factory: Callable[..., WorkerProcess],
    browser: WebDriver,
    tmp_path: Path,
) -> None:
    worker = worker_factory()
    refuse_bad = {"on": True}

    def by_user(request: Received) -> tuple[int, float, dict[str, str], bytes]:
        """ "bad" users are refused with a 404 (omitted, dead-lettered) until fixed."""
        if refuse_bad["on"] and request.json()["id"].startswith("bad"):
            return 404, 0.0, {}, b'{"error":"unknown user"}'
        return 200, 0.0, {}, b"{}"

    receiver.behaviours["/dash"] = Behaviour(respond_to=by_user)
    job = triggers_job(receiver.url("/dash"), label="Newsletter to CRM")
    await apply_jobs(test_env, tmp_path, worker, job)
    await produce(
        test_settings,
        test_settings.input_topic,
        [toggle("good1", 0), toggle("good2", 0), toggle("bad1", 0)],
    )
    got = await wait_for_requests(receiver, "/dash", 3)
    assert sorted(r.status for r in got) == [200, 200, 404]
    shots = Path(os.environ.get("DASHBOARD_SCREENSHOTS", str(tmp_path)))
    if not shots.is_absolute():
        shots = ROOT / shots

    async with running_api(test_settings, TOKEN) as base:

        def jobs_page() -> None:
            browser.get(base + "/")
            wait_until(
                browser,
                lambda s: s.find_element(By.ID, "token-form").is_displayed(),
                "no token form",
            )
            browser.find_element(By.ID, "token").send_keys(TOKEN)
            browser.find_element(By.CSS_SELECTOR, "#token-form button").click()
            row = f"[data-testid='job-row'][data-job='{job['id']}']"
            wait_until(browser, lambda s: s.find_elements(By.CSS_SELECTOR, row), "no job row")
            # counters reach the page through the status topic and the 2 s refresh
            wait_until(
                browser,
                lambda s: (
                    s.find_element(By.CSS_SELECTOR, row + " [data-testid='delivered']").text == "2"
                    and s.find_element(By.CSS_SELECTOR, row + " [data-testid='omitted']").text
                    == "1"
                ),
                "counters never showed 2 delivered and 1 omitted",
            )
            cells = browser.find_element(By.CSS_SELECTOR, row).text
            assert "Newsletter to CRM" in cells and "running" in cells
            browser.save_screenshot(str(shots / "dashboard.png"))

        def job_page() -> None:
            browser.find_element(By.LINK_TEXT, job["id"]).click()
            wait_until(
                browser,
                lambda s: s.find_elements(By.CSS_SELECTOR, "[data-testid='dead-letter']"),
                "no dead letter shown",
            )
            assert text_of(browser, "job-label") == "Newsletter to CRM"
            config = text_of(browser, "config")
            assert receiver.url("/dash") in config and "signing_keys" not in config
            assert (
                "404" in browser.find_element(By.CSS_SELECTOR, "[data-testid='dead-letter']").text
            )
            wait_until(browser, lambda s: "delivery started" in text_of(s, "log"), "log not shown")
            assert text_of(browser, "counter-omitted_events") == "1"
            browser.save_screenshot(str(shots / "dashboard-job.png"))

        await asyncio.to_thread(jobs_page)
        await asyncio.to_thread(job_page)
        refuse_bad["on"] = False

        def click_replay() -> None:
            browser.find_element(By.CSS_SELECTOR, "[data-testid='replay']").click()
            wait_until(
                browser,
                lambda s: text_of(s, "counter-delivered_events") == "3",
                "the replayed event never showed as delivered",
            )
            assert text_of(browser, "error") == ""

        await asyncio.to_thread(click_replay)

    delivered = await eventually(
        lambda: [
            r for r in receiver.for_path("/dash") if r.status == 200 and r.json()["id"] == "bad1"
        ],
        lambda got: len(got) >= 1,
        wait_s=WAIT_S,
    )
    await asyncio.sleep(2)
    assert (
        len([r for r in receiver.for_path("/dash") if r.status == 200 and r.json()["id"] == "bad1"])
        == 1
    )
    assert delivered[0].headers["webhook-id"]
