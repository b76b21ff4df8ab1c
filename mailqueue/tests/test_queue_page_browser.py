"""Headless Chromium on the queue list: new mail appears without a reload, "select all on this page"
ticks the page, and Delete or an action on all matching asks first, naming how many messages."""

from __future__ import annotations

import pytest

from mailqueue import index
from mailqueue.models import QueueAction
from testing.browser import SCREENSHOTS, log_in
from testing.csp import watch_violations

pytestmark = pytest.mark.browser

DOMAIN = "browser-fresh.example"


def test_the_list_follows_the_spool_and_every_mass_action_names_its_count(page, live_server, worker, submit, operator):
    server = submit.server
    submit.send(3, recipients=(f"r@{DOMAIN}",), subject="=?utf-8?q?fr=C3=BCh?=")
    index.refresh(server)
    violations = watch_violations(page)
    log_in(page, live_server, operator)
    page.goto(f"{live_server.url}/servers/{server.name}/queue/?domain={DOMAIN}")
    assert page.inner_text("#match-count") == "3"
    assert "früh 0" in page.inner_text(".queue-table")

    (arrived,) = submit.send(recipients=(f"late@{DOMAIN}",))
    page.wait_for_selector(f".queue-table >> text={arrived}", timeout=5000)  # no reload, no button
    assert page.inner_text("#match-count") == "4"

    page.check("#select-page")
    assert page.locator("#queue-actions input[name=id]:checked").count() == 4
    asked: list[str] = []
    page.on("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.click("#queue-actions button[value=delete]")
    page.uncheck("#select-page")
    assert page.locator("#queue-actions input[name=id]:checked").count() == 0
    page.check("#scope-matching")
    page.click("#queue-actions button[value=release]")

    assert asked == ["Delete the 4 ticked messages?", "Release all 4 matching messages?"]
    assert not QueueAction.objects.exclude(verb="refresh").exists(), (
        "both were dismissed: nothing was asked of sendmail"
    )
    assert violations == []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "queue-list-follows.png"), full_page=True)
