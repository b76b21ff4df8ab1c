"""Storing an upload (certificate with its key, CRL or DH parameters) from an UploadForm's cleaned
data: one home for what the upload page does, so the API stores exactly as the page stores."""

from __future__ import annotations

from tlsconfig import store


def store_upload(server, data: dict, *, request):
    """The row stored; pki.PkiError when the material is refused (nothing stored)."""
    if data["kind"] == "crl":
        return store.store_crl(server, data["file"], data["ca"], request=request)
    if data["kind"] == "dh":
        return store.store_dh_parameters(server, data["file"], request=request)
    return store.store_certificate(
        server,
        data["kind"],
        data["file"],
        key_data=data["key_file"],
        passphrase=data["passphrase"],
        ca=data["ca"],
        accept_out_of_dates=data["accept_out_of_dates"],
        request=request,
    )
