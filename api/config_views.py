"""The configuration through the API: options, FEATUREs and access rows (read and change, through
mailadmin.config as the pages do), builds (202 + URL, read with the diff), installs and rollbacks
(202 + URL)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import APIView

from api import serializers
from api.views import accepted, server_or_404, visible_servers
from mailadmin import config, services
from mailadmin.cf import catalog
from mailadmin.models import AccessEntry, ConfigBuild, InstallJob


def refusal(exc: ValidationError, field: str) -> exceptions.ValidationError:
    """The page's refusal as JSON: its own field names when it gives them, else `field`."""
    if hasattr(exc, "error_dict"):
        return exceptions.ValidationError(exc.message_dict)
    return exceptions.ValidationError({field: exc.messages})


def body_of(serializer_class, request) -> dict:
    body = serializer_class(data=request.data)
    body.is_valid(raise_exception=True)
    return body.validated_data


class Options(APIView):
    scopes = {"GET": "config:read", "POST": "config:build"}

    @extend_schema(responses={200: {"type": "object", "additionalProperties": {"type": "string"}}})
    def get(self, request, server: str):
        """The options set for the host (catalog name → value); the rest are sendmail's defaults."""
        return Response(config.options_of(server_or_404(request, server)))

    @extend_schema(
        request=serializers.OptionChangeSerializer,
        responses={200: {"type": "object", "additionalProperties": {"type": "string"}}},
    )
    def post(self, request, server: str):
        """Set or unset one option, checked and audited as on the configuration page. Build to apply it."""
        mail_server = server_or_404(request, server)
        data = body_of(serializers.OptionChangeSerializer, request)
        name = data["name"]
        if name not in catalog.OPTIONS:
            raise exceptions.ValidationError({"name": [f"{name[:80]!r} is not an option this console knows"]})
        if data["unset"]:
            config.unset_option(mail_server, name, request=request)
        else:
            try:
                config.set_option(mail_server, name, data.get("value", ""), request=request)
            except ValidationError as exc:
                raise refusal(exc, "value") from None
        return Response(config.options_of(mail_server))


class Features(APIView):
    scopes = {"GET": "config:read", "POST": "config:build"}

    @extend_schema(
        responses={200: {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}}}
    )
    def get(self, request, server: str):
        """The FEATUREs on for the host, with their arguments."""
        return Response({name: list(args) for name, args in config.features_of(server_or_404(request, server)).items()})

    @extend_schema(
        request=serializers.FeatureChangeSerializer,
        responses={200: {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}}},
    )
    def post(self, request, server: str):
        """Turn a FEATURE on (with its arguments) or off, refused as the page refuses it."""
        mail_server = server_or_404(request, server)
        data = body_of(serializers.FeatureChangeSerializer, request)
        if data["name"] not in catalog.FEATURES:
            raise exceptions.ValidationError({"name": [f"{data['name'][:80]!r} is not a FEATURE this console knows"]})
        try:
            config.set_feature(mail_server, data["name"], data["args"], data["enabled"], request=request)
        except ValidationError as exc:
            raise refusal(exc, "args") from None
        return Response({name: list(args) for name, args in config.features_of(mail_server).items()})


class AccessEntries(APIView):
    scopes = {"GET": "config:read", "POST": "config:build"}

    @extend_schema(responses=serializers.AccessEntrySerializer(many=True))
    def get(self, request, server: str):
        """The access map's rows as the console keeps them (build and install to apply changes)."""
        mail_server = server_or_404(request, server)
        return Response(serializers.AccessEntrySerializer(mail_server.access_entries.all(), many=True).data)

    @extend_schema(request=serializers.AccessChangeSerializer, responses=serializers.AccessEntrySerializer)
    def post(self, request, server: str):
        """Add or change a row (tag:key), checked as the access page checks it."""
        mail_server = server_or_404(request, server)
        data = body_of(serializers.AccessChangeSerializer, request)
        try:
            row = config.add_access_entry(
                mail_server, data["tag"], data["key"], data["value"], data["comment"], request=request
            )
        except ValidationError as exc:
            raise refusal(exc, "tag") from None
        return Response(serializers.AccessEntrySerializer(row).data)


class AccessEntryDetail(APIView):
    scopes = {"GET": "config:read", "DELETE": "config:build"}

    def entry(self, request, pk: int) -> AccessEntry:
        return get_object_or_404(
            AccessEntry.objects.select_related("server").filter(server__in=visible_servers(request)), pk=pk
        )

    @extend_schema(responses=serializers.AccessEntrySerializer)
    def get(self, request, pk: int):
        return Response(serializers.AccessEntrySerializer(self.entry(request, pk)).data)

    @extend_schema(responses={204: None})
    def delete(self, request, pk: int):
        config.delete_access_entry(self.entry(request, pk), request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class Builds(APIView):
    scopes = {"GET": "config:read", "POST": "config:build"}

    @extend_schema(responses=serializers.BuildSerializer(many=True))
    def get(self, request, server: str):
        """The host's last 20 builds, newest first."""
        mail_server = server_or_404(request, server)
        builds = mail_server.builds.select_related("server", "created_by")[:20]
        return Response(serializers.BuildSerializer(builds, many=True).data)

    @extend_schema(request=None, responses={202: serializers.AcceptedSerializer})
    def post(self, request, server: str):
        """Build a cf from the host's rows on its agent: 202 and the build's URL (its diff when done)."""
        mail_server = server_or_404(request, server)
        try:
            row = config.start_build(mail_server, request=request)
        except config.BuildRefused as exc:
            raise exceptions.ValidationError({"non_field_errors": [f"Build refused: {exc}"]}) from None
        return accepted(row, "api:build")


def visible_build(request, pk: int) -> ConfigBuild:
    return get_object_or_404(
        ConfigBuild.objects.select_related("server", "created_by").filter(server__in=visible_servers(request)), pk=pk
    )


class BuildDetail(APIView):
    scopes = {"GET": "config:read"}

    @extend_schema(responses=serializers.BuildSerializer)
    def get(self, request, pk: int):
        """A build: its status, the .mc, m4's log and the diff against the installed cf."""
        return Response(serializers.BuildSerializer(visible_build(request, pk)).data)


class BuildInstall(APIView):
    scopes = {"POST": "config:install"}

    @extend_schema(request=None, responses={202: serializers.AcceptedSerializer})
    def post(self, request, pk: int):
        """Install this build on its host (a rollback when a later build is live): 202 and the install's URL."""
        build = visible_build(request, pk)
        try:
            job = services.request_install(build, request=request)
        except services.InstallRefused as exc:
            raise exceptions.ValidationError({"non_field_errors": [str(exc)]}) from None
        return accepted(job, "api:install")


class InstallDetail(APIView):
    scopes = {"GET": "config:read"}

    @extend_schema(responses=serializers.InstallSerializer)
    def get(self, request, pk: int):
        job = get_object_or_404(
            InstallJob.objects.select_related("server", "build", "created_by").filter(
                server__in=visible_servers(request)
            ),
            pk=pk,
        )
        return Response(serializers.InstallSerializer(job).data)
