"""The agent's snapshot of an instance (mailadmin.mta.snapshot): gathered from the real daemon, files
and binary by the host's agent, written as the HostSnapshot row every page reads."""

import hashlib
import socket
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.utils import timezone

from mailadmin import agents, config, overview, tasks
from mailadmin.models import AgentHost, ConfigBuild, HostSnapshot, MailServer, ServiceAction
from mailadmin.mta import agent, snapshot, tlsfacts
from testing.processes import wait_for


def sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_the_snapshot_of_the_real_instance_holds_its_greeting_and_its_installed_cf(mta_server):
    AgentHost.objects.filter(pk=mta_server.host_id).update(last_seen=None)

    row = snapshot.take(mta_server)

    assert row.daemon["banner"].startswith(f"220 {mta_server.hostname} ESMTP Sendmail")
    assert row.daemon["process_alive"] and row.daemon["pid"] > 1
    assert row.cf["exists"] and row.cf["sha256"] == sha256(mta_server.cf_path)
    assert row.cf_text == Path(mta_server.cf_path).read_text()
    assert any(
        name == "DaemonPortOptions" and active and f"Port={mta_server.smtp_port}," in value
        for name, value, active in row.cf["options"]
    )
    assert row.version["version"].startswith("8.") and "STARTTLS" in row.version["compile_options"]
    assert row.spool["error"] == "" and row.spool["directories"]
    assert "OSTYPE" in row.mc["text"] and row.mc["error"] == ""
    assert row.tls["ehlo"]["greeting"] == row.daemon["banner"].splitlines()[0]
    assert "PIPELINING" in row.tls["ehlo"]["extensions"]
    assert row.tls["ehlo"]["starttls"] is False, "the test instance has no certificate"
    assert row.tls["cert_dir"]["exists"] and row.tls["cert_dir"]["owner"].startswith("root:")
    assert row.error == ""
    mta_server.host.refresh_from_db()
    assert timezone.now() - mta_server.host.last_seen < timedelta(seconds=30)

    # The pages' reading of the row says the same as the row.
    summary = overview.server_overview(MailServer.objects.get(pk=mta_server.pk))
    assert summary.status.answering and summary.status.summary == f"running (pid {row.daemon['pid']})"
    assert summary.cf.sha256 == row.cf["sha256"] and summary.cf.mtime is not None
    assert summary.silence is None and summary.problems == []


def test_a_second_snapshot_replaces_the_first(mta_server):
    first = snapshot.take(mta_server)
    time.sleep(0.01)
    second = snapshot.take(mta_server)
    assert HostSnapshot.objects.filter(server=mta_server).count() == 1
    assert second.pk == first.pk and second.taken_at > first.taken_at


def test_a_snapshot_begun_before_a_newer_one_was_written_does_not_overwrite_it(mta_server):
    """The poll's snapshot finishing after the one an action took must not bring back the old state."""
    newer = timezone.now() + timedelta(seconds=5)
    HostSnapshot.objects.create(server=mta_server, taken_at=newer, daemon={"banner": "written by the later one"})

    row = snapshot.take(mta_server)

    assert row.taken_at == newer and row.daemon == {"banner": "written by the later one"}
    assert HostSnapshot.objects.get(server=mta_server).daemon == {"banner": "written by the later one"}


def test_the_live_build_is_the_one_whose_sha256_the_snapshot_saw(mta_server):
    snapshot.take(mta_server)
    digest = sha256(mta_server.cf_path)
    assert config.live_build(mta_server) is None, "no build of this console has that cf"
    built = ConfigBuild.objects.create(server=mta_server, mc_text="dnl", cf_sha256=digest)
    ConfigBuild.objects.create(server=mta_server, mc_text="dnl", cf_sha256="0" * 64)
    assert config.live_build(mta_server) == built


