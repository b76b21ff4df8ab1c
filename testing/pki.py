"""Test material made with cryptography: PEM/DER/encrypted encodings, CRLs, certificates with chosen dates,
and the Material bundle the `material` fixture fills."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dh

from tlsconfig import generate, pki


def pem(obj) -> bytes:
    if isinstance(obj, x509.Certificate | x509.CertificateRevocationList):
        return obj.public_bytes(serialization.Encoding.PEM)
    return pki.private_key_pem(obj)


def der(obj) -> bytes:
    if isinstance(obj, x509.Certificate | x509.CertificateRevocationList):
        return obj.public_bytes(serialization.Encoding.DER)
    return obj.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def encrypted_pem(key, passphrase: str) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase.encode()),
    )


def crl_of(ca_cert, ca_key, revoked_serials=(), next_update_days=30):
    now = datetime.now(UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - timedelta(minutes=1))
        .next_update(now + timedelta(days=next_update_days))
    )
    for serial in revoked_serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
        )
    return builder.sign(ca_key, hashes.SHA256())


def certificate_with_dates(ca_cert, ca_key, key, not_before, not_after, common_name="dated.example.org"):
    return (
        x509.CertificateBuilder()
        .subject_name(generate.name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(ca_key, hashes.SHA256())
    )


@dataclass
class Material:
    ca_key: object
    ca: x509.Certificate
    server_key: object
    server: x509.Certificate
    client_key: object
    client: x509.Certificate
    other_ca_key: object
    other_ca: x509.Certificate
    stranger: x509.Certificate  # signed by the other CA
    expired: x509.Certificate
    not_yet_valid: x509.Certificate
    weak_key: object
    weak: x509.Certificate
    crl: x509.CertificateRevocationList
    foreign_crl: x509.CertificateRevocationList
    small_dh: dh.DHParameters
