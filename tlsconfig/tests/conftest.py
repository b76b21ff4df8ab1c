"""Test material made with cryptography (a CA, certificates signed by it, keys, CRLs, DH parameters) and a
server row to keep them in."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import dh, ec, rsa

from mailadmin.models import MailServer
from testing.pki import Material, certificate_with_dates, crl_of
from tlsconfig import generate


@pytest.fixture(scope="session")
def material() -> Material:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = generate.make_ca(ca_key, "Test CA", 30)
    other_ca_key = ec.generate_private_key(ec.SECP256R1())
    other_ca = generate.make_ca(other_ca_key, "Other CA", 30)
    server_key = rsa.generate_private_key(65537, 2048)
    server = generate.issue(ca, ca_key, server_key.public_key(), "mx.example.org", ["mx.example.org"], 30, client=False)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = generate.issue(ca, ca_key, client_key.public_key(), "client.example.org", [], 30, client=True)
    stranger_key = ec.generate_private_key(ec.SECP256R1())
    stranger = generate.issue(other_ca, other_ca_key, stranger_key.public_key(), "mx.example.org", [], 30, client=False)
    now = datetime.now(UTC)
    expired = certificate_with_dates(ca, ca_key, server_key, now - timedelta(days=60), now - timedelta(days=1))
    not_yet_valid = certificate_with_dates(ca, ca_key, server_key, now + timedelta(days=2), now + timedelta(days=20))
    weak_key = rsa.generate_private_key(65537, 1024)
    weak = generate.issue(ca, ca_key, weak_key.public_key(), "weak.example.org", [], 30, client=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        small_dh = dh.generate_parameters(2, 1024)
    return Material(
        ca_key=ca_key,
        ca=ca,
        server_key=server_key,
        server=server,
        client_key=client_key,
        client=client,
        other_ca_key=other_ca_key,
        other_ca=other_ca,
        stranger=stranger,
        expired=expired,
        not_yet_valid=not_yet_valid,
        weak_key=weak_key,
        weak=weak,
        crl=crl_of(ca, ca_key, [server.serial_number]),
        foreign_crl=crl_of(other_ca, other_ca_key),
        small_dh=small_dh,
    )


@pytest.fixture(scope="session")
def dh_2048() -> dh.DHParameters:
    """Generated once per session, the slow way the console does it."""
    return generate.generate_dh_parameters(2048, lambda elapsed: None)


@pytest.fixture
def store_server(db, tmp_path):
    """A server row for the store alone: no daemon behind it, an empty certificate directory of its own."""
    cert_dir = tmp_path / "certs"
    cert_dir.mkdir(mode=0o700)
    return MailServer.objects.create(
        name="store",
        hostname="mx.example.org",
        conf_dir=str(tmp_path),
        mc_path=str(tmp_path / "sendmail.mc"),
        cf_path=str(tmp_path / "sendmail.cf"),
        access_path=str(tmp_path / "access"),
        cert_dir=str(cert_dir),
        queue_dir=str(tmp_path / "mqueue"),
        pid_file=str(tmp_path / "pid"),
        smtp_port=9,
        celery_queue="mta.store",
    )


@pytest.fixture
def admin_client(client, administrator):
    client.force_login(administrator)
    return client
