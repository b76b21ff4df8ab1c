"""The console pages through Django's test client: what they say, what they write, where they send you."""

import re

import pytest

from mailadmin.models import AuditEvent, MailServer, ServiceAction
from mailadmin.work import WorkStatus


@pytest.fixture
def remote(db, tmp_path):
    """A server with nothing installed: no binary, no cf, no queue, no daemon."""
    return MailServer.objects.create(
        name="remote",
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
    return re.sub(r"\s+", " ", response.content.decode())


def test_home_sends_you_to_the_first_dashboard(remote, client, viewer):
    client.force_login(viewer)
    assert client.get("/")["Location"] == "/servers/remote/"


def test_home_without_servers_sends_you_to_the_list_that_says_how_to_add_one(db, client, administrator):
    client.force_login(administrator)
    response = client.get("/", follow=True)
    assert response.redirect_chain == [("/servers/", 302)]
    assert "No server yet" in text_of(response)
    assert 'href="/servers/add/"' in response.content.decode()


def test_the_dashboard_of_a_server_with_nothing_installed_says_what_is_wrong(remote, client, viewer):
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


def test_administrators_get_the_daemon_buttons(remote, client, administrator):
    client.force_login(administrator)
    page = text_of(client.get("/servers/remote/"))
    for verb in ("start", "stop", "restart", "reload"):
        assert f'name="verb" value="{verb}"' in page


def test_the_status_partial_is_a_self_refreshing_fragment(remote, client, viewer):
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
    assert 'style="width: 60%"' in running.content.decode()

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
    assert "waiting for the worker on mta.remote" in page.replace("<code>", "").replace("</code>", "")


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


def test_an_administrator_adds_a_managed_server(db, client, administrator, settings, tmp_path):
    settings.MAILADMIN_ALLOWED_ROOTS = [str(tmp_path)]
    client.force_login(administrator)
    assert client.get("/servers/add/").status_code == 200
    fields = {
        "name": "relay1",
        "hostname": "relay1.example.org",
        "smtp_address": "192.0.2.10",
        "smtp_port": "25",
        "syslog_tag": "sendmail",
        "queue_interval": "30m",
        "celery_queue": "mta.relay1",
        **{
            name: str(tmp_path / name)
            for name in ("conf_dir", "mc_path", "cf_path", "access_path", "cert_dir", "queue_dir", "pid_file")
        },
        **{name: str(tmp_path / "bin" / name) for name in ("sendmail_bin", "m4_bin", "makemap_bin", "cf_tree")},
    }
    refused = client.post("/servers/create/", {**fields, "cf_path": "/etc/passwd"})
    assert refused.status_code == 200
    assert "outside the allowed roots" in text_of(refused)
    assert MailServer.objects.count() == 0

    response = client.post("/servers/create/", {**fields, "embedded": "on"})
    assert response["Location"] == "/servers/relay1/"
    server = MailServer.objects.get(name="relay1")
    assert server.embedded is False
    event = AuditEvent.objects.get(action="add server")
    assert (event.server, event.target, event.username) == (server, "relay1", administrator.username)
    assert "cf_path=" in event.detail


def test_configuration_tls_and_queue_pages_read_the_installed_files(remote, client, viewer, tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "sendmail.mc").write_text("divert(-1)dnl\nOSTYPE(`debian')dnl\n")
    (tmp_path / "etc" / "sendmail.cf").write_text(
        f"DZ8.17.1.9/mailadmin-remote\nO LogLevel=9\n#O Timeout.starttls=1h\nO ServerKeyFile={tmp_path}/certs/key.pem\n"
    )
    (tmp_path / "certs").mkdir(mode=0o700)
    (tmp_path / "certs" / "key.pem").write_text("key")
    (tmp_path / "certs" / "key.pem").chmod(0o644)
    (tmp_path / "mqueue").mkdir()
    (tmp_path / "mqueue" / "hf6AOIGq4n000001").write_text("V8\n")
    client.force_login(viewer)

    config = text_of(client.get("/servers/remote/config/installed/"))
    assert "OSTYPE(`debian&#x27;)dnl" in config
    assert "LogLevel" in config and "8.17.1.9/mailadmin-remote" in config

    tls = text_of(client.get("/servers/remote/tls/"))
    assert "default <code>1h</code>" in tls
    assert "readable by group or others" in tls
    assert "Connection refused" in tls

    queue = client.get("/servers/remote/queue/")
    assert queue.context["spool"].quarantined == 1
