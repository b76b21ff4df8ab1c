"""Any bytes uploaded as a certificate (bundle), private key, CRL or DH parameters.

Every upload parser sees every input, so each also meets the other kinds of file it must name as
the wrong kind. The only refusal is PkiError, whose message the admin reads; whatever is accepted
yields the facts the pages show and the PEM sendmail is given without raising anything else.
"""

from functools import partial

from cryptography.hazmat.primitives.asymmetric import ec

from tlsconfig import generate, pki

PASSPHRASE = "fuzz passphrase"
# The CA's key is derived from a constant, so seeds it signed (a certificate, a CRL) keep verifying
# in every run and reach the signature and chain checks, not just "issued by someone else".
CA_KEY = ec.derive_private_key(0xF022, ec.SECP256R1())
CA = generate.make_ca(CA_KEY, "Fuzz CA", days=36500)


def certificate_upload(data: bytes) -> None:
    leaf, *chain = pki.load_certificates(data)
    pki.certificate_facts(leaf)
    for certificate in (leaf, *chain):
        pki.certificate_pem(certificate)
    pki.validity_problem(leaf)
    pki.is_ca(leaf)
    pki.check_public_key(leaf.public_key(), "certificate's public key")
    pki.verify_chain(leaf, chain, CA)


def key_upload(data: bytes, passphrase: str = "") -> None:
    key = pki.load_private_key(data, passphrase)
    pki.private_key_pem(key)
    pki.key_matches(CA, key)


def crl_upload(data: bytes) -> None:
    crl = pki.load_crl(data)
    pki.crl_facts(crl)
    pki.crl_pem(crl)
    pki.check_crl_issuer(crl, CA)


def dh_upload(data: bytes) -> None:
    parameters = pki.load_dh_parameters(data)
    pki.dh_parameters_pem(parameters)
    pki.dh_bits(parameters)


UPLOADS = (certificate_upload, key_upload, partial(key_upload, passphrase=PASSPHRASE), crl_upload, dh_upload)


def check(data: bytes) -> None:
    for upload in UPLOADS:
        try:
            upload(data)
        except pki.PkiError as refusal:
            assert str(refusal)
