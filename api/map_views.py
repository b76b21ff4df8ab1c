"""The map and class files (aliases, virtusertable, mailertable, genericstable, domaintable,
local-host-names, relay-domains, trusted-users) and the listeners through the API: rows read and
changed through mailadmin.maps and mailadmin.listeners, exactly as the pages change them (cleaned,
audited with the token, applied by the next build and install).

A map is named in the URL by one of the eight fixed names, never by a path; any other name is not
found. The privilege rule of aliases (program, file and :include: targets for administrators only)
is the service's, judged by the role the token's user has at the time of the call. Import from the
host's own file is not offered here: it reads the host, which is the agent's business.
"""

from __future__ import annotations

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, renderers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from api import map_serializers as ser
from api.config_views import body_of
from api.views import server_or_404
from mailadmin import listeners, maps
from mailadmin.cf import maps as mapfiles
from mailadmin.models import Listener, MailServer, MapEntry

MAP_NAME = OpenApiParameter(
    "map_name",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    enum=list(mapfiles.MAP_NAMES),
    description="One of the eight files the console manages.",
)

# DRF's URL override of content negotiation; empty (as absent) leaves it to the Accept header.
TEXT_FORMAT = OpenApiParameter(
    "format",
    OpenApiTypes.STR,
    OpenApiParameter.QUERY,
    enum=["", "json", "txt"],
    description="txt: the bare file (text/plain); json: JSON; empty or absent: by the Accept header (JSON by default).",
)


def refusal(exc: ValidationError) -> exceptions.ValidationError:
    """The service's refusal as a 400 by field; what is about the whole row under non_field_errors."""
    if not hasattr(exc, "error_dict"):
        return exceptions.ValidationError({"non_field_errors": exc.messages})
    return exceptions.ValidationError(
        {
            "non_field_errors" if field == NON_FIELD_ERRORS else field: messages
            for field, messages in exc.message_dict.items()
        }
    )


def map_or_404(map_name: str) -> str:
    if map_name not in mapfiles.SPECS:
        raise exceptions.NotFound()
    return map_name


def describe(server: MailServer, name: str) -> dict:
    spec = mapfiles.SPECS[name]
    lines = maps.entries(server, name)
    kept = lines.exclude(verbatim="").count()
    return {
        "name": name,
        "title": spec.title,
        "kind": spec.kind,
        "managed": maps.is_managed(server, name),
        "rows": lines.count() - kept,
        "kept": kept,
        "key_label": spec.key_label,
        "value_label": spec.value_label,
        "feature": spec.feature,
        "read_by": spec.read_by,
        "compiled_with": spec.compiled_with,
        "rows_url": reverse("api:map_rows", args=[server.name, name]),
        "text_url": reverse("api:map_text", args=[server.name, name]),
    }


class Maps(APIView):
    scopes = {"GET": "config:read"}

    @extend_schema(responses=ser.MapFileSerializer(many=True))
    def get(self, request, server: str):
        """The eight map and class files, in the order of the catalog: whether builds write them and how many rows."""
        mail_server = server_or_404(request, server)
        return Response(
            ser.MapFileSerializer([describe(mail_server, name) for name in mapfiles.MAP_NAMES], many=True).data
        )


class MapRows(APIView):
    scopes = {"GET": "config:read", "POST": "config:build"}

    @extend_schema(parameters=[MAP_NAME], responses=ser.MapEntrySerializer(many=True))
    def get(self, request, server: str, map_name: str):
        """The file's rows in file order: typed rows and kept text (build and install to apply changes)."""
        mail_server = server_or_404(request, server)
        rows = maps.entries(mail_server, map_or_404(map_name)).select_related("server")
        return Response(ser.MapEntrySerializer(rows, many=True).data)

    @extend_schema(parameters=[MAP_NAME], request=ser.MapRowChangeSerializer, responses={201: ser.MapEntrySerializer})
    def post(self, request, server: str, map_name: str):
        """Append a row, checked as the map's page checks it; the file is managed from now on."""
        mail_server = server_or_404(request, server)
        name = map_or_404(map_name)
        data = body_of(ser.MapRowChangeSerializer, request)
        try:
            row = maps.add(
                mail_server, name, data["key"], data["value"], data["comment"], user=request.user, request=request
            )
        except ValidationError as exc:
            raise refusal(exc) from None
        return Response(ser.MapEntrySerializer(row).data, status=status.HTTP_201_CREATED)


