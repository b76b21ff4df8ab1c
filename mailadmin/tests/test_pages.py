"""The console pages through Django's test client: what they say, what they write, where they send you."""

import re
import socket
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from mailadmin.models import AgentHost, AgentRequest, AuditEvent, HostSnapshot, MailServer, ServiceAction
from mailadmin.mta import agent
from mailadmin.work import WorkStatus
from testing.processes import wait_for


@pytest.fixture
def remote(db, tmp_path):
    """A server on another host, whose agent answers (it reported just now) but has sent no snapshot yet.

    Its paths lead nowhere on this machine: the pages must not need them.
    """
    host = AgentHost.objects.create(
        name="remote", celery_queue="mta.remote", approved_at=timezone.now(), last_seen=timezone.now()
    )
    return MailServer.objects.create(
        name="remote",
        host=host,
        hostname="mx.example.org",
        conf_dir=str(tmp_path / "etc"),
        mc_path=str(tmp_path / "etc" / "sendmail.mc"),
        cf_path=str(tmp_path / "etc" / "sendmail.cf"),
        access_path=str(tmp_path / "etc" / "access"),
        cert_dir=str(tmp_path / "certs"),
        queue_dir=str(tmp_path / "mqueue"),
        pid_file=str(tmp_path / "sendmail.pid"),
        log_file=str(tmp_path / "syslog"),
        sendmail_bin=str(tmp_path / "sendmail"),
        smtp_port=9,
        celery_queue="mta.remote",
    )


def text_of(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"</?code>", "", response.content.decode()))


def snapshot_of_nothing_installed(server, **fields) -> HostSnapshot:
    """The row the agent writes for an instance with nothing installed (what snapshot.take finds there)."""
    values = {
        "taken_at": timezone.now(),
        "daemon": {"pid": None, "process_alive": False, "banner": "", "banner_error": "Connection refused"},
        "version": {"version": "", "compile_options": [], "error": f"{server.sendmail_bin}: No such file or directory"},
        "spool": {"queue_dir": server.queue_dir, "error": f"{server.queue_dir}: No such file or directory"},
        "cf": {"path": server.cf_path, "exists": False, "error": f"{server.cf_path}: No such file or directory"},
        "mc": {"path": server.mc_path, "error": f"{server.mc_path}: No such file or directory"},
        "log": {"path": server.log_file, "lines": [], "note": f"{server.log_file}: No such file or directory"},
        **fields,
    }
    return HostSnapshot.objects.create(server=server, **values)


GREETING = "220 mx.example.org ESMTP Sendmail 8.17.1.9/mailadmin-b7; Thu, 3 Dec 2026 10:00:00 GMT"
CF_TEXT = (
    "V10/Berkeley\nDZ8.17.1.9/mailadmin-b7\nO LogLevel=9\n#O Timeout.starttls=1h\n"
    "O ServerKeyFile=/etc/mail/tls/key.pem\n"
)


def snapshot_of_a_running_instance(server, **fields) -> HostSnapshot:
    """The row the agent writes for a healthy instance (the same keys as snapshot.take writes)."""
    values = {
        "taken_at": timezone.now(),
        "daemon": {"pid": 4242, "process_alive": True, "banner": GREETING, "banner_error": ""},
        "version": {"version": "8.17.1.9", "compile_options": ["NEWDB", "STARTTLS"], "error": ""},
        "spool": {"queue_dir": server.queue_dir, "directories": [server.queue_dir], "queued": 3, "quarantined": 1},
        "cf": {
            "path": server.cf_path,
            "exists": True,
            "mtime": "2026-12-03T09:59:00+00:00",
            "size": len(CF_TEXT),
            "sha256": "ab" * 32,
            "version": "8.17.1.9/mailadmin-b7",
            "options": [
                ["LogLevel", "9", True],
                ["Timeout.starttls", "1h", False],
                ["ServerKeyFile", "/etc/mail/tls/key.pem", True],
            ],
            "error": "",
        },
        "cf_text": CF_TEXT,
        "mc": {"path": server.mc_path, "text": "divert(-1)dnl\nOSTYPE(`debian')dnl\n", "truncated": False, "error": ""},
        "log": {"path": server.log_file, "lines": ["Dec  3 10:00:00 mx sm-mta[4242]: starting daemon"], "note": ""},
        "tls": {
            "cert_dir": {"path": server.cert_dir, "exists": True, "is_dir": True, "mode": "0700", "owner": "root:root"},
            "files": {
                "/etc/mail/tls/key.pem": {
                    "path": "/etc/mail/tls/key.pem",
                    "exists": True,
                    "mode": "0644",
                    "owner": "root:root",
                    "problem": "readable by group or others: sendmail will not offer STARTTLS with this key",
                }
            },
            "key_problems": ["ServerKeyFile /etc/mail/tls/key.pem: readable by group or others (mode 0644)"],
            "ehlo": {"greeting": GREETING, "hello": "mx.example.org Hello", "extensions": ["PIPELINING"], "error": ""},
        },
        **fields,
    }
    return HostSnapshot.objects.create(server=server, **values)


