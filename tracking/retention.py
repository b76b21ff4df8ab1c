"""The central worker's side of tracking: ringing the agents to ingest, and forgetting old traces."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from mailadmin.models import MailServer
from tracking.models import MessageTrace, TraceEvent

log = logging.getLogger(__name__)


def publish_ingests() -> int:
    """Ask each approved instance's agent to read its log on; an unanswered ask expires with the
    next one, so a host that was down does not replay a backlog of asks (its checkpoint does)."""
    from mailadmin.celery import app

    asked = 0
    for server in MailServer.objects.filter(host__approved_at__isnull=False):
        try:
            app.send_task(
                "tracking.tasks.ingest_log",
                args=[server.pk],
                queue=server.celery_queue,
                expires=settings.TRACE_INGEST_SECONDS,
            )
            asked += 1
        except Exception as exc:  # the broker is down: the next poll asks again
            log.warning("could not ask %s to read the log of %s: %s", server.celery_queue, server.name, exc)
    return asked


def purge(now=None) -> int:
    """Delete what is older than the retention period; returns how many traces went."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.TRACE_RETENTION_DAYS)
    old = MessageTrace.objects.filter(
        Q(last_event_at__lt=cutoff) | Q(last_event_at__isnull=True, received_at__lt=cutoff)
    )
    _, deleted = old.delete()
    TraceEvent.objects.filter(trace__isnull=True, at__lt=cutoff).delete()
    return deleted.get(MessageTrace._meta.label, 0)