def test_a_daemon_action_leaves_a_fresh_snapshot_behind(mta_server):
    HostSnapshot.objects.filter(server=mta_server).delete()
    action = ServiceAction.objects.create(server=mta_server, verb=ServiceAction.Verb.START)

    assert tasks.run_service_action(action.pk) == "done"

    row = HostSnapshot.objects.get(server=mta_server)
    assert row.daemon["banner"].startswith("220 ") and row.daemon["process_alive"]
    assert row.taken_at >= ServiceAction.objects.get(pk=action.pk).finished_at - timedelta(seconds=1)


@pytest.mark.django_db
def test_a_process_that_is_not_the_agent_of_an_instance_takes_no_snapshot(tmp_path):
    stranger = MailServer.objects.create(
        name="elsewhere", hostname="mx.example.org", cf_path=str(tmp_path / "sendmail.cf"), celery_queue="mta.x"
    )
    with pytest.raises(agent.NotServedHere):
        snapshot.take(stranger)
    assert not HostSnapshot.objects.exists()


def test_a_key_readable_by_group_is_a_problem_the_agent_reports(tmp_path):
    key, cert = tmp_path / "server.key", tmp_path / "server.pem"
    key.write_text("key")
    key.chmod(0o640)
    cert.write_text("cert")
    cert.chmod(0o644)
    options = {"ServerKeyFile": str(key), "ServerCertFile": str(cert), "ClientKeyFile": str(tmp_path / "gone.key")}

    found = tlsfacts.gather(str(tmp_path), options, "127.0.0.1", 9)

    assert (
        found["files"][str(key)]["mode"] == "0640"
        and "readable by group or others" in found["files"][str(key)]["problem"]
    )
    assert found["files"][str(cert)]["problem"] == "", "a certificate may be world-readable"
    assert found["key_problems"] == [
        f"ClientKeyFile {tmp_path}/gone.key: No such file or directory",
        f"ServerKeyFile {key}: {tlsfacts.KEY_READABLE_PROBLEM} (mode 0640)",
    ]
    assert found["cert_dir"]["is_dir"] and found["cert_dir"]["mode"]
    assert found["ehlo"]["error"] and found["ehlo"]["starttls"] is False


def test_nothing_listening_is_an_ehlo_error_not_an_exception():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    reply = tlsfacts.ehlo("127.0.0.1", port, timeout=2)
    assert "refused" in reply["error"].lower() and reply["extensions"] == []


def test_the_beat_poll_makes_the_agent_write_a_fresh_snapshot(worker, mta_server):
    """poll_agents (central) rings mta.<host>; the session's worker, that host's agent, writes the row."""
    HostSnapshot.objects.filter(server=mta_server).delete()
    started = timezone.now()

    assert tasks.poll_agents() >= 1

    row = wait_for(
        lambda: HostSnapshot.objects.filter(server=mta_server, taken_at__gte=started).first(),
        30,
        "the agent's snapshot",
    )
    assert row.daemon["banner"].startswith("220 "), worker.log()[-2000:]
    assert row.cf["sha256"] == sha256(mta_server.cf_path)


def test_a_host_whose_agent_is_silent_is_asked_only_every_twentieth_poll(mta_server, monkeypatch, settings):
    """So the queue of a host that is gone for good does not fill up with snapshot requests."""
    asked, clock = [], SimpleNamespace(now=0.0)
    monkeypatch.setattr(agents, "publish_snapshot", lambda server: asked.append(server.name) or True)
    monkeypatch.setattr(agents, "time", SimpleNamespace(time=lambda: clock.now))
    settings.AGENT_SNAPSHOT_SECONDS = 15
    AgentHost.objects.filter(pk=mta_server.host_id).update(last_seen=timezone.now() - timedelta(hours=1))

    for tick in range(2 * agents.SILENT_HOST_POLL_EVERY):
        clock.now = tick * 15.0
        tasks.poll_agents()
    assert asked == [mta_server.name] * 2

    AgentHost.objects.filter(pk=mta_server.host_id).update(last_seen=timezone.now())
    asked.clear()
    for tick in range(3):
        clock.now = tick * 15.0 + 15.0
        tasks.poll_agents()
    assert asked == [mta_server.name] * 3
