"""The central worker's side of the agents: asking each approved host's agent for a snapshot.

Runs as the unprivileged user; it only publishes messages to the agents' queues.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings

from mailadmin import overview
from mailadmin.models import MailServer

log = logging.getLogger(__name__)

# A host silent for longer than overview.stale_after() is still asked, but only every this many polls,
# so a host that is gone for good does not pile messages up in its queue.
SILENT_HOST_POLL_EVERY = 20


def publish_snapshot(server: MailServer) -> bool:
    """Ring the agent's bell for one snapshot; it expires unanswered after two intervals (a late
    one would only repeat the next), so a host that was down does not replay a backlog."""
    from mailadmin.celery import app

    try:
        app.send_task(
            "mailadmin.tasks.take_snapshot",
            args=[server.pk],
            queue=server.celery_queue,
            expires=2 * settings.AGENT_SNAPSHOT_SECONDS,
        )
    except Exception as exc:  # the broker is down: the next poll asks again
        log.warning("could not ask %s for a snapshot of %s: %s", server.celery_queue, server.name, exc)
        return False
    return True


def poll() -> int:
    """Ask every approved host's agent for a snapshot of each of its instances; returns how many."""
    tick = int(time.time() // settings.AGENT_SNAPSHOT_SECONDS)
    asked = 0
    for server in MailServer.objects.select_related("host").filter(host__approved_at__isnull=False):
        if overview.agent_silence(server) is not None and tick % SILENT_HOST_POLL_EVERY:
            continue
        asked += publish_snapshot(server)
    return asked
