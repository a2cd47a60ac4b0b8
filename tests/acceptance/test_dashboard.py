"""The dashboard in a real browser: `dvp-scheduler up` with the example plugins on two tenants,
Debian's chromium driven by Playwright. Writes the README's screenshots to docs/screenshots/."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.acceptance.test_up import Scheduler, until

pytestmark = pytest.mark.acceptance


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip(
        "no chromium on PATH: install Debian's package (apt-get install chromium); "
        "Playwright's own browser download is not used",
        allow_module_level=True,
    )

OPERATOR_TOKEN = "operator-secret-1"
ACME_TOKEN = "acme-secret-2"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
DIGEST = "fact-check.digest"
CLEANUP = "cleanup.temp-files"
SYNC = "hourly-sync.partner-records"


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scheduler]:
    """The scheduler with its dashboard, serving tenants ``default`` and ``acme``."""
    running = Scheduler(
        tmp_path_factory.mktemp("dashboard"),
        extra=["--tenant", "default", "--tenant", "acme"],
        environment={
            "DVP_DASHBOARD_TOKEN": OPERATOR_TOKEN,
            "DVP_DASHBOARD_TENANT_TOKENS": json.dumps({"acme": ACME_TOKEN}),
        },
    )
    try:
        until(lambda: "dashboard      http://" in running.printed(), 40, "the dashboard up")
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context (no cookies: read-only until it signs in)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        yield context.new_page()
    finally:
        context.close()


def sign_in(page: Page, scheduler: Scheduler, token: str) -> None:
    page.goto(scheduler.dashboard + "/")
    page.fill("header input[name=token]", token)
    page.click("header form.signin button")
    expect(page.locator("header .badge")).to_contain_text("signed in")


@pytest.mark.timeout(120)
def test_the_overview_shows_the_tasks_as_they_register(page: Page, scheduler: Scheduler) -> None:
    page.goto(scheduler.dashboard + "/")
    expect(page.locator("h1")).to_have_text("Overview")
    # Four example tasks on each of two tenants; the page updates itself as they register.
    expect(page.locator("#task-total")).to_have_text("8", timeout=30_000)
    expect(page.locator(".chart")).to_be_visible()
    page.goto(scheduler.dashboard + "/tasks?q=digest")
    rows = page.locator("table.tasks tbody tr")
    expect(rows).to_have_count(2)  # one per tenant
    expect(rows.first).to_contain_text("every minute UTC")
    page.goto(scheduler.dashboard + "/")
    expect(page.locator(".chart rect").first).to_be_attached(timeout=20_000)


@pytest.mark.timeout(120)
def test_a_task_page_shows_its_definition_and_upcoming_fires(
    page: Page, scheduler: Scheduler
) -> None:
    sign_in(page, scheduler, OPERATOR_TOKEN)
    page.goto(f"{scheduler.dashboard}/tasks/default/{SYNC}")
    expect(page.locator("h1")).to_have_text(SYNC)
    expect(page.locator("#schedule-words")).to_have_text(re.compile(r"^every 3 seconds"))
    expect(page.locator("table.fires tbody tr")).to_have_count(10)
    page.evaluate("window.notReloaded = true")
    # Its runs show up as they happen, without a reload: the plugin's retry decision too.
    expect(page.locator("article.execution").first).to_be_visible(timeout=30_000)
    decision = page.locator("article.execution td").filter(has_text="Rate limited - backing off")
    expect(decision.first).to_contain_text("by hourly-sync", timeout=40_000)
    assert page.evaluate("window.notReloaded") is True
    page.screenshot(path=str(SCREENSHOTS / "task.png"), full_page=True)


@pytest.mark.timeout(120)
def test_trigger_shows_the_execution_live_and_in_the_history_without_reloading(
    browser: Browser, page: Page, scheduler: Scheduler
) -> None:
    sign_in(page, scheduler, OPERATOR_TOKEN)
    live = page.context.new_page()
    live.goto(scheduler.dashboard + "/live")
    expect(live.locator("#live-state")).to_have_text("live")
    page.goto(f"{scheduler.dashboard}/tasks/default/{DIGEST}")
    page.evaluate("window.notReloaded = true")
    live.evaluate("window.notReloaded = true")
    page.check("#force")  # the minutely run may be open
    page.click("button[data-action=trigger]")
    result = page.locator("#action-result")
    expect(result).to_contain_text("triggered default/fact-check.digest: execution")
    execution_id = re.search(r"execution ([0-9a-f-]{36})", result.inner_text())
    assert execution_id is not None
    history_entry = page.locator(f'article.execution[data-execution="{execution_id[1]}"]')
    expect(history_entry).to_contain_text("manual", timeout=20_000)
    expect(history_entry).to_contain_text("succeeded", timeout=20_000)
    expect(live.locator("#feed tr").filter(has_text=f"{DIGEST}  attempt 1 (manual)")).to_have_count(
        1, timeout=20_000
    )
    assert page.evaluate("window.notReloaded") is True
    assert live.evaluate("window.notReloaded") is True


@pytest.mark.timeout(120)
def test_pause_with_a_note_shows_on_the_task_page(page: Page, scheduler: Scheduler) -> None:
    sign_in(page, scheduler, OPERATOR_TOKEN)
    page.goto(f"{scheduler.dashboard}/tasks/acme/{CLEANUP}")
    page.fill("#note", "disk maintenance")
    page.click("button[data-action=pause]")
    expect(page.locator("#action-result")).to_have_text(f"paused acme/{CLEANUP}")
    expect(page.locator("#task-status")).to_contain_text("paused", timeout=15_000)
    expect(page.locator("#task-note")).to_contain_text("disk maintenance")
    expect(page.locator("#task-note")).to_contain_text("via the dashboard (operator)")
    page.click("button[data-action=resume]")
    expect(page.locator("#task-status")).not_to_contain_text("paused", timeout=15_000)


@pytest.mark.timeout(120)
def test_without_a_token_it_is_read_only_and_a_forged_post_is_refused(
    browser: Browser, page: Page, scheduler: Scheduler
) -> None:
    url = f"{scheduler.dashboard}/tasks/default/{CLEANUP}"
    page.goto(url)
    expect(page.locator("h1")).to_have_text(CLEANUP)
    expect(page.locator("button[data-action]")).to_have_count(0)
    action = f"{scheduler.dashboard}/actions/tasks/default/{CLEANUP}/trigger"
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content")
    same_site = {"Origin": scheduler.dashboard, "X-CSRF-Token": csrf or ""}
    refused = page.request.post(action, headers=same_site, data="{}")
    assert refused.status == 403
    assert "read-only" in refused.json()["message"]

    # Signed in, a request from another site is refused, and so is one without the token.
    sign_in(page, scheduler, OPERATOR_TOKEN)
    page.goto(url)
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content") or ""
    from_elsewhere = page.request.post(
        action, headers={"Origin": "http://evil.example", "X-CSRF-Token": csrf}, data="{}"
    )
    assert from_elsewhere.status == 403
    assert "Origin" in from_elsewhere.json()["message"]
    without_csrf = page.request.post(action, headers={"Origin": scheduler.dashboard}, data="{}")
    assert without_csrf.status == 403
    assert "CSRF" in without_csrf.json()["message"]
    history = scheduler.json("history", CLEANUP, "--tenant", "default")
    assert not [e for e in history if e["trigger"] == "manual"]


@pytest.mark.timeout(120)
def test_a_tenant_token_sees_and_acts_on_its_tenant_only(page: Page, scheduler: Scheduler) -> None:
    sign_in(page, scheduler, ACME_TOKEN)
    expect(page.locator("header .badge")).to_have_text("signed in: tenant acme")
    page.goto(scheduler.dashboard + "/tasks")
    tenants = page.locator("table.tasks tbody tr td:nth-child(2)")
    expect(tenants).to_have_count(4)
    assert set(tenants.all_inner_texts()) == {"acme"}
    other = page.goto(f"{scheduler.dashboard}/tasks/default/{CLEANUP}")
    assert other is not None
    assert other.status == 404
    page.goto(f"{scheduler.dashboard}/tasks/acme/{CLEANUP}")
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content") or ""
    refused = page.request.post(
        f"{scheduler.dashboard}/actions/tasks/default/{CLEANUP}/pause",
        headers={"Origin": scheduler.dashboard, "X-CSRF-Token": csrf},
        data="{}",
    )
    assert refused.status == 403
    assert "tenant acme only" in refused.json()["message"]
    page.goto(scheduler.dashboard + "/live")
    expect(page.locator("#feed tr").first).to_be_attached(timeout=20_000)
    shown = page.locator("#feed tr").evaluate_all("rows => rows.map(r => r.dataset.tenant)")
    assert set(shown) == {"acme"}


@pytest.mark.timeout(120)
def test_the_failures_page_lists_failed_executions_and_reruns_one(
    page: Page, scheduler: Scheduler
) -> None:
    sign_in(page, scheduler, OPERATOR_TOKEN)
    until(lambda: scheduler.json("failures", "--tenant", "default"), 60, "a failed execution")
    page.goto(scheduler.dashboard + "/failures?tenant=default")
    rows = page.locator("table.failures tbody tr")
    expect(rows.first).to_contain_text("API key for tenant")
    page.screenshot(path=str(SCREENSHOTS / "failures.png"), full_page=True)
    page.check("#force")
    rows.first.locator("input.pick").check()
    page.click("#rerun-selected")
    expect(page.locator("#action-result")).to_contain_text("re-ran", timeout=15_000)
    # The overview, once the tasks have run a while: the README's picture of it.
    page.goto(scheduler.dashboard + "/")
    expect(page.locator(".two table").first).to_contain_text(SYNC)  # the most failing
    page.screenshot(path=str(SCREENSHOTS / "overview.png"), full_page=True)
