"""Headless Chromium: an operator reviews quarantined mail and releases it, on the real worker and spool."""

import pytest

from mailadmin.mta.gateway import Mta
from mailqueue import index, tasks
from mailqueue.models import QueueAction
from testing.browser import SCREENSHOTS, log_in

pytestmark = pytest.mark.browser


def quarantine(server, ids, reason):
    action = QueueAction.objects.create(server=server, verb=QueueAction.Verb.QUARANTINE, queue_ids=ids, reason=reason)
    assert tasks.run_queue_action(action.pk) == "done"


def test_an_operator_filters_by_reason_selects_all_matches_and_releases_them(
    page, live_server, worker, submit, operator, tmp_path
):
    server = submit.server
    review = submit.send(3, recipients=("r@browser.example",), subject="review me")
    keep = submit.send(1, recipients=("k@browser.example",), subject="keep me")
    quarantine(server, review, "browser review batch")
    quarantine(server, keep, "browser keep")
    index.refresh(server)

    log_in(page, live_server, operator)
    page.goto(f"{live_server.url}/servers/{server.name}/queue/")
    page.fill("#id_reason", "browser review")
    page.select_option("#id_state", "quarantined")
    page.click("#queue-filter button[type=submit]")
    assert page.inner_text("#match-count") == "3"
    page.screenshot(path=str(tmp_path / "queue-filtered.png"), full_page=True)

    page.check("#scope-matching")
    confirmations = []
    page.on("dialog", lambda dialog: (confirmations.append(dialog.message), dialog.accept()))
    page.click("#queue-actions button[value=release]")
    page.wait_for_selector("#action-status:has-text('done')", timeout=60000)
    assert "3 released" in page.inner_text("#outcome-counts")
    assert confirmations == ["Release all 3 matching messages?"]
    page.screenshot(path=str(tmp_path / "queue-released.png"), full_page=True)

    assert [submit.kind(queue_id) for queue_id in review] == ["qf"] * 3
    assert submit.kind(keep[0]) == "hf"
    listing = Mta(server).sendmail("-bp", action="list").stdout_text
    assert all(queue_id in listing for queue_id in review)

    page.goto(f"{live_server.url}/servers/{server.name}/queue/?reason=browser&state=quarantined")
    assert page.inner_text("#match-count") == "1"
    assert keep[0] in page.inner_text(".queue-table")


def test_an_operator_opens_a_quarantined_message_and_the_agent_fills_in_its_headers_and_body(
    page, live_server, worker, submit, operator
):
    server = submit.server
    (queue_id,) = submit.send(
        subject="held for review",
        headers="X-Review: <b>look</b>\r\n",
        body="First line of the body.\r\n<script>alert(1)</script>\r\n",
    )
    quarantine(server, [queue_id], "browser preview")
    index.refresh(server)

    log_in(page, live_server, operator)
    page.goto(f"{live_server.url}/servers/{server.name}/queue/")
    page.click(f"text={queue_id}")
    assert "browser preview" in page.inner_text("#indexed-envelope") + page.inner_text(".alert-warning")
    page.wait_for_selector("#body-preview", timeout=60000)

    assert "First line of the body." in page.inner_text("#body-preview")
    assert "<script>alert(1)</script>" in page.inner_text("#body-preview")  # shown as text, not run
    assert "X-Review: <b>look</b>" in page.inner_text("#spool-headers")
    assert page.locator("#message-actions button[value=release]").is_visible()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "queue-message.png"), full_page=True)
