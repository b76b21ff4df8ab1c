"""Queue pages: the index for listing, the host's agent for one message, QueueAction rows for changes.

The web tier never reads a spool: the index rows are written by the agent of the server's host,
a message's spool view is an AgentRequest it answers (mailqueue/agentside.py), and every change
is a POST that writes a QueueAction row and an audit event in one transaction and asks for the
row to be dispatched after commit; the page then follows the row.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST

from mailadmin import audit, overview, requests, work
from mailadmin.models import AuditEvent, MailServer
from mailadmin.roles import Role, require_role
from mailadmin.views import get_server, render_page, render_progress
from mailadmin.work import TERMINAL
from mailqueue import services, stats, summary
from mailqueue.forms import AlertSettingsForm, QueueFilterForm, SelectedActionForm, SelectorActionForm
from mailqueue.models import IndexRefresh, QueueAction, QueueAlertSettings, QueueMessage, QueueSample
from mailqueue.parser import QUEUE_ID_PATTERN

PAGE_SIZE = 50
HISTORY_LIMIT = 50
PREVIEW_TEMPLATE = "mailqueue/_message_preview.html"
# A first visit to a server's queue that has never been indexed asks its agent to build the index
# (a REFRESH action); while that is pending the page polls. A failed build is asked for again
# after this long, not at every poll.
FIRST_BUILD_RETRY = timedelta(minutes=1)


def _form_errors(form) -> str:
    return " ".join(str(error) for errors in form.errors.values() for error in errors)


def create_action(request: HttpRequest, server: MailServer, **fields) -> QueueAction:
    with transaction.atomic():
        action = QueueAction.objects.create(server=server, created_by=request.user, **fields)
        audit.record(
            f"queue {action.verb}",
            request=request,
            server=server,
            target=f"queue action {action.pk}: {action.target_text}",
            outcome=AuditEvent.Outcome.QUEUED,
            detail=f"reason: {action.reason}" if action.reason else "",
        )
        work.dispatch_on_commit(action)
    return action


@require_role(Role.VIEWER)
@require_GET
def queue_overview(request: HttpRequest, server: str) -> HttpResponse:
    """The queue list: filters, sort, pages of 50, and the total of all matches."""
    mail_server = get_server(server)
    refreshed = IndexRefresh.objects.filter(server=mail_server).first()
    # First visit: ask the host's agent for the index now rather than wait for the beat task.
    first_build = None if refreshed else first_index_build(request, mail_server)
    form = QueueFilterForm(request.GET)
    matching = form.filter(QueueMessage.objects.filter(server=mail_server))
    page = Paginator(matching, PAGE_SIZE).get_page(request.GET.get("page"))
    query = form.query_items()
    context = {
        "server": mail_server,
        "form": form,
        "page": page,
        "bounced": bounced_messages(mail_server, page.object_list),
        "total": page.paginator.count,
        "query": urlencode(query),
        "query_items": query,
        "sort": form.cleaned_data.get("sort", "") if form.is_valid() else "",
        **freshness_context(mail_server, refreshed),
        "first_build": first_build,
        "action_form": SelectedActionForm(),
        "selector_form": SelectorActionForm(),
        "recent_actions": QueueAction.objects.filter(server=mail_server).select_related("created_by")[:5],
    }
    return render_page(request, "mailqueue/list.html", context, section="queue")


def freshness_context(server: MailServer, refreshed: IndexRefresh | None) -> dict:
    """How current the list is: the index's state counts and the time of its last refresh, to the second."""
    return {
        "spool": summary.state_counts(refreshed),
        "refreshed": refreshed,
        "refreshed_ago": overview.ago(refreshed.finished) if refreshed else "",
        "token": refreshed.token if refreshed else 0,
        "silent_agent": overview.agent_silence(server),
    }


def bounced_messages(server: MailServer, messages) -> set[str]:
    """The queue ids on this page's DSNs that name a message still in the index (one query)."""
    wanted = {message.bounce_of for message in messages if message.bounce_of}
    if not wanted:
        return set()
    return set(QueueMessage.objects.filter(server=server, queue_id__in=wanted).values_list("queue_id", flat=True))


@require_role(Role.VIEWER)
@require_GET
def queue_freshness(request: HttpRequest, server: str) -> HttpResponse:
    """The list's header line, polled every few seconds: one row read. When the index changed since the
    page's copy (another token), it tells the page to fetch its list again (the queue-changed event)."""
    mail_server = get_server(server)
    refreshed = IndexRefresh.objects.filter(server=mail_server).first()
    context = {"server": mail_server, **freshness_context(mail_server, refreshed)}
    response = render(request, "mailqueue/_freshness.html", context)
    if str(context["token"]) != request.GET.get("seen", ""):
        response["HX-Trigger"] = "queue-changed"
    return response


