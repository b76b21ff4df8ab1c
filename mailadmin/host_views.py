"""Hosts and their agents: the server list, hosts that asked to join, and their approval.

The browser never sets a path or a binary: what an MTA host is comes from its agent's own
configuration file, reported when the agent starts. An administrator approves a host that
asked to join with a valid one-time token (`manage.py jointoken NAME`).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_GET, require_POST

from mailadmin import audit, hosts, overview
from mailadmin.models import AgentHost, AuditEvent, MailServer
from mailadmin.roles import Role, require_role
from mailadmin.views import render_page


@require_role(Role.VIEWER)
@require_GET
def server_list(request: HttpRequest) -> HttpResponse:
    servers = list(MailServer.objects.select_related("host"))
    context = {
        # Each server with what its agent's silence says (None: answering) and when it last answered.
        "server_rows": [
            (server, overview.agent_silence(server), overview.ago(overview.last_answer(server))) for server in servers
        ],
        "pending": list(AgentHost.objects.filter(approved_at__isnull=True)),
        "agent_config_example": "/etc/mailadmin/agent.toml",
        "stale_after": settings.AGENT_STALE_SECONDS,
    }
    return render_page(request, "mailadmin/server_list.html", context, section="servers")


@require_role(Role.ADMINISTRATOR)
@require_POST
def host_approve(request: HttpRequest, pk: int) -> HttpResponse:
    host = get_object_or_404(AgentHost, pk=pk)
    if host.approved:
        messages.info(request, f"Host {host.name} is already approved.")
        return redirect("server_list")
    try:
        servers = hosts.approve(host, request=request)
    except hosts.JoinRefused as exc:
        audit.record(
            "approve host", request=request, target=host.name, outcome=AuditEvent.Outcome.DENIED, detail=str(exc)
        )
        messages.error(request, str(exc))
        return redirect("server_list")
    names = ", ".join(server.name for server in servers) or "no instances"
    messages.success(request, f"Host {host.name} approved: {names}.")
    return redirect("server_list")
