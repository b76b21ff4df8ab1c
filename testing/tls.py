"""Driving the TLS console as the tests do: uploads through the real form, and generation jobs started from
the console and run in this process, the way the worker runs them."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile

from mailadmin import work
from tlsconfig import tasks
from tlsconfig.models import TlsJob


def post(
    client, server, kind, data, *, key=None, passphrase="", ca=None, name="upload.pem", key_name="key.pem", **extra
):
    fields = {"kind": kind, "file": SimpleUploadedFile(name, data), "passphrase": passphrase, **extra}
    if key is not None:
        fields["key_file"] = SimpleUploadedFile(key_name, key)
    if ca is not None:
        fields["ca"] = str(ca.pk)
    return client.post(f"/servers/{server.name}/tls/upload/send/", fields)


def start(client, server, **fields) -> TlsJob:
    response = client.post(f"/servers/{server.name}/tls/generate/", fields)
    assert response.status_code == 302, response.content.decode()[:3000]
    job = TlsJob.objects.latest("pk")
    assert response["Location"] == f"/tls/jobs/{job.pk}/"
    return job


def run(job: TlsJob) -> TlsJob:
    assert tasks.run_tls_job(job.pk) == work.WorkStatus.DONE
    job.refresh_from_db()
    return job
