"""The web console in a real headless Chromium (Debian's, driven by Playwright)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ferrymq.testing import ThreadedBroker
from tests.admin.conftest import Http

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def page() -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.skip("no chromium on this machine (apt-get install chromium; .ci/run does)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.set_default_timeout(10_000)
            pg = context.new_page()
            errors: list[str] = []
            pg.on("pageerror", lambda exc: errors.append(str(exc)))
            yield pg
            assert errors == [], errors
        finally:
            browser.close()


def test_console_charts_update_and_a_message_sent_from_it_arrives(
    page: Any, broker: ThreadedBroker, http: Http, clients: Any
) -> None:
    consumer = clients()
    consumer.conn.subscribe("/queue/console.in", id="s", ack="auto")
    producer = clients()
    for i in range(30):
        producer.conn.send(f"/queue/orders.{'eu' if i % 3 else 'us'}", f"order {i}")
    producer.sync()
    base = f"http://127.0.0.1:{broker.http_port}"

    page.goto(f"{base}/#/")
    page.wait_for_selector("#o-connections:not(:empty)")
    points = page.locator(".chart").first
    first = int(points.get_attribute("data-points") or 0)
    # The chart gains a point with each one-second sample the page polls.
    page.wait_for_function(
        f"document.querySelector('.chart').dataset.points > {first}", timeout=10_000
    )
    assert page.locator("#o-queues").inner_text() != "\u2013"  # the placeholder dash
    assert page.locator("#role").inner_text() == "master"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "console-overview.png"), full_page=True)

    page.goto(f"{base}/#/destinations")
    page.wait_for_selector("tr[data-queue='orders.eu']")
    page.fill("#filter", "orders.us")
    page.wait_for_function("document.querySelectorAll('tr[data-queue]').length === 1")
    page.click("th[data-key='depth']")  # sorting does not break the table
    assert page.locator("tr[data-queue='orders.us'] td").nth(1).inner_text() == "10"

    page.goto(f"{base}/#/queue/console.in")
    page.fill("#send-body", "hello from the console")
    page.fill("#send-headers", "origin: browser")
    page.click("#send-button")
    page.wait_for_selector("#send-result:has-text('sent')")
    msg = consumer.get()
    assert msg.body == "hello from the console"
    assert msg.headers["origin"] == "browser"

    page.goto(f"{base}/#/queue/orders.eu")
    page.wait_for_selector("#browse-rows tr")
    assert page.locator("#browse-rows tr").count() == 20
    page.locator("#browse-rows input.pick").first.check()
    page.fill("#move-target", "orders.retry")
    page.click("#move-button")
    page.wait_for_selector("#toast:has-text('moved 1 messages')")
    assert http.ok("GET", "/api/queues/orders.retry")["depth"] == 1
    page.screenshot(path=str(ARTIFACTS / "console-queue.png"), full_page=True)

    page.goto(f"{base}/#/connections")
    page.wait_for_selector("td:has-text('stomp/1.2')")
