"""The listeners page: a server's DAEMON_OPTIONS and CLIENT_OPTIONS rows, added, edited and deleted.

Thin views over mailadmin.listeners (same conventions as mailadmin.config_views: require_role
outermost, exactly one of require_GET / require_POST, POST-redirect-GET). A change takes effect
with the next build and install, like every other row.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_GET, require_POST

from mailadmin import listeners
from mailadmin.cf import mcfile
from mailadmin.models import Listener
from mailadmin.roles import Role, require_role
from mailadmin.views import get_server, render_page

APPLY = "Build and install to apply it."


def _fields(request: HttpRequest) -> dict[str, str]:
    return {field: request.POST.get(field, "") for field in listeners.FIELDS}


def _report(request: HttpRequest, exc: ValidationError) -> None:
    messages.error(request, "Listener: " + " ".join(exc.messages))


@require_role(Role.VIEWER)
@require_GET
def listener_list(request: HttpRequest, server: str) -> HttpResponse:
    mail_server = get_server(server)
    rows = list(Listener.objects.filter(server=mail_server).order_by("kind", "position", "id"))
    context = {
        "server": mail_server,
        "rows": [(row, listeners.spec_of(row)) for row in rows],
        "warnings": listeners.warnings(mail_server),
        "kinds": Listener.Kind.choices,
        "daemon_modifiers": mcfile.DAEMON_MODIFIERS,
        "client_modifiers": mcfile.CLIENT_MODIFIERS,
        "extra_keys": ", ".join(mcfile.EXTRA_KEYS),
    }
    return render_page(request, "mailadmin/listeners.html", context, section="configuration")


@require_role(Role.ADMINISTRATOR)
@require_POST
def listener_add(request: HttpRequest, server: str) -> HttpResponse:
    mail_server = get_server(server)
    try:
        row = listeners.add(
            mail_server,
            request.POST.get("kind", ""),
            _fields(request),
            request.POST.get("comment", ""),
            request=request,
        )
        messages.success(request, f"{listeners.spec_of(row).mc_line()} added. {APPLY}")
    except ValidationError as exc:
        _report(request, exc)
    return redirect("listener_list", server=mail_server.name)


@require_role(Role.ADMINISTRATOR)
@require_POST
def listener_edit(request: HttpRequest, server: str, pk: int) -> HttpResponse:
    row = get_object_or_404(Listener.objects.select_related("server"), pk=pk, server__name=server)
    try:
        listeners.edit(row, _fields(request), request.POST.get("comment", ""), request=request)
        messages.success(request, f"{listeners.spec_of(row).mc_line()} saved. {APPLY}")
    except ValidationError as exc:
        _report(request, exc)
    return redirect("listener_list", server=row.server.name)


@require_role(Role.ADMINISTRATOR)
@require_POST
def listener_delete(request: HttpRequest, server: str, pk: int) -> HttpResponse:
    row = get_object_or_404(Listener.objects.select_related("server"), pk=pk, server__name=server)
    line = listeners.spec_of(row).mc_line()
    listeners.delete(row, request=request)
    messages.success(request, f"{line} removed. {APPLY}")
    return redirect("listener_list", server=server)
