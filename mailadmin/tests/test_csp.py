"""Every main page under the Content Security Policy, in Debian's headless Chromium against the real
server, daemon, worker and spool: the header allows no inline script, inline style or eval, the
browser reports no violation, and what runs on scripts still works under it (htmx loads fragments
and swaps progress polls, progress bars fill, confirmations ask, alerts close)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.urls import NoReverseMatch, reverse

from mailadmin import config
from mailadmin.models import ServiceAction
from mailadmin.mta import snapshot
from mailadmin.work import WorkStatus
from mailqueue import index, tasks
from mailqueue.models import QueueAction
from testing.browser import log_in
from testing.csp import directives, unsafe_sources, watch_violations
from testing.queue import Submitter

ROOT = Path(__file__).resolve().parents[2]
# What the policy would block in a template: style attributes, inline handlers, javascript: URLs,
# htmx's own eval paths (hx-on, js: values, [filter] triggers), inline <script> and <style>.
INLINE = re.compile(
    r"""\sstyle=|\son[a-z]+\s*=|hx-on|javascript:|["']js:|hx-trigger="[^"]*\[|<script(?![^>]*\ssrc=)|<style""",
    re.IGNORECASE,
)
TEMPLATE_COMMENT = re.compile(r"{#.*?#}|{% comment %}.*?{% endcomment %}", re.DOTALL)


def test_no_template_has_inline_script_style_handlers_or_eval():
    """Every template, including those no browser test opens (500.html, say)."""
    found = []
    for path in sorted((ROOT / "templates").rglob("*.html")):
        text = TEMPLATE_COMMENT.sub("", path.read_text())
        found += [f"{path.relative_to(ROOT)}: {match.group(0)}" for match in INLINE.finditer(text)]
    assert found == []


@pytest.fixture
def console(mta_server):
    """The session's instance with its configuration imported into rows and a fresh snapshot, as
    `make run` leaves the embedded one."""
    config.import_mc(mta_server, Path(mta_server.mc_path).read_text())
    config.import_access(mta_server, Path(mta_server.access_path).read_text())
    snapshot.take(mta_server)  # what the host's agent writes every few seconds
    return mta_server


def assert_strict_policy(response, url: str) -> None:
    header = response.headers.get("content-security-policy", "")
    assert header, f"{url} has no Content-Security-Policy"
    assert unsafe_sources(header) == [], url
    policy = directives(header)
    assert policy["script-src"] == ["'self'"] and policy["style-src"] == ["'self'"], header


def visit(page, url: str, status: int = 200):
    response = page.goto(url)
    assert response.status == status, url
    assert_strict_policy(response, url)
    page.wait_for_load_state("networkidle")  # what htmx loads after the page, and a poll or two
    return response


def optional_pages(*names: str) -> list[str]:
    """Pages other parts of the console may or may not have yet (people, tracking)."""
    found = []
    for name in names:
        try:
            found.append(reverse(name))
        except NoReverseMatch:
            pass
    return found


@pytest.mark.browser
def test_every_main_page_is_served_under_the_policy_and_breaks_none_of_it(
    page, live_server, worker, console, administrator
):
    server, base = console, live_server.url
    violations = watch_violations(page)
    visit(page, f"{base}/login/")
    log_in(page, live_server, administrator)
    (queue_id,) = Submitter(server).send(subject="read under the policy")
    try:
        index.refresh(server)
        pages = [
            f"/servers/{server.name}/",
            f"/servers/{server.name}/config/",
            f"/servers/{server.name}/config/installed/",
            f"/servers/{server.name}/access/",
            f"/servers/{server.name}/maps/",
            f"/servers/{server.name}/listeners/",
            f"/servers/{server.name}/address-test/",
            f"/servers/{server.name}/tls/",
            f"/servers/{server.name}/tls/upload/",
            f"/servers/{server.name}/tls/probe/",
            f"/servers/{server.name}/queue/",
            f"/servers/{server.name}/queue/summary/",
            f"/servers/{server.name}/queue/alerts/settings/",
            f"/servers/{server.name}/queue/messages/{queue_id}/",
            "/audit/",
            "/servers/",
            *optional_pages("account", "totp_enrol", "user_list", "tracking:search"),
        ]
        for path in pages:
            visit(page, base + path)
        # The dashboard's panels are htmx fragments (hx-trigger="load"): under the policy they still arrive.
        visit(page, f"{base}/servers/{server.name}/")
        page.wait_for_selector("#queue-panel", timeout=30000)
        assert page.evaluate("htmx.config.allowEval") is False
        # htmx injects no <style> for its indicators (includeIndicatorStyles: false), nor does anything else.
        assert page.evaluate("document.querySelectorAll('style').length") == 0
    finally:
        # The product's own delete, run as the host's agent runs it: the spool is left as it was.
        delete = QueueAction.objects.create(server=server, verb=QueueAction.Verb.DELETE, queue_ids=[queue_id])
        assert tasks.run_queue_action(delete.pk) == "done"
    visit(page, f"{base}/queue/actions/{delete.pk}/")
    assert page.locator("#action-progress .progress-bar").evaluate("bar => bar.style.width") == "100%"
    visit(page, f"{base}/no-such-page/", status=404)

    assert violations == []


@pytest.mark.browser
def test_htmx_progress_polls_confirmations_and_alerts_work_under_the_policy(
    page, live_server, worker, console, administrator
):
    server, base = console, live_server.url
    violations = watch_violations(page)
    log_in(page, live_server, administrator)

    # A progress poll swaps its card in every second; the bar takes its width from data-progress.
    running = ServiceAction.objects.create(
        server=server, verb=ServiceAction.Verb.RELOAD, status=WorkStatus.RUNNING, progress=30
    )
    visit(page, f"{base}/actions/service/{running.pk}/")
    bar = "#work-progress .progress-bar"
    page.wait_for_function(f"document.querySelector('{bar}').style.width === '30%'")
    ServiceAction.objects.filter(pk=running.pk).update(progress=80, progress_note="swapped in by htmx")
    page.wait_for_selector("#work-progress:has-text('swapped in by htmx')", timeout=15000)
    page.wait_for_function(f"document.querySelector('{bar}').style.width === '80%'")
    # Measured at once: a swapped-in bar does not grow again from nothing every second.
    filled = (
        page.locator(bar).bounding_box()["width"] / page.locator("#work-progress .progress").bounding_box()["width"]
    )
    assert 0.75 < filled < 0.85
    ServiceAction.objects.filter(pk=running.pk).update(status=WorkStatus.DONE, progress=100)

    # A form with data-confirm asks first (mailadmin.js); dismissed, nothing is sent.
    visit(page, f"{base}/servers/{server.name}/")
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.locator("form[data-confirm] button", has_text=re.compile("^Stop", re.I)).click()
    page.wait_for_timeout(500)
    assert asked and asked[0].startswith("Stop the sendmail daemon")
    assert page.url == f"{base}/servers/{server.name}/"
    assert not ServiceAction.objects.filter(verb=ServiceAction.Verb.STOP).exists()

    # A dismissible message closes (Bootstrap's JavaScript).
    visit(page, f"{base}/servers/{server.name}/config/")
    row = page.locator("form#opt-maxmessagesize")
    row.locator("input[name=value]").fill("5000000")
    row.locator("button[type=submit]", has_text="Set").click()
    page.wait_for_load_state()
    alert = page.locator(".messages .alert", has_text="MaxMessageSize set to 5000000")
    alert.locator(".btn-close").click()
    alert.wait_for(state="detached", timeout=5000)

    # A build: the page polls the worker's row until the diff is swapped in.
    page.click("button:has-text('Build sendmail.cf')")
    page.wait_for_url(re.compile(r"/builds/\d+/$"))
    page.locator(".diff-add", has_text="O MaxMessageSize=5000000").wait_for(timeout=60000)

    assert violations == []
