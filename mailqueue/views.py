from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from mailadmin import overview
from mailadmin.roles import Role, require_role
from mailadmin.views import get_server, render_page


@require_role(Role.VIEWER)
@require_GET
def queue_overview(request: HttpRequest, server: str) -> HttpResponse:
    mail_server = get_server(server)
    context = {"server": mail_server, "spool": overview.spool_counts(mail_server.queue_dir)}
    return render_page(request, "mailqueue/overview.html", context, section="queue")
