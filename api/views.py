"""The API's views: thin, each calling the same forms and functions as its page, each declaring
the scope its methods need (api.permissions). Long work answers 202 with the work row's URL."""

from __future__ import annotations

from django.db.models import Prefetch
from django.http import QueryDict
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import APIView

from api import paging, serializers, tokens
from api.errors import valid_or_400
from api.schema import CURSOR, form_parameters
from mailadmin import overview
from mailadmin.forms import AuditFilterForm
from mailadmin.models import AuditEvent, MailServer
from mailqueue import services, summary
from mailqueue.forms import QueueFilterForm, SelectedActionForm, validate_queue_id, validate_reason
from mailqueue.models import IndexRefresh, QueueAction, QueueMessage
from mailqueue.parser import QUEUE_ID_PATTERN
from mailqueue.views import create_action
from tracking import search, traces
from tracking.models import MessageTrace


def token_of(request):
    return request.auth if isinstance(request.auth, tokens.ApiToken) else None


def visible_servers(request):
    return tokens.servers_for(token_of(request))


def server_or_404(request, name: str) -> MailServer:
    """A host the call may see: another host, even an existing one, is not found for a limited token."""
    return get_object_or_404(visible_servers(request), name=name)


class ServerList(APIView):
    scopes = {"GET": "config:read"}

    @extend_schema(responses=serializers.ServerSerializer(many=True))
    def get(self, request):
        return Response(serializers.ServerSerializer(visible_servers(request).order_by("name"), many=True).data)


class ServerDetail(APIView):
    scopes = {"GET": "config:read"}

    @extend_schema(responses=serializers.ServerStatusSerializer)
    def get(self, request, server: str):
        """The host and its status, as the agent's last snapshot has it."""
        mail_server = server_or_404(request, server)
        snapshot = overview.snapshot_of(mail_server)
        silence = overview.agent_silence(mail_server, snapshot)
        daemon = overview.daemon_status(mail_server, snapshot)
        spool = overview.spool_counts(mail_server, snapshot)
        return Response(
            serializers.ServerStatusSerializer(
                {
                    "server": mail_server,
                    "agent_silent_since": silence.since if silence else None,
                    "agent_answering": silence is None or silence.answering,
                    "daemon": daemon and {**daemon.__dict__, "answering": daemon.answering, "summary": daemon.summary},
                    "spool": spool,
                }
            ).data
        )


class QueueList(APIView):
    scopes = {"GET": "queue:read", "POST": "queue:write"}

    @extend_schema(
        operation_id="queue_list",
        parameters=form_parameters(QueueFilterForm, CURSOR),
        responses=serializers.QueuePageSerializer,
    )
    def get(self, request, server: str):
        """The queue as the list page filters and sorts it, a page of 50 at a time (cursor)."""
        mail_server = server_or_404(request, server)
        form = QueueFilterForm(request.query_params)
        valid_or_400(form)
        matching = form.filter(QueueMessage.objects.filter(server=mail_server))
        sort = matching.query.order_by[0]
        rows, cursor = paging.page(matching, sort, request.query_params.get("cursor", ""))
        refreshed = IndexRefresh.objects.filter(server=mail_server).first()
        page = {
            "total": matching.count(),
            "counts": summary.state_counts(refreshed).__dict__,
            "refreshed": refreshed.finished if refreshed else None,
            "next": paging.next_link(request, cursor),
            "results": rows,
        }
        return Response(serializers.QueuePageSerializer(page).data)

    @extend_schema(
        request=serializers.QueueActionRequestSerializer,
        responses={202: serializers.AcceptedSerializer},
    )
    def post(self, request, server: str):
        """Quarantine, release, deliver or delete listed ids, or every message matching a filter:
        the same QueueAction row, audit and dispatch as the page; 202 with the action's URL."""
        mail_server = server_or_404(request, server)
        body = serializers.QueueActionRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        # The page's own validators, so that a refusal names the field it is about.
        for queue_id in data.get("ids", []):
            _refuse_as("ids", validate_queue_id, queue_id)
        if data["verb"] == QueueAction.Verb.QUARANTINE:
            _refuse_as("reason", validate_reason, data.get("reason", ""))
        fields = QueryDict(mutable=True)
        fields.update(
            {
                "verb": data["verb"],
                "scope": "matching" if "filter" in data else "selected",
                "reason": data.get("reason", ""),
            }
        )
        if data.get("confirmed_count") is not None:
            fields["confirmed_count"] = str(data["confirmed_count"])
        fields.setlist("id", data.get("ids", []))
        cleaned = valid_or_400(SelectedActionForm(fields))
        filters = QueueFilterForm(data.get("filter", {}))
        if "filter" in data:
            valid_or_400(filters)
        try:
            ids = services.ids_to_act_on(mail_server, cleaned, filters)
        except services.ActionRefused as refusal:
            raise exceptions.ValidationError({refusal.field or "non_field_errors": [str(refusal)]}) from None
        action = create_action(
            request,
            mail_server,
            verb=cleaned["verb"],
            queue_ids=ids,
            reason=cleaned["reason"] if cleaned["verb"] == QueueAction.Verb.QUARANTINE else "",
            debug_level=cleaned["debug_level"],
        )
        return accepted(action, "api:queue_action")


