"""STARTTLS end to end on a real sendmail: generate in the private_console, deploy, build and install, probe.

The instance is this module's own, so its certificates never reach other tests. The pages ask the
instance's agent for probes: this process is that agent for the in-process steps, and a worker of
its own (`private_agent`) answers the browser.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from mailadmin import config, work
from mailadmin import tasks as mailadmin_tasks
from mailadmin.models import AgentRequest, AuditEvent
from mailadmin.mta import daemon
from mailadmin.mta.gateway import Mta, run
from testing.browser import SCREENSHOTS, log_in
from testing.instances import agent_config_path
from testing.processes import WorkerProcess, wait_for
from testing.syslog import sendmail_log
from testing.tls import run as run_job
from testing.tls import start
from tlsconfig import deploy, generate, probe, tasks
from tlsconfig.models import CertificateRevocationList, Deployment

REAL_PUBLISH = work.publish


@pytest.fixture(scope="module")
def private_agent(private_instance, redis_server, test_run_dir):
    """A worker that is the agent of this module's instance (its host's queue only), like a real MTA host's."""
    from django.conf import settings

    worker = WorkerProcess(
        redis_server.url,
        settings.DATABASES["default"]["NAME"],
        [private_instance["celery_queue"]],
        test_run_dir / f"agent-{private_instance['name']}",
    )
    worker.agent_config = str(agent_config_path(private_instance["name"]))
    worker.start()
    yield worker
    worker.stop()


def answer_here(row: AgentRequest) -> None:
    """Answer a page's question to the host's agent in this process (the agent of the module's instance)."""
    assert mailadmin_tasks.run_agent_request(row.pk) == "done", AgentRequest.objects.get(pk=row.pk).error


def probe_page(client, url: str) -> str:
    """The probe page and, once this process has answered as the agent, the fragment it polls for."""
    page = client.get(url)
    assert page.status_code == 200
    asked = page.context["probe"]
    assert asked["item"].kind == "starttls probe" and "Asked the agent on" in page.content.decode()
    answer_here(asked["item"])
    fragment = client.get(asked["progress_url"])
    assert fragment.status_code == 286
    return page.content.decode() + fragment.content.decode()


def probe_message_page(client, server, presented: str) -> str:
    """Send a probe message from the probe page; answered here, as the agent would; the fragment the page shows."""
    response = client.post(f"/servers/{server.name}/tls/probe/message/", {"client": presented})
    assert response.status_code == 302
    page = client.get(response["Location"])
    asked = page.context["message"]
    assert asked["item"].kind == "probe message" and asked["item"].params == {"client": presented == "1"}
    answer_here(asked["item"])
    fragment = client.get(asked["progress_url"])
    assert fragment.status_code == 286
    return fragment.content.decode()


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


def the_probe_page_answered_by_the_worker_shows_the_live_daemons_cipher_and_verify(
    server, page, live_server, administrator, monkeypatch, seen: probe.ProbeResult
) -> None:
    """In the browser: the page asks, the instance's own agent worker probes the daemon, the page fills in."""
    monkeypatch.setattr(work, "publish", REAL_PUBLISH)  # the rows go to the agent worker now
    try:
        log_in(page, live_server, administrator)
        page.goto(f"{live_server.url}/servers/{server.name}/tls/probe/?client=1")
        page.wait_for_selector("#probe-macros", timeout=60000)
        assert "220 2.0.0 Ready to start TLS" in page.inner_text("#starttls-reply")
        cipher = page.locator("#probe-macros tr", has_text="${cipher}").inner_text()
        assert seen.cipher and seen.cipher in cipher, cipher
        assert page.inner_text("#probe-verify") == "OK"
        asked = AgentRequest.objects.filter(server=server, kind="starttls probe").latest("pk")
        assert asked.status == "done" and asked.worker_pid != os.getpid(), "answered by the agent worker"
        page.click("#probe-message [type=submit]")
        page.wait_for_selector("#probe-message-result", timeout=60000)
        assert "read and removed" in page.inner_text("#probe-message")
        assert "OK" in page.inner_text("#recorded-macros")  # sendmail's ${verify} of the client certificate
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "tls-probe.png"), full_page=True)
    finally:
        monkeypatch.setattr(work, "publish", lambda item: False)


