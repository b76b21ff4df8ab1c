"""Message tracking pages: search, and one message's journey. Viewers may read them, like the queue."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET

from mailadmin.roles import Role, require_role
from mailadmin.views import render_page
from mailqueue.models import QueueMessage
from tracking.models import LogCheckpoint, MessageTrace
from tracking.search import TraceSearchForm, search_page
from tracking.traces import journey


@require_role(Role.VIEWER)
@require_GET
def trace_search(request: HttpRequest) -> HttpResponse:
    form = TraceSearchForm(request.GET)
    rows, following = [], ""
    if form.searched():
        rows, following = search_page(form.cleaned_data, request.GET.get("after", ""))
    context = {
        "form": form,
        "rows": rows,
        "following": following,
        "searched": form.is_bound and form.is_valid() and form.searched(),
        "checkpoints": LogCheckpoint.objects.select_related("server").order_by("server__name"),
    }
    return render_page(request, "tracking/search.html", context, section="tracking")


@require_role(Role.VIEWER)
@require_GET
def trace_detail(request: HttpRequest, pk: int) -> HttpResponse:
    trace = get_object_or_404(MessageTrace.objects.select_related("server", "bounce_of__server"), pk=pk)
    hops = []
    for hop in journey(trace):
        on_spool = bool(hop.queue_id) and QueueMessage.objects.filter(server=hop.server, queue_id=hop.queue_id).exists()
        hops.append(
            {
                "trace": hop,
                "recipients": list(hop.recipients.all()),
                "events": list(hop.events.all()),
                "bounces": list(hop.bounces.select_related("server")),
                "on_spool": on_spool,
            }
        )
    context = {"trace": trace, "hops": hops}
    return render_page(request, "tracking/trace.html", context, section="tracking")
