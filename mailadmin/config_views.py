"""Configuration pages: options, FEATUREs, the access map, builds, installs and rollbacks.

Thin views over mailadmin.config and the rows the host's agent writes (builds, installs and map
lookups run there); same conventions as mailadmin.views (require_role outermost, exactly one of
require_GET / require_POST, POST-redirect-GET).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from mailadmin import buildrows, config, overview, requests, services
from mailadmin.cf import accessmap, catalog
from mailadmin.models import AccessEntry, AgentRequest, ConfigBuild, HostSnapshot, InstallJob
from mailadmin.roles import Role, require_role
from mailadmin.views import get_server, render_page, render_progress, work_context
from mailadmin.work import WorkStatus


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
                "args": [
                    {"index": i, "spec": arg, "value": args[i] if i < len(args) else "", "flag": arg.flag}
                    for i, arg in enumerate(spec.args)
                ],
                "usable": usable,
                "why": why,
            }
        )
    return rows


def posted_feature_args(post: QueryDict, name: str) -> list[str]:
    """A FEATURE's arguments from its form, by position: the page names each field `arg-<n>`, since an
    unticked flag's checkbox sends nothing and would shift the ones after it. A post without them
    (scripts, older forms) gives its values in order as `args`."""
    spec = catalog.FEATURES.get(name)
    positions = range(len(spec.args)) if spec else range(0)
    if not any(f"arg-{i}" in post for i in positions):
        return post.getlist("args")
    return [post.get(f"arg-{i}", "") for i in positions]


# The configuration page's filter text, carried through Set/Save so the page comes back as it was.
FILTER_MAX = 100


def filter_text(raw: str | None) -> str:
    """The filter as typed, bounded; it only ever goes back into a query string and a text box."""
    return " ".join((raw or "").split())[:FILTER_MAX]


@require_role(Role.VIEWER)
@require_GET
def config_edit(request: HttpRequest, server: str) -> HttpResponse:
    mail_server = get_server(server)
    version = overview.sendmail_version(mail_server)  # as the host's agent last reported it
    compile_options = version.compile_options if version.version else None
    live = config.live_build(mail_server)
    context = {
        "server": mail_server,
        "option_groups": option_rows(mail_server, compile_options),
        "features": feature_rows(mail_server, compile_options),
        "builds": mail_server.builds.select_related("created_by")[:10],
        "live": live,
        # Rows changed since the live build was made (or a rollback whose rows were not restored):
        # the next build would carry those changes, which the page must say before it happens.
        "row_differences": buildrows.differences(mail_server, live) if live else [],
        "compile_options_unknown": compile_options is None,
        "feature_problems": config.feature_problems(mail_server),
        "filter": filter_text(request.GET.get("filter")),
    }
    return render_page(request, "mailadmin/config_edit.html", context, section="configuration")


def _back_to_config(request: HttpRequest, server, anchor: str = "") -> HttpResponse:
    """Back to the configuration page at the row just changed (its fragment), with the filter kept."""
    url = reverse("config_edit", kwargs={"server": server.name})
    typed = filter_text(request.POST.get("filter"))
    if typed:
        url += "?" + urlencode({"filter": typed})
    return redirect(url + (f"#{anchor}" if anchor else ""))


def _option_anchor(name: str) -> str:
    return f"option-{name}" if name in catalog.OPTIONS else ""


def _feature_anchor(name: str) -> str:
    return f"feature-{name}" if name in catalog.FEATURES else ""


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
    return _back_to_config(request, mail_server, _option_anchor(name))


@require_role(Role.ADMINISTRATOR)
@require_POST
def feature_set(request: HttpRequest, server: str) -> HttpResponse:
    mail_server = get_server(server)
    name = request.POST.get("name", "")
    enabled = request.POST.get("enabled") == "on"
    try:
        config.set_feature(mail_server, name, posted_feature_args(request.POST, name), enabled, request=request)
        messages.success(request, f"FEATURE({name}) {'on' if enabled else 'off'}. Build to apply it.")
    except ValidationError as exc:
        _report(request, f"FEATURE({name})", exc)
    return _back_to_config(request, mail_server, _feature_anchor(name))


@require_role(Role.ADMINISTRATOR)
@require_POST
def build_start(request: HttpRequest, server: str) -> HttpResponse:
    mail_server = get_server(server)
    try:
        row = config.start_build(mail_server, request=request)
    except config.BuildRefused as exc:
        messages.error(request, f"Build refused: {exc}")
        return _back_to_config(request, mail_server)
    return redirect("build_detail", pk=row.pk)


@dataclass
class LiveComparison:
    """A build's cf against the cf its host runs now: what installing the build would change.

    `state`: "live" (this build is installed), "build" (another build is: `live`), "host" (a cf
    this console did not build) or "unknown" (`why`; `diff_lines` are
    then the stored diff against the cf installed when the build was made, the best there is)."""

    state: str
    live: ConfigBuild | None = None
    why: str = ""
    diff_lines: list[tuple[str, str]] = field(default_factory=list)
    added: int = 0
    removed: int = 0
    # The stored at-build-time diff says the same: the page shows it once, not twice.
    same_as_stored: bool = False


def diff_lines(diff: str) -> list[tuple[str, str]]:
    """(kind, line) for the template: kind is +, -, @ or anything else for context."""
    return [(line[:1], line) for line in diff.splitlines()]


def compare_with_live(row: ConfigBuild, live: ConfigBuild | None) -> LiveComparison | None:
    """The diff between the cf the host's agent last saw (or the live build's own cf, the same text
    in full) and this build's; None while the build has no cf."""
    if row.status != WorkStatus.DONE or not row.cf_text:
        return None
    if live is not None:
        if live.pk == row.pk:
            return LiveComparison("live", live)
        state, old_text, old_name = "build", live.cf_text, f"live sendmail.cf ({live.build_id})"
    else:
        snapshot = HostSnapshot.objects.filter(server=row.server).only("cf", "cf_text").first()
        cf = snapshot.cf if snapshot else {}
        why = ""
        if snapshot is None:
            why = "no snapshot from the host's agent yet"
        elif cf.get("exists") and (cf.get("text_truncated") or not snapshot.cf_text):
            why = "the agent's snapshot holds only part of the live cf"
        elif not cf.get("exists"):
            why = f"the agent could not read it: {cf.get('error') or snapshot.error or 'no reason given'}"
        if why:
            return LiveComparison("unknown", why=why, diff_lines=diff_lines(row.diff))
        state, old_text, old_name = "host", snapshot.cf_text, "live sendmail.cf"
    lines = list(
        difflib.unified_diff(
            old_text.splitlines(), row.cf_text.splitlines(), old_name, f"{row.build_id}.cf", n=2, lineterm=""
        )
    )
    changes = lines[2:]  # after the ---/+++ header
    return LiveComparison(
        state,
        live,
        diff_lines=diff_lines("\n".join(lines)),
        added=sum(1 for line in changes if line.startswith("+")),
        removed=sum(1 for line in changes if line.startswith("-")),
        same_as_stored=changes == row.diff.splitlines()[2:],
    )


