"""Console pages: thin functions over mailadmin.overview, the work rows and the audit log.

Every view carries require_role (outermost, so the URL resolver's callback shows
`required_role`) and exactly one of require_GET / require_POST. Changes are POSTs that write
an AuditEvent and redirect.
"""

from __future__ import annotations

import shlex

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from mailadmin import audit, overview, work
from mailadmin.forms import AuditFilterForm, MailServerForm, ServiceActionForm
from mailadmin.models import AuditEvent, MailServer, ServiceAction
from mailadmin.mta import cfbuild, daemon
from mailadmin.roles import Role, require_role

# htmx stops polling an element when its request answers 286.
HTMX_STOP_POLLING = 286
AUDIT_PAGE_SIZE = 50


def render_page(request: HttpRequest, template_name: str, context: dict, *, section: str) -> HttpResponse:
    """Render a full console page with what the navigation bar needs.

    The server switcher keeps the reader on the same page for another server when the page is
    per-server, and falls back to that server's dashboard otherwise.
    """
    servers = list(MailServer.objects.all())
    match = request.resolver_match
    per_server = match is not None and "server" in match.kwargs
    page = {
        "servers": servers,
        "nav_server": context.get("server") or (servers[0] if servers else None),
        "switch_view": match.view_name if per_server else "dashboard",
        "section": section,
        **context,
    }
    return render(request, template_name, page)


def work_context(item, progress_view: str, **extra) -> dict:
    """What a work row's page and its polled fragment need (see templates/mailadmin/_work_progress.html)."""
    return {"item": item, "server": item.server, "progress_url": reverse(progress_view, args=[item.pk]), **extra}


def render_progress(request: HttpRequest, template_name: str, item, context: dict) -> HttpResponse:
    """The polled fragment of a work row; 286 tells htmx to stop polling once the row is finished."""
    return render(request, template_name, context, status=HTMX_STOP_POLLING if item.finished else 200)


def get_server(name: str) -> MailServer:
    return get_object_or_404(MailServer, name=name)


def command_line(argv: object) -> str:
    if isinstance(argv, list):
        return shlex.join(str(arg) for arg in argv)
    return ""


def with_command_lines(events: list[AuditEvent]) -> list[AuditEvent]:
    for event in events:
        event.command_line = command_line(event.argv)
    return events


@require_role(Role.VIEWER)
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    first = MailServer.objects.first()
    if first is None:
        return redirect("server_list")
    return redirect("dashboard", server=first.name)


@require_role(Role.VIEWER)
@require_GET
def server_list(request: HttpRequest) -> HttpResponse:
    return render_page(request, "mailadmin/server_list.html", {}, section="servers")


def server_form_context(form: MailServerForm) -> dict:
    return {"form": form, "allowed_roots": settings.MAILADMIN_ALLOWED_ROOTS}


@require_role(Role.ADMINISTRATOR)
@require_GET
def server_add(request: HttpRequest) -> HttpResponse:
    form = MailServerForm(initial={"smtp_port": 25, "queue_interval": "30m", "syslog_tag": "sendmail"})
    return render_page(request, "mailadmin/server_form.html", server_form_context(form), section="servers")


@require_role(Role.ADMINISTRATOR)
@require_POST
def server_create(request: HttpRequest) -> HttpResponse:
    form = MailServerForm(request.POST)
    if not form.is_valid():
        return render_page(request, "mailadmin/server_form.html", server_form_context(form), section="servers")
    with transaction.atomic():
        mail_server = form.save()
        audit.record(
            "add server",
            request=request,
            server=mail_server,
            target=mail_server.name,
            detail="\n".join(f"{name}={form.cleaned_data[name]}" for name in form.Meta.fields),
        )
    messages.success(request, f"Server {mail_server.name} added.")
    return redirect("dashboard", server=mail_server.name)


@require_role(Role.VIEWER)
@require_GET
def dashboard(request: HttpRequest, server: str) -> HttpResponse:
    mail_server = get_server(server)
    summary = overview.server_overview(mail_server)
    with_command_lines(summary.audit_events)
    context = {
        "server": mail_server,
        "overview": summary,
        "status": summary.status,
        "checked": timezone.now(),
        "verbs": ServiceAction.Verb,
        "live_build": cfbuild.live_build(mail_server),
        "last_build": mail_server.builds.first(),
    }
    return render_page(request, "mailadmin/dashboard.html", context, section="dashboard")


@require_role(Role.VIEWER)
@require_GET
def daemon_status(request: HttpRequest, server: str) -> HttpResponse:
    mail_server = get_server(server)
    context = {"server": mail_server, "status": daemon.status(mail_server), "checked": timezone.now()}
    return render(request, "mailadmin/_daemon_status.html", context)


@require_role(Role.ADMINISTRATOR)
@require_POST
def service_action(request: HttpRequest, server: str) -> HttpResponse:
    mail_server = get_server(server)
    form = ServiceActionForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose start, stop, restart or reload.")
        return redirect("dashboard", server=mail_server.name)
    verb = form.cleaned_data["verb"]
    with transaction.atomic():
        action = ServiceAction.objects.create(server=mail_server, verb=verb, created_by=request.user)
        audit.record(
            f"daemon {verb}",
            request=request,
            server=mail_server,
            target=f"service action {action.pk}",
            outcome=AuditEvent.Outcome.QUEUED,
        )
        work.dispatch_on_commit(action)
    messages.info(request, f"{action.get_verb_display().capitalize()} of {mail_server.name} requested.")
    return redirect("service_action_detail", pk=action.pk)


def _service_action_context(action: ServiceAction) -> dict:
    return work_context(action, "service_action_progress", action=action)


@require_role(Role.VIEWER)
@require_GET
def service_action_detail(request: HttpRequest, pk: int) -> HttpResponse:
    action = get_object_or_404(ServiceAction.objects.select_related("server", "created_by"), pk=pk)
    return render_page(request, "mailadmin/service_action.html", _service_action_context(action), section="dashboard")


@require_role(Role.VIEWER)
@require_GET
def service_action_progress(request: HttpRequest, pk: int) -> HttpResponse:
    action = get_object_or_404(ServiceAction.objects.select_related("server", "created_by"), pk=pk)
    return render_progress(request, "mailadmin/_work_progress.html", action, _service_action_context(action))


@require_role(Role.VIEWER)
@require_GET
def configuration(request: HttpRequest, server: str) -> HttpResponse:
    mail_server = get_server(server)
    context = {
        "server": mail_server,
        "cf": overview.installed_cf(mail_server),
        "mc": overview.installed_mc(mail_server),
    }
    return render_page(request, "mailadmin/configuration.html", context, section="configuration")


@require_role(Role.VIEWER)
@require_GET
def audit_list(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET)
    events = form.filter(AuditEvent.objects.select_related("server", "user"))
    page = Paginator(events, AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    page.object_list = with_command_lines(list(page.object_list))
    return render_page(request, "mailadmin/audit_list.html", {"form": form, "page": page}, section="audit")
