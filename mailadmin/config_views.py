"""Configuration pages: options, FEATUREs, the access map, builds, installs and rollbacks.

Thin views over mailadmin.config and the rows the host's agent writes (builds, installs and map
lookups run there); same conventions as mailadmin.views (require_role outermost, exactly one of
require_GET / require_POST, POST-redirect-GET).
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_GET, require_POST

from mailadmin import config, overview, requests, services
from mailadmin.cf import accessmap, catalog
from mailadmin.models import AccessEntry, AgentRequest, ConfigBuild, InstallJob
from mailadmin.roles import Role, require_role
from mailadmin.views import get_server, render_page, render_progress, work_context


def usability(spec, compile_options: list[str] | None) -> tuple[bool, str]:
    """catalog.available, or usable when the agent has not reported the binary's compile options yet."""
    return (True, "") if compile_options is None else catalog.available(spec, compile_options)


def option_rows(server, compile_options: list[str] | None) -> list[dict]:
    current = config.options_of(server)
    groups: dict[str, list[dict]] = {}
    for name, spec in catalog.OPTIONS.items():
        usable, why = usability(spec, compile_options)
        groups.setdefault(spec.group, []).append(
            {"name": name, "spec": spec, "value": current.get(name), "usable": usable, "why": why}
        )
    return [{"group": group, "options": rows} for group, rows in groups.items()]


def feature_rows(server, compile_options: list[str] | None) -> list[dict]:
    current = config.features_of(server)
    rows = []
    for name, spec in catalog.FEATURES.items():
        usable, why = usability(spec, compile_options)
        args = list(current.get(name, ()))
        rows.append(
            {
                "name": name,
                "spec": spec,
                "enabled": name in current,
                "args": [(arg, args[i] if i < len(args) else "") for i, arg in enumerate(spec.args)],
                "usable": usable,
                "why": why,
            }
        )
    return rows


@require_role(Role.VIEWER)
@require_GET
def config_edit(request: HttpRequest, server: str) -> HttpResponse:
    mail_server = get_server(server)
    version = overview.sendmail_version(mail_server)  # as the host's agent last reported it
    compile_options = version.compile_options if version.version else None
    context = {
        "server": mail_server,
        "option_groups": option_rows(mail_server, compile_options),
        "features": feature_rows(mail_server, compile_options),
        "builds": mail_server.builds.select_related("created_by")[:10],
        "live": config.live_build(mail_server),
        "compile_options_unknown": compile_options is None,
        "feature_problems": config.feature_problems(mail_server),
    }
    return render_page(request, "mailadmin/config_edit.html", context, section="configuration")


def _back_to_config(server) -> HttpResponse:
    return redirect("config_edit", server=server.name)


def _report(request: HttpRequest, what: str, exc: ValidationError) -> None:
    messages.error(request, f"{what}: " + " ".join(exc.messages))


@require_role(Role.ADMINISTRATOR)
@require_POST
def option_set(request: HttpRequest, server: str) -> HttpResponse:
    mail_server = get_server(server)
    name, value = request.POST.get("name", ""), request.POST.get("value", "")
    try:
        if request.POST.get("unset"):
            config.unset_option(mail_server, name, request=request)
            messages.success(request, f"{name} is back to sendmail's default. Build to apply it.")
        else:
            row = config.set_option(mail_server, name, value, request=request)
            messages.success(request, f"{name} set to {row.value}. Build to apply it.")
            rate_rows = mail_server.access_entries.filter(tag="ClientRate").count()
            if name == "ConnectionRateWindowSize" and rate_rows:
                messages.warning(
                    request,
                    f"Every ClientRate row ({rate_rows}) now counts connections per {row.value} instead: "
                    "check their limits on the access map page.",
                )
    except ValidationError as exc:
        _report(request, name or "option", exc)
    return _back_to_config(mail_server)


@require_role(Role.ADMINISTRATOR)
@require_POST
def feature_set(request: HttpRequest, server: str) -> HttpResponse:
    mail_server = get_server(server)
    name = request.POST.get("name", "")
    enabled = request.POST.get("enabled") == "on"
    try:
        config.set_feature(mail_server, name, request.POST.getlist("args"), enabled, request=request)
        messages.success(request, f"FEATURE({name}) {'on' if enabled else 'off'}. Build to apply it.")
    except ValidationError as exc:
        _report(request, f"FEATURE({name})", exc)
    return _back_to_config(mail_server)


@require_role(Role.ADMINISTRATOR)
@require_POST
def build_start(request: HttpRequest, server: str) -> HttpResponse:
    mail_server = get_server(server)
    try:
        row = config.start_build(mail_server, request=request)
    except config.BuildRefused as exc:
        messages.error(request, f"Build refused: {exc}")
        return _back_to_config(mail_server)
    return redirect("build_detail", pk=row.pk)