@pytest.fixture
def no_agent_here(monkeypatch):
    """This process serves no instance and opens no connection: a page that tried either would fail."""

    def refused(*args, **kwargs):
        raise AssertionError("a page tried to connect somewhere")

    monkeypatch.setattr(agent, "_served", {})
    monkeypatch.setattr(socket, "create_connection", refused)
    monkeypatch.setattr(socket.socket, "connect", refused)


def test_home_sends_you_to_the_first_dashboard(remote, client, viewer):
    client.force_login(viewer)
    assert client.get("/")["Location"] == "/servers/remote/"


def test_home_without_servers_sends_you_to_the_list_that_says_how_to_add_one(db, client, administrator):
    client.force_login(administrator)
    response = client.get("/", follow=True)
    assert response.redirect_chain == [("/servers/", 302)]
    assert "No server yet" in text_of(response)
    assert "manage.py jointoken HOSTNAME" in text_of(response)


def test_the_dashboard_renders_from_the_snapshot_row_with_no_agent_in_this_process(
    remote, client, viewer, no_agent_here
):
    snapshot_of_a_running_instance(remote)
    client.force_login(viewer)
    response = client.get("/servers/remote/")
    assert response.status_code == 200
    page = text_of(response)
    assert GREETING in page
    assert "running (pid 4242)" in page
    assert "8.17.1.9/mailadmin-b7" in page and "8.17.1.9</strong>" in page
    assert "sm-mta[4242]: starting daemon" in page
    assert "STARTTLS: ServerKeyFile /etc/mail/tls/key.pem: readable by group or others" in page
    assert "as the agent on mta.remote saw it at" in page
    assert "has not answered" not in page and "has not reported" not in page


def test_the_dashboard_of_a_server_with_nothing_installed_says_what_is_wrong(remote, client, viewer, no_agent_here):
    snapshot_of_nothing_installed(remote)
    client.force_login(viewer)
    response = client.get("/servers/remote/")
    assert response.status_code == 200
    page = text_of(response)
    assert "Needs attention" in page
    assert "sendmail cannot be run" in page
    assert "The configuration file is missing" in page
    assert "The daemon is not running" in page
    assert 'hx-get="/servers/remote/status/"' in page
    assert "Stop</button>" not in page, "a viewer gets no daemon buttons"


def test_before_the_first_snapshot_the_dashboard_says_so_and_redraws_itself_when_it_comes(
    remote, client, viewer, no_agent_here
):
    client.force_login(viewer)
    started = time.monotonic()
    response = client.get("/servers/remote/")
    assert response.status_code == 200 and time.monotonic() - started < 2
    page = text_of(response)
    assert "The agent on mta.remote has not reported on this instance yet." in page
    assert "wait as queued work" not in page, "its agent answers: nothing is waiting"
    assert "Needs attention" not in page, "nothing is claimed about an instance nobody has looked at"
    assert 'hx-get="/servers/remote/status/?first=1"' in page

    waiting = client.get("/servers/remote/status/?first=1")
    assert "not reported yet" in text_of(waiting) and "HX-Refresh" not in waiting
    snapshot_of_a_running_instance(remote)
    arrived = client.get("/servers/remote/status/?first=1")
    assert arrived["HX-Refresh"] == "true" and "running (pid 4242)" in text_of(arrived)
    assert "HX-Refresh" not in client.get("/servers/remote/status/")


def test_a_server_whose_agent_never_reported_says_its_work_waits(remote, client, viewer, no_agent_here):
    AgentHost.objects.filter(pk=remote.host_id).update(last_seen=None)
    client.force_login(viewer)
    page = text_of(client.get("/servers/remote/config/"))
    assert "The agent on mta.remote has not reported yet." in page
    assert "wait as queued work and run when it answers again" in page
    assert "has not reported this sendmail's compile options" in page


