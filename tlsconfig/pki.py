"""Certificates, keys, CRLs and DH parameters: parsing, the facts a page shows, and the checks an upload must pass.

Pure functions over bytes and `cryptography` objects; nothing here touches the database or
the disk. Every refusal is a PkiError whose message says what was wrong in the admin's terms.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InternalError, InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dh, ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Certificates, keys and DH parameters are a few KiB; anything far larger is not one of them.
MAX_PEM_BYTES = 64 * 1024
MAX_CRL_BYTES = 1024 * 1024
MIN_RSA_BITS = 2048
MIN_DH_BITS = 2048
# Curves OpenSSL 3 (and so sendmail) negotiates for ECDSA server keys.
ACCEPTED_CURVES = {"secp256r1": 256, "secp384r1": 384, "secp521r1": 521}

PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 .]+)-----\r?\n(.*?)\r?\n-----END \1-----", re.DOTALL)
KEY_LABELS = {"PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "DSA PRIVATE KEY"}
DH_LABELS = {"DH PARAMETERS", "X9.42 DH PARAMETERS"}
# What cryptography raises, often only when a part is first read, for a file it cannot use; the
# TypeError is a name attribute whose string type does not fit its OID (a BIT STRING common name).
UNREADABLE = (
    ValueError,
    TypeError,
    UnsupportedAlgorithm,
    x509.InvalidVersion,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
)
# A traditional encrypted key whose AES IV is under 16 bytes: cryptography 50 panics decrypting it, and
# its PanicException is a BaseException that no refusal here would catch.
SHORT_AES_IV = re.compile(rb"DEK-Info:[ \t]*AES-[0-9]+-CBC[ \t]*,[ \t]*[0-9A-Fa-f]{0,31}(?![0-9A-Fa-f])")
# Decrypting a PKCS#8 key costs what the file asks for: cryptography 50 panics on an iteration count
# above 2**31 - 1, spends minutes on one just below, and lets scrypt allocate gigabytes. OpenSSL and
# cryptography write 2,048 iterations, or scrypt at 16,384 x 8 x 1.
MAX_KEY_DERIVATION_WORK = 2**22
LABEL_MEANING = {
    "CERTIFICATE": "a certificate",
    "TRUSTED CERTIFICATE": "a certificate",
    "X509 CRL": "a certificate revocation list (CRL)",
    "CERTIFICATE REQUEST": "a certificate signing request (CSR)",
    "NEW CERTIFICATE REQUEST": "a certificate signing request (CSR)",
    "PUBLIC KEY": "a public key",
    "RSA PUBLIC KEY": "a public key",
    **{label: "a private key" for label in KEY_LABELS},
    **{label: "DH parameters" for label in DH_LABELS},
}


class PkiError(ValueError):
    """An upload or a generated object that cannot be used; the message is shown to the admin."""


# --- reading bytes ------------------------------------------------------------------------------


def check_size(data: bytes, what: str, limit: int = MAX_PEM_BYTES) -> None:
    if not data or not data.strip():
        raise PkiError(f"The {what} file is empty.")
    if len(data) > limit:
        raise PkiError(f"The {what} file is {len(data):,} bytes; the limit is {limit:,} bytes.")


def pem_blocks(data: bytes) -> list[tuple[str, bytes]]:
    """(label, DER) for each PEM block; a block whose base64 does not decode is an error, not skipped."""
    blocks = []
    for match in PEM_BLOCK.finditer(data):
        label = match.group(1).decode("ascii")
        body = match.group(2)
        if b":" in body:
            # Proc-Type/DEK-Info headers: a traditional encrypted key. The key loader reads these itself.
            blocks.append((label, b""))
            continue
        try:
            der = base64.b64decode(b"".join(body.split()), validate=True)
        except (binascii.Error, ValueError):
            raise PkiError(f"The PEM block “{label}” is damaged: its base64 text does not decode.") from None
        blocks.append((label, der))
    return blocks


def looks_like_pem(data: bytes) -> bool:
    return b"-----BEGIN " in data


def what_this_is(data: bytes) -> str:
    """A description of what a file holds, used to name the mistake when it is not what was expected."""
    if looks_like_pem(data):
        labels = [label for label, _ in pem_blocks(data)]
        if labels:
            return LABEL_MEANING.get(labels[0], f"a PEM block labelled “{labels[0]}”")
        return "damaged PEM text (a BEGIN line without a matching END line)"
    with warnings.catch_warnings():
        # cryptography deprecates finite-field DH; telling DH parameters apart still needs their loader.
        warnings.simplefilter("ignore")
        loaders = (
            ("a certificate", x509.load_der_x509_certificate),
            ("a private key", lambda d: serialization.load_der_private_key(d, None)),
            ("a certificate revocation list (CRL)", x509.load_der_x509_crl),
            ("a certificate signing request (CSR)", x509.load_der_x509_csr),
            ("DH parameters", serialization.load_der_parameters),
        )
        for meaning, loader in loaders:
            try:
                loader(data)
            except TypeError:
                return meaning  # an encrypted DER key: it parsed far enough to ask for a password
            except (ValueError, UnsupportedAlgorithm, x509.InvalidVersion):
                continue
            return meaning
    return "not a certificate, key, CRL or DH parameters in PEM or DER form"


def wrong_kind(expected: str, data: bytes) -> PkiError:
    found = what_this_is(data)
    if found.startswith(("not a ", "damaged")):
        return PkiError(f"Expected {expected}, but the file is {found}.")
    return PkiError(f"Expected {expected}, but the file holds {found}.")


# --- certificates -------------------------------------------------------------------------------


def load_certificates(data: bytes, what: str = "certificate") -> list[x509.Certificate]:
    """One certificate (DER) or a PEM bundle: the first is the subject, the rest its chain."""
    check_size(data, what)
    if looks_like_pem(data):
        blocks = pem_blocks(data)
        if not blocks or any(label not in ("CERTIFICATE", "TRUSTED CERTIFICATE") for label, _ in blocks):
            raise wrong_kind("a certificate", data)
        ders = [der for _, der in blocks]
    else:
        ders = [data]
    certificates = []
    for der in ders:
        certificate = None
        try:
            certificate = x509.load_der_x509_certificate(der)
            # Loading parses lazily: reading every fact the upload uses is the check (damaged names,
            # keys, duplicate or badly encoded extensions), or they would raise later, in the upload.
            certificate_facts(certificate)
        except UNREADABLE as exc:
            if certificate is None and len(ders) == 1 and not looks_like_pem(data):
                raise wrong_kind("a certificate", data) from exc
            raise PkiError(f"The certificate is damaged and cannot be read ({short(exc)}).") from exc
        certificates.append(certificate)
    return certificates


def short(exc: Exception) -> str:
    text = str(exc).split("\n")[0].strip()
    return text[:160] or type(exc).__name__


def common_names(name: x509.Name) -> list[str]:
    return [str(attr.value) for attr in name.get_attributes_for_oid(NameOID.COMMON_NAME)]


def public_key_facts(key) -> tuple[str, int]:
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "ECDSA", key.curve.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 456
    return type(key).__name__, 0


def spki_sha256(public_key) -> str:
    """Fingerprint of the public key itself, shared by a private key, its CSR and its certificates."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def subject_alt_names(certificate: x509.Certificate | x509.CertificateSigningRequest) -> list[str]:
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    names = []
    for general_name in extension.value:
        if isinstance(general_name, x509.DNSName):
            names.append(f"DNS:{general_name.value}")
        elif isinstance(general_name, x509.IPAddress):
            names.append(f"IP:{general_name.value}")
        elif isinstance(general_name, x509.RFC822Name):
            names.append(f"email:{general_name.value}")
        else:
            names.append(f"{type(general_name).__name__}:{general_name.value}")
    return names


