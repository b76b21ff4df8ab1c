"""Making keys, certificates, CSRs and DH parameters with `cryptography` (never the openssl program)."""

from __future__ import annotations

import ipaddress
import threading
import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dh, ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tlsconfig.pki import MIN_DH_BITS, MIN_RSA_BITS, PkiError

KEY_CHOICES = {
    "rsa2048": "RSA 2048",
    "rsa3072": "RSA 3072",
    "rsa4096": "RSA 4096",
    "ec256": "ECDSA P-256",
    "ec384": "ECDSA P-384",
}
CURVES = {"ec256": ec.SECP256R1, "ec384": ec.SECP384R1}
# Backdated a little so a peer whose clock is slightly behind still accepts a fresh certificate.
CLOCK_SKEW = timedelta(minutes=5)


def new_private_key(choice: str):
    if choice.startswith("rsa"):
        bits = int(choice[3:])
        if bits < MIN_RSA_BITS:
            raise PkiError(f"RSA keys need at least {MIN_RSA_BITS} bits.")
        return rsa.generate_private_key(public_exponent=65537, key_size=bits)
    if choice in CURVES:
        return ec.generate_private_key(CURVES[choice]())
    raise PkiError(f"Unknown key type {choice!r}.")


def name(common_name: str, organization: str = "") -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def general_names(sans: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for san in sans:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(san)))
        except ValueError:
            names.append(x509.DNSName(san))
    return names


def key_usage(*, signs_certificates: bool, rsa_key: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        # RSA key exchange needs key encipherment; an EC key never encrypts.
        key_encipherment=not signs_certificates and rsa_key,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signs_certificates,
        crl_sign=signs_certificates,
        encipher_only=False,
        decipher_only=False,
    )


def make_ca(key, common_name: str, days: int, organization: str = "") -> x509.Certificate:
    now = datetime.now(UTC)
    subject = name(common_name, organization)
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(key_usage(signs_certificates=True, rsa_key=isinstance(key, rsa.RSAPrivateKey)), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def issue(
    ca_certificate: x509.Certificate,
    ca_key,
    public_key,
    common_name: str,
    sans: list[str],
    days: int,
    *,
    client: bool,
) -> x509.Certificate:
    now = datetime.now(UTC)
    not_after = min(now + timedelta(days=days), ca_certificate.not_valid_after_utc)
    usage = [ExtendedKeyUsageOID.CLIENT_AUTH] if client else [ExtendedKeyUsageOID.SERVER_AUTH]
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(common_name))
        .issuer_name(ca_certificate.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            key_usage(signs_certificates=False, rsa_key=isinstance(public_key, rsa.RSAPublicKey)), critical=True
        )
        .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_certificate.public_key()), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(general_names(sans)), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def make_csr(key, common_name: str, sans: list[str]) -> x509.CertificateSigningRequest:
    builder = x509.CertificateSigningRequestBuilder().subject_name(name(common_name))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(general_names(sans)), critical=False)
    return builder.sign(key, hashes.SHA256())


HEARTBEAT_SECONDS = 2.0


def safe_prime_parameters(bits: int) -> dh.DHParameters:
    with warnings.catch_warnings():
        # cryptography deprecates finite-field DH; sendmail still uses these parameters.
        warnings.simplefilter("ignore")
        return dh.generate_parameters(generator=2, key_size=bits)


def generate_dh_parameters(bits: int, heartbeat: Callable[[float], None]) -> dh.DHParameters:
    """Safe-prime DH parameters. `cryptography` gives no progress, so a heartbeat reports elapsed time
    (and renews the work row's lease) while the search for a prime runs in a thread."""
    if bits < MIN_DH_BITS:
        raise PkiError(f"DH parameters need at least {MIN_DH_BITS} bits.")
    result: dict = {}

    def search() -> None:
        try:
            result["parameters"] = safe_prime_parameters(bits)
        except Exception as exc:  # handed to the waiting thread, which raises it
            result["error"] = exc

    thread = threading.Thread(target=search, name="dh-parameters", daemon=True)
    started = datetime.now(UTC)
    thread.start()
    while thread.is_alive():
        thread.join(HEARTBEAT_SECONDS)
        heartbeat((datetime.now(UTC) - started).total_seconds())
    if "error" in result:
        raise result["error"]
    return result["parameters"]
