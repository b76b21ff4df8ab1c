"""Asking a host's agent a question from a page: a map lookup, a STARTTLS probe, a message preview.

The web tier never touches an MTA. A page that needs something only the host can see writes an
AgentRequest row (audited as asked), the host's agent answers it into `row.result` (see
mailadmin/mta/answers.py), and the page shows the row through the usual htmx progress until it
is answered. A host whose agent is down keeps the row queued: it is answered when the agent
returns, and the page says so meanwhile.
"""

from __future__ import annotations

from django.db import transaction
from django.urls import reverse
from django.utils.http import urlencode

from mailadmin import audit, overview, work
from mailadmin.models import AgentRequest, AuditEvent, MailServer


def ask(server: MailServer, kind: str, params: dict | None = None, *, user=None, request=None) -> AgentRequest:
    """Write the question as a row (audited), and ring the agent's bell once it is committed."""
    with transaction.atomic():
        row = AgentRequest.objects.create(
            server=server, kind=kind, params=params or {}, created_by=user or getattr(request, "user", None)
        )
        audit.record(
            f"ask {kind}",
            request=request,
            user=user,
            server=server,
            target=f"agent request {row.pk}",
            detail=" ".join(f"{k}={v}" for k, v in sorted((params or {}).items())),
            outcome=AuditEvent.Outcome.QUEUED,
        )
        work.dispatch_on_commit(row)
    return row


def request_context(row: AgentRequest, result_template: str, **extra) -> dict:
    """What templates/mailadmin/_agent_request.html needs: the row, its progress URL, the
    template that renders `row.result` once the agent has answered, and, while it waits, whether
    its host's agent is not answering (and since when)."""
    return {
        "item": row,
        "agent_request": row,
        "server": row.server,
        "progress_url": reverse("agent_request_progress", args=[row.pk]) + "?" + urlencode({"result": result_template}),
        "result_template": result_template,
        "waiting_for": None if row.finished else overview.page_silence(row.server),
        **extra,
    }
