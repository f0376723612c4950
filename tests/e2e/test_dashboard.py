"""The dashboard in a real browser (Debian's Chromium driven by Playwright) against a real
server holding the demo fleet: sign-in, the fleet, an agent's curve and history, the audit
proof, filters, the live refresh, sign-out, and the strict CSP. The fleet and agent views are
photographed into docs/images/ for the README."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from tests.conftest import ROOT, Server, free_port
from tests.e2e.support import ok

CHROMIUM = "/usr/bin/chromium"
IMAGES = ROOT / "docs" / "images"
CARD = ROOT / "tests" / "fixtures" / "a2a" / "sample-card-v1.0.json"
TENANT = "dashboard-demo"
AGENTS = 6
REGISTERED = "agent1_support_triage"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server on a DATA_DIR holding the demo fleet (in its own tenant), one agent registered."""
    data_dir = tmp_path_factory.mktemp("dashboard") / "data"
    env = {
        "APP_ENV": "test",
        "DATA_DIR": str(data_dir),
        "ELASTICSEARCH_URL": "",
        "REACHABILITY_CHECK_S": "0",
        # an agent's metrics endpoint on loopback, and polls that give up quickly
        "OUTBOUND_ALLOW_NETS": "127.0.0.0/8",
        "COLLECT_RETRIES": "1",
        "COLLECT_BACKOFF_S": "0.05",
        # the audit log anchored on the in-process chain within a second or so
        "ANCHOR_CHECK_S": "0.5",
        "ANCHOR_EVERY_SECONDS": "1",
    }
    loaded = subprocess.run(
        [
            sys.executable,
            "-m",
            "interfaces.cli.main",
            "demo",
            "--tenant",
            TENANT,
            "--agents",
            str(AGENTS),
            "--weeks",
            "3",
        ],
        cwd=ROOT,
        env={**{k: v for k, v in os.environ.items() if k != "DATABASE_URL"}, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert loaded.returncode == 0, loaded.stderr
    server = Server(env, data_dir.parent / "server.log")
    card = json.loads(CARD.read_text())
    with httpx.Client(base_url=server.url, headers=server.auth_headers(TENANT), timeout=30) as api:
        ok(
            api.post("/api/v1/agents", json={"agent_id": REGISTERED, "card": card, "visibility": "private"}),
            201,
        )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not shutil.which(CHROMIUM):
        message = f"{CHROMIUM} is missing: ops/test installs Debian's chromium"
        if os.environ.get("A2A_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


class Problems:
    """Every script error and console error a page reports."""

    def __init__(self, page: Page) -> None:
        self.seen: list[str] = []
        page.on("pageerror", lambda error: self.seen.append(f"page error: {error}"))
        page.on("console", self._console)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.seen.append(f"console error: {message.text}")


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US", timezone_id="UTC")
    opened = context.new_page()
    opened.set_default_timeout(30_000)
    yield opened
    context.close()


def sign_in(page: Page, server: Server, client: tuple[str, str]) -> None:
    page.goto(f"{server.url}/dashboard")
    page.get_by_label("Client ID").fill(client[0])
    page.get_by_label("Client secret").fill(client[1])
    page.get_by_role("button", name="Sign in").click()


def fleet_row(page: Page, agent_id: str) -> Any:
    return page.locator("table.agents tbody tr").filter(
        has=page.get_by_role("link", name=agent_id, exact=True)
    )


def test_sign_in_shows_the_fleet_and_an_agents_curve_and_history_without_script_errors(
    demo: Server, page: Page
) -> None:
    problems = Problems(page)
    sign_in(page, demo, demo.client(TENANT))

    rows = page.locator("table.agents tbody tr")
    expect(rows).to_have_count(AGENTS)
    first = fleet_row(page, "agent0_data_product")
    expect(first.locator("progress")).to_have_count(1)
    expect(first).to_contain_text("%")
    expect(page.get_by_text("Agents with goals")).to_be_visible()
    expect(page.locator("figure svg.chart")).to_have_count(2)  # histogram and milestones per week
    IMAGES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(IMAGES / "dashboard-fleet.png"), full_page=True)

    page.get_by_role("link", name=REGISTERED, exact=True).click()
    expect(page).to_have_url(f"{demo.url}/dashboard#/agents/{REGISTERED}")
    expect(page.get_by_role("heading", level=1)).to_have_text(REGISTERED)
    chart = page.locator("figure.curve svg.chart")
    expect(chart).to_be_visible()
    expect(chart.locator("path.line")).to_have_count(3)  # overall and two objectives
    expect(chart.locator("circle.milestone").first).to_be_attached()
    timeline = page.locator("ol.timeline")
    expect(timeline.locator("li.entry-milestone_reached").first).to_contain_text("Milestone:")
    expect(timeline.locator("li.entry-goals_set")).to_contain_text("Goals set")
    expect(timeline.locator("li").first).to_contain_text("demo-loader")
    expect(page.locator("table.kpis tbody tr")).to_have_count(2)
    expect(page.locator(".registry-card")).to_contain_text("GeoSpatial Route Planner Agent")
    expect(page.get_by_text("Auto-update is off")).to_be_visible()
    # the curve, KPIs, auto-update, registry and the start of the history
    page.screenshot(
        path=str(IMAGES / "dashboard-agent.png"),
        full_page=True,
        clip={"x": 0, "y": 0, "width": 1280, "height": 1900},
    )

    page.get_by_label("Show", exact=True).select_option(label="milestones")
    entries = page.locator("ol.timeline li")
    expect(entries).to_have_count(page.locator("ol.timeline li.entry-milestone_reached").count())
    expect(entries.first).to_contain_text("Milestone:")
    assert entries.count() == chart.locator("circle.milestone").count()

    assert problems.seen == []


def test_an_events_audit_proof_has_its_own_page(demo: Server, page: Page) -> None:
    problems = Problems(page)
    sign_in(page, demo, demo.client(TENANT))
    page.get_by_role("link", name="agent0_data_product", exact=True).click()
    milestone = page.locator("li.entry-milestone_reached").first
    milestone.get_by_role("link", name="audit proof").click()
    expect(page).to_have_url(re.compile(r"/dashboard#/proof/\d+\?agent=agent0_data_product$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("Audit proof of event")
    expect(page.locator("ol.hashes li").first).to_have_text(re.compile(r"^[0-9a-f]{64}$"))
    position = int(re.search(r"/proof/(\d+)", page.url).group(1))  # type: ignore[union-attr]
    with httpx.Client(base_url=demo.url, headers=demo.auth_headers(TENANT), timeout=30) as api:
        deadline = time.monotonic() + 60
        while not (proof := ok(api.get(f"/api/v1/audit/events/{position}/proof")))["anchored"]:
            assert time.monotonic() < deadline, "the event was never anchored"
            time.sleep(0.2)
    page.reload()  # the view's URL stands on its own, and now shows the anchor
    expect(page.get_by_role("heading", level=1)).to_contain_text("Audit proof of event")
    expect(page.get_by_text(proof["tx_hash"])).to_be_visible()
    page.get_by_role("link", name="agent0_data_product").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("agent0_data_product")
    assert problems.seen == []


def test_filters_by_status_and_text_and_keep_the_filter_in_the_url(demo: Server, page: Page) -> None:
    sign_in(page, demo, demo.client(TENANT))
    rows = page.locator("table.agents tbody tr")
    expect(rows).to_have_count(AGENTS)
    with httpx.Client(base_url=demo.url, headers=demo.auth_headers(TENANT), timeout=30) as api:
        paused = ok(api.get("/api/v1/goals/", params={"status": "paused"}))["total"]
    page.get_by_label("Status", exact=True).select_option("paused")
    expect(rows).to_have_count(paused)
    for status in rows.locator(".status").all_inner_texts():
        assert status == "paused"
    assert "status=paused" in page.url

    page.get_by_label("Status", exact=True).select_option("")
    page.get_by_label("Search", exact=True).fill("support")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Route every support ticket")
    page.get_by_label("Search", exact=True).fill("no agent is called this")
    expect(page.get_by_text("No agent matches this filter")).to_be_visible()


def test_the_fleet_refreshes_by_itself(demo: Server, page: Page) -> None:
    sign_in(page, demo, demo.client(TENANT))
    row = fleet_row(page, "agent4_incident_scribe")
    expect(row).to_be_visible()
    with httpx.Client(base_url=demo.url, headers=demo.auth_headers(TENANT), timeout=30) as api:
        ok(
            api.put(
                "/api/v1/goals/agents/agent4_incident_scribe/progress",
                json={"objective_progress": {"o1": 100, "o2": 100}},
            )
        )
    # no reload, no click: the page polls
    expect(row).to_contain_text("100 %", timeout=40_000)


def test_a_failing_collection_is_flagged_in_the_fleet_and_explained_in_the_agent_view(
    demo: Server, page: Page
) -> None:
    problems = Problems(page)
    agent_id = "agent3_invoice_matcher"
    nobody_listens = f"http://127.0.0.1:{free_port()}/metrics"
    with httpx.Client(base_url=demo.url, headers=demo.auth_headers(TENANT), timeout=30) as api:
        config = {
            "interval_s": 60,
            "metrics_url": nobody_listens,
            "kpi_metrics": {"o1": {"metric": "auto_match_ratio"}},
        }
        ok(api.post(f"/api/v1/goals/agents/{agent_id}/auto-update", json=config))
    sign_in(page, demo, demo.client(TENANT))
    # the first poll fails at once; the page shows it on a refresh of its own
    expect(fleet_row(page, agent_id).locator(".flag-failing")).to_be_visible(timeout=40_000)

    page.get_by_role("link", name=agent_id, exact=True).click()
    auto_update = page.get_by_role("region", name="Auto-update")
    expect(auto_update).to_contain_text(nobody_listens)
    expect(auto_update.locator(".collection-failing")).to_have_text("failing")
    expect(auto_update.get_by_role("alert")).to_contain_text("Last collection failed")
    expect(page.locator("li.entry-metrics_collection_failed")).to_contain_text("Metrics collection failed")
    assert problems.seen == []


def test_a_wrong_secret_is_refused_and_sign_out_forgets_the_token(demo: Server, page: Page) -> None:
    client_id, secret = demo.client(TENANT)
    sign_in(page, demo, (client_id, "not the secret"))
    expect(page.get_by_role("alert")).to_contain_text("Unknown client ID or wrong secret")

    sign_in(page, demo, (client_id, secret))
    expect(page.locator("table.agents")).to_be_visible()
    stored: dict[str, Any] = page.evaluate("() => ({session: {...sessionStorage}, local: {...localStorage}})")
    assert list(stored["session"].values()) != [] and stored["local"] == {}
    assert page.context.cookies() == []

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    assert page.evaluate("() => sessionStorage.length") == 0
    page.goto(f"{demo.url}/dashboard#/agents/agent0_data_product")
    expect(page.get_by_label("Client ID")).to_be_visible()
    expect(page.locator("#view")).to_be_hidden()


def test_is_usable_with_the_keyboard_and_on_a_phone(demo: Server, page: Page) -> None:
    problems = Problems(page)
    client_id, secret = demo.client(TENANT)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{demo.url}/dashboard")
    page.get_by_label("Client ID").fill(client_id)
    page.keyboard.press("Tab")
    page.keyboard.type(secret)
    page.keyboard.press("Enter")
    link = page.get_by_role("link", name="agent2_code_review", exact=True)
    link.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("agent2_code_review")
    expect(page.get_by_role("heading", level=1)).to_be_focused()
    expect(page.locator("figure.curve svg.chart")).to_be_visible()
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    assert problems.seen == []


def test_an_unknown_agent_says_what_to_do(demo: Server, page: Page) -> None:
    sign_in(page, demo, demo.client(TENANT))
    expect(page.locator("table.agents")).to_be_visible()
    page.goto(f"{demo.url}/dashboard#/agents/agent99_nobody")
    expect(page.get_by_role("alert")).to_contain_text("was not found in this tenant")
    expect(page.get_by_role("link", name="Back to the fleet")).to_be_visible()


def test_a_tenant_without_goals_is_told_how_to_get_some(demo: Server, page: Page, tenant: str) -> None:
    problems = Problems(page)
    sign_in(page, demo, demo.client(tenant))
    expect(page.get_by_text("No agent of this tenant has goals yet")).to_be_visible()
    expect(page.locator("table.agents")).to_have_count(0)  # and none of the demo tenant's agents
    assert problems.seen == []


def test_the_page_has_a_strict_csp_of_its_own_and_the_api_keeps_its_own(demo: Server) -> None:
    page_csp = httpx.get(f"{demo.url}/dashboard").headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in page_csp.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["default-src"] == "'none'"
    assert "unsafe" not in page_csp
    asset = httpx.get(f"{demo.url}/dashboard/assets/js/main.js")
    assert asset.status_code == 200
    assert asset.headers["content-type"].startswith("text/javascript")
    api = httpx.get(f"{demo.url}/api/v1/goals/health").headers["content-security-policy"]
    assert api == "default-src 'none'; frame-ancestors 'none'"
