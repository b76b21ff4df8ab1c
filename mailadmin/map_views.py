"""The map and class file pages (placeholder until the pages land: the list only)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from mailadmin import maps
from mailadmin.cf import maps as mapfiles
from mailadmin.roles import Role, require_role
from mailadmin.views import get_server, render_page


@require_role(Role.VIEWER)
@require_GET
def map_list(request: HttpRequest, server: str) -> HttpResponse:
    mail_server = get_server(server)
    files = [(spec, maps.entries(mail_server, name).count()) for name, spec in mapfiles.SPECS.items()]
    return render_page(request, "mailadmin/maps.html", {"server": mail_server, "files": files, "tab": "maps"})