def first_index_build(request: HttpRequest, server: MailServer) -> QueueAction:
    """The REFRESH action building a never-indexed server's index: the pending one, the one that
    just failed (shown for a minute), or a new one asked of the host's agent."""
    latest = QueueAction.objects.filter(server=server, verb=QueueAction.Verb.REFRESH).first()
    if latest is not None and (
        latest.status not in TERMINAL or (latest.finished_at or latest.created) > timezone.now() - FIRST_BUILD_RETRY
    ):
        return latest
    return create_action(request, server, verb=QueueAction.Verb.REFRESH)


@require_role(Role.VIEWER)
@require_GET
def message_detail(request: HttpRequest, server: str, queue_id: str) -> HttpResponse:
    """One job: what the index knows at once, and the spool itself (envelope, headers, body) as the
    host's agent reads it; with the console's actions on it."""
    mail_server = get_server(server)
    if not QUEUE_ID_PATTERN.fullmatch(queue_id):
        raise Http404("not a queue id")
    history = (
        QueueAction.objects.filter(server=mail_server)
        .filter(Q(queue_ids__icontains=queue_id) | Q(outcomes__has_key=queue_id))
        .select_related("created_by")[:HISTORY_LIMIT]
    )
    asked = requests.ask(mail_server, "message preview", {"queue_id": queue_id}, request=request)
    indexed = QueueMessage.objects.filter(server=mail_server, queue_id=queue_id).first()
    refreshed = IndexRefresh.objects.filter(server=mail_server).first()
    context = {
        **requests.request_context(asked, PREVIEW_TEMPLATE),
        "server": mail_server,
        "queue_id": queue_id,
        "history": [(action, action.outcomes.get(queue_id, "")) for action in history],
        "action_form": SelectedActionForm(),
        "indexed": indexed,
        "original": QueueMessage.objects.filter(server=mail_server, queue_id=indexed.bounce_of).first()
        if indexed and indexed.bounce_of
        else None,
        "bounces": QueueMessage.objects.filter(server=mail_server, dsn=True, bounce_of=queue_id).values_list(
            "queue_id", flat=True
        )[:HISTORY_LIMIT],
        "refreshed": refreshed,
        "refreshed_ago": overview.ago(refreshed.finished) if refreshed else "",
        # The server switcher cannot carry a queue id over to another server: it opens that one's queue.
        "switch_view": "mailqueue:overview",
    }
    return render_page(request, "mailqueue/message.html", context, section="queue")


@require_role(Role.OPERATOR)
@require_POST
def act_on_messages(request: HttpRequest, server: str) -> HttpResponse:
    """Quarantine, release, deliver or delete the ticked messages, or every message matching the filter."""
    mail_server = get_server(server)
    form = SelectedActionForm(request.POST)
    # The filter the page showed comes along prefixed, so its "reason" is not the quarantine reason.
    filters = QueueFilterForm(request.POST, prefix="filter")
    back_url = reverse("mailqueue:overview", args=[mail_server.name]) + "?" + urlencode(filters.query_items())
    if not form.is_valid():
        messages.error(request, _form_errors(form))
        return redirect(back_url)
    data = form.cleaned_data
    try:
        ids = services.ids_to_act_on(mail_server, data, filters)
    except services.ActionRefused as refusal:
        messages.error(request, str(refusal))
        return redirect(back_url)
    action = create_action(
        request,
        mail_server,
        verb=data["verb"],
        queue_ids=ids,
        reason=data["reason"] if data["verb"] == QueueAction.Verb.QUARANTINE else "",
        debug_level=data["debug_level"],
    )
    messages.info(request, f"{action.get_verb_display().capitalize()} of {len(ids)} message(s) requested.")
    return redirect("mailqueue:action_detail", pk=action.pk)


@require_role(Role.OPERATOR)
@require_POST
def act_by_selector(request: HttpRequest, server: str) -> HttpResponse:
    """Let sendmail choose the jobs: quarantine by -qR/-qS/-qI text, or process by -qQ/-q!Q reason text."""
    mail_server = get_server(server)
    form = SelectorActionForm(request.POST)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
        return redirect("mailqueue:overview", server=mail_server.name)
    data = form.cleaned_data
    quarantining = data["verb"] == QueueAction.Verb.QUARANTINE_MATCHING
    action = create_action(
        request,
        mail_server,
        verb=data["verb"],
        selector_kind=data["selector_kind"],
        selector=data["selector"],
        negate=bool(data["negate"]) and not quarantining,
        reason=data["reason"] if quarantining else "",
        debug_level=data["debug_level"],
    )
    messages.info(request, f"{action.get_verb_display().capitalize()} requested.")
    return redirect("mailqueue:action_detail", pk=action.pk)


