"""Generation jobs started from the console and run by the task: CA, server and client certificates, CSR, DH."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from mailadmin import work
from testing.pki import pem
from testing.tls import post, run, start
from tlsconfig import generate, keystore, pki, tasks
from tlsconfig.models import Certificate, CertificateRequest, DhParameters, TlsJob


def test_private_ca_then_server_and_client_certificates(admin_client, store_server):
    ca_job = run(start(admin_client, store_server, kind="ca", common_name="Console CA", key_type="ec256", days="90"))
    ca = ca_job.certificate
    assert ca.role == "ca" and ca.is_ca and ca.self_signed and ca.private_key.key_type == "ECDSA"

    server_job = start(
        admin_client,
        store_server,
        kind="server",
        common_name="mx.example.org",
        sans="mx.example.org, smtp.example.org 127.0.0.1",
        key_type="rsa2048",
        days="30",
        ca=str(ca.pk),
    )
    page = admin_client.get(f"/tls/jobs/{server_job.pk}/progress/")
    assert page.status_code == 200 and "Queued" in page.content.decode()
    server = run(server_job).certificate
    assert server.sans == ["DNS:mx.example.org", "DNS:smtp.example.org", "IP:127.0.0.1"]
    assert server.issuer_ca == ca and server.extended_key_usage == ["serverAuth"]
    leaf = pki.load_pem_certificate(server.pem)
    assert pki.verify_chain(leaf, [], pki.load_pem_certificate(ca.pem))
    key = pki.load_private_key(keystore.reveal(server.private_key.ciphertext))
    assert pki.key_matches(leaf, key) and (server.key_type, server.key_bits) == ("RSA", 2048)

    client_cert = run(
        start(admin_client, store_server, kind="client", common_name="relay client", key_type="ec384", ca=str(ca.pk))
    ).certificate
    assert client_cert.extended_key_usage == ["clientAuth"] and client_cert.key_bits == 384

    finished = admin_client.get(f"/tls/jobs/{server_job.pk}/progress/")
    assert finished.status_code == 286
    assert "PRIVATE KEY" not in finished.content.decode()


def test_bad_generation_requests_are_refused(admin_client, store_server):
    response = admin_client.post(f"/servers/{store_server.name}/tls/generate/", {"kind": "server", "common_name": ""})
    assert response.status_code == 400
    text = response.content.decode()
    assert "A certificate needs a common name." in text and "Choose the CA that signs it" in text
    response = admin_client.post(
        f"/servers/{store_server.name}/tls/generate/", {"kind": "ca", "common_name": "x", "sans": "bad_name!"}
    )
    assert response.status_code == 400 and "neither a host name nor an IP address" in response.content.decode()
    response = admin_client.post(
        f"/servers/{store_server.name}/tls/generate/", {"kind": "ca", "common_name": "x", "sans": "::::"}
    )
    assert response.status_code == 400 and "“::::” is neither" in response.content.decode()
    assert TlsJob.objects.count() == 0


def test_a_csr_and_the_certificate_the_ca_returns(admin_client, store_server, material):
    job = run(start(admin_client, store_server, kind="csr", common_name="mx.example.org", sans="mx.example.org"))
    request = job.request
    assert "BEGIN CERTIFICATE REQUEST" in admin_client.get(f"/tls/jobs/{job.pk}/").content.decode()
    csr = pki.x509.load_pem_x509_csr(request.pem.encode())
    assert csr.is_signature_valid

    outside = generate.issue(
        material.ca, material.ca_key, csr.public_key(), "mx.example.org", ["mx.example.org"], 30, client=False
    )
    assert post(admin_client, store_server, "ca", pem(material.ca)).status_code == 302
    ca = Certificate.objects.get(role="ca")
    response = post(admin_client, store_server, "server", pem(outside), ca=ca)
    assert response.status_code == 302, response.content.decode()[:2000]
    returned = Certificate.objects.get(role="server")
    assert returned.private_key == request.private_key
    assert CertificateRequest.objects.get().certificate == returned


def test_dh_parameters_report_progress_and_a_lost_run_is_taken_over(admin_client, store_server, dh_2048, monkeypatch):
    def slow_search(bits):
        time.sleep(0.35)
        return dh_2048

    notes = []
    monkeypatch.setattr(generate, "HEARTBEAT_SECONDS", 0.1)
    monkeypatch.setattr(generate, "safe_prime_parameters", slow_search)
    original_report = work.report_progress
    monkeypatch.setattr(
        work, "report_progress", lambda item, pct, note: (notes.append((pct, note)), original_report(item, pct, note))
    )
    job = start(admin_client, store_server, kind="dh", dh_bits="2048")
    # A worker claimed it and died: the row is running with an expired lease.
    claimed = work.claim(TlsJob, job.pk)
    TlsJob.objects.filter(pk=claimed.pk).update(lease_until=timezone.now() - timedelta(seconds=1))

    job = run(job)

    assert job.attempt == 2
    assert job.dh_parameters.bits == 2048 and DhParameters.objects.count() == 1
    assert len(notes) >= 3 and all("safe prime" in note for _, note in notes)
    assert [pct for pct, _ in notes] == sorted(pct for pct, _ in notes)
    TlsJob.objects.filter(pk=job.pk).update(status=work.WorkStatus.QUEUED)
    assert tasks.run_tls_job(job.pk) == work.WorkStatus.DONE
    assert DhParameters.objects.count() == 1, "a rerun finds its earlier result and makes nothing twice"


@pytest.mark.parametrize("choice,bits", [("rsa2048", 2048), ("ec256", 256), ("ec384", 384)])
def test_key_choices(choice, bits):
    assert pki.public_key_facts(generate.new_private_key(choice).public_key())[1] == bits