class MapRowDetail(APIView):
    scopes = {"GET": "config:read", "PUT": "config:build", "PATCH": "config:build", "DELETE": "config:build"}

    def entry(self, request, server: str, map_name: str, pk: int) -> MapEntry:
        mail_server = server_or_404(request, server)
        return get_object_or_404(maps.entries(mail_server, map_or_404(map_name)).select_related("server"), pk=pk)

    def change(self, request, entry: MapEntry, *, partial: bool) -> Response:
        body = ser.MapRowChangeSerializer(data=request.data, partial=partial)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        try:
            maps.edit(
                entry,
                data.get("key", entry.key),
                data.get("value", entry.value),
                data.get("comment", entry.comment),
                user=request.user,
                request=request,
            )
        except ValidationError as exc:
            raise refusal(exc) from None
        return Response(ser.MapEntrySerializer(entry).data)

    @extend_schema(parameters=[MAP_NAME], responses=ser.MapEntrySerializer)
    def get(self, request, server: str, map_name: str, pk: int):
        return Response(ser.MapEntrySerializer(self.entry(request, server, map_name, pk)).data)

    @extend_schema(parameters=[MAP_NAME], request=ser.MapRowChangeSerializer, responses=ser.MapEntrySerializer)
    def put(self, request, server: str, map_name: str, pk: int):
        """Replace a typed row's key, value and comment; it keeps its place in the file. Kept text cannot be edited."""
        return self.change(request, self.entry(request, server, map_name, pk), partial=False)

    @extend_schema(parameters=[MAP_NAME], request=ser.MapRowChangeSerializer, responses=ser.MapEntrySerializer)
    def patch(self, request, server: str, map_name: str, pk: int):
        """Change some of a typed row's fields; the others keep their values."""
        return self.change(request, self.entry(request, server, map_name, pk), partial=True)

    @extend_schema(parameters=[MAP_NAME], responses={204: None})
    def delete(self, request, server: str, map_name: str, pk: int):
        """Remove a row or a block of kept text; the file stays managed (with no rows, an empty file is written)."""
        maps.delete(self.entry(request, server, map_name, pk), user=request.user, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class PlainTextRenderer(renderers.BaseRenderer):
    """Offers text/plain to content negotiation (`Accept: text/plain` or `?format=txt`); MapText answers it
    with the file itself."""

    media_type = "text/plain"
    format = "txt"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data["text"].encode(self.charset)


class MapText(APIView):
    scopes = {"GET": "config:read"}
    renderer_classes = [renderers.JSONRenderer, PlainTextRenderer]

    @extend_schema(
        parameters=[MAP_NAME, TEXT_FORMAT],
        responses={(200, "application/json"): ser.MapTextSerializer, (200, "text/plain"): OpenApiTypes.STR},
    )
    def get(self, request, server: str, map_name: str):
        """The file as the next build writes it: JSON, or the bare text with `Accept: text/plain`."""
        mail_server = server_or_404(request, server)
        name = map_or_404(map_name)
        text = maps.rendered(mail_server, name)
        if isinstance(request.accepted_renderer, PlainTextRenderer):
            # Not through the renderer: DRF drops the Content-Type of an empty body (a file with no rows).
            return HttpResponse(text, content_type=f"{PlainTextRenderer.media_type}; charset=utf-8")
        return Response(
            ser.MapTextSerializer({"name": name, "managed": maps.is_managed(mail_server, name), "text": text}).data
        )

    def handle_exception(self, exc):
        # A refusal is JSON whatever was asked for: the documented shape of every error.
        self.request.accepted_renderer = renderers.JSONRenderer()
        self.request.accepted_media_type = renderers.JSONRenderer.media_type
        return super().handle_exception(exc)


class Listeners(APIView):
    scopes = {"GET": "config:read", "POST": "config:build"}

    @extend_schema(responses=ser.ListenerSerializer(many=True))
    def get(self, request, server: str):
        """DAEMON_OPTIONS then CLIENT_OPTIONS rows, in the order a build writes them."""
        mail_server = server_or_404(request, server)
        rows = Listener.objects.filter(server=mail_server).select_related("server").order_by("kind", "position", "id")
        return Response(ser.ListenerSerializer(rows, many=True).data)

    @extend_schema(request=ser.ListenerChangeSerializer, responses={201: ser.ListenerSerializer})
    def post(self, request, server: str):
        """Add a listener, checked as the listeners page checks it (fields, and the set sendmail must bind)."""
        mail_server = server_or_404(request, server)
        data = body_of(ser.ListenerChangeSerializer, request)
        try:
            row = listeners.add(mail_server, data["kind"], data, data["comment"], request=request)
        except ValidationError as exc:
            raise refusal(exc) from None
        return Response(ser.ListenerSerializer(row).data, status=status.HTTP_201_CREATED)


class ListenerDetail(APIView):
    scopes = {"GET": "config:read", "PUT": "config:build", "DELETE": "config:build"}

    def row(self, request, server: str, pk: int) -> Listener:
        mail_server = server_or_404(request, server)
        return get_object_or_404(Listener.objects.filter(server=mail_server).select_related("server"), pk=pk)

    @extend_schema(responses=ser.ListenerSerializer)
    def get(self, request, server: str, pk: int):
        return Response(ser.ListenerSerializer(self.row(request, server, pk)).data)

    @extend_schema(request=ser.ListenerChangeSerializer, responses=ser.ListenerSerializer)
    def put(self, request, server: str, pk: int):
        """Replace a listener's fields and comment (an empty or missing field is left out of the line)."""
        row = self.row(request, server, pk)
        data = body_of(ser.ListenerChangeSerializer, request)
        if data["kind"] not in ("", row.kind):
            raise exceptions.ValidationError(
                {"kind": [f"This is a {row.kind} listener; its kind cannot change (delete it and add the other kind)."]}
            )
        try:
            listeners.edit(row, data, data["comment"], request=request)
        except ValidationError as exc:
            raise refusal(exc) from None
        return Response(ser.ListenerSerializer(row).data)

    @extend_schema(responses={204: None})
    def delete(self, request, server: str, pk: int):
        listeners.delete(self.row(request, server, pk), request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)
