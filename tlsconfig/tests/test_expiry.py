"""Expiry: warnings 30 and 7 days ahead and after expiry, the daily beat task, the dashboard panel; key rotation."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from cryptography.fernet import Fernet
from django.conf import settings

from mailadmin.models import AuditEvent
from testing.pki import certificate_with_dates, crl_of, pem
from tlsconfig import jobs, keystore, store, tasks
from tlsconfig.models import CertificateRevocationList, Origin


def stored(server, material, days_left: float, name: str):
    now = datetime.now(UTC)
    certificate = certificate_with_dates(
        material.ca,
        material.ca_key,
        material.server_key,
        now - timedelta(days=30),
        now + timedelta(days=days_left),
        name,
    )
    row = store.certificate_row(server, "server", certificate, [], Origin.UPLOADED)
    row.save()
    return row


def test_warnings_at_30_and_7_days_and_after_expiry(store_server, material):
    stored(store_server, material, 60, "fine.example.org")
    stored(store_server, material, 20, "soon.example.org")
    stored(store_server, material, 5, "very-soon.example.org")
    stored(store_server, material, -2, "gone.example.org")
    ca = store.certificate_row(store_server, "ca", material.ca, [], Origin.UPLOADED)
    ca.save()
    CertificateRevocationList.objects.create(
        server=store_server,
        ca=ca,
        pem=pem(crl_of(material.ca, material.ca_key, next_update_days=3)).decode(),
        issuer="CN=Test CA",
        last_update=datetime.now(UTC),
        next_update=datetime.now(UTC) + timedelta(days=3),
        sha256="0" * 64,
    )

    warnings = {
        w.what.split(" (")[0].removeprefix("server certificate "): w for w in jobs.expiry_warnings(store_server)
    }

    assert "fine.example.org" not in warnings
    assert warnings["soon.example.org"].level == "warning"
    assert warnings["very-soon.example.org"].level == "danger" and not warnings["very-soon.example.org"].expired
    assert warnings["gone.example.org"].expired and warnings["gone.example.org"].level == "danger"
    assert warnings["CRL of CN=Test CA"].level == "danger"


def test_the_daily_task_records_what_expires_and_the_panel_shows_it(admin_client, store_server, material):
    assert settings.CELERY_BEAT_SCHEDULE["check-certificate-expiry"]["task"] == "tlsconfig.tasks.check_expiry"
    stored(store_server, material, -1, "gone.example.org")
    stored(store_server, material, 10, "soon.example.org")

    assert tasks.check_expiry() == {store_server.name: 2}

    event = AuditEvent.objects.get(action="TLS expiry warning")
    assert event.outcome == AuditEvent.Outcome.FAILED and "gone.example.org" in event.detail
    panel = admin_client.get(f"/servers/{store_server.name}/tls/panel/").content.decode()
    assert "gone.example.org" in panel and "expired" in panel and "soon.example.org" in panel
    dashboard = admin_client.get(f"/servers/{store_server.name}/").content.decode()
    assert f'hx-get="/servers/{store_server.name}/tls/panel/"' in dashboard


def test_an_empty_store_has_a_quiet_panel(admin_client, store_server):
    panel = admin_client.get(f"/servers/{store_server.name}/tls/panel/").content.decode()
    assert "Nothing in the certificate store expires within 30 days." in panel


def test_keys_survive_a_rotation_of_the_encryption_keys(settings):
    token = keystore.seal(b"-----BEGIN PRIVATE KEY-----\nsecret\n")
    settings.MAILADMIN_KEYS = [Fernet.generate_key().decode(), *settings.MAILADMIN_KEYS]
    assert keystore.reveal(token).endswith(b"secret\n")
    rotated = keystore.rotate(token)
    settings.MAILADMIN_KEYS = settings.MAILADMIN_KEYS[:1]
    assert keystore.reveal(rotated).endswith(b"secret\n")


def test_the_tls_page_lists_the_tls_policy_rows(admin_client, store_server):
    from mailadmin import config

    config.add_access_entry(store_server, "TLS_Srv", "secure.example", "ENCR:128")
    page = admin_client.get(f"/servers/{store_server.name}/tls/").content.decode()
    assert "TLS_Srv:secure.example" in page and "ENCR:128" in page
    assert f'href="/servers/{store_server.name}/access/"' in page


def test_rotatekeys_lets_the_old_encryption_key_go(store_server, material, settings):
    from django.core.management import call_command

    from tlsconfig import pki

    row = store.save_private_key(store_server, material.server_key, Origin.UPLOADED)
    old_keys = list(settings.MAILADMIN_KEYS)
    settings.MAILADMIN_KEYS = [Fernet.generate_key().decode(), *old_keys]
    out = io.StringIO()
    call_command("rotatekeys", stdout=out)
    assert "1 private keys re-encrypted" in out.getvalue()
    settings.MAILADMIN_KEYS = settings.MAILADMIN_KEYS[:1]
    row.refresh_from_db()
    assert keystore.reveal(row.ciphertext) == pki.private_key_pem(material.server_key)
    assert AuditEvent.objects.filter(action="rotate key encryption").exists()