@require_role(Role.OPERATOR)
@require_POST
def retry_action(request: HttpRequest, pk: int) -> HttpResponse:
    """Run a finished action again with the same inputs; jobs already in the target state are left alone."""
    previous = _action(pk)
    if not previous.finished or previous.verb == QueueAction.Verb.REFRESH:
        messages.error(request, "Only a finished queue action can be run again.")
        return redirect("mailqueue:action_detail", pk=previous.pk)
    action = create_action(
        request,
        previous.server,
        verb=previous.verb,
        queue_ids=previous.queue_ids,
        selector_kind=previous.selector_kind,
        selector=previous.selector,
        negate=previous.negate,
        reason=previous.reason,
        debug_level=previous.debug_level,
    )
    messages.info(request, f"{action.get_verb_display().capitalize()} requested again.")
    return redirect("mailqueue:action_detail", pk=action.pk)


@require_role(Role.VIEWER)
@require_POST
def refresh_index(request: HttpRequest, server: str) -> HttpResponse:
    mail_server = get_server(server)
    action = create_action(request, mail_server, verb=QueueAction.Verb.REFRESH)
    return redirect("mailqueue:action_detail", pk=action.pk)


def _action(pk: int) -> QueueAction:
    return get_object_or_404(QueueAction.objects.select_related("server", "created_by"), pk=pk)


def _action_context(action: QueueAction) -> dict:
    outcomes = sorted(action.outcomes.items())
    return {
        "action": action,
        "server": action.server,
        "outcomes": outcomes[:1000],
        "more": max(0, len(outcomes) - 1000),
    }


@require_role(Role.VIEWER)
@require_GET
def action_detail(request: HttpRequest, pk: int) -> HttpResponse:
    action = _action(pk)
    return render_page(request, "mailqueue/action.html", _action_context(action), section="queue")


@require_role(Role.VIEWER)
@require_GET
def action_progress(request: HttpRequest, pk: int) -> HttpResponse:
    action = _action(pk)
    return render_progress(request, "mailqueue/_action_progress.html", action, _action_context(action))


@require_role(Role.VIEWER)
@require_GET
def queue_summary(request: HttpRequest, server: str) -> HttpResponse:
    """Recipient domain × age band, and senders: each cell links to the filtered list."""
    mail_server = get_server(server)
    context = {
        "server": mail_server,
        "domains": summary.by_domain_and_age(mail_server),
        "senders": summary.top_senders(mail_server),
        "bands": summary.BAND_LABELS,
    }
    return render_page(request, "mailqueue/summary.html", context, section="queue")


@require_role(Role.VIEWER)
@require_GET
def dashboard_panel(request: HttpRequest, server: str) -> HttpResponse:
    """The dashboard's queue card: the last day's samples as an SVG chart, drawn here."""
    mail_server = get_server(server)
    context = {
        "server": mail_server,
        "chart": stats.chart(mail_server),
        "latest": QueueSample.objects.filter(server=mail_server).order_by("-taken").first(),
        "alerts": stats.active_alerts(mail_server),
    }
    return render(request, "mailqueue/_dashboard_panel.html", context)


@require_role(Role.VIEWER)
@require_GET
def alert_banner(request: HttpRequest, server: str) -> HttpResponse:
    mail_server = get_server(server)
    context = {"server": mail_server, "alerts": stats.active_alerts(mail_server)}
    return render(request, "mailqueue/_alert_banner.html", context)


def _alert_settings(server: MailServer) -> QueueAlertSettings:
    return QueueAlertSettings.objects.filter(server=server).first() or QueueAlertSettings(server=server)


@require_role(Role.VIEWER)
@require_GET
def alert_settings(request: HttpRequest, server: str) -> HttpResponse:
    mail_server = get_server(server)
    current = _alert_settings(mail_server)
    context = {
        "server": mail_server,
        "form": AlertSettingsForm(instance=current),
        "alerts": stats.active_alerts(mail_server),
        "recipients": stats.administrator_addresses(mail_server),
    }
    return render_page(request, "mailqueue/alerts.html", context, section="queue")


@require_role(Role.ADMINISTRATOR)
@require_POST
def alert_settings_save(request: HttpRequest, server: str) -> HttpResponse:
    mail_server = get_server(server)
    form = AlertSettingsForm(request.POST, instance=_alert_settings(mail_server))
    if not form.is_valid():
        context = {"server": mail_server, "form": form, "alerts": [], "recipients": []}
        return render_page(request, "mailqueue/alerts.html", context, section="queue")
    with transaction.atomic():
        form.save()
        audit.record(
            "queue alert thresholds",
            request=request,
            server=mail_server,
            target=mail_server.name,
            detail="\n".join(f"{name}={form.cleaned_data[name]}" for name in form.Meta.fields),
        )
    messages.success(request, "Alert thresholds saved.")
    return redirect("mailqueue:alert_settings", server=mail_server.name)