KEY_USAGE_FLAGS = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
)
EKU_NAMES = {
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
    ExtendedKeyUsageOID.CODE_SIGNING: "codeSigning",
}


def key_usage(certificate: x509.Certificate) -> list[str]:
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return []
    return [flag for flag in KEY_USAGE_FLAGS if getattr(usage, flag)]


def extended_key_usage(certificate: x509.Certificate) -> list[str]:
    try:
        usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return []
    return [EKU_NAMES.get(oid, oid.dotted_string) for oid in usage]


def is_ca(certificate: x509.Certificate) -> bool:
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


@dataclass(frozen=True)
class CertificateFacts:
    subject: str
    issuer: str
    cn_subject: str
    cn_issuer: str
    sans: list[str]
    serial: str
    sha256: str
    not_before: datetime
    not_after: datetime
    key_type: str
    key_bits: int
    public_sha256: str
    key_usage: list[str] = field(default_factory=list)
    extended_key_usage: list[str] = field(default_factory=list)
    is_ca: bool = False
    self_signed: bool = False


def certificate_facts(certificate: x509.Certificate) -> CertificateFacts:
    key = certificate.public_key()
    key_type, key_bits = public_key_facts(key)
    return CertificateFacts(
        subject=certificate.subject.rfc4514_string(),
        issuer=certificate.issuer.rfc4514_string(),
        cn_subject=", ".join(common_names(certificate.subject)),
        cn_issuer=", ".join(common_names(certificate.issuer)),
        sans=subject_alt_names(certificate),
        serial=f"{certificate.serial_number:x}",
        sha256=certificate.fingerprint(hashes.SHA256()).hex(),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        key_type=key_type,
        key_bits=key_bits,
        public_sha256=spki_sha256(key),
        key_usage=key_usage(certificate),
        extended_key_usage=extended_key_usage(certificate),
        is_ca=is_ca(certificate),
        self_signed=certificate.subject == certificate.issuer and signed_by(certificate, certificate),
    )


