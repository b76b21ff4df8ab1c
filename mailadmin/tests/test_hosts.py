"""A new MTA host joins: a one-time token, the agent's report, an administrator's approval."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from mailadmin import hosts
from mailadmin.models import AgentHost, AuditEvent, JoinToken, MailServer


def report(host: str = "relay1", instance: str = "main") -> dict:
    return {
        "host": host,
        "celery_queue": f"mta.{host}",
        "instances": {
            instance: {
                "hostname": f"{host}.example.org",
                "cf_path": "/etc/mail/sendmail.cf",
                "queue_dir": "/var/spool/mqueue",
                "smtp_address": "127.0.0.1",
                "smtp_port": 25,
                "sendmail_bin": "/usr/sbin/sendmail",
                "roots": ["/etc/mail", "/var/spool/mqueue"],
                "reserved_words": ["dnl", "define"],
                "not_a_column": "ignored",
            }
        },
    }


def test_an_unknown_host_without_a_token_is_refused_and_audited(db):
    with pytest.raises(hosts.JoinRefused):
        hosts.receive_report(report())
    assert not AgentHost.objects.exists() and not MailServer.objects.exists()
    assert AuditEvent.objects.get(action="agent join refused").outcome == AuditEvent.Outcome.DENIED


def test_a_host_with_a_token_waits_for_approval_then_becomes_servers(db, client, administrator, capsys):
    call_command("jointoken", "relay1")
    token = capsys.readouterr().out.strip()
    assert len(token) > 30 and not JoinToken.objects.filter(token_sha256=token).exists(), "only its hash is kept"

    host = hosts.receive_report(report(), join_token=token)
    assert host.token_verified and not host.approved
    assert not MailServer.objects.exists(), "nothing of an unapproved host is a server"

    client.force_login(administrator)
    page = client.get("/servers/").content.decode()
    assert "Hosts asking to join" in page and "/etc/mail/sendmail.cf" in page and "Approve relay1" in page
    client.post(f"/hosts/{host.pk}/approve/")

    server = MailServer.objects.get(name="main")
    assert server.host == host and server.celery_queue == "mta.relay1"
    assert server.roots == ["/etc/mail", "/var/spool/mqueue"] and server.reserved_words == ["dnl", "define"]
    assert AuditEvent.objects.filter(action="approve host", username=administrator.username).exists()


def test_a_token_is_good_once_and_for_its_host_only(db, capsys):
    token = hosts.issue_join_token("relay1")
    with pytest.raises(hosts.JoinRefused):
        hosts.receive_report(report(host="relay2"), join_token=token)
    hosts.receive_report(report(), join_token=token)
    AgentHost.objects.all().delete()
    with pytest.raises(hosts.JoinRefused):
        hosts.receive_report(report(), join_token=token)


def test_a_viewer_cannot_approve_a_host(db, client, viewer):
    host = hosts.receive_report(report(), join_token=hosts.issue_join_token("relay1"))
    client.force_login(viewer)
    assert client.post(f"/hosts/{host.pk}/approve/").status_code == 403
    host.refresh_from_db()
    assert not host.approved


def test_an_approved_hosts_report_updates_its_servers_and_cannot_take_anothers(db):
    first = hosts.receive_report(report(), join_token=hosts.issue_join_token("relay1"))
    hosts.approve(first)
    changed = report()
    changed["instances"]["main"]["smtp_port"] = 2525
    hosts.receive_report(changed)
    assert MailServer.objects.get(name="main").smtp_port == 2525

    other = hosts.receive_report(report(host="relay2"), join_token=hosts.issue_join_token("relay2"))
    hosts.approve(other)
    assert MailServer.objects.get(name="main").host == first, "an instance name stays with its host"
    assert AuditEvent.objects.filter(action="agent report refused", outcome=AuditEvent.Outcome.DENIED).exists()