def test_a_stale_snapshot_says_since_when_the_agent_has_not_answered(remote, client, viewer, no_agent_here):
    taken = timezone.now() - timedelta(minutes=10)
    snapshot_of_a_running_instance(remote, taken_at=taken)
    AgentHost.objects.filter(pk=remote.host_id).update(last_seen=taken)
    since = timezone.localtime(taken).strftime("%Y-%m-%d %H:%M:%S")
    client.force_login(viewer)

    page = text_of(client.get("/servers/remote/"))
    assert f"The agent on mta.remote has not answered since {since}" in page
    assert "10 minutes ago" in page
    assert GREETING in page, "what the agent last saw is still shown"
    status = text_of(client.get("/servers/remote/status/"))
    assert "unknown" in status and "running</span>" not in status
    assert "before the agent stopped answering" in status
    for other in ("/servers/remote/config/", "/servers/remote/config/installed/", "/servers/remote/access/"):
        assert f"has not answered since {since}" in text_of(client.get(other)), other


def test_an_action_for_a_silent_agent_says_it_waits_for_it(remote, client, administrator):
    AgentHost.objects.filter(pk=remote.host_id).update(last_seen=timezone.now() - timedelta(hours=2))
    client.force_login(administrator)
    response = client.post("/servers/remote/service/", {"verb": "reload"})
    page = text_of(client.get(response["Location"]))
    assert "Queued — the agent on mta.remote is not answering" in page
    assert "runs when the agent answers again" in page


def test_administrators_get_the_daemon_buttons(remote, client, administrator):
    client.force_login(administrator)
    page = text_of(client.get("/servers/remote/"))
    for verb in ("start", "stop", "restart", "reload"):
        assert f'name="verb" value="{verb}"' in page


def test_the_status_partial_is_a_self_refreshing_fragment(remote, client, viewer, no_agent_here):
    snapshot_of_nothing_installed(remote)
    client.force_login(viewer)
    response = client.get("/servers/remote/status/")
    page = response.content.decode()
    assert response.status_code == 200
    assert "<nav" not in page
    assert 'hx-trigger="every 5s"' in page
    assert "not running" in page


def test_a_service_action_is_a_queued_row_an_audit_event_and_a_redirect(remote, client, administrator):
    client.force_login(administrator)
    response = client.post("/servers/remote/service/", {"verb": "restart"})
    action = ServiceAction.objects.get()
    assert response["Location"] == f"/actions/service/{action.pk}/"
    assert (action.verb, action.status, action.created_by) == ("restart", WorkStatus.QUEUED, administrator)
    event = AuditEvent.objects.get(action="daemon restart")
    assert (event.outcome, event.server, event.username) == ("queued", remote, administrator.username)

    page = text_of(client.get(response["Location"]))
    assert "queued — will run when a worker is available" in page.lower()
    assert f'hx-get="/actions/service/{action.pk}/progress/"' in page
    assert "requested" in page  # the flash message


def test_an_unknown_verb_changes_nothing(remote, client, administrator):
    client.force_login(administrator)
    response = client.post("/servers/remote/service/", {"verb": "rm -rf"}, follow=True)
    assert ServiceAction.objects.count() == 0
    assert "Choose start, stop, restart or reload" in text_of(response)


def test_progress_polling_stops_with_286_when_the_row_is_finished(remote, client, viewer):
    action = ServiceAction.objects.create(server=remote, verb="start", status=WorkStatus.RUNNING, progress=60)
    client.force_login(viewer)
    running = client.get(f"/actions/service/{action.pk}/progress/")
    assert running.status_code == 200
    assert 'hx-trigger="every 1s"' in running.content.decode()
    assert 'data-progress="60"' in running.content.decode()

    ServiceAction.objects.filter(pk=action.pk).update(status=WorkStatus.FAILED, error="sendmail <exploded>")
    finished = client.get(f"/actions/service/{action.pk}/progress/")
    assert finished.status_code == 286
    assert "hx-trigger" not in finished.content.decode()
    assert "sendmail &lt;exploded&gt;" in finished.content.decode()


def test_a_dispatched_row_waits_for_its_worker(remote, client, viewer):
    from django.utils import timezone

    action = ServiceAction.objects.create(server=remote, verb="reload", dispatched_at=timezone.now())
    client.force_login(viewer)
    page = text_of(client.get(f"/actions/service/{action.pk}/"))
    assert "waiting for the worker on mta.remote" in page


