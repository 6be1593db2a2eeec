"""The dashboard in a real headless browser (Debian's chromium through chromium-driver and
selenium) against the API and a worker that delivered and omitted events: a person sees the
job, its state and counters, opens it, sees its config without secrets, its log and the
omitted event as a dead letter, clicks Replay and sees the event delivered, then stops the
job. Screenshots go to the test's directory (and to `docs/` with DASHBOARD_SCREENSHOTS=docs).

The page refreshes every 2 s and patches its view in place, so the test also proves what a
person relies on: an element found before a refresh is the same element after it, a text
selection, focus and a scroll position survive it, and a click whose press and release
straddle a refresh still reaches its button. Every wait is on something the page shows (the
`#refreshed` marker's `data-renders` count goes up once per render); every text is read
afresh inside a wait that tolerates a re-render."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from app.devtools.receiver import Behaviour, Received, WebhookReceiver
from app.settings import Settings
from tests.support.api import running_api
from tests.support.broker import ROOT
from tests.support.jobs import apply_jobs, triggers_job, wait_for_requests
from tests.support.kafka_io import produce
from tests.support.processes import WorkerProcess
from tests.support.records import toggle

TOKEN = "dashboard-token-" + uuid.uuid4().hex
WAIT_S = 30
RE_RENDERED = (StaleElementReferenceException, NoSuchElementException)

SELECT_CONTENTS = """
const range = document.createRange();
range.selectNodeContents(arguments[0]);
const selection = window.getSelection();
selection.removeAllRanges();
selection.addRange(range);
return selection.toString();
"""
SELECTION = "return window.getSelection().toString();"
RENDERS = "return Number(document.getElementById('refreshed').dataset.renders || '0');"


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


def by_testid(name: str) -> str:
    return f"[data-testid='{name}']"


def wait_until(session: WebDriver, check: Callable[[WebDriver], Any], what: str) -> Any:
    """`check`'s first truthy answer; an element that went away with a re-render between
    finding and reading it only makes the wait look again."""
    wait = WebDriverWait(session, WAIT_S, poll_frequency=0.2, ignored_exceptions=RE_RENDERED)
    return wait.until(check, message=what)


def wait_for_text(
    session: WebDriver, selector: str, accept: Callable[[str], bool], what: str
) -> str:
    """The text of the element `selector` finds, found afresh at every look, once `accept`
    takes it; fails naming `what` and the last text seen."""
    seen: list[str] = []

    def check(s: WebDriver) -> bool:
        seen.append(str(s.find_element(By.CSS_SELECTOR, selector).text))
        return accept(seen[-1])

    try:
        wait_until(session, check, what)
    except TimeoutException:
        last = repr(seen[-1]) if seen else "no such element"
        raise AssertionError(f"{what}: last seen {last}") from None
    return seen[-1]


def renders(session: WebDriver) -> int:
    """How many times the page has rendered (its refresh marker)."""
    return int(session.execute_script(RENDERS))


def wait_for_refresh(session: WebDriver, after: int) -> int:
    """Wait until the page rendered again since it had rendered `after` times."""

    def rendered_again(s: WebDriver) -> int:
        count = renders(s)
        return count if count > after else 0

    count: int = wait_until(session, rendered_again, f"the page did not refresh after {after}")
    return count


def same_element(session: WebDriver, held: WebElement, selector: str) -> bool:
    """`held` (found earlier) is still in the page and is what `selector` finds now."""
    try:
        held.is_displayed()
    except StaleElementReferenceException:
        return False  # it was removed from the page (a re-render replaced it)
    return bool(held.id == session.find_element(By.CSS_SELECTOR, selector).id)


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
    row = f"[data-testid='job-row'][data-job='{job['id']}']"

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
            # counters reach the page through the status topic and the 2 s refresh
            wait_for_text(browser, row + " " + by_testid("delivered"), "2".__eq__, "delivered")
            wait_for_text(browser, row + " " + by_testid("omitted"), "1".__eq__, "omitted")
            cells = wait_for_text(
                browser, row, lambda t: "Newsletter to CRM" in t and "running" in t, "job row"
            )
            assert "Newsletter to CRM" in cells
            browser.save_screenshot(str(shots / "dashboard.png"))

        def jobs_page_updates_in_place() -> None:
            held_row = browser.find_element(By.CSS_SELECTOR, row)
            label = held_row.find_elements(By.TAG_NAME, "td")[1]
            assert browser.execute_script(SELECT_CONTENTS, label) == "Newsletter to CRM"
            wait_for_refresh(browser, renders(browser))
            assert same_element(browser, held_row, row), "the job row was replaced"
            assert browser.execute_script(SELECTION) == "Newsletter to CRM"

        def job_page() -> None:

            def open_job(s: WebDriver) -> bool:
                s.find_element(By.LINK_TEXT, job["id"]).click()
                return True

            wait_until(browser, open_job, "no link to the job")
            wait_for_text(browser, by_testid("dead-letter"), lambda t: "404" in t, "no dead letter")
            wait_for_text(browser, by_testid("job-label"), "Newsletter to CRM".__eq__, "job label")
            config = wait_for_text(
                browser, by_testid("config"), lambda t: receiver.url("/dash") in t, "config"
            )
            assert "signing_keys" not in config
            wait_for_text(browser, by_testid("log"), lambda t: "delivery started" in t, "log")
            wait_for_text(browser, by_testid("counter-omitted_events"), "1".__eq__, "omitted")
            browser.save_screenshot(str(shots / "dashboard-job.png"))

        def job_page_updates_in_place() -> None:
            held = {
                name: browser.find_element(By.CSS_SELECTOR, by_testid(name))
                for name in ("config", "replay", "dead-letter", "counter-omitted_events")
            }
            pre, replay = held["config"], held["replay"]
            browser.execute_script("arguments[0].focus();", replay)
            scrolled = browser.execute_script(
                "arguments[0].scrollTop = 120; return arguments[0].scrollTop;", pre
            )
            assert scrolled > 0, "the config should be long enough to scroll"
            selected = browser.execute_script(SELECT_CONTENTS, pre)
            assert receiver.url("/dash") in selected
            seen = renders(browser)
            wait_for_refresh(browser, wait_for_refresh(browser, seen))  # two, to be sure
            for name, element in held.items():
                assert same_element(browser, element, by_testid(name)), f"{name} was replaced"
            assert browser.execute_script(SELECTION) == selected, "the selection was lost"
            assert browser.execute_script("return arguments[0].scrollTop;", pre) == scrolled
            assert browser.execute_script("return document.activeElement === arguments[0];", replay)

        await asyncio.to_thread(jobs_page)
        await asyncio.to_thread(jobs_page_updates_in_place)
        await asyncio.to_thread(job_page)
        await asyncio.to_thread(job_page_updates_in_place)
        refuse_bad["on"] = False

        def replay_across_a_refresh() -> None:
            """Press on Replay, let the page refresh under the pointer, release: a click."""
            replay = browser.find_element(By.CSS_SELECTOR, by_testid("replay"))
            ActionChains(browser).click_and_hold(replay).perform()
            wait_for_refresh(browser, renders(browser))
            ActionChains(browser).release().perform()
            wait_for_text(
                browser,
                by_testid("counter-delivered_events"),
                "3".__eq__,
                "the replayed event never showed as delivered",
            )
            wait_for_text(browser, by_testid("error"), "".__eq__, "an error is shown")

        def stop_with_a_button_found_before_a_refresh() -> None:
            stop = browser.find_element(By.CSS_SELECTOR, by_testid("stop"))
            wait_for_refresh(browser, renders(browser))
            try:
                stop.click()
            except StaleElementReferenceException:
                pytest.fail("the Stop button found before the refresh was replaced by it")
            # the same button now offers to resume, and the worker stopped the job with
            # nothing left in its queue: no second delivery of the replayed event can come
            wait_until(browser, lambda s: stop.text == "Resume", "the Stop button did not turn")
            assert stop.get_attribute("data-testid") == "resume"
            wait_for_text(browser, by_testid("state"), "stopped".__eq__, "the job never stopped")
            wait_for_text(browser, by_testid("backlog"), "0".__eq__, "a backlog remained")
            wait_for_text(browser, by_testid("counter-delivered_events"), "3".__eq__, "delivered")
            wait_for_text(browser, by_testid("error"), "".__eq__, "an error is shown")

        await asyncio.to_thread(replay_across_a_refresh)
        await asyncio.to_thread(stop_with_a_button_found_before_a_refresh)

    replayed = [
        r for r in receiver.for_path("/dash") if r.status == 200 and r.json()["id"] == "bad1"
    ]
    assert len(replayed) == 1
    assert replayed[0].headers["webhook-id"]
