"""What the API sends back. Read-only views of the rows the pages show; never key material."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from mailadmin.models import AccessEntry, AuditEvent, ConfigBuild, InstallJob, MailServer
from mailqueue.models import QueueAction, QueueMessage
from tlsconfig.models import Certificate, Deployment, TlsJob
from tracking.models import MessageTrace, TraceRecipient


class ServerSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = MailServer
        fields = ["name", "description", "hostname", "smtp_address", "smtp_port", "url"]

    def get_url(self, server) -> str:
        from django.urls import reverse

        return reverse("api:server", args=[server.name])


class DaemonSerializer(serializers.Serializer):
    pid = serializers.IntegerField(allow_null=True)
    process_alive = serializers.BooleanField()
    answering = serializers.BooleanField()
    banner = serializers.CharField(allow_blank=True)
    summary = serializers.CharField()


class SpoolSerializer(serializers.Serializer):
    queued = serializers.IntegerField()
    quarantined = serializers.IntegerField()
    lost = serializers.IntegerField()
    error = serializers.CharField(allow_blank=True)


class ServerStatusSerializer(serializers.Serializer):
    server = ServerSerializer()
    agent_silent_since = serializers.DateTimeField(allow_null=True)
    agent_answering = serializers.BooleanField()
    daemon = DaemonSerializer(allow_null=True)
    spool = SpoolSerializer(allow_null=True)


class QueueMessageSerializer(serializers.ModelSerializer):
    recipients = serializers.SerializerMethodField()

    class Meta:
        model = QueueMessage
        fields = [
            "queue_id",
            "kind",
            "state",
            "sender",
            "recipients",
            "recipient_count",
            "subject",
            "reason",
            "status_message",
            "created",
            "last_attempt",
            "attempts",
            "priority",
            "body_size",
            "dsn",
            "bounce_of",
        ]

    def get_recipients(self, message) -> list[str]:
        return [line for line in message.recipients.splitlines() if line]


class StateCountsSerializer(serializers.Serializer):
    queued = serializers.IntegerField()
    failing = serializers.IntegerField()
    quarantined = serializers.IntegerField()
    lost = serializers.IntegerField()


class QueuePageSerializer(serializers.Serializer):
    total = serializers.IntegerField(help_text="Messages matching the filters.")
    counts = StateCountsSerializer(help_text="The whole queue by state, as of the last index refresh.")
    refreshed = serializers.DateTimeField(allow_null=True)
    next = serializers.CharField(allow_null=True, help_text="The next page's URL; null on the last page.")
    results = QueueMessageSerializer(many=True)


class QueueActionSerializer(serializers.ModelSerializer):
    server = serializers.CharField(source="server.name")
    created_by = serializers.CharField(source="created_by.username", default="")
    url = serializers.SerializerMethodField()

    class Meta:
        model = QueueAction
        fields = [
            "id",
            "url",
            "server",
            "verb",
            "status",
            "progress",
            "progress_note",
            "queue_ids",
            "selector_kind",
            "selector",
            "negate",
            "reason",
            "outcomes",
            "output",
            "error",
            "created",
            "created_by",
            "finished_at",
        ]

    def get_url(self, action) -> str:
        from django.urls import reverse

        return reverse("api:queue_action", args=[action.pk])


@extend_schema_field(OpenApiTypes.STR)
class RawText(serializers.Field):
    """A string exactly as sent: no trimming, no checks of DRF's own, so the page's validators
    alone judge it and a refusal reads the same as on the page."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            raise serializers.ValidationError("Expected a string.")
        return data

    def to_representation(self, value):
        return value


class QueueActionRequestSerializer(serializers.Serializer):
    """The page's action form (mailqueue.forms.SelectedActionForm) plus the filter it acts on."""

    verb = serializers.ChoiceField(choices=["quarantine", "release", "deliver", "delete"])
    ids = serializers.ListField(child=RawText(), required=False, help_text="Queue ids to act on.")
    filter = serializers.DictField(
        child=RawText(),
        required=False,
        help_text="Act on every message matching these list filters (sender, recipient, domain, ...).",
    )
    reason = RawText(required=False, help_text="The quarantine reason.")
    confirmed_count = serializers.IntegerField(required=False, min_value=0)


class AcceptedSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    url = serializers.CharField(help_text="Poll this for the work's status.")


class TraceRecipientSerializer(serializers.ModelSerializer):
    class Meta:
        model = TraceRecipient
        fields = ["address", "status", "status_text", "dsn", "mailer", "relay", "attempts", "last_attempt_at"]


class TraceSerializer(serializers.ModelSerializer):
    server = serializers.CharField(source="server.name")
    recipients = TraceRecipientSerializer(many=True, read_only=True)

    class Meta:
        model = MessageTrace
        fields = [
            "id",
            "server",
            "queue_id",
            "message_id",
            "sender",
            "size",
            "nrcpts",
            "relay",
            "client_address",
            "received_at",
            "last_event_at",
            "status",
            "status_text",
            "quarantine_reason",
            "recipients",
        ]