def _build_context(row: ConfigBuild) -> dict:
    live = config.live_build(row.server)
    is_live = live is not None and live.pk == row.pk
    return work_context(
        row,
        "build_progress",
        build=row,
        live=live,
        against_live=compare_with_live(row, live),
        diff_lines=diff_lines(row.diff),
        # The live build's page says when the rows have moved on from it (and offers them back).
        row_differences=buildrows.differences(row.server, row) if is_live else [],
        build_maps=sorted((row.maps or {}).items()),
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


@require_role(Role.ADMINISTRATOR)
@require_POST
def build_reset_rows(request: HttpRequest, pk: int) -> HttpResponse:
    """Make the rows what the live build was made from again (after a rollback, or to drop edits)."""
    row = get_object_or_404(ConfigBuild.objects.select_related("server"), pk=pk)
    server = row.server
    if config.live_build(server) != row:
        messages.error(request, f"Build {row.build_id} is not the live build any more; nothing was reset.")
    elif not buildrows.restore(server, row, user=request.user):
        messages.error(request, f"Build {row.build_id} kept no rows to reset to.")
    else:
        messages.success(request, f"The rows are what build {row.build_id} was made from again.")
    return _back_to_config(request, server)


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
        key = accessmap.clean_key(tag, key)
    except ValidationError as exc:
        _report(request, "Lookup", exc)
        return redirect("access_list", server=mail_server.name)
    row = requests.ask(mail_server, "map lookup", {"map": "access", "key": f"{tag}:{key}"}, request=request)
    request.session["access_lookup"] = row.pk
    return redirect("access_list", server=mail_server.name)
