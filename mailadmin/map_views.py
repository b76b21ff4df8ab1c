"""The maps & classes page: a server's aliases, virtusertable, mailertable, genericstable,
domaintable, local-host-names, relay-domains and trusted-users as rows, added, edited and deleted,
and imported from the host's own files.

Thin views over mailadmin.maps, which cleans every field (mailadmin/cf/maps.py) and audits every
change (conventions of mailadmin/listener_views.py: require_role outermost, exactly one of
require_GET / require_POST, POST-redirect-GET; a refused change comes back as the page itself, 400,
with each message at its field and everything typed still in the boxes).

Import from the host: the web tier never reads an MTA file. "Read the host's files" writes an
AgentRequest ("map sources", answered by mailadmin/mta/mapsource.py); the page follows it with htmx
and, once answered, offers an Import per file that imports the text from that answered row, never
text sent by the browser.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST

from mailadmin import buildrows, config, maps, requests
from mailadmin.cf import maps as mapfiles
from mailadmin.models import AgentRequest, MailServer, MapEntry
from mailadmin.roles import Role, require_role
from mailadmin.views import AGENT_RESULT_TEMPLATES, get_server, render_page
from mailadmin.work import WorkStatus

APPLY = "Build and install to apply it."
SOURCES_KIND = "map sources"  # answered by mailadmin.mta.mapsource
SOURCES_TEMPLATE = "mailadmin/_map_sources_result.html"
AGENT_RESULT_TEMPLATES.add(SOURCES_TEMPLATE)
DEFAULT_MAP = "aliases"
FIELDS = ("key", "value", "comment")


def _map_name(value: str | None) -> str:
    name = value or DEFAULT_MAP
    if name not in mapfiles.SPECS:
        raise Http404(f"no map or class file called {name!r}")
    return name


def _typed(request: HttpRequest) -> dict[str, str]:
    return {field: request.POST.get(field, "") for field in FIELDS}


def _refused(exc: ValidationError) -> tuple[dict[str, list[str]], list[str]]:
    """(messages by field, messages about the whole row)."""
    by_field = dict(exc.message_dict) if hasattr(exc, "error_dict") else {NON_FIELD_ERRORS: exc.messages}
    return by_field, by_field.pop(NON_FIELD_ERRORS, [])


def _pending(server: MailServer) -> str:
    """ "changed": the rows differ from what the live build was made from; "unknown": no live build of
    this console to compare with; "": they are live."""
    live = config.live_build(server)
    if live is None or not live.rows:
        return "unknown"
    return "changed" if "map and class rows" in buildrows.differences(server, live) else ""


def _back(server: MailServer, map_name: str, **query) -> HttpResponse:
    url = reverse("map_list", args=[server.name]) + "?" + urlencode({"map": map_name, **query})
    return redirect(url)


def sources_context(server: MailServer, pk: str | None) -> dict | None:
    """The "map sources" request named in the query string (this server's), as _agent_request.html shows it."""
    if not pk or not str(pk).isdigit():
        return None
    row = AgentRequest.objects.select_related("server", "server__host")
    row = row.filter(pk=int(pk), server=server, kind=SOURCES_KIND).first()
    return requests.request_context(row, SOURCES_TEMPLATE) if row else None


def _page(
    request: HttpRequest,
    server: MailServer,
    map_name: str,
    *,
    editing: int | None = None,
    adding: bool = False,
    typed: dict[str, str] | None = None,
    errors: ValidationError | None = None,
) -> HttpResponse:
    """The page with one file's rows; after a refused change, `typed` and `errors` go back to the form
    they came from (the row `editing`, or the add form when `adding`)."""
    spec = mapfiles.spec_of(map_name)
    by_field, whole_row = _refused(errors) if errors else ({}, [])
    managed = set(server.managed_maps or [])
    counts = dict.fromkeys(mapfiles.SPECS, 0)
    kept = dict.fromkeys(mapfiles.SPECS, 0)
    for name, verbatim in MapEntry.objects.filter(server=server).values_list("map", "verbatim"):
        if verbatim:
            kept[name] += len(verbatim.splitlines())
        else:
            counts[name] += 1
    files = [
        {"spec": s, "rows": counts[name], "kept": kept[name], "managed": name in managed, "current": name == map_name}
        for name, s in mapfiles.SPECS.items()
    ]
    items = []
    for row in maps.entries(server, map_name):
        mine = editing == row.pk
        stored = {"key": row.key, "value": row.value, "comment": row.comment}
        items.append(
            {
                "row": row,
                "values": typed if mine else stored,
                "errors": by_field if mine else {},
                "row_errors": whole_row if mine else [],
                "privileged": not row.verbatim and spec.kind == mapfiles.ALIASES and _privileged(row.value),
            }
        )
    mailers, from_cf = maps.mailers(server) if map_name == "mailertable" else ([], True)
    context = {
        "server": server,
        "tab": "maps",
        "spec": spec,
        "files": files,
        "items": items,
        "managed": map_name in managed,
        "add_values": typed if adding else {},
        "add_errors": by_field if adding else {},
        "add_row_errors": whole_row if adding else [],
        "refused": errors is not None,
        "pending": _pending(server),
        "live": config.live_build(server),
        "mailers": mailers,
        "mailers_from_cf": from_cf,
        "preview": maps.rendered(server, map_name),
        "sources": sources_context(server, request.GET.get("sources")),
    }
    response = render_page(request, "mailadmin/maps.html", context, section="configuration")
    if errors is not None:
        response.status_code = 400
    return response


def _privileged(value: str) -> bool:
    return any(mapfiles.privileged_target(target.strip()) for target in value.split(",") if target.strip())


def _entry(server: str, pk: int) -> MapEntry:
    return get_object_or_404(MapEntry.objects.select_related("server", "server__host"), pk=pk, server__name=server)


@require_role(Role.VIEWER)
@require_GET
def map_list(request: HttpRequest, server: str) -> HttpResponse:
    return _page(request, get_server(server), _map_name(request.GET.get("map")))


@require_role(Role.OPERATOR)
@require_POST
def map_add(request: HttpRequest, server: str, map_name: str) -> HttpResponse:
    mail_server, map_name = get_server(server), _map_name(map_name)
    typed = _typed(request)
    try:
        row = maps.add(
            mail_server, map_name, typed["key"], typed["value"], typed["comment"], user=request.user, request=request
        )
    except ValidationError as exc:
        return _page(request, mail_server, map_name, adding=True, typed=typed, errors=exc)
    messages.success(request, f"{row.key} added to {map_name}. {APPLY}")
    return _back(mail_server, map_name)


@require_role(Role.OPERATOR)
@require_POST
def map_edit(request: HttpRequest, server: str, pk: int) -> HttpResponse:
    entry = _entry(server, pk)
    typed = _typed(request)
    try:
        maps.edit(entry, typed["key"], typed["value"], typed["comment"], user=request.user, request=request)
    except ValidationError as exc:
        entry.refresh_from_db()
        return _page(request, entry.server, entry.map, editing=entry.pk, typed=typed, errors=exc)
    messages.success(request, f"{entry.key} in {entry.map} saved. {APPLY}")
    return _back(entry.server, entry.map)


@require_role(Role.OPERATOR)
@require_POST
def map_delete(request: HttpRequest, server: str, pk: int) -> HttpResponse:
    entry = _entry(server, pk)
    what = f"{len(entry.verbatim.splitlines())} kept lines" if entry.verbatim else entry.key
    mail_server, map_name = entry.server, entry.map
    maps.delete(entry, user=request.user, request=request)
    messages.success(request, f"{what} removed from {map_name}. {APPLY}")
    return _back(mail_server, map_name)


@require_role(Role.OPERATOR)
@require_POST
def map_sources_ask(request: HttpRequest, server: str) -> HttpResponse:
    """Ask the host's agent for the files as they are now (an audited AgentRequest row)."""
    mail_server = get_server(server)
    map_name = _map_name(request.POST.get("map"))
    row = requests.ask(mail_server, SOURCES_KIND, {}, request=request)
    return _back(mail_server, map_name, sources=row.pk)


@require_role(Role.OPERATOR)
@require_POST
def map_import(request: HttpRequest, server: str, pk: int) -> HttpResponse:
    """Import one file ("name") or every file that exists ("all") from the answered request `pk`:
    the text comes from the row the agent wrote, never from the browser."""
    mail_server = get_server(server)
    row = get_object_or_404(AgentRequest, pk=pk, server=mail_server, kind=SOURCES_KIND)
    wanted = request.POST.get("name", "")
    back_to = wanted if wanted in mapfiles.SPECS else DEFAULT_MAP
    if row.status != WorkStatus.DONE:
        messages.error(request, "The agent has not answered this request: nothing was imported.")
        return _back(mail_server, back_to, sources=row.pk)
    files = {f.get("name"): f for f in (row.result or {}).get("files", []) if isinstance(f, dict)}
    if wanted == "all":
        names = [name for name in mapfiles.SPECS if files.get(name, {}).get("exists")]
    elif wanted in mapfiles.SPECS:
        names = [wanted]
    else:
        raise Http404("no such file")
    done, refused = [], []
    for name in names:
        found = files.get(name) or {}
        if not found.get("exists"):
            refused.append(f"{name}: there is no such file on the host.")
            continue
        if not found.get("utf8", False):
            refused.append(f"{name}: the file is not UTF-8 text; importing it would change it, so it was not imported.")
            continue
        try:
            typed, kept = maps.import_text(
                mail_server, name, str(found.get("text", "")), user=request.user, request=request
            )
        except ValidationError as exc:
            refused.append(f"{name}: {' '.join(exc.messages)}")
            continue
        done.append(f"{name} ({typed} rows, {kept} lines kept as imported)")
    if done:
        messages.success(request, f"Imported {', '.join(done)}. {APPLY}")
    for message in refused:
        messages.error(request, message)
    return _back(mail_server, back_to, sources=row.pk)
