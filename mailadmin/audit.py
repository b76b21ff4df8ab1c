"""Writing the audit log. Every change and every MTA command leaves one AuditEvent."""

from __future__ import annotations

from collections.abc import Callable

from django.db import transaction
from django.http import HttpRequest

from mailadmin import work
from mailadmin.models import AuditEvent, MailServer


def _clean(text: str, limit: int) -> str:
    # Control characters would let a value forge extra lines when the log is exported or read.
    return "".join(ch if ch.isprintable() or ch in "\n\t" else f"\\x{ord(ch):02x}" for ch in text)[:limit]


def record(
    action: str,
    *,
    user=None,
    server: MailServer | None = None,
    target: str = "",
    argv: list[str] | tuple[str, ...] | None = None,
    exit_code: int | None = None,
    outcome: str = AuditEvent.Outcome.OK,
    detail: str = "",
    request: HttpRequest | None = None,
) -> AuditEvent:
    if request is not None and user is None:
        user = request.user
    if user is not None and not user.is_authenticated:
        user = None
    return AuditEvent.objects.create(
        user=user,
        username=user.get_username() if user else "",
        action=action,
        server=server,
        target=_clean(target, 300).replace("\n", "\\n"),
        argv=list(argv) if argv is not None else None,
        exit_code=exit_code,
        outcome=outcome,
        detail=_clean(detail, 20000),
        remote_addr=request.META.get("REMOTE_ADDR") if request is not None else None,
        # The token of the API call being served, or in a worker the work row's (work.execute).
        api_token=work.acting_api_token.get(),
    )


def complete(event: AuditEvent, *, outcome: str, exit_code: int | None = None, detail: str = "") -> None:
    """Give a command's "started" row its result; the only change an audit row ever gets."""
    AuditEvent.objects.filter(pk=event.pk, outcome=AuditEvent.Outcome.STARTED).update(
        outcome=outcome, exit_code=exit_code, detail=_clean(detail, 20000)
    )


def run_work(item: work.WorkItem, action: str, target: str, perform: Callable[[], tuple[str, dict]]) -> None:
    """Run a work row's `perform` (which returns the event's detail and the row's result fields),
    then finish the row and write its event in one commit: a worker killed between two commits
    would leave a done row that no rerun picks up, and so no event at all. A failure is audited
    and raised again for work.execute to record."""
    try:
        detail, fields = perform()
    except Exception as exc:
        record(
            action,
            user=item.created_by,
            server=item.server,
            target=target,
            outcome=AuditEvent.Outcome.FAILED,
            detail=str(exc),
        )
        raise
    with transaction.atomic():
        work.finish(item, work.WorkStatus.DONE, **fields)
        record(action, user=item.created_by, server=item.server, target=target, detail=detail)