class TracePageSerializer(serializers.Serializer):
    next = serializers.CharField(allow_null=True)
    results = TraceSerializer(many=True)


class TraceDetailSerializer(serializers.Serializer):
    trace = TraceSerializer()
    journey = TraceSerializer(many=True, help_text="The message on every host, in the order it passed them.")


class AuditEventSerializer(serializers.ModelSerializer):
    server = serializers.CharField(source="server.name", default=None, allow_null=True)

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "created",
            "username",
            "action",
            "server",
            "target",
            "argv",
            "exit_code",
            "outcome",
            "detail",
            "remote_addr",
            "api_token",
        ]


class AuditPageSerializer(serializers.Serializer):
    next = serializers.CharField(allow_null=True, help_text="The next page's URL; null on the last page.")
    results = AuditEventSerializer(many=True)


class OptionChangeSerializer(serializers.Serializer):
    name = RawText(help_text="A cf option the console knows (its catalog name).")
    value = RawText(required=False, help_text="The new value; checked as the configuration page checks it.")
    unset = serializers.BooleanField(required=False, default=False, help_text="Back to sendmail's default.")


class FeatureChangeSerializer(serializers.Serializer):
    name = RawText()
    enabled = serializers.BooleanField()
    args = serializers.ListField(child=RawText(), required=False, default=list)


class AccessEntrySerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = AccessEntry
        fields = ["id", "url", "tag", "key", "value", "comment", "updated"]

    def get_url(self, entry) -> str:
        from django.urls import reverse

        return reverse("api:access_entry", args=[entry.pk])


class AccessChangeSerializer(serializers.Serializer):
    tag = RawText()
    key = RawText(required=False, default="")
    value = RawText()
    comment = RawText(required=False, default="")


class BuildSerializer(serializers.ModelSerializer):
    server = serializers.CharField(source="server.name")
    created_by = serializers.CharField(source="created_by.username", default="")
    url = serializers.SerializerMethodField()
    install_url = serializers.SerializerMethodField()

    class Meta:
        model = ConfigBuild
        fields = [
            "id", "build_id", "url", "install_url", "server", "status", "progress", "progress_note", "error",
            "created", "created_by", "finished_at", "cf_sha256", "diff", "log", "installed_at", "mc_text",
        ]  # fmt: skip

    def get_url(self, build) -> str:
        from django.urls import reverse

        return reverse("api:build", args=[build.pk])

    def get_install_url(self, build) -> str:
        from django.urls import reverse

        return reverse("api:build_install", args=[build.pk])


class InstallSerializer(serializers.ModelSerializer):
    server = serializers.CharField(source="server.name")
    build = serializers.CharField(source="build.build_id")
    created_by = serializers.CharField(source="created_by.username", default="")

    class Meta:
        model = InstallJob
        fields = [
            "id", "server", "build", "rollback", "status", "progress", "progress_note", "error", "output",
            "created", "created_by", "finished_at",
        ]  # fmt: skip


class CertificateSerializer(serializers.ModelSerializer):
    """A certificate's parsed facts. Its private key never leaves the keystore: only whether there is one."""

    server = serializers.CharField(source="server.name")
    has_private_key = serializers.SerializerMethodField()
    issuer_ca = serializers.IntegerField(source="issuer_ca_id", allow_null=True)

    class Meta:
        model = Certificate
        fields = [
            "id", "server", "role", "subject", "issuer", "cn_subject", "cn_issuer", "sans", "serial", "sha256",
            "not_before", "not_after", "key_type", "key_bits", "public_sha256", "key_usage", "extended_key_usage",
            "is_ca", "self_signed", "origin", "created", "issuer_ca", "has_private_key", "pem", "chain_pem",
        ]  # fmt: skip

    def get_has_private_key(self, certificate) -> bool:
        return certificate.private_key_id is not None


class TlsJobSerializer(serializers.ModelSerializer):
    server = serializers.CharField(source="server.name")
    certificate = serializers.IntegerField(source="certificate_id", allow_null=True)

    class Meta:
        model = TlsJob
        fields = ["id", "server", "kind", "params", "status", "progress", "progress_note", "error", "output",
                  "created", "finished_at", "certificate"]  # fmt: skip


class DeploymentSerializer(serializers.ModelSerializer):
    server = serializers.CharField(source="server.name")

    class Meta:
        model = Deployment
        fields = ["id", "server", "ca", "server_certificate", "client_certificate", "crl", "dh_parameters",
                  "tls_srv_options", "timeout_starttls", "status", "progress", "progress_note", "error", "output",
                  "created", "finished_at", "build"]  # fmt: skip


class UploadSerializer(serializers.Serializer):
    kind = RawText(help_text="What it is, as on the upload page (a certificate role, crl or dh).")
    file = RawText(help_text="The certificate, CRL or DH parameters, PEM text.")
    key_file = RawText(required=False, default="", help_text="The private key, PEM text (stored encrypted).")
    passphrase = RawText(required=False, default="")
    ca = serializers.IntegerField(required=False, allow_null=True, default=None)
    accept_out_of_dates = serializers.BooleanField(required=False, default=False)
