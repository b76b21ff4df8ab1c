"""Certificates through the API: the parsed facts of every certificate (never a private key), upload,
generation and deployment with the TLS page's own forms; long work answers 202 with its URL."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import APIView

from api import serializers
from api.errors import valid_or_400
from api.schema import form_body
from api.views import accepted, server_or_404, visible_servers
from tlsconfig import jobs, pki, services
from tlsconfig.forms import DeployForm, GenerateForm, UploadForm
from tlsconfig.models import Certificate, Deployment, TlsJob


def form_data(request) -> dict:
    if not isinstance(request.data, dict):
        raise exceptions.ValidationError({"non_field_errors": ["Expected a JSON object."]})
    return request.data


class Certificates(APIView):
    scopes = {"GET": "tls:read", "POST": "tls:write"}

    @extend_schema(responses=serializers.CertificateSerializer(many=True))
    def get(self, request, server: str):
        """The host's certificates with their parsed facts."""
        mail_server = server_or_404(request, server)
        rows = mail_server.tls_certificates.select_related("server").order_by("not_after", "pk")
        return Response(serializers.CertificateSerializer(rows, many=True).data)

    @extend_schema(request=serializers.UploadSerializer, responses={201: {"type": "object"}})
    def post(self, request, server: str):
        """Upload PEM text as the upload page takes a file: a certificate (and its key, which is stored
        encrypted and never sent back), a CRL or DH parameters."""
        mail_server = server_or_404(request, server)
        body = serializers.UploadSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        files = {"file": SimpleUploadedFile("upload.pem", data["file"].encode("utf-8", "surrogateescape"))}
        if data["key_file"]:
            files["key_file"] = SimpleUploadedFile("key.pem", data["key_file"].encode("utf-8", "surrogateescape"))
        fields = {"kind": data["kind"], "passphrase": data["passphrase"], "ca": data["ca"] or ""}
        if data["accept_out_of_dates"]:
            fields["accept_out_of_dates"] = "on"
        form = UploadForm(fields, files, server=mail_server)
        cleaned = valid_or_400(form)
        try:
            row = services.store_upload(mail_server, cleaned, request=request)
        except pki.PkiError as exc:
            raise exceptions.ValidationError({"non_field_errors": [str(exc)]}) from None
        if isinstance(row, Certificate):
            return Response(serializers.CertificateSerializer(row).data, status=status.HTTP_201_CREATED)
        return Response({"id": row.pk, "kind": cleaned["kind"]}, status=status.HTTP_201_CREATED)


class CertificateDetail(APIView):
    scopes = {"GET": "tls:read"}

    @extend_schema(responses=serializers.CertificateSerializer)
    def get(self, request, pk: int):
        certificate = get_object_or_404(
            Certificate.objects.select_related("server").filter(server__in=visible_servers(request)), pk=pk
        )
        return Response(serializers.CertificateSerializer(certificate).data)


class Generate(APIView):
    scopes = {"POST": "tls:write"}

    @extend_schema(request=form_body(GenerateForm), responses={202: serializers.AcceptedSerializer})
    def post(self, request, server: str):
        """Generate a CA, a key and certificate, a request or DH parameters, as the TLS page does: 202
        and the job's URL."""
        mail_server = server_or_404(request, server)
        form = GenerateForm(form_data(request), server=mail_server)
        cleaned = valid_or_400(form)
        job = jobs.start_job(mail_server, cleaned["kind"], form.params(), request=request)
        return accepted(job, "api:tls_job")


class TlsJobDetail(APIView):
    scopes = {"GET": "tls:read"}

    @extend_schema(responses=serializers.TlsJobSerializer)
    def get(self, request, pk: int):
        job = get_object_or_404(
            TlsJob.objects.select_related("server").filter(server__in=visible_servers(request)), pk=pk
        )
        return Response(serializers.TlsJobSerializer(job).data)


class Deploy(APIView):
    scopes = {"POST": "tls:write"}

    @extend_schema(request=form_body(DeployForm), responses={202: serializers.AcceptedSerializer})
    def post(self, request, server: str):
        """Deploy certificates to the host as the TLS page does (files, cf build, install): 202 and its URL."""
        mail_server = server_or_404(request, server)
        cleaned = valid_or_400(DeployForm(form_data(request), server=mail_server))
        row = jobs.start_deployment(mail_server, cleaned, request=request)
        return accepted(row, "api:deployment")


class DeploymentDetail(APIView):
    scopes = {"GET": "tls:read"}

    @extend_schema(responses=serializers.DeploymentSerializer)
    def get(self, request, pk: int):
        row = get_object_or_404(
            Deployment.objects.select_related("server").filter(server__in=visible_servers(request)), pk=pk
        )
        return Response(serializers.DeploymentSerializer(row).data)
