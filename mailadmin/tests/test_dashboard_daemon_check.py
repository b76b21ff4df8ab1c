"""The dashboard's daemon check is the agent's snapshot, shared by every viewer: pages read its row and
never open an SMTP session, so they neither fill the mail log nor count against the daemon's
ClientRate and ClientConn limits for 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailadmin.models import HostSnapshot
from mailadmin.mta import snapshot
from testing.processes import wait_for
from testing.syslog import sendmail_log

NULL_SESSION = "did not issue MAIL/EXPN/VRFY/ETRN"
LOADS = 20


def null_sessions(server, log: Path) -> int:
    text = log.read_text(errors="replace") if log.exists() else ""
    return sum(1 for line in text.splitlines() if NULL_SESSION in line and server.syslog_tag in line)


def test_loading_the_dashboard_and_its_daemon_card_many_times_adds_no_smtp_session_to_the_log(
    mta_server, client, viewer, tmp_path
):
    log = tmp_path / "mail.log"
    with sendmail_log(log) as collecting:
        if not collecting:
            pytest.skip("a syslog daemon (or another test) holds /dev/log: the instance's lines go elsewhere")
        check_the_pages(mta_server, client, viewer, log)


def check_the_pages(mta_server, client, viewer, log: Path) -> None:
    before_snapshot = null_sessions(mta_server, log)
    snapshot.take(mta_server)  # what the agent does every AGENT_SNAPSHOT_SECONDS
    # The measurement works: the snapshot's own session is one such line (the syslog sink may lag).
    wait_for(lambda: null_sessions(mta_server, log) > before_snapshot, 10, "the snapshot's session in the mail log")
    taken = HostSnapshot.objects.get(server=mta_server).taken_at
    before = null_sessions(mta_server, log)
    client.force_login(viewer)

    for _ in range(LOADS):
        page = client.get(f"/servers/{mta_server.name}/")
        card = client.get(f"/servers/{mta_server.name}/status/")
        assert "running" in card.content.decode()

    snapshot.take(mta_server)  # a later line proves the log has caught up with everything before it
    wait_for(lambda: null_sessions(mta_server, log) > before, 10, "the second snapshot's session in the mail log")
    # 2 * LOADS page loads: had each opened a session, that many lines. The second snapshot is one;
    # another process of the suite (a worker's snapshot of the shared instance) may add one more.
    added = null_sessions(mta_server, log) - before
    assert 1 <= added <= 2, f"{added} SMTP sessions during {2 * LOADS} page loads"
    html = page.content.decode()
    assert taken.strftime("%H:%M:%S") in html, "the page shows the snapshot's time"
    assert "the agent checks the daemon every 30 s, once for every viewer" in html
