"""Headless Chromium: a viewer searches the traces and opens a message's journey over two hosts."""

from datetime import UTC, datetime

import pytest

from mailadmin.models import MailServer
from testing.browser import SCREENSHOTS, log_in
from testing.csp import watch_violations
from testing.users import make_user
from tracking.parser import parse_line
from tracking.traces import store_lines

pytestmark = pytest.mark.browser
NOW = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)
RELAY1 = [
    "Dec  4 10:00:00 relay1 sm-mta[1]: 6B4A00aa000001: from=<alice@client.example>, size=900, class=0, nrcpts=2, "
    "msgid=<journey@client.example>, proto=ESMTP, daemon=MTA, relay=c [127.0.0.2]",
    "Dec  4 10:00:05 relay1 sm-mta[2]: 6B4A00aa000001: to=<bob@partner.example>,<carol@partner.example>, "
    "delay=00:00:05, mailer=relay, pri=30900, relay=relay2.example [127.0.0.1], dsn=2.0.0, "
    "stat=Sent (6B4A05bb000002 accepted)",
]
RELAY2 = [
    "Dec  4 10:00:05 relay2 sm-mta[9]: 6B4A05bb000002: from=<alice@client.example>, size=1100, class=0, "
    "nrcpts=2, msgid=<journey@client.example>, proto=ESMTP, daemon=MTA, relay=relay1.example [127.0.0.1]",
    "Dec  4 10:05:00 relay2 sm-mta[10]: 6B4A05bb000002: to=<bob@partner.example>,<carol@partner.example>, "
    "delay=00:05:00, xdelay=00:00:01, mailer=esmtp, pri=121100, relay=[127.0.0.3], dsn=4.4.1, "
    "stat=Deferred: Connection refused by [127.0.0.3]",
]


def server_row(name: str) -> MailServer:
    return MailServer.objects.create(
        name=name, hostname=f"{name}.example", conf_dir="/x", mc_path="/x/m", cf_path="/x/c", access_path="/x/a",
        cert_dir="/x/t", queue_dir="/x/q", pid_file="/x/p", syslog_tag="sm-mta",
    )  # fmt: skip


def test_a_viewer_finds_a_message_by_domain_and_follows_it_from_relay1_to_relay2(page, live_server):
    store_lines(server_row("relay1"), [parse_line(raw) for raw in RELAY1], now=NOW, zone=UTC)
    store_lines(server_row("relay2"), [parse_line(raw) for raw in RELAY2], now=NOW, zone=UTC)
    violations = watch_violations(page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    log_in(page, live_server, make_user("reader", "viewer"))
    page.click("nav a:has-text('Tracking')")
    page.fill("input[name=recipient]", "@partner.example")
    page.click("form button:has-text('Search')")
    rows = page.locator("table.trace-table tbody tr")
    assert rows.count() == 2
    assert "deferred" in rows.nth(0).inner_text() and "delivered" in rows.nth(1).inner_text()
    page.screenshot(path=str(SCREENSHOTS / "tracking-search.png"), full_page=True)
    rows.nth(1).locator("a").first.click()
    hops = page.locator("section.trace-hop")
    assert hops.count() == 2
    assert "relay1" in hops.nth(0).inner_text() and "Connection refused by [127.0.0.3]" in hops.nth(1).inner_text()
    page.screenshot(path=str(SCREENSHOTS / "tracking-journey.png"), full_page=True)
    assert violations == []
