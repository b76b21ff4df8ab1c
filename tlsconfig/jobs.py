"""Background work of the certificate store: generation jobs, deployment requests and the expiry check.

Each `perform_*` runs inside mailadmin.work.execute: the row is claimed first, and a rerun after
a lost worker finds its own earlier result on the row and does nothing twice. Generation needs no
MTA and runs on the central worker; a deployment writes files on the MTA host, so its performer
lives with the agent's side (tlsconfig/agentside.py) and this module stays importable by pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from mailadmin import audit, work
from mailadmin.models import AuditEvent, MailServer
from tlsconfig import generate, pki, store
from tlsconfig.models import Certificate, CertificateRequest, Deployment, Origin, TlsJob

# How long a 2048-bit safe-prime search usually takes here; only used to move the progress bar.
DH_EXPECTED_SECONDS = {2048: 30.0, 3072: 180.0, 4096: 600.0}
WARN_DAYS = (30, 7)


def start_job(server: MailServer, kind: str, params: dict, *, request) -> TlsJob:
    with transaction.atomic():
        job = TlsJob.objects.create(server=server, kind=kind, params=params, created_by=request.user)
        audit.record(
            f"generate {job.get_kind_display()}",
            request=request,
            server=server,
            target=params.get("common_name", "") or f"{params.get('bits', '')} bits",
            outcome=AuditEvent.Outcome.QUEUED,
        )
        work.dispatch_on_commit(job)
    return job


def perform_tls_job(job: TlsJob) -> None:
    if job.certificate_id or job.request_id or job.dh_parameters_id:
        return  # an earlier attempt stored its result and was lost before it could say so
    server, params, user = job.server, job.params, job.created_by
    if job.kind == TlsJob.Kind.DH:
        bits = int(params.get("bits", 2048))
        expected = DH_EXPECTED_SECONDS.get(bits, 600.0)

        def heartbeat(elapsed: float) -> None:
            percent = min(95, 5 + int(90 * elapsed / (elapsed + expected)))
            work.report_progress(job, percent, f"searching for a {bits}-bit safe prime: {elapsed:.0f} s so far")

        work.report_progress(job, 5, f"searching for a {bits}-bit safe prime")
        parameters = generate.generate_dh_parameters(bits, heartbeat)
        with transaction.atomic():
            job.dh_parameters = store.save_dh_parameters(server, parameters, Origin.GENERATED, user)
            job.output = f"{bits}-bit DH parameters ({job.dh_parameters.sha256[:16]}…)"
            job.save(update_fields=["dh_parameters", "output"])
        return
    work.report_progress(job, 10, f"generating a {generate.KEY_CHOICES[params['key_type']]} key")
    key = generate.new_private_key(params["key_type"])
    common_name, sans = params["common_name"], params.get("sans", [])
    if job.kind == TlsJob.Kind.CSR:
        csr = generate.make_csr(key, common_name, sans)
        with transaction.atomic():
            key_row = store.save_private_key(server, key, Origin.GENERATED, user)
            job.request = CertificateRequest.objects.create(
                server=server,
                private_key=key_row,
                pem=pki.csr_pem(csr),
                subject=csr.subject.rfc4514_string()[:1000],
                sans=sans,
            )
            job.output = "CSR ready: take it to your CA, then upload the certificate it returns."
            job.save(update_fields=["request", "output"])
        return
    work.report_progress(job, 60, "signing the certificate")
    ca = None
    if job.kind == TlsJob.Kind.CA:
        certificate = generate.make_ca(key, common_name, params["days"])
    else:
        ca = Certificate.objects.get(pk=params["ca"], server=server, role=Certificate.Role.CA)
        if ca.private_key is None:
            raise pki.PkiError(f"The CA {ca.cn_subject} has no private key in the store; it cannot sign.")
        certificate = generate.issue(
            pki.load_pem_certificate(ca.pem),
            store.load_stored_key(ca.private_key),
            key.public_key(),
            common_name,
            sans,
            params["days"],
            client=job.kind == TlsJob.Kind.CLIENT,
        )
    with transaction.atomic():
        row = store.certificate_row(server, job.kind, certificate, [], Origin.GENERATED, user)
        row.private_key = store.save_private_key(server, key, Origin.GENERATED, user)
        row.issuer_ca = ca
        row.save()
        job.certificate = row
        job.output = f"{row.get_role_display()} {row.subject}, valid until {row.not_after:%Y-%m-%d}"
        job.save(update_fields=["certificate", "output"])
    audit.record(
        f"generated {row.get_role_display()}", user=user, server=server, target=row.subject[:300], detail=row.sha256
    )


def start_deployment(server: MailServer, choices: dict, *, request) -> Deployment:
    server_certificate = choices["server_certificate"]
    with transaction.atomic():
        row = Deployment.objects.create(
            server=server,
            ca=server_certificate.issuer_ca,
            server_certificate=server_certificate,
            client_certificate=choices.get("client_certificate"),
            crl=choices.get("crl"),
            dh_parameters=choices.get("dh_parameters"),
            tls_srv_options=choices.get("tls_srv_options") or "",
            timeout_starttls=choices.get("timeout_starttls") or "",
            created_by=request.user,
        )
        audit.record(
            "TLS deploy requested",
            request=request,
            server=server,
            target=server_certificate.subject[:300],
            outcome=AuditEvent.Outcome.QUEUED,
        )
        work.dispatch_on_commit(row)
    return row


@dataclass(frozen=True)
class ExpiryWarning:
    what: str
    when: datetime
    level: str  # "danger" once expired or within 7 days, "warning" within 30

    @property
    def expired(self) -> bool:
        return self.when <= timezone.now()


def expiry_level(when: datetime, now: datetime) -> str:
    if when <= now + timedelta(days=WARN_DAYS[1]):
        return "danger"
    if when <= now + timedelta(days=WARN_DAYS[0]):
        return "warning"
    return ""


def expiry_warnings(server: MailServer, now: datetime | None = None) -> list[ExpiryWarning]:
    now = now or timezone.now()
    horizon = now + timedelta(days=WARN_DAYS[0])
    warnings = [
        ExpiryWarning(str(certificate), certificate.not_after, expiry_level(certificate.not_after, now))
        for certificate in server.tls_certificates.filter(not_after__lte=horizon)
    ]
    warnings += [
        ExpiryWarning(f"CRL of {crl.issuer}", crl.next_update, expiry_level(crl.next_update, now))
        for crl in server.tls_crls.filter(next_update__lte=horizon)
    ]
    return sorted(warnings, key=lambda warning: warning.when)


def check_expiry() -> dict:
    """The daily check: one audit row per server that has something expiring or expired."""
    counts = {}
    for server in MailServer.objects.all():
        warnings = expiry_warnings(server)
        if warnings:
            audit.record(
                "TLS expiry warning",
                server=server,
                outcome=AuditEvent.Outcome.FAILED if any(w.expired for w in warnings) else AuditEvent.Outcome.OK,
                detail="\n".join(
                    f"{w.what}: {'expired' if w.expired else 'expires'} {w.when:%Y-%m-%d}" for w in warnings
                ),
            )
        counts[server.name] = len(warnings)
    return counts
