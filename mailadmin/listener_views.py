"""The listeners page: a server's DAEMON_OPTIONS and CLIENT_OPTIONS rows, added, edited and deleted.

Thin views over mailadmin.listeners, which cleans every field and audits every change (same
conventions as mailadmin.config_views: require_role outermost, exactly one of require_GET /
require_POST, POST-redirect-GET). Operators and administrators change the rows; a change takes
effect with the next build and install, like every other row. A refused change comes back as the
page itself (400) with each message at its field and everything typed still in the boxes.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_GET, require_POST

from mailadmin import buildrows, config, listeners
from mailadmin.cf import mcfile
from mailadmin.models import Listener, MailServer
from mailadmin.roles import Role, require_role
from mailadmin.views import get_server, render_page

APPLY = "Build and install to apply it."
# What a form posts besides the listener's own fields.
FORM_FIELDS = (*listeners.FIELDS, "comment")


def _typed(request: HttpRequest) -> dict[str, str]:
    return {field: request.POST.get(field, "") for field in FORM_FIELDS}


def _stored(row: Listener) -> dict[str, str]:
    return {field: getattr(row, field) for field in FORM_FIELDS}


def _refused(exc: ValidationError) -> tuple[dict[str, list[str]], list[str]]:
    """(messages by field, messages about the whole line)."""
    by_field = dict(exc.message_dict) if hasattr(exc, "error_dict") else {NON_FIELD_ERRORS: exc.messages}
    return by_field, by_field.pop(NON_FIELD_ERRORS, [])


def _pending(server: MailServer) -> str:
    """Why a build is needed for these rows to reach sendmail: "changed" since the live build was
    made, "unknown" without a live build of this console to compare with, "" when they are live."""
    live = config.live_build(server)
    if live is None or not live.rows:
        return "unknown"
    return "changed" if "listeners" in buildrows.differences(server, live) else ""


def _page(
    request: HttpRequest,
    server: MailServer,
    *,
    editing: int | None = None,
    adding: bool = False,
    typed: dict[str, str] | None = None,
    errors: ValidationError | None = None,
) -> HttpResponse:
    """The listeners page; after a refused change, `typed` and `errors` go back to the form they came
    from (the row `editing`, or the add form when `adding`)."""
    by_field, whole_line = _refused(errors) if errors else ({}, [])
    items = []
    for row in Listener.objects.filter(server=server).order_by("kind", "position", "id"):
        mine = editing == row.pk
        items.append(
            {
                "row": row,
                "spec": listeners.spec_of(row),
                "values": typed if mine else _stored(row),
                "errors": by_field if mine else {},
                "line_errors": whole_line if mine else [],
            }
        )
    add_values = typed if adding else {"kind": Listener.Kind.DAEMON}
    live = config.live_build(server)
    context = {
        "server": server,
        "items": items,
        "warnings": listeners.warnings(server),
        "kinds": Listener.Kind.choices,
        "add_values": add_values,
        "add_errors": by_field if adding else {},
        "add_line_errors": whole_line if adding else [],
        "refused": errors is not None,
        "pending": _pending(server),
        "live": live,
        "daemon_modifiers": mcfile.DAEMON_MODIFIERS,
        "client_modifiers": mcfile.CLIENT_MODIFIERS,
        "daemon_keys": ", ".join(k for k, (_, kinds) in mcfile.EXTRA_KEYS.items() if "daemon" in kinds),
        "client_keys": ", ".join(k for k, (_, kinds) in mcfile.EXTRA_KEYS.items() if "client" in kinds),
    }
    response = render_page(request, "mailadmin/listeners.html", context, section="configuration")
    if errors is not None:
        response.status_code = 400
    return response


@require_role(Role.VIEWER)
@require_GET
def listener_list(request: HttpRequest, server: str) -> HttpResponse:
    return _page(request, get_server(server))


@require_role(Role.OPERATOR)
@require_POST
def listener_add(request: HttpRequest, server: str) -> HttpResponse:
    mail_server = get_server(server)
    typed = {**_typed(request), "kind": request.POST.get("kind", "")}
    try:
        row = listeners.add(mail_server, typed["kind"], typed, typed["comment"], request=request)
    except ValidationError as exc:
        return _page(request, mail_server, adding=True, typed=typed, errors=exc)
    messages.success(request, f"{listeners.spec_of(row).mc_line()} added. {APPLY}")
    return redirect("listener_list", server=mail_server.name)


@require_role(Role.OPERATOR)
@require_POST
def listener_edit(request: HttpRequest, server: str, pk: int) -> HttpResponse:
    row = get_object_or_404(Listener.objects.select_related("server", "server__host"), pk=pk, server__name=server)
    typed = _typed(request)
    try:
        listeners.edit(row, typed, typed["comment"], request=request)
    except ValidationError as exc:
        return _page(request, row.server, editing=row.pk, typed=typed, errors=exc)
    messages.success(request, f"{listeners.spec_of(row).mc_line()} saved. {APPLY}")
    return redirect("listener_list", server=row.server.name)


@require_role(Role.OPERATOR)
@require_POST
def listener_delete(request: HttpRequest, server: str, pk: int) -> HttpResponse:
    row = get_object_or_404(Listener.objects.select_related("server"), pk=pk, server__name=server)
    line = listeners.spec_of(row).mc_line()
    listeners.delete(row, request=request)
    messages.success(request, f"{line} removed. {APPLY}")
    return redirect("listener_list", server=server)