@pytest.mark.browser
def test_generated_deployed_installed_and_verified(
    private_console, dh_2048, monkeypatch, page, live_server, administrator, syslog_sink, private_agent
):
    server, client = private_console
    monkeypatch.setattr(generate, "safe_prime_parameters", lambda bits: dh_2048)
    # This test commits (live_server): keep a session worker that may be running from taking the rows,
    # so each step runs here, in order. Undispatched rows are what a broker outage leaves, too.
    monkeypatch.setattr(work, "publish", lambda item: False)
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
    client_cert = run_job(
        start(client, server, kind="client", common_name="console probe", key_type="ec256", ca=str(ca.pk))
    ).certificate

    old_umask = os.umask(0)
    try:
        row = deploy_from_console(
            client,
            server,
            server_certificate=str(server_cert.pk),
            client_certificate=str(client_cert.pk),
            dh_parameters=str(dh_row.pk),
            timeout_starttls="5m",
        )
    finally:
        os.umask(old_umask)

    cert_dir = Path(server.cert_dir) / f"deploy-{row.pk}"
    assert stat.S_IMODE(os.stat(cert_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(cert_dir / "server.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(cert_dir / "server.pem").st_mode) == 0o640
    assert deploy.wide_files(Path(server.cert_dir)) == []
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
    assert probe.ProbeResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result

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

    html = probe_page(client, f"/servers/{server.name}/tls/probe/")
    assert "${verify}" in html and ">OK<" in html and "220 2.0.0 Ready to start TLS" in html
    assert "The daemon serves the certificate that is on disk." in html

    with_client = probe.probe_server(server, with_client_certificate=True)["result"]
    assert with_client.verify == "OK" and with_client.client_certificate == str(cert_dir / "client.pem")
    for presented, verdict in (("1", "OK"), ("", "NO")):
        html = probe_message_page(client, server, presented)
        assert "read and removed from the queue" in html, html[:1500]
        assert f"<code>{verdict}</code>" in html and "<code>TLSv1." in html
    assert not any(Path(server.queue_dir).glob("qf*")), "the probe messages are gone from the queue"
    the_probe_page_answered_by_the_worker_shows_the_live_daemons_cipher_and_verify(
        server, page, live_server, administrator, monkeypatch, result
    )
    assert not any(Path(server.queue_dir).glob("qf*")), "the browser's probe message is gone too"

    # A deployment changes nothing live until its build is installed.
    renewed = run_job(
        start(client, server, kind="server", common_name=server.hostname, key_type="ec256", ca=str(ca.pk))
    ).certificate
    second = deploy_from_console(client, server, server_certificate=str(renewed.pk), dh_parameters=str(dh_row.pk))
    assert (Path(server.cert_dir) / f"deploy-{second.pk}" / "server.pem").exists()
    assert probe.probe_server(server)["comparison"].same

    # A renewal written over the live files from outside, without a reload: the classic outage.
    deploy.write_pair(renewed, cert_dir / "server.pem", cert_dir / "server.key")
    stale = probe.probe_server(server)
    assert stale["result"].served.sha256 == server_cert.sha256
    assert "still serving the old certificate" in stale["comparison"].problem
    assert "still serving the old certificate" in probe_page(client, f"/servers/{server.name}/tls/probe/")

    a_group_readable_key_is_named_with_the_daemons_complaint(server, client, syslog_sink, cert_dir / "server.key")


@pytest.fixture
def syslog_sink(private_console):
    """sendmail only logs through /dev/log; where nothing listens there, listen for the length of a test."""
    server, _ = private_console
    with sendmail_log(server.log_file) as collecting:
        yield collecting


def a_group_readable_key_is_named_with_the_daemons_complaint(server, client, syslog_sink, key: Path) -> None:
    key.chmod(0o640)
    try:
        daemon.reload(server, Mta(server))
        if syslog_sink:
            wait_for(lambda: probe.daemon_complaints(server), 10, "sendmail's STARTTLS complaint in its log")
        seen = probe.probe_server(server)
        assert not seen["result"].starttls_offered
        assert any("readable by group or others" in problem for problem in seen["key_problems"])
        html = probe_page(client, f"/servers/{server.name}/tls/probe/")
        assert "readable by group or others" in html
        if syslog_sink:
            assert any("unsafe: Group readable file" in line for line in seen["complaints"]), seen["complaints"]
            assert "unsafe: Group readable file" in html
    finally:
        key.chmod(0o600)
        daemon.reload(server, Mta(server))


def test_deploy_refuses_a_cert_dir_others_can_write(private_console):
    server, client = private_console
    ca_key, key = generate.new_private_key("ec256"), generate.new_private_key("ec256")
    ca = generate.make_ca(ca_key, "Unused CA", 5)
    leaf = generate.issue(ca, ca_key, key.public_key(), server.hostname, [], 5, client=False)
    leaf_row = store_generated(server, "server", leaf, key, store_generated(server, "ca", ca, ca_key))
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
    assert AuditEvent.objects.filter(action="TLS deploy", outcome=AuditEvent.Outcome.FAILED).exists()


def test_a_deployment_writes_under_the_cert_dir_of_the_agent_configuration_whatever_the_row_says(
    private_console, tmp_path
):
    from mailadmin.models import MailServer

    server, client = private_console
    configured = Path(server.cert_dir)
    decoy = tmp_path / "decoy"
    decoy.mkdir(mode=0o700)
    ca_key, key = generate.new_private_key("ec256"), generate.new_private_key("ec256")
    ca = generate.make_ca(ca_key, "Decoy test CA", 5)
    leaf = generate.issue(ca, ca_key, key.public_key(), server.hostname, [], 5, client=False)
    leaf_row = store_generated(server, "server", leaf, key, store_generated(server, "ca", ca, ca_key))
    MailServer.objects.filter(pk=server.pk).update(cert_dir=str(decoy))  # a tampered row

    row = deploy_from_console(client, server, server_certificate=str(leaf_row.pk))

    assert (configured / f"deploy-{row.pk}" / "server.key").exists()
    assert list(decoy.iterdir()) == []
    assert config.options_of(server)["ServerKeyFile"] == str(configured / f"deploy-{row.pk}" / "server.key")


def store_generated(server, role, certificate, key, ca_row=None):
    from tlsconfig import store

    row = store.certificate_row(server, role, certificate, [], "generated")
    row.private_key, row.issuer_ca = store.save_private_key(server, key, "generated"), ca_row
    row.save()
    return row


def test_a_client_certificate_on_the_deployed_crl_fails_sendmails_verification(private_console):
    from testing.pki import crl_of, pem

    server, client = private_console
    ca_key = generate.new_private_key("ec256")
    ca = generate.make_ca(ca_key, "CRL test CA", 5)
    ca_row = store_generated(server, "ca", ca, ca_key)
    server_key, client_key = generate.new_private_key("ec256"), generate.new_private_key("ec256")
    server_row = store_generated(
        server,
        "server",
        generate.issue(ca, ca_key, server_key.public_key(), server.hostname, [server.hostname], 5, client=False),
        server_key,
        ca_row,
    )
    client_certificate = generate.issue(ca, ca_key, client_key.public_key(), "revoked client", [], 5, client=True)
    client_row = store_generated(server, "client", client_certificate, client_key, ca_row)

    verdicts = []
    for revoked in ((), (client_certificate.serial_number,)):
        upload = client.post(
            f"/servers/{server.name}/tls/upload/send/",
            {
                "kind": "crl",
                "ca": str(ca_row.pk),
                "file": SimpleUploadedFile("crl.pem", pem(crl_of(ca, ca_key, revoked))),
            },
        )
        assert upload.status_code == 302
        row = deploy_from_console(
            client,
            server,
            server_certificate=str(server_row.pk),
            client_certificate=str(client_row.pk),
            crl=str(CertificateRevocationList.objects.latest("pk").pk),
        )
        assert config.options_of(server)["CRLFile"].endswith(f"deploy-{row.pk}/crl.pem")
        install(server, client, row.build)
        outcome = probe.probe_message(server, with_client_certificate=True)
        assert outcome.removed, outcome.error
        verdicts.append(outcome.recorded["${verify}"])

    assert verdicts == ["OK", "FAIL"]
