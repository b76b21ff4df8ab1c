"""Work rows: the database row is the record of a piece of background work, Redis only rings the bell.

A view writes the row (status queued) and asks for it to be dispatched after commit; the
Celery task claims it with a compare-and-set update, does the work and records the outcome.
If publishing fails (Redis down), the worker is killed, or Redis loses the message, the beat
sweeper finds the row still queued or its lease expired and dispatches it again. The claim
makes a duplicate delivery a no-op, and the work itself is idempotent by what is on disk.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from contextvars import ContextVar
from datetime import timedelta

from django.apps import apps
from django.conf import settings
from django.db import models, transaction
from django.db.models import F, Q
from django.utils import timezone

log = logging.getLogger(__name__)

# The API token of the call being served ("" for a page): set by api.authentication, cleared by
# ApiTokenScope after each request, so a work row and every audit row of the call name it,
# including the rows its worker writes later (they read the work row's own api_token).
acting_api_token: ContextVar[str] = ContextVar("acting_api_token", default="")


class ApiTokenScope:
    """Middleware: no API token outlives the request that presented it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        scope = acting_api_token.set("")
        try:
            return self.get_response(request)
        finally:
            acting_api_token.reset(scope)


class WorkStatus(models.TextChoices):
    QUEUED = "queued", "queued"
    RUNNING = "running", "running"
    DONE = "done", "done"
    FAILED = "failed", "failed"


TERMINAL = (WorkStatus.DONE, WorkStatus.FAILED)


class WorkItem(models.Model):
    status = models.CharField(max_length=10, choices=WorkStatus.choices, default=WorkStatus.QUEUED, db_index=True)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent done.")
    progress_note = models.CharField(max_length=200, blank=True)
    attempt = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    dispatched_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    worker_pid = models.IntegerField(null=True, blank=True)
    api_token = models.CharField(
        max_length=120, blank=True, help_text="The API token the work was asked through (name and key prefix), if any."
    )

    task_name: str = ""

    class Meta:
        abstract = True
        ordering = ["-created", "-id"]

    def save(self, *args, **kwargs):
        if self._state.adding and not self.api_token:
            self.api_token = acting_api_token.get()
        super().save(*args, **kwargs)

    def celery_queue(self) -> str:
        return settings.CELERY_TASK_DEFAULT_QUEUE

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL


def work_models() -> list[type[WorkItem]]:
    return [m for m in apps.get_models() if issubclass(m, WorkItem)]


def publish(item: WorkItem) -> bool:
    """Ring the bell for one row; a broker that is down leaves the row for the sweeper."""
    from mailadmin.celery import app

    try:
        app.send_task(item.task_name, args=[item.pk], queue=item.celery_queue())
    except Exception as exc:  # any broker failure: the row stays undispatched, the sweeper retries
        log.warning("could not publish %s %s: %s", type(item).__name__, item.pk, exc)
        return False
    type(item).objects.filter(pk=item.pk).update(dispatched_at=timezone.now())
    return True


def dispatch_on_commit(item: WorkItem) -> None:
    transaction.on_commit(lambda: publish(item))


def claim(model: type[WorkItem], pk: int) -> WorkItem | None:
    """Take the row if it is queued, or running with an expired lease; None means someone else has it."""
    now = timezone.now()
    taken = (
        model.objects.filter(pk=pk)
        .filter(Q(status=WorkStatus.QUEUED) | Q(status=WorkStatus.RUNNING, lease_until__lt=now))
        .update(
            status=WorkStatus.RUNNING,
            attempt=F("attempt") + 1,
            started_at=now,
            lease_until=now + timedelta(seconds=settings.WORK_LEASE_SECONDS),
            worker_pid=os.getpid(),
            error="",
        )
    )
    return model.objects.get(pk=pk) if taken else None


def report_progress(item: WorkItem, percent: int, note: str) -> None:
    """Record progress and renew the lease, so a long step is not mistaken for a dead worker."""
    item.progress, item.progress_note = percent, note[:200]
    type(item).objects.filter(pk=item.pk, status=WorkStatus.RUNNING).update(
        progress=percent,
        progress_note=item.progress_note,
        lease_until=timezone.now() + timedelta(seconds=settings.WORK_LEASE_SECONDS),
    )


def lease_keeper(item: WorkItem) -> Callable[[], None]:
    """A callback for long waits (the gateway calls it while a program runs) that renews the
    row's lease every third of the lease, as long as this attempt still holds the row."""
    renewed = [time.monotonic()]

    def keep() -> None:
        if time.monotonic() - renewed[0] < settings.WORK_LEASE_SECONDS / 3:
            return
        renewed[0] = time.monotonic()
        type(item).objects.filter(pk=item.pk, status=WorkStatus.RUNNING, attempt=item.attempt).update(
            lease_until=timezone.now() + timedelta(seconds=settings.WORK_LEASE_SECONDS)
        )

    return keep


def finish(item: WorkItem, status: str, error: str = "", **fields) -> None:
    item.status, item.error = status, error
    type(item).objects.filter(pk=item.pk).update(
        status=status,
        error=error,
        progress=100 if status == WorkStatus.DONE else item.progress,
        progress_note="" if status == WorkStatus.DONE else item.progress_note,
        finished_at=timezone.now(),
        lease_until=None,
        **fields,
    )


def execute(model: type[WorkItem], pk: int, perform: Callable[[WorkItem], None]) -> str:
    """Claim the row, run perform(row) and record its end. Returns the final status."""
    item = claim(model, pk)
    if item is None:
        return "skipped"
    # Every audit row the work writes (the commands it runs included) names the row's API token.
    scope = acting_api_token.set(item.api_token)
    try:
        perform(item)
    except Exception as exc:
        finish(item, WorkStatus.FAILED, error=str(exc) or type(exc).__name__)
        on_failure = getattr(item, "on_failure", None)
        if on_failure:
            on_failure(exc)
        return WorkStatus.FAILED
    finally:
        acting_api_token.reset(scope)
    if item.status == WorkStatus.RUNNING:
        finish(item, WorkStatus.DONE)
    return item.status


def sweep() -> dict[str, int]:
    """Dispatch rows nobody is working on; fail rows that used up their attempts."""
    now = timezone.now()
    stale_dispatch = now - timedelta(seconds=settings.WORK_REDISPATCH_SECONDS)
    counts = {"dispatched": 0, "reclaimed": 0, "gave_up": 0}
    for model in work_models():
        expired = model.objects.filter(status=WorkStatus.RUNNING, lease_until__lt=now)
        exhausted = expired.filter(attempt__gte=settings.WORK_MAX_ATTEMPTS)
        for item in exhausted:
            finish(item, WorkStatus.FAILED, error=f"gave up after {item.attempt} attempts (worker lost each time)")
            counts["gave_up"] += 1
        for item in expired.exclude(attempt__gte=settings.WORK_MAX_ATTEMPTS):
            counts["reclaimed"] += publish(item)
        waiting = model.objects.filter(status=WorkStatus.QUEUED).filter(
            Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=stale_dispatch)
        )
        for item in waiting:
            counts["dispatched"] += publish(item)
    return counts
