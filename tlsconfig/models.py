"""The certificate store of a server: certificates, private keys (encrypted), CRLs, DH parameters,
CSRs, and the work rows that generate and deploy them."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from mailadmin.models import ConfigBuild, MailServer
from mailadmin.work import WorkItem


class Origin(models.TextChoices):
    UPLOADED = "uploaded", "uploaded"
    GENERATED = "generated", "generated here"


class PrivateKey(models.Model):
    """A private key, Fernet-encrypted; `public_sha256` pairs it with its certificates and CSRs."""

    server = models.ForeignKey(MailServer, on_delete=models.CASCADE, related_name="tls_keys")
    key_type = models.CharField(max_length=10)
    key_bits = models.PositiveIntegerField()
    public_sha256 = models.CharField(max_length=64, db_index=True)
    ciphertext = models.BinaryField(editable=False)
    origin = models.CharField(max_length=10, choices=Origin.choices)
    created = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"{self.key_type} {self.key_bits} key {self.public_sha256[:12]}"


class Certificate(models.Model):
    """A CA, server or client certificate as PEM, with the facts read from it at upload time."""

    class Role(models.TextChoices):
        CA = "ca", "CA certificate"
        SERVER = "server", "server certificate"
        CLIENT = "client", "client certificate"

    server = models.ForeignKey(MailServer, on_delete=models.CASCADE, related_name="tls_certificates")
    role = models.CharField(max_length=10, choices=Role.choices)
    pem = models.TextField()
    chain_pem = models.TextField(blank=True, help_text="Intermediate certificates sent along with this one.")
    private_key = models.ForeignKey(
        PrivateKey, null=True, blank=True, on_delete=models.PROTECT, related_name="certificates"
    )
    issuer_ca = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="issued",
        help_text="The CA it verifies to.",
    )
    subject = models.CharField(max_length=1000)
    issuer = models.CharField(max_length=1000)
    cn_subject = models.CharField(max_length=500, blank=True)
    cn_issuer = models.CharField(max_length=500, blank=True)
    sans = models.JSONField(default=list, blank=True)
    serial = models.CharField(max_length=80)
    sha256 = models.CharField(max_length=64)
    not_before = models.DateTimeField()
    not_after = models.DateTimeField(db_index=True)
    key_type = models.CharField(max_length=10)
    key_bits = models.PositiveIntegerField()
    public_sha256 = models.CharField(max_length=64, db_index=True)
    key_usage = models.JSONField(default=list, blank=True)
    extended_key_usage = models.JSONField(default=list, blank=True)
    is_ca = models.BooleanField(default=False)
    self_signed = models.BooleanField(default=False)
    origin = models.CharField(max_length=10, choices=Origin.choices)
    created = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["role", "-not_after", "-id"]
        constraints = [models.UniqueConstraint(fields=["server", "role", "sha256"], name="one_certificate_per_role")]

    def __str__(self) -> str:
        return f"{self.get_role_display()} {self.cn_subject or self.subject} ({self.sha256[:12]})"


class CertificateRevocationList(models.Model):
    server = models.ForeignKey(MailServer, on_delete=models.CASCADE, related_name="tls_crls")
    ca = models.ForeignKey(Certificate, on_delete=models.PROTECT, related_name="crls")
    pem = models.TextField()
    issuer = models.CharField(max_length=1000)
    last_update = models.DateTimeField()
    next_update = models.DateTimeField(null=True, blank=True, db_index=True)
    revoked = models.PositiveIntegerField(default=0)
    sha256 = models.CharField(max_length=64)
    created = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["-last_update", "-id"]

    def __str__(self) -> str:
        return f"CRL of {self.issuer} ({self.last_update:%Y-%m-%d})"


class DhParameters(models.Model):
    server = models.ForeignKey(MailServer, on_delete=models.CASCADE, related_name="tls_dh_parameters")
    pem = models.TextField()
    bits = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    origin = models.CharField(max_length=10, choices=Origin.choices)
    created = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"DH parameters, {self.bits} bits ({self.sha256[:12]})"


class CertificateRequest(models.Model):
    """A CSR made here for an outside CA; its key stays here until the signed certificate is uploaded."""

    server = models.ForeignKey(MailServer, on_delete=models.CASCADE, related_name="tls_requests")
    private_key = models.ForeignKey(PrivateKey, on_delete=models.PROTECT, related_name="requests")
    role = models.CharField(max_length=10, choices=Certificate.Role.choices, default=Certificate.Role.SERVER)
    pem = models.TextField()
    subject = models.CharField(max_length=1000)
    sans = models.JSONField(default=list, blank=True)
    certificate = models.ForeignKey(Certificate, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"CSR {self.subject}"


class TlsJob(WorkItem):
    """Generation of a CA, a server or client certificate, a CSR or DH parameters, in the background."""

    class Kind(models.TextChoices):
        CA = "ca", "private CA"
        SERVER = "server", "server certificate"
        CLIENT = "client", "client certificate"
        CSR = "csr", "certificate signing request"
        DH = "dh", "DH parameters"

    task_name = "tlsconfig.tasks.run_tls_job"

    server = models.ForeignKey(MailServer, on_delete=models.CASCADE, related_name="tls_jobs")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    params = models.JSONField(default=dict, blank=True)
    certificate = models.ForeignKey(Certificate, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    request = models.ForeignKey(CertificateRequest, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    dh_parameters = models.ForeignKey(DhParameters, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    output = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.server} ({self.status})"


class Deployment(WorkItem):
    """Writing the chosen objects into the server's certificate directory and setting the TLS options.

    Runs on the server's own worker (it writes the MTA's files); ends by starting a cf build.
    """

    task_name = "tlsconfig.tasks.run_deployment"

    server = models.ForeignKey(MailServer, on_delete=models.CASCADE, related_name="tls_deployments")
    ca = models.ForeignKey(Certificate, on_delete=models.PROTECT, related_name="+")
    server_certificate = models.ForeignKey(Certificate, on_delete=models.PROTECT, related_name="+")
    client_certificate = models.ForeignKey(
        Certificate, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    crl = models.ForeignKey(
        CertificateRevocationList, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    dh_parameters = models.ForeignKey(DhParameters, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    tls_srv_options = models.CharField(max_length=10, blank=True)
    timeout_starttls = models.CharField(max_length=20, blank=True)
    build = models.ForeignKey(ConfigBuild, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    output = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"TLS deployment on {self.server} ({self.status})"

    def celery_queue(self) -> str:
        return self.server.celery_queue
