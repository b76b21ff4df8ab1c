"""Parsing and checking certificates, keys, CRLs and DH parameters; OpenSSL's subject hash in Python."""

import base64
import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from mailadmin.mta.gateway import run
from testing.pki import der, encrypted_pem, pem
from tlsconfig import generate, pki


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


# Same-length byte patches keep every DER length intact: cryptography loads such a file and raises only
# when the damaged part is first read, which used to be in the upload after load_* accepted the file.
# Found by fuzz/tls_upload.py.
TEST_CA_NAME = b"\x06\x03U\x04\x03\x0c\x07Test CA"
DAMAGED_NAMES = {
    "unexpected tag": b"\x06\x03U\x04\x03\x46\x07Test CA",
    "bit string common name": b"\x06\x03U\x04\x03\x03\x07\x00est CA",
}


@pytest.mark.parametrize("damaged_name", DAMAGED_NAMES.values(), ids=DAMAGED_NAMES.keys())
def test_a_damaged_issuer_name_is_refused_when_loaded(material, damaged_name):
    certificate = der(material.server).replace(TEST_CA_NAME, damaged_name, 1)
    crl = der(material.crl).replace(TEST_CA_NAME, damaged_name, 1)
    assert certificate != der(material.server) and crl != der(material.crl)
    with pytest.raises(pki.PkiError, match="certificate is damaged"):
        pki.load_certificates(certificate)
    with pytest.raises(pki.PkiError, match="CRL is damaged"):
        pki.load_crl(crl)


def test_a_duplicate_extension_is_refused_when_loaded(material):
    # The authority key identifier's OID made the subject key identifier's: two extensions of one kind.
    certificate = der(material.server).replace(b"\x06\x03U\x1d\x23", b"\x06\x03U\x1d\x0e", 1)
    with pytest.raises(pki.PkiError, match="Duplicate"):
        pki.load_certificates(certificate)


def test_an_unknown_version_is_refused(material):
    certificate = der(material.server).replace(b"\xa0\x03\x02\x01\x02", b"\xa0\x03\x02\x01\x21", 1)
    crl = der(material.crl).replace(b"\x02\x01\x01\x30", b"\x02\x01\x21\x30", 1)
    with pytest.raises(pki.PkiError, match="Expected a certificate"):
        pki.load_certificates(certificate)
    with pytest.raises(pki.PkiError, match="Expected a certificate revocation list"):
        pki.load_crl(crl)
    with pytest.raises(pki.PkiError, match="Expected a private key"):
        pki.load_private_key(crl)


def test_a_key_whose_type_does_not_fit_its_bytes_is_refused():
    from cryptography.hazmat.primitives.asymmetric import x25519

    encoded = x25519.X25519PrivateKey.generate().private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    x448_oid_on_x25519_bytes = encoded.replace(b"\x06\x03\x2b\x65\x6e", b"\x06\x03\x2b\x65\x6f", 1)
    assert x448_oid_on_x25519_bytes != encoded
    # cryptography raised its InternalError ("Unknown OpenSSL error"), a 500 on the upload page.
    with pytest.raises(pki.PkiError, match="OpenSSL cannot make a key of its type"):
        pki.load_private_key(x448_oid_on_x25519_bytes)


def test_a_dek_info_iv_too_short_for_aes_is_refused(material):
    protected = material.client_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.BestAvailableEncryption(b"phrase"),
    )
    iv = re.search(rb"DEK-Info: AES-256-CBC,([0-9A-F]{32})", protected).group(1)
    # cryptography 50 panics decrypting with a 12-byte IV; the panic is a BaseException.
    with pytest.raises(pki.PkiError, match="IV shorter than 16 bytes"):
        pki.load_private_key(protected.replace(iv, iv[:24]), "phrase")
    assert pki.key_matches(material.client, pki.load_private_key(protected, "phrase"))


def with_iteration_count(encoded: bytes, iterations: int) -> bytes:
    """DER again, with the INTEGER 2048 (the PBKDF2 iteration count cryptography writes) set to `iterations`."""
    rebuilt = b""
    for tag, content in pki.der_items(encoded):
        if tag == 0x02 and int.from_bytes(content, "big") == 2048:
            content = iterations.to_bytes(iterations.bit_length() // 8 + 1, "big")
        elif tag & 0x20:
            content = with_iteration_count(content, iterations)
        rebuilt += pki.der(tag, content)
    return rebuilt


# 2**31 - 1 rounds of PBKDF2 take minutes; more panic in cryptography 50.
@pytest.mark.parametrize("iterations", [2**31 - 1, 2**32 + 1])
def test_excessive_key_derivation_is_refused_before_it_runs(material, iterations):
    protected = material.client_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"phrase")
    )
    assert pki.key_derivation_work(protected) == 2048
    assert pki.key_matches(material.client, pki.load_private_key(protected, "phrase"))
    # Within the limit the key is derived (another key, so the decryption fails as a wrong passphrase).
    with pytest.raises(pki.PkiError, match="passphrase is wrong"):
        pki.load_private_key(with_iteration_count(protected, 4096), "phrase")
    costly = with_iteration_count(protected, iterations)
    costly_pem = b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n%s-----END ENCRYPTED PRIVATE KEY-----\n" % (
        base64.encodebytes(costly)
    )
    for upload in (costly, costly_pem):
        with pytest.raises(pki.PkiError, match="rounds of key derivation"):
            pki.load_private_key(upload, "phrase")
