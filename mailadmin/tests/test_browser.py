"""Headless Chromium (Debian's /usr/bin/chromium) against the real console and daemon."""

import re

import pytest

from testing.browser import log_in

pytestmark = pytest.mark.browser


def test_an_administrator_logs_in_and_sees_the_live_daemon(page, live_server, mta_server, administrator, tmp_path):
    from mailadmin.mta import snapshot

    snapshot.take(mta_server)  # what the host's agent writes every few seconds
    log_in(page, live_server, administrator)
    page.goto(f"{live_server.url}/servers/{mta_server.name}/")
    body = page.inner_text("body")
    assert re.search(rf"220 {re.escape(mta_server.hostname)} ESMTP Sendmail 8\.\d+", body)
    assert "running" in body.lower()
    assert "8.17" in body or "8.18" in body
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)


def test_the_dashboard_says_plainly_when_the_daemon_is_down(page, live_server, mta_server, viewer):
    from mailadmin.mta import daemon, snapshot
    from mailadmin.mta.gateway import Mta

    daemon.stop(mta_server, Mta(mta_server))
    snapshot.take(mta_server)
    try:
        log_in(page, live_server, viewer)
        page.goto(f"{live_server.url}/servers/{mta_server.name}/")
        assert "not running" in page.inner_text("body").lower()
        assert page.locator("button", has_text=re.compile("Start", re.I)).count() == 0
    finally:
        daemon.start(mta_server, Mta(mta_server))