def test_the_audit_log_shows_commands_shell_quoted_and_escaped(remote, client, viewer):
    AuditEvent.objects.create(
        action="quarantine",
        server=remote,
        argv=["/usr/sbin/sendmail", "-Q<script>alert(1)</script>", "-qI abc"],
        detail="<img src=x onerror=alert(1)>" + "x" * 300,
    )
    client.force_login(viewer)
    page = client.get("/audit/").content.decode()
    assert "/usr/sbin/sendmail &#x27;-Q&lt;script&gt;alert(1)&lt;/script&gt;&#x27; &#x27;-qI abc&#x27;" in page
    assert "<script>alert" not in page
    assert "<img src=x" not in page
    assert "<details" in page


def test_the_audit_log_filters_and_pages(remote, client, viewer):
    AuditEvent.objects.bulk_create(
        [AuditEvent(action=f"probe {n}", username="ada", server=remote) for n in range(60)]
        + [AuditEvent(action="daemon stop", username="otto", outcome="failed")]
    )
    client.force_login(viewer)
    first = client.get("/audit/", {"user": "ad"})
    assert first.context["page"].paginator.count == 60
    assert len(first.context["page"].object_list) == 50
    assert "page=2" in first.content.decode() and "user=ad" in first.content.decode()
    assert len(client.get("/audit/", {"user": "ad", "page": 2}).context["page"].object_list) == 10
    assert client.get("/audit/", {"outcome": "failed"}).context["page"].paginator.count == 1
    assert client.get("/audit/", {"server": "remote", "action": "PROBE 1"}).context["page"].paginator.count == 11
    assert client.get("/audit/", {"date_from": "2999-01-01"}).context["page"].paginator.count == 0
    bad = client.get("/audit/", {"date_from": "yesterday", "user": "otto"})
    assert bad.status_code == 200
    assert bad.context["page"].paginator.count == 1


def test_configuration_and_tls_pages_read_the_snapshot_not_the_files(remote, client, viewer, no_agent_here):
    snapshot_of_a_running_instance(remote)
    client.force_login(viewer)

    config = text_of(client.get("/servers/remote/config/installed/"))
    assert "OSTYPE(`debian&#x27;)dnl" in config
    assert "LogLevel" in config and "8.17.1.9/mailadmin-b7" in config
    assert "#O Timeout.starttls=1h" in config, "the whole cf text, from the row"

    options = client.get("/servers/remote/config/")
    assert options.status_code == 200 and "has not reported this sendmail" not in text_of(options)

    tls = text_of(client.get("/servers/remote/tls/"))
    assert "default 1h" in tls
    assert "readable by group or others" in tls
    assert "The daemon does not advertise STARTTLS" in tls
    assert "mode 0700" in tls


def test_the_access_lookup_is_answered_by_the_agent_with_sendmails_own_reply(worker, mta_server, client, viewer):
    client.force_login(viewer)
    response = client.post(f"/servers/{mta_server.name}/access/lookup/", {"tag": "Connect", "key": "127.0.0.1"})
    assert response.status_code == 302
    row = AgentRequest.objects.get(server=mta_server, kind="map lookup")
    assert row.params == {"map": "access", "key": "Connect:127.0.0.1"}

    page = client.get(response["Location"]).content.decode()
    assert f'hx-get="/agent-requests/{row.pk}/progress/?result=mailadmin%2F_map_lookup_result.html"' in page

    wait_for(lambda: AgentRequest.objects.get(pk=row.pk).finished, 30, "the agent to answer the lookup")
    row.refresh_from_db()
    assert row.status == WorkStatus.DONE, (row.error, worker.log()[-2000:])
    assert row.result["value"] == "RELAY"
    assert row.result["reply"].startswith("map_lookup: access (Connect:127.0.0.1) returns RELAY")
    fragment = client.get(f"/agent-requests/{row.pk}/progress/?result=mailadmin/_map_lookup_result.html")
    assert fragment.status_code == 286
    assert "map_lookup: access (Connect:127.0.0.1) returns RELAY" in fragment.content.decode()
    assert AuditEvent.objects.filter(action="map lookup", server=mta_server, outcome="ok").exists()


def test_a_lookup_key_that_is_not_valid_is_refused_before_anything_is_asked(remote, client, viewer):
    client.force_login(viewer)
    response = client.post("/servers/remote/access/lookup/", {"tag": "Connect", "key": "127.0.0.1 x"}, follow=True)
    assert "Lookup" in text_of(response) and "not allowed" in text_of(response)
    assert not AgentRequest.objects.exists()