def _refuse_as(field: str, validator, value) -> None:
    from django.core.exceptions import ValidationError

    try:
        validator(value)
    except ValidationError as refusal:
        raise exceptions.ValidationError({field: refusal.messages}) from None


def accepted(item, view_name: str) -> Response:
    url = reverse(view_name, args=[item.pk])
    return Response(
        {"id": item.pk, "status": item.status, "url": url}, status=status.HTTP_202_ACCEPTED, headers={"Location": url}
    )


class QueueMessageDetail(APIView):
    scopes = {"GET": "queue:read"}

    @extend_schema(responses=serializers.QueueMessageSerializer)
    def get(self, request, server: str, queue_id: str):
        """One message as the index knows it."""
        mail_server = server_or_404(request, server)
        if not QUEUE_ID_PATTERN.fullmatch(queue_id):
            raise exceptions.NotFound("not a queue id")
        message = get_object_or_404(QueueMessage, server=mail_server, queue_id=queue_id)
        return Response(serializers.QueueMessageSerializer(message).data)


class QueueActionDetail(APIView):
    scopes = {"GET": "queue:read"}

    @extend_schema(responses=serializers.QueueActionSerializer)
    def get(self, request, pk: int):
        """A queue action's status, outcomes per queue id and output: the page's action row."""
        action = get_object_or_404(
            QueueAction.objects.select_related("server", "created_by").filter(server__in=visible_servers(request)),
            pk=pk,
        )
        return Response(serializers.QueueActionSerializer(action).data)


class TraceList(APIView):
    scopes = {"GET": "trace:read"}

    @extend_schema(
        operation_id="traces_list",
        parameters=form_parameters(search.TraceSearchForm, CURSOR),
        responses=serializers.TracePageSerializer,
    )
    def get(self, request):
        """Traces as the tracking page searches them, newest first, a page at a time (cursor)."""
        form = search.TraceSearchForm(request.query_params)
        data = valid_or_400(form)
        rows, cursor = search.search_page(data, request.query_params.get("cursor", ""))
        allowed = set(visible_servers(request).values_list("pk", flat=True))
        rows = [row for row in rows if row.server_id in allowed]
        next_url = paging.next_link(request, cursor)
        return Response(serializers.TracePageSerializer({"next": next_url, "results": rows}).data)


class TraceDetail(APIView):
    scopes = {"GET": "trace:read"}

    @extend_schema(responses=serializers.TraceDetailSerializer)
    def get(self, request, pk: int):
        """One trace and the message's journey over every host the call may see."""
        servers = visible_servers(request)
        with_recipients = Prefetch("recipients")
        trace = get_object_or_404(
            MessageTrace.objects.select_related("server").prefetch_related(with_recipients).filter(server__in=servers),
            pk=pk,
        )
        allowed = set(servers.values_list("pk", flat=True))
        journey = [each for each in traces.journey(trace) if each.server_id in allowed]
        return Response(serializers.TraceDetailSerializer({"trace": trace, "journey": journey}).data)


class AuditList(APIView):
    scopes = {"GET": "audit:read"}

    @extend_schema(parameters=form_parameters(AuditFilterForm, CURSOR), responses=serializers.AuditPageSerializer)
    def get(self, request):
        """The audit log with the page's filters, newest first, a page at a time (cursor)."""
        form = AuditFilterForm(request.query_params)
        valid_or_400(form)
        events = form.filter(AuditEvent.objects.select_related("server"))
        token = token_of(request)
        if token is not None and token.servers.exists():
            events = events.filter(server__in=visible_servers(request))
        rows, cursor = paging.page(events, "-created", request.query_params.get("cursor", ""))
        page = {"next": paging.next_link(request, cursor), "results": rows}
        return Response(serializers.AuditPageSerializer(page).data)
