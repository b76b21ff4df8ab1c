"""Putting certificates, keys, CRLs and DH parameters into a server's store.

Everything is parsed and checked before the first row is written; a refusal is a PkiError and
leaves the database as it was. Uploaded file names are never used: the content is what counts.
"""

from __future__ import annotations

import hashlib

from django.db import transaction

from mailadmin import audit
from mailadmin.models import MailServer
from tlsconfig import keystore, pki
from tlsconfig.models import (
    Certificate,
    CertificateRequest,
    CertificateRevocationList,
    DhParameters,
    Origin,
    PrivateKey,
)

DATE_CONFIRMATION = "store it although it is not valid now"


def save_private_key(server: MailServer, key, origin: str, user=None) -> PrivateKey:
    public_sha256 = pki.spki_sha256(key.public_key())
    existing = server.tls_keys.filter(public_sha256=public_sha256).first()
    if existing:
        return existing
    key_type, bits = pki.public_key_facts(key.public_key())
    return PrivateKey.objects.create(
        server=server,
        key_type=key_type,
        key_bits=bits,
        public_sha256=public_sha256,
        ciphertext=keystore.seal(pki.private_key_pem(key)),
        origin=origin,
        created_by=user,
    )


def load_stored_key(row: PrivateKey):
    return pki.load_private_key(keystore.reveal(row.ciphertext))


def certificate_row(server: MailServer, role: str, certificate, chain, origin: str, user=None) -> Certificate:
    facts = pki.certificate_facts(certificate)
    return Certificate(
        server=server,
        role=role,
        pem=pki.certificate_pem(certificate),
        chain_pem="".join(pki.certificate_pem(c) for c in chain),
        subject=facts.subject[:1000],
        issuer=facts.issuer[:1000],
        cn_subject=facts.cn_subject[:500],
        cn_issuer=facts.cn_issuer[:500],
        sans=facts.sans,
        serial=facts.serial[:80],
        sha256=facts.sha256,
        not_before=facts.not_before,
        not_after=facts.not_after,
        key_type=facts.key_type,
        key_bits=facts.key_bits,
        public_sha256=facts.public_sha256,
        key_usage=facts.key_usage,
        extended_key_usage=facts.extended_key_usage,
        is_ca=facts.is_ca,
        self_signed=facts.self_signed,
        origin=origin,
        created_by=user,
    )


def check_dates(certificate, accept_out_of_dates: bool) -> None:
    problem = pki.validity_problem(certificate)
    if problem and not accept_out_of_dates:
        raise pki.PkiError(
            f"The certificate {problem}. Nothing was stored: tick “{DATE_CONFIRMATION}” to keep it anyway."
        )


def store_certificate(
    server: MailServer,
    role: str,
    data: bytes,
    *,
    key_data: bytes = b"",
    passphrase: str = "",
    ca: Certificate | None = None,
    accept_out_of_dates: bool = False,
    user=None,
    request=None,
) -> Certificate:
    user = request.user if request is not None else user
    certificates = pki.load_certificates(data)
    leaf, chain = certificates[0], certificates[1:]
    pki.check_public_key(leaf.public_key(), "certificate's public key")
    check_dates(leaf, accept_out_of_dates)
    key = None
    if role == Certificate.Role.CA:
        if not pki.is_ca(leaf):
            raise pki.PkiError("This is not a CA certificate: its basicConstraints do not say CA:TRUE.")
        if ca is not None:
            pki.verify_chain(leaf, chain, pki.load_pem_certificate(ca.pem))
        elif not pki.certificate_facts(leaf).self_signed:
            raise pki.PkiError(
                "This CA certificate is not self-signed: choose the CA that issued it, or upload that one first."
            )
    else:
        if ca is None:
            raise pki.PkiError("Choose the CA this certificate must verify to.")
        pki.verify_chain(leaf, chain, pki.load_pem_certificate(ca.pem))
        if key_data:
            key = pki.load_private_key(key_data, passphrase)
            if not pki.key_matches(leaf, key):
                raise pki.PkiError("The private key does not belong to this certificate: their public keys differ.")
        elif not server.tls_keys.filter(public_sha256=pki.spki_sha256(leaf.public_key())).exists():
            raise pki.PkiError(
                "No private key for this certificate: upload its key with it "
                "(or make a CSR here first, then upload what the CA returns)."
            )
    row = certificate_row(server, role, leaf, chain, Origin.UPLOADED, user)
    if server.tls_certificates.filter(role=role, sha256=row.sha256).exists():
        raise pki.PkiError("This certificate is already in the store.")
    with transaction.atomic():
        if key is not None:
            row.private_key = save_private_key(server, key, Origin.UPLOADED, user)
        else:
            row.private_key = server.tls_keys.filter(public_sha256=row.public_sha256).first()
        row.issuer_ca = ca
        row.save()
        CertificateRequest.objects.filter(
            server=server, private_key__public_sha256=row.public_sha256, certificate__isnull=True
        ).update(certificate=row)
        audit.record(
            f"upload {row.get_role_display()}",
            user=user,
            request=request,
            server=server,
            target=row.subject[:300],
            detail=f"sha256 {row.sha256}" + (", with its private key" if key is not None else ""),
        )
    return row


def store_crl(server: MailServer, data: bytes, ca: Certificate | None, *, user=None, request=None):
    user = request.user if request is not None else user
    crl = pki.load_crl(data)
    if ca is None:
        raise pki.PkiError("Choose the CA whose CRL this is.")
    pki.check_crl_issuer(crl, pki.load_pem_certificate(ca.pem))
    facts = pki.crl_facts(crl)
    with transaction.atomic():
        row = CertificateRevocationList.objects.create(
            server=server,
            ca=ca,
            pem=pki.crl_pem(crl),
            issuer=facts.issuer[:1000],
            last_update=facts.last_update,
            next_update=facts.next_update,
            revoked=facts.revoked,
            sha256=facts.sha256,
            created_by=user,
        )
        audit.record("upload CRL", user=user, request=request, server=server, target=row.issuer[:300])
    return row


def save_dh_parameters(server: MailServer, parameters, origin: str, user=None) -> DhParameters:
    pem = pki.dh_parameters_pem(parameters).decode("ascii")
    return DhParameters.objects.create(
        server=server,
        pem=pem,
        bits=pki.dh_bits(parameters),
        sha256=hashlib.sha256(pem.encode()).hexdigest(),
        origin=origin,
        created_by=user,
    )


def store_dh_parameters(server: MailServer, data: bytes, *, user=None, request=None) -> DhParameters:
    user = request.user if request is not None else user
    parameters = pki.load_dh_parameters(data)
    with transaction.atomic():
        row = save_dh_parameters(server, parameters, Origin.UPLOADED, user)
        audit.record("upload DH parameters", user=user, request=request, server=server, target=f"{row.bits} bits")
    return row
