"""Uploads through the real form: every bad input gets its own error, and nothing is stored or written."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from mailadmin.models import AuditEvent
from testing.pki import der, encrypted_pem, pem
from testing.tls import post
from tlsconfig import keystore, pki
from tlsconfig.models import Certificate, CertificateRevocationList, DhParameters, PrivateKey

CANARY = Path("/tmp/mailadmin-upload-canary")
HOSTILE_NAMES = [
    "../../x.pem",
    "../../../etc/mail/server.key",
    "/etc/passwd",
    "a\x00b.pem",
    "a\nb.pem",
    "line\r\nbreak.pem",
    f"$(touch {CANARY}).pem",
    f"`touch {CANARY}`.pem",
    f"x; touch {CANARY}; .pem",
    "x | tee y.pem",
    "..\\..\\x.pem",
    "%2e%2e%2fx.pem",
]


@pytest.fixture
def stored_ca(store_server, material, admin_client):
    response = post(admin_client, store_server, "ca", pem(material.ca))
    assert response.status_code == 302, response.content.decode()[:2000]
    return Certificate.objects.get(role="ca", server=store_server)


def counts():
    return (
        Certificate.objects.count(),
        PrivateKey.objects.count(),
        CertificateRevocationList.objects.count(),
        DhParameters.objects.count(),
        AuditEvent.objects.filter(action__startswith="upload").count(),
    )


def files_under(path: Path) -> list[str]:
    return sorted(str(p) for p in path.rglob("*"))


def forged_crl(material):
    """Names the test CA as issuer but is signed by another key."""
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    return (
        x509.CertificateRevocationListBuilder()
        .issuer_name(material.ca.subject)
        .last_update(now)
        .next_update(now + timedelta(days=1))
        .sign(material.other_ca_key, hashes.SHA256())
    )


def bad_inputs(material):
    """(description, kind, file, key, passphrase, needs CA, expected error)."""
    server_pem, key_pem = pem(material.server), pem(material.server_key)
    protected = encrypted_pem(material.server_key, "right phrase")
    return [
        ("garbage", "server", os.urandom(700), key_pem, "", True, "but the file is not a certificate, key, CRL"),
        ("empty file", "server", b"", key_pem, "", True, "The certificate file is empty."),
        ("blank file", "server", b"\n  \n", key_pem, "", True, "The certificate file is empty."),
        ("over the size limit", "server", b"A" * (pki.MAX_CRL_BYTES + 1), key_pem, "", True, "the limit is 1,048,576"),
        (
            "key as certificate",
            "server",
            key_pem,
            key_pem,
            "",
            True,
            "Expected a certificate, but the file holds a private key",
        ),
        (
            "certificate as key",
            "server",
            server_pem,
            server_pem,
            "",
            True,
            "Expected a private key, but the file holds a certificate",
        ),
        ("CRL as certificate", "server", pem(material.crl), key_pem, "", True, "holds a certificate revocation list"),
        ("DER key as certificate", "server", der(material.server_key), key_pem, "", True, "holds a private key"),
        (
            "key of another certificate",
            "server",
            server_pem,
            pem(material.client_key),
            "",
            True,
            "does not belong to this certificate",
        ),
        (
            "chain to another CA",
            "server",
            pem(material.stranger),
            key_pem,
            "",
            True,
            "does not verify to the chosen CA",
        ),
        ("expired", "server", pem(material.expired), key_pem, "", True, "The certificate expired on"),
        ("not yet valid", "server", pem(material.not_yet_valid), key_pem, "", True, "The certificate not valid before"),
        (
            "RSA 1024",
            "server",
            pem(material.weak),
            pem(material.weak_key),
            "",
            True,
            "RSA with 1024 bits; at least 2048",
        ),
        ("wrong passphrase", "server", server_pem, protected, "wrong phrase", True, "The passphrase is wrong"),
        ("missing passphrase", "server", server_pem, protected, "", True, "encrypted: enter its passphrase"),
        ("no CA chosen", "server", server_pem, key_pem, "", False, "Choose the CA this certificate must verify to."),
        ("no key at all", "server", server_pem, None, "", True, "No private key for this certificate"),
        ("CA that is not a CA", "ca", server_pem, None, "", False, "This is not a CA certificate"),
        (
            "DH of 1024 bits",
            "dh",
            pki.dh_parameters_pem(material.small_dh),
            None,
            "",
            False,
            "1024 bits; at least 2048",
        ),
        (
            "certificate as DH",
            "dh",
            server_pem,
            None,
            "",
            False,
            "Expected DH parameters, but the file holds a certificate",
        ),
        ("CRL of another CA", "crl", pem(material.foreign_crl), None, "", True, "not by the chosen CA"),
        (
            "forged CRL",
            "crl",
            pem(forged_crl(material)),
            None,
            "",
            True,
            "its signature was not made with the CA's key",
        ),
        ("certificate as CRL", "crl", server_pem, None, "", True, "Expected a certificate revocation list (CRL)"),
        ("CRL without CA", "crl", pem(material.crl), None, "", False, "Choose the CA whose CRL this is."),
    ]


def error_text(response) -> str:
    form = response.context["form"]
    return " ".join([*form.non_field_errors(), *(e for errors in form.errors.values() for e in errors)])


def test_each_bad_upload_gets_its_own_error_and_stores_nothing(admin_client, store_server, stored_ca, material):
    before, on_disk = counts(), files_under(Path(store_server.cert_dir).parent)
    for description, kind, data, key, passphrase, needs_ca, expected in bad_inputs(material):
        response = post(
            admin_client, store_server, kind, data, key=key, passphrase=passphrase, ca=stored_ca if needs_ca else None
        )
        assert response.status_code == 400, description
        assert expected in error_text(response), (description, error_text(response))
        assert expected in response.content.decode().replace("&#x27;", "'").replace("&quot;", '"'), description
    assert counts() == before
    assert files_under(Path(store_server.cert_dir).parent) == on_disk


def mutations(material) -> list[tuple[str, bytes, bytes]]:
    """(description, certificate file, key file): truncated, bit-flipped, relabelled, in PEM and DER."""
    cert_der, key_der = der(material.server), der(material.server_key)
    cert_pem, key_pem = pem(material.server), pem(material.server_key)
    cases = []
    for cut in range(0, len(cert_der), max(1, len(cert_der) // 25)):
        cases.append((f"DER certificate cut at {cut}", cert_der[:cut], key_pem))
    for cut in range(10, len(cert_pem), max(1, len(cert_pem) // 25)):
        cases.append((f"PEM certificate cut at {cut}", cert_pem[:cut], key_pem))
    for position in range(0, len(cert_der), max(1, len(cert_der) // 60)):
        flipped = bytearray(cert_der)
        flipped[position] ^= 0x41
        cases.append((f"DER certificate byte {position} flipped", bytes(flipped), key_pem))
    body_lines = cert_pem.splitlines()[1:-2]  # whole base64 lines only: no padding bits to hide a change
    for index in range(0, sum(len(line) for line in body_lines), 41):
        line_no, column = divmod(index, 64)
        lines = cert_pem.splitlines()
        line = bytearray(lines[1 + line_no])
        line[column] = ord("A") if line[column] != ord("A") else ord("B")
        lines[1 + line_no] = bytes(line)
        cases.append((f"PEM certificate base64 char {index} changed", b"\n".join(lines) + b"\n", key_pem))
    for label in (b"X509 CRL", b"PRIVATE KEY", b"CERTIFICATE REQUEST", b"PUBLIC KEY", b"FOO", b"DH PARAMETERS"):
        cases.append((f"certificate labelled {label!r}", cert_pem.replace(b"CERTIFICATE", label), key_pem))
    cases.append(("END line missing", cert_pem.replace(b"-----END CERTIFICATE-----", b""), key_pem))
    cases.append(("BEGIN line missing", cert_pem.replace(b"-----BEGIN CERTIFICATE-----", b""), key_pem))
    cases.append(("base64 with a bad character", cert_pem.replace(cert_pem.splitlines()[3][:4], b"!!!!"), key_pem))
    for cut in range(0, len(key_der), max(1, len(key_der) // 20)):
        cases.append((f"DER key cut at {cut}", cert_pem, key_der[:cut]))
    for cut in range(10, len(key_pem), max(1, len(key_pem) // 20)):
        cases.append((f"PEM key cut at {cut}", cert_pem, key_pem[:cut]))
    for position in range(0, len(key_der), max(1, len(key_der) // 30)):
        flipped = bytearray(key_der)
        flipped[position] ^= 0x10
        cases.append((f"DER key byte {position} flipped", cert_pem, bytes(flipped)))
    cases.append(("key in base64 without PEM lines", cert_pem, base64.b64encode(key_der)))
    return cases


def test_hundreds_of_damaged_files_are_refused_without_a_trace(admin_client, store_server, stored_ca, material):
    cases = mutations(material)
    assert len(cases) >= 200
    before, on_disk = counts(), files_under(Path(store_server.cert_dir).parent)
    accepted, crashed = [], []
    for description, certificate, key in cases:
        response = post(admin_client, store_server, "server", certificate, key=key, ca=stored_ca)
        if response.status_code == 302:
            accepted.append(description)
        elif response.status_code != 400 or not error_text(response):
            crashed.append((description, response.status_code))
    assert accepted == [] and crashed == []
    assert counts() == before
    assert files_under(Path(store_server.cert_dir).parent) == on_disk


def test_damaged_dh_parameters_and_crls_are_refused(admin_client, store_server, stored_ca, material, dh_2048):
    dh_der = pki.dh_parameters_pem(dh_2048)
    crl_der = der(material.crl)
    before = counts()
    cases = [("dh", dh_der[:cut]) for cut in range(0, len(dh_der), 40)]
    body = dh_der.splitlines()
    for line_no in range(1, len(body) - 2, 2):
        lines = list(body)
        lines[line_no] = lines[line_no][:10] + (b"Q" if lines[line_no][10:11] != b"Q" else b"R") + lines[line_no][11:]
        cases.append(("dh", b"\n".join(lines) + b"\n"))
    cases += [("crl", crl_der[:cut]) for cut in range(0, len(crl_der), 25)]
    for position in range(0, len(crl_der), 23):
        flipped = bytearray(crl_der)
        flipped[position] ^= 0x08
        cases.append(("crl", bytes(flipped)))
    for kind, data in cases:
        response = post(admin_client, store_server, kind, data, ca=stored_ca)
        assert response.status_code == 400 and error_text(response), (kind, data[:40])
    assert counts() == before


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=repr)
def test_hostile_file_names_are_ignored(name, admin_client, store_server, stored_ca, material):
    CANARY.unlink(missing_ok=True)
    before, on_disk = counts(), files_under(Path(store_server.cert_dir).parent)
    response = post(
        admin_client, store_server, "server", b"garbage", key=b"garbage", ca=stored_ca, name=name, key_name=name
    )
    assert response.status_code == 400
    assert "Expected a certificate" in error_text(response)
    assert counts() == before and files_under(Path(store_server.cert_dir).parent) == on_disk

    good = post(
        admin_client,
        store_server,
        "server",
        pem(material.server),
        key=pem(material.server_key),
        ca=stored_ca,
        name=name,
    )
    assert good.status_code == 302
    assert files_under(Path(store_server.cert_dir).parent) == on_disk, "an upload is a row, never a file"
    assert not CANARY.exists()


def test_a_good_upload_shows_facts_and_never_the_key(admin_client, store_server, stored_ca, material):
    protected = encrypted_pem(material.server_key, "right phrase")
    response = post(
        admin_client,
        store_server,
        "server",
        pem(material.server) + pem(material.ca),
        key=protected,
        passphrase="right phrase",
        ca=stored_ca,
    )
    assert response.status_code == 302
    row = Certificate.objects.get(role="server")
    assert row.issuer_ca == stored_ca and row.private_key is not None
    assert row.chain_pem.startswith("-----BEGIN CERTIFICATE-----")
    assert keystore.reveal(row.private_key.ciphertext) == pki.private_key_pem(material.server_key)
    assert b"PRIVATE KEY" not in bytes(row.private_key.ciphertext)
    page = admin_client.get(response["Location"]).content.decode()
    assert "mx.example.org" in page and "RSA 2048" in page and row.sha256 in page
    assert "PRIVATE KEY" not in page
    for path in (f"/servers/{store_server.name}/tls/", f"/servers/{store_server.name}/tls/upload/"):
        assert "PRIVATE KEY" not in admin_client.get(path).content.decode()


def test_an_expired_certificate_is_stored_only_with_confirmation(admin_client, store_server, stored_ca, material):
    first = post(
        admin_client, store_server, "server", pem(material.expired), key=pem(material.server_key), ca=stored_ca
    )
    assert first.status_code == 400 and "tick" in error_text(first)
    confirmed = post(
        admin_client,
        store_server,
        "server",
        pem(material.expired),
        key=pem(material.server_key),
        ca=stored_ca,
        accept_out_of_dates="on",
    )
    assert confirmed.status_code == 302
    assert Certificate.objects.filter(role="server", not_after=material.expired.not_valid_after_utc).exists()


def test_crl_and_dh_uploads(admin_client, store_server, stored_ca, material, dh_2048):
    assert post(admin_client, store_server, "crl", der(material.crl), ca=stored_ca).status_code == 302
    assert CertificateRevocationList.objects.get().revoked == 1
    assert post(admin_client, store_server, "dh", pki.dh_parameters_pem(dh_2048)).status_code == 302
    assert DhParameters.objects.get().bits == 2048


def test_only_administrators_upload(client, viewer, store_server, material):
    client.force_login(viewer)
    assert post(client, store_server, "ca", pem(material.ca)).status_code == 403
    assert Certificate.objects.count() == 0