def _build_context(row: ConfigBuild) -> dict:
    return work_context(
        row,
        "build_progress",
        build=row,
        live=config.live_build(row.server),
        diff_lines=[(line[:1], line) for line in row.diff.splitlines()],
    )


@require_role(Role.VIEWER)
@require_GET
def build_detail(request: HttpRequest, pk: int) -> HttpResponse:
    row = get_object_or_404(ConfigBuild.objects.select_related("server", "created_by"), pk=pk)
    return render_page(request, "mailadmin/build.html", _build_context(row), section="configuration")


@require_role(Role.VIEWER)
@require_GET
def build_progress(request: HttpRequest, pk: int) -> HttpResponse:
    row = get_object_or_404(ConfigBuild.objects.select_related("server"), pk=pk)
    return render_progress(request, "mailadmin/_build_result.html", row, _build_context(row))


@require_role(Role.ADMINISTRATOR)
@require_POST
def build_install(request: HttpRequest, pk: int) -> HttpResponse:
    row = get_object_or_404(ConfigBuild.objects.select_related("server"), pk=pk)
    try:
        job = services.request_install(row, request=request)
    except services.InstallRefused as refusal:
        messages.error(request, str(refusal))
        return redirect("build_detail", pk=row.pk)
    return redirect("install_detail", pk=job.pk)


def _install_context(job: InstallJob) -> dict:
    return work_context(job, "install_progress", job=job)


@require_role(Role.VIEWER)
@require_GET
def install_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(InstallJob.objects.select_related("server", "build", "created_by"), pk=pk)
    return render_page(request, "mailadmin/install.html", _install_context(job), section="configuration")


@require_role(Role.VIEWER)
@require_GET
def install_progress(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(InstallJob.objects.select_related("server", "build"), pk=pk)
    return render_progress(request, "mailadmin/_work_progress.html", job, _install_context(job))


@require_role(Role.VIEWER)
@require_GET
def access_list(request: HttpRequest, server: str) -> HttpResponse:
    mail_server = get_server(server)
    context = {
        "server": mail_server,
        "entries": mail_server.access_entries.all(),
        "tags": [(tag, meaning) for tag, (_, _, _, meaning) in accessmap.TAGS.items()],
        "window": config.options_of(mail_server).get("ConnectionRateWindowSize"),
        "lookup": lookup_context(mail_server, request.session.pop("access_lookup", None)),
    }
    return render_page(request, "mailadmin/access.html", context, section="access")


LOOKUP_RESULT_TEMPLATE = "mailadmin/_map_lookup_result.html"


def lookup_context(server, pk) -> dict | None:
    """The lookup just asked (its AgentRequest row), shown until the agent answers, then its answer."""
    if not isinstance(pk, int):  # nothing asked (or a session from before lookups were rows)
        return None
    row = AgentRequest.objects.select_related("server", "server__host").filter(pk=pk, server=server).first()
    if row is None:
        return None
    tag, _, key = str(row.params.get("key", "")).partition(":")
    return requests.request_context(row, LOOKUP_RESULT_TEMPLATE, tag=tag, key=key)


@require_role(Role.ADMINISTRATOR)
@require_POST
def access_add(request: HttpRequest, server: str) -> HttpResponse:
    mail_server = get_server(server)
    post = request.POST
    try:
        row = config.add_access_entry(
            mail_server,
            post.get("tag", ""),
            post.get("key", ""),
            post.get("value", ""),
            post.get("comment", ""),
            request=request,
        )
        messages.success(request, f"{row.tag}:{row.key} → {row.value} saved. Build and install to apply it.")
    except ValidationError as exc:
        _report(request, "Access entry", exc)
    return redirect("access_list", server=mail_server.name)


@require_role(Role.ADMINISTRATOR)
@require_POST
def access_delete(request: HttpRequest, pk: int) -> HttpResponse:
    entry = get_object_or_404(AccessEntry.objects.select_related("server"), pk=pk)
    server = entry.server
    config.delete_access_entry(entry, request=request)
    messages.success(request, f"{entry.tag}:{entry.key} removed. Build and install to apply it.")
    return redirect("access_list", server=server.name)


@require_role(Role.VIEWER)
@require_POST
def access_lookup(request: HttpRequest, server: str) -> HttpResponse:
    """Ask sendmail what the compiled (installed) access map returns for a key: the host's agent
    answers an AgentRequest row, and the access page follows it until it has."""
    mail_server = get_server(server)
    tag, key = request.POST.get("tag", ""), request.POST.get("key", "")
    try:
        accessmap.clean_entry(tag, key, "0" if tag in ("ClientRate", "ClientConn", "GreetPause") else "OK")
    except ValidationError as exc:
        _report(request, "Lookup", exc)
        return redirect("access_list", server=mail_server.name)
    row = requests.ask(mail_server, "map lookup", {"map": "access", "key": f"{tag}:{key}"}, request=request)
    request.session["access_lookup"] = row.pk
    return redirect("access_list", server=mail_server.name)