def validity_problem(certificate: x509.Certificate, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    if certificate.not_valid_after_utc < now:
        return f"expired on {certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
    if certificate.not_valid_before_utc > now:
        return f"not valid before {certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
    return ""


def check_public_key(key, what: str) -> None:
    key_type, bits = public_key_facts(key)
    if key_type == "RSA" and bits < MIN_RSA_BITS:
        raise PkiError(f"The {what} is RSA with {bits} bits; at least {MIN_RSA_BITS} bits are required.")
    if key_type == "ECDSA" and key.curve.name not in ACCEPTED_CURVES:
        raise PkiError(f"The {what} uses the curve {key.curve.name}; use one of {', '.join(sorted(ACCEPTED_CURVES))}.")
    if key_type not in ("RSA", "ECDSA"):
        raise PkiError(f"The {what} is {key_type}; sendmail's STARTTLS needs an RSA or ECDSA key.")


def signed_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def verify_chain(
    certificate: x509.Certificate, intermediates: list[x509.Certificate], ca: x509.Certificate
) -> list[x509.Certificate]:
    """The path from the certificate up to the chosen CA through the given intermediates, or PkiError."""
    path = [certificate]
    pool = list(intermediates)
    current = certificate
    for _ in range(len(intermediates) + 1):
        if signed_by(current, ca):
            return path
        step = next((candidate for candidate in pool if signed_by(current, candidate)), None)
        if step is None:
            break
        pool.remove(step)
        path.append(step)
        current = step
    raise PkiError(
        f"The certificate does not verify to the chosen CA “{ca.subject.rfc4514_string()}”: "
        f"it was issued by “{current.issuer.rfc4514_string()}”"
        + ("" if current.issuer != ca.subject else ", and the signature does not match the CA's key")
        + "."
    )


# --- private keys -------------------------------------------------------------------------------


def load_private_key(data: bytes, passphrase: str = ""):
    """A private key from PEM (PKCS#8, PKCS#1, SEC1, encrypted or not) or DER."""
    check_size(data, "private key")
    password = passphrase.encode() if passphrase else None
    pem = looks_like_pem(data)
    key_der = data
    if pem:
        blocks = pem_blocks(data)
        if not blocks or blocks[0][0] not in KEY_LABELS:
            raise wrong_kind("a private key", data)
        if len(blocks) > 1:
            raise PkiError("The key file holds more than one PEM block; upload the private key on its own.")
        if SHORT_AES_IV.search(data):
            raise PkiError("The private key is damaged: its DEK-Info header gives AES an IV shorter than 16 bytes.")
        key_der = blocks[0][1]
    if password is not None and key_derivation_work(key_der) > MAX_KEY_DERIVATION_WORK:
        raise PkiError(
            f"The private key's encryption asks for more than {MAX_KEY_DERIVATION_WORK:,} rounds of key "
            "derivation; decrypt it with openssl first, or re-encrypt it with fewer iterations."
        )
    loader = serialization.load_pem_private_key if pem else serialization.load_der_private_key
    try:
        key = loader(data, password=password)
    except TypeError as exc:
        if password is None:
            raise PkiError("The private key is encrypted: enter its passphrase.") from exc
        raise PkiError("A passphrase was given, but the private key is not encrypted; leave it empty.") from exc
    except ValueError as exc:
        if password is not None and encrypted_key(data):
            raise PkiError("The passphrase is wrong: the private key could not be decrypted with it.") from exc
        if not pem:
            raise wrong_kind("a private key", data) from exc
        raise PkiError(f"The private key is damaged and cannot be read ({short(exc)}).") from exc
    except UnsupportedAlgorithm as exc:
        raise PkiError(f"The private key uses an algorithm this console cannot read ({short(exc)}).") from exc
    except InternalError as exc:  # e.g. an X448 OID on an X25519-sized key: OpenSSL refuses to set it up
        raise PkiError("The private key is damaged: OpenSSL cannot make a key of its type from its bytes.") from exc
    check_public_key(key.public_key(), "private key")
    return key


def encrypted_key(data: bytes) -> bool:
    if b"ENCRYPTED" in data[:200] or b"Proc-Type: 4,ENCRYPTED" in data:
        return True
    try:
        serialization.load_der_private_key(data, password=None)
    except TypeError:
        return True
    except (ValueError, UnsupportedAlgorithm):
        return False
    return False


def der_items(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(tag, content) of each DER element in a row, up to the first one that does not fit."""
    while len(data) >= 2:
        length, start = data[1], 2
        if length & 0x80:
            start += length & 0x7F
            length = int.from_bytes(data[2:start], "big")
        if start + length > len(data):
            return
        yield data[0], data[start : start + length]
        data = data[start + length :]


def key_derivation_work(der_key: bytes) -> int:
    """For a PKCS#8 EncryptedPrivateKeyInfo, the product of the integers in its encryption parameters
    (iteration count; scrypt's cost, block size and parallelism); 0 for anything else."""
    outer = list(der_items(der_key))
    fields = list(der_items(outer[0][1])) if len(outer) == 1 and outer[0][0] == 0x30 else []
    if [tag for tag, _ in fields] != [0x30, 0x04]:
        return 0
    work, pending = 1, [fields[0][1]]
    while pending:
        for tag, content in der_items(pending.pop()):
            if tag == 0x02:
                work *= max(1, int.from_bytes(content, "big"))
            elif tag & 0x20:
                pending.append(content)
    return work


def private_key_pem(key) -> bytes:
    """Unencrypted PKCS#8 PEM: the only form sendmail can read (it has no way to ask for a passphrase)."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def key_matches(certificate: x509.Certificate, key) -> bool:
    return spki_sha256(certificate.public_key()) == spki_sha256(key.public_key())


# --- CRLs and DH parameters -----------------------------------------------------------------------


def load_crl(data: bytes) -> x509.CertificateRevocationList:
    check_size(data, "CRL", MAX_CRL_BYTES)
    if looks_like_pem(data):
        labels = [label for label, _ in pem_blocks(data)]
        if labels != ["X509 CRL"]:
            raise wrong_kind("a certificate revocation list (CRL)", data)
    crl = None
    try:
        crl = x509.load_pem_x509_crl(data) if looks_like_pem(data) else x509.load_der_x509_crl(data)
        # Loading parses lazily: a damaged issuer name or entry would only raise later, in the upload.
        crl_facts(crl)
    except UNREADABLE as exc:
        if crl is None and not looks_like_pem(data):
            raise wrong_kind("a certificate revocation list (CRL)", data) from exc
        raise PkiError(f"The CRL is damaged and cannot be read ({short(exc)}).") from exc
    return crl


def check_crl_issuer(crl: x509.CertificateRevocationList, ca: x509.Certificate) -> None:
    if crl.issuer != ca.subject:
        raise PkiError(
            f"The CRL was issued by “{crl.issuer.rfc4514_string()}”, not by the chosen CA "
            f"“{ca.subject.rfc4514_string()}”."
        )
    try:
        valid = crl.is_signature_valid(ca.public_key())
    except (TypeError, ValueError, UnsupportedAlgorithm):
        valid = False
    if not valid:
        raise PkiError("The CRL names the chosen CA as its issuer, but its signature was not made with the CA's key.")


@dataclass(frozen=True)
class CrlFacts:
    issuer: str
    last_update: datetime
    next_update: datetime | None
    revoked: int
    sha256: str


def crl_facts(crl: x509.CertificateRevocationList) -> CrlFacts:
    der = crl.public_bytes(serialization.Encoding.DER)
    return CrlFacts(
        issuer=crl.issuer.rfc4514_string(),
        last_update=crl.last_update_utc,
        next_update=crl.next_update_utc,
        revoked=len(crl),
        sha256=hashlib.sha256(der).hexdigest(),
    )


def load_dh_parameters(data: bytes) -> dh.DHParameters:
    check_size(data, "DH parameters")
    if looks_like_pem(data):
        labels = [label for label, _ in pem_blocks(data)]
        if len(labels) != 1 or labels[0] not in DH_LABELS:
            raise wrong_kind("DH parameters", data)
    with warnings.catch_warnings():
        # cryptography deprecates finite-field DH; sendmail still reads these parameters.
        warnings.simplefilter("ignore")
        try:
            loader = serialization.load_pem_parameters if looks_like_pem(data) else serialization.load_der_parameters
            parameters = loader(data)
        except (ValueError, UnsupportedAlgorithm) as exc:
            if not looks_like_pem(data):
                raise wrong_kind("DH parameters", data) from exc
            raise PkiError(f"The DH parameters are damaged and cannot be read ({short(exc)}).") from exc
        if not isinstance(parameters, dh.DHParameters):
            raise PkiError("Expected DH parameters, but the file holds other parameters.")
        numbers = parameters.parameter_numbers()
        bits = numbers.p.bit_length()
        if bits < MIN_DH_BITS:
            raise PkiError(f"The DH parameters have {bits} bits; at least {MIN_DH_BITS} bits are required.")
        try:
            # Loading only parses; building from the numbers runs OpenSSL's DH_check (prime p, usable g).
            dh.DHParameterNumbers(numbers.p, numbers.g, numbers.q).parameters()
        except ValueError as exc:
            raise PkiError(
                "The DH parameters fail OpenSSL's check: p is not a suitable prime for generator g."
            ) from exc
    return parameters


def dh_parameters_pem(parameters: dh.DHParameters) -> bytes:
    return parameters.parameter_bytes(serialization.Encoding.PEM, serialization.ParameterFormat.PKCS3)


def dh_bits(parameters: dh.DHParameters) -> int:
    return parameters.parameter_numbers().p.bit_length()


def certificate_pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def load_pem_certificate(text: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(text.encode("ascii"))


# --- OpenSSL's subject-name hash (the <hash>.0 names of a CACertPath directory) ----------------------

# ASN.1 string types X509_NAME_hash canonicalises (OpenSSL's ASN1_MASK_CANON); others keep their encoding.
CANONICAL_STRING_TAGS = {12, 19, 20, 22, 26, 28, 30}
ASCII_SPACE = b" \t\n\v\f\r"


def der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def der(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + der_length(len(content)) + content


def der_oid(dotted: str) -> bytes:
    arcs = [int(arc) for arc in dotted.split(".")]
    body = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return der(0x06, bytes(body))


def canonical_text(value: str) -> bytes:
    """What OpenSSL compares names by: UTF-8, ASCII-lowercased, outer whitespace gone, inner runs as one space."""
    raw = value.encode("utf-8").strip(ASCII_SPACE)
    collapsed = re.sub(rb"[ \t\n\v\f\r]+", b" ", raw)
    return bytes(byte + 32 if 65 <= byte <= 90 else byte for byte in collapsed)


def openssl_subject_hash(name: x509.Name) -> str:
    """X509_NAME_hash: SHA-1 of the canonical DER of the RDNs (no outer SEQUENCE), first 4 bytes little-endian."""
    encoded = b""
    for rdn in name.rdns:
        attributes = []
        for attribute in rdn:
            tag = attribute._type.value
            if tag in CANONICAL_STRING_TAGS:
                value = der(0x0C, canonical_text(str(attribute.value)))
            else:
                raw = attribute.value if isinstance(attribute.value, bytes) else str(attribute.value).encode()
                value = der(tag, raw)
            attributes.append(der(0x30, der_oid(attribute.oid.dotted_string) + value))
        encoded += der(0x31, b"".join(sorted(attributes)))
    digest = hashlib.sha1(encoded).digest()  # noqa: S324 - OpenSSL's file naming, not a security use
    return f"{int.from_bytes(digest[:4], 'little'):08x}"


def crl_pem(crl: x509.CertificateRevocationList) -> str:
    return crl.public_bytes(serialization.Encoding.PEM).decode("ascii")


def csr_pem(csr: x509.CertificateSigningRequest) -> str:
    return csr.public_bytes(serialization.Encoding.PEM).decode("ascii")
