"""Parsing and checking certificates, keys, CRLs and DH parameters; OpenSSL's subject hash in Python."""

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from mailadmin.gateway import run
from tlsconfig import generate, pki
from tlsconfig.tests.conftest import der, encrypted_pem, pem


def test_certificate_facts(material):
    facts = pki.certificate_facts(material.server)
    assert facts.subject == "CN=mx.example.org"
    assert facts.cn_subject == "mx.example.org" and facts.cn_issuer == "Test CA"
    assert facts.sans == ["DNS:mx.example.org"]
    assert (facts.key_type, facts.key_bits) == ("RSA", 2048)
    assert facts.extended_key_usage == ["serverAuth"]
    assert "key_encipherment" in facts.key_usage
    assert not facts.is_ca and not facts.self_signed
    ca = pki.certificate_facts(material.ca)
    assert ca.is_ca and ca.self_signed and ca.key_type == "ECDSA"


def test_pem_bundle_and_der_both_load(material):
    bundle = pki.load_certificates(pem(material.server) + pem(material.ca))
    assert [c.subject for c in bundle] == [material.server.subject, material.ca.subject]
    assert pki.load_certificates(der(material.server)) == [material.server]


def test_chain_verification(material):
    assert pki.verify_chain(material.server, [], material.ca) == [material.server]
    with pytest.raises(pki.PkiError, match="does not verify to the chosen CA"):
        pki.verify_chain(material.stranger, [], material.ca)


def test_key_loading(material):
    key = pki.load_private_key(pem(material.server_key))
    assert pki.key_matches(material.server, key)
    assert not pki.key_matches(material.server, material.client_key)
    assert pki.load_private_key(der(material.client_key)).public_key() == material.client_key.public_key()
    protected = encrypted_pem(material.server_key, "s3cret phrase")
    assert pki.key_matches(material.server, pki.load_private_key(protected, "s3cret phrase"))
    with pytest.raises(pki.PkiError, match="passphrase is wrong"):
        pki.load_private_key(protected, "wrong")
    with pytest.raises(pki.PkiError, match="encrypted: enter its passphrase"):
        pki.load_private_key(protected)
    with pytest.raises(pki.PkiError, match="not encrypted"):
        pki.load_private_key(pem(material.server_key), "unneeded")


def test_pkcs1_rsa_key_loads(material):
    traditional = material.server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    assert b"BEGIN RSA PRIVATE KEY" in traditional
    assert pki.key_matches(material.server, pki.load_private_key(traditional))


def test_weak_rsa_and_small_dh_are_refused(material):
    with pytest.raises(pki.PkiError, match="RSA with 1024 bits; at least 2048"):
        pki.load_private_key(pem(material.weak_key))
    small = pki.dh_parameters_pem(material.small_dh)
    with pytest.raises(pki.PkiError, match="1024 bits; at least 2048"):
        pki.load_dh_parameters(small)


def test_crl_must_be_signed_by_the_ca(material):
    crl = pki.load_crl(pem(material.crl))
    pki.check_crl_issuer(crl, material.ca)
    assert pki.crl_facts(crl).revoked == 1
    with pytest.raises(pki.PkiError, match="not by the chosen CA"):
        pki.check_crl_issuer(pki.load_crl(pem(material.foreign_crl)), material.ca)


def test_validity_problems(material):
    assert pki.validity_problem(material.server) == ""
    assert pki.validity_problem(material.expired).startswith("expired on")
    assert pki.validity_problem(material.not_yet_valid).startswith("not valid before")


@pytest.mark.parametrize(
    "attributes",
    [
        [(NameOID.COMMON_NAME, "Test CA")],
        [(NameOID.COUNTRY_NAME, "DE"), (NameOID.ORGANIZATION_NAME, "  Mixed   CASE  Org "), (NameOID.COMMON_NAME, "x")],
        [(NameOID.COMMON_NAME, "Ünïcödé Name"), (NameOID.EMAIL_ADDRESS, "Admin@Example.ORG")],
        [(NameOID.DOMAIN_COMPONENT, "example"), (NameOID.DOMAIN_COMPONENT, "org"), (NameOID.COMMON_NAME, "dc")],
    ],
)
def test_subject_hash_matches_openssl(attributes, tmp_path, material):
    subject = x509.Name([x509.NameAttribute(oid, value) for oid, value in attributes])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(material.ca_key.public_key())
        .serial_number(1)
        .not_valid_before(material.ca.not_valid_before_utc)
        .not_valid_after(material.ca.not_valid_after_utc)
        .sign(material.ca_key, generate.hashes.SHA256())
    )
    path = tmp_path / "cert.pem"
    path.write_bytes(pem(certificate))
    openssl = run(["openssl", "x509", "-hash", "-noout", "-in", str(path)], timeout=10).stdout_text.strip()
    assert pki.openssl_subject_hash(certificate.subject) == openssl


def test_multi_valued_rdn_hash_matches_openssl(tmp_path, material):
    subject = x509.Name(
        [
            x509.RelativeDistinguishedName(
                [x509.NameAttribute(NameOID.COMMON_NAME, "B"), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "a")]
            )
        ]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(material.ca_key.public_key())
        .serial_number(2)
        .not_valid_before(material.ca.not_valid_before_utc)
        .not_valid_after(material.ca.not_valid_after_utc)
        .sign(material.ca_key, generate.hashes.SHA256())
    )
    path = tmp_path / "cert.pem"
    path.write_bytes(pem(certificate))
    openssl = run(["openssl", "x509", "-hash", "-noout", "-in", str(path)], timeout=10).stdout_text.strip()
    assert pki.openssl_subject_hash(certificate.subject) == openssl


def test_generated_dh_parameters_reload(dh_2048):
    again = pki.load_dh_parameters(pki.dh_parameters_pem(dh_2048))
    assert pki.dh_bits(again) == 2048
    assert pki.dh_parameters_pem(again).startswith(b"-----BEGIN DH PARAMETERS-----")
