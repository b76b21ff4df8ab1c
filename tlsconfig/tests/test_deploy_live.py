"""STARTTLS end to end on a real sendmail: generate in the console, deploy, build and install, probe.

The instance is this module's own, so its certificates never reach other tests.
"""

from __future__ import annotations

import os
import socket
import stat
import threading
from pathlib import Path

import pytest

from conftest import instance_row, start_instance, stop_instance, wait_for
from mailadmin import config, daemon, logsink
from mailadmin.gateway import Mta, run
from tlsconfig import deploy, generate, pki, probe, tasks
from tlsconfig.models import Certificate, Deployment, TlsJob
from tlsconfig.tests.test_generate import run as run_job
from tlsconfig.tests.test_generate import start

DEV_LOG = "/dev/log"


@pytest.fixture(scope="module")
def tls_fields(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        fields = start_instance()
    yield fields
    with django_db_blocker.unblock():
        stop_instance(fields)


@pytest.fixture
def console(db, tls_fields, administrator, client):
    server = instance_row(tls_fields)
    config.import_mc(server, Path(server.mc_path).read_text())
    config.import_access(server, Path(server.access_path).read_text())
    client.force_login(administrator)
    return server, client


def deploy_from_console(client, server, **choices) -> Deployment:
    response = client.post(f"/servers/{server.name}/tls/deploy/", choices)
    assert response.status_code == 302, response.content.decode()[:2000]
    row = Deployment.objects.latest("pk")
    assert response["Location"] == f"/tls/deployments/{row.pk}/"
    assert tasks.run_deployment(row.pk) == "done", Deployment.objects.get(pk=row.pk).error
    row.refresh_from_db()
    return row


def install(server, client, build) -> None:
    """The build the deployment started, installed the way an admin does it from the console."""
    from mailadmin import tasks as mailadmin_tasks
    from mailadmin.models import InstallJob

    assert mailadmin_tasks.run_config_build(build.pk) == "done", build.error
    response = client.post(f"/builds/{build.pk}/install/", {})
    assert response.status_code == 302
    job = InstallJob.objects.latest("pk")
    assert mailadmin_tasks.run_install(job.pk) == "done", InstallJob.objects.get(pk=job.pk).error
    assert f"/{build.build_id};" in daemon.status(server).banner


def test_generated_deployed_installed_and_verified(console, dh_2048, monkeypatch):
    server, client = console
    monkeypatch.setattr(generate, "safe_prime_parameters", lambda bits: dh_2048)
    ca = run_job(start(client, server, kind="ca", common_name="Console CA", key_type="ec256", days="30")).certificate
    server_cert = run_job(
        start(
            client,
            server,
            kind="server",
            common_name=server.hostname,
            sans=f"{server.hostname} 127.0.0.1",
            key_type="rsa2048",
            ca=str(ca.pk),
        )
    ).certificate
    dh_row = run_job(start(client, server, kind="dh", dh_bits="2048")).dh_parameters

    old_umask = os.umask(0)
    try:
        row = deploy_from_console(
            client, server, server_certificate=str(server_cert.pk), dh_parameters=str(dh_row.pk), timeout_starttls="5m"
        )
    finally:
        os.umask(old_umask)

    cert_dir = Path(server.cert_dir)
    assert stat.S_IMODE(os.stat(cert_dir / "server.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(cert_dir / "server.pem").st_mode) == 0o640
    assert deploy.wide_files(cert_dir) == []
    hashed = run(
        ["openssl", "x509", "-hash", "-noout", "-in", str(cert_dir / "ca.pem")], timeout=10
    ).stdout_text.strip()
    assert (cert_dir / "cacerts" / f"{hashed}.0").read_text() == ca.pem
    options = config.options_of(server)
    assert options["ServerKeyFile"] == str(cert_dir / "server.key")
    assert options["CACertPath"] == str(cert_dir / "cacerts")
    assert options["DHParameters"] == str(cert_dir / "dh.pem") and options["Timeout.starttls"] == "5m"

    install(server, client, row.build)

    seen = probe.probe_server(server)
    result = seen["result"]
    assert result.starttls_offered and result.starttls_code == 220, result
    assert result.verify == "OK", result.verify_detail
    assert result.tls_version.startswith("TLSv1.") and result.cipher and result.cipher_bits >= 128
    assert result.served.cn_subject == server.hostname and result.served.cn_issuer == "Console CA"
    assert seen["comparison"].same and seen["key_problems"] == []

    s_client = run(
        [
            "openssl",
            "s_client",
            "-starttls",
            "smtp",
            "-connect",
            f"{server.smtp_address}:{server.smtp_port}",
            "-CAfile",
            str(cert_dir / "ca.pem"),
            "-brief",
        ],
        timeout=20,
        stdin=b"QUIT\r\n",
    )
    assert "Verification: OK" in s_client.stderr_text + s_client.stdout_text

    page = client.get(f"/servers/{server.name}/tls/probe/").content.decode()
    assert "${verify}" in page and ">OK<" in page and "220 2.0.0 Ready to start TLS" in page
    assert "The daemon serves the certificate that is on disk." in page

    # A renewal deployed but not installed: the daemon still serves the certificate it started with.
    renewed = run_job(
        start(client, server, kind="server", common_name=server.hostname, key_type="ec256", ca=str(ca.pk))
    ).certificate
    deploy_from_console(client, server, server_certificate=str(renewed.pk), dh_parameters=str(dh_row.pk))
    stale = probe.probe_server(server)
    assert stale["result"].served.sha256 == server_cert.sha256
    assert "still serving the old certificate" in stale["comparison"].problem
    assert "still serving the old certificate" in client.get(f"/servers/{server.name}/tls/probe/").content.decode()


@pytest.fixture
def syslog_sink(console):
    """sendmail only logs through /dev/log; where nothing listens there, listen for the length of a test."""
    server, _ = console
    if os.path.exists(DEV_LOG):
        yield
        return
    sink = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sink.bind(DEV_LOG)
    sink.settimeout(0.2)
    done = threading.Event()

    def receive() -> None:
        with open(server.log_file, "a", buffering=1) as out:
            while not done.is_set():
                try:
                    out.write(logsink.format_line(sink.recv(65536)) + "\n")
                except TimeoutError:
                    continue

    thread = threading.Thread(target=receive, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(5)
        sink.close()
        os.unlink(DEV_LOG)


def test_a_group_readable_key_is_named_with_the_daemons_complaint(console, syslog_sink):
    server, client = console
    key = Path(server.cert_dir) / "server.key"
    if not key.exists():
        pytest.skip("needs the deployment of the previous test")
    key.chmod(0o640)
    try:
        daemon.reload(server, Mta(server))
        wait_for(lambda: probe.daemon_complaints(server), 10, "sendmail's STARTTLS complaint in its log")
        seen = probe.probe_server(server)
        assert not seen["result"].starttls_offered
        assert any("readable by group or others" in problem for problem in seen["key_problems"])
        assert any("unsafe" in line for line in seen["complaints"]), seen["complaints"]
        page = client.get(f"/servers/{server.name}/tls/probe/").content.decode()
        assert "readable by group or others" in page and "unsafe" in page
    finally:
        key.chmod(0o600)
        daemon.reload(server, Mta(server))


def test_deploy_refuses_a_cert_dir_others_can_write(console):
    server, client = console
    ca_key = generate.new_private_key("ec256")
    ca = generate.make_ca(ca_key, "Unused CA", 5)
    from tlsconfig import store

    ca_row = store.certificate_row(server, "ca", ca, [], "generated")
    ca_row.private_key = store.save_private_key(server, ca_key, "generated")
    ca_row.save()
    key = generate.new_private_key("ec256")
    leaf = generate.issue(ca, ca_key, key.public_key(), server.hostname, [], 5, client=False)
    leaf_row = store.certificate_row(server, "server", leaf, [], "generated")
    leaf_row.private_key, leaf_row.issuer_ca = store.save_private_key(server, key, "generated"), ca_row
    leaf_row.save()
    cert_dir = Path(server.cert_dir)
    before = sorted(p.name for p in cert_dir.iterdir())
    cert_dir.chmod(0o722)
    try:
        response = client.post(f"/servers/{server.name}/tls/deploy/", {"server_certificate": str(leaf_row.pk)})
        row = Deployment.objects.latest("pk")
        assert response["Location"] == f"/tls/deployments/{row.pk}/"
        assert tasks.run_deployment(row.pk) == "failed"
        row.refresh_from_db()
        assert "writable by group or others" in row.error
    finally:
        cert_dir.chmod(0o700)
    assert sorted(p.name for p in cert_dir.iterdir()) == before
    assert Certificate.objects.filter(pk=leaf_row.pk).exists() and TlsJob.objects.count() == 0
    assert pki.certificate_facts(leaf).cn_subject == server.hostname
