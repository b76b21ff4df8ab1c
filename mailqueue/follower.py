"""The agent follows its spools: a change the kernel reports reaches the queue index within seconds.

The beat asks for a refresh once a minute; between those, a message the daemon accepts or a
quarantine done from a shell would stay out of the list for up to a minute. So the agent's
main process keeps an inotify watch on the control directories of every instance it serves
(one thread, spoolwatch.SpoolWatch), and when the kernel reports a control file created,
renamed or removed it asks its own pool for a refresh (the refresh_index task on the host's
queue), after SETTLE_SECONDS so that one submission (df, tf, rename to qf) is one refresh.
While a refresh it asked for has not finished, it asks for no other: the refresh reads every
name reported until it runs (its own watch), and a burst of mail is one refresh a second at
most, not a queue of them. A refresh that never comes (a lost message, a busy pool) is asked
for again after LOST_AFTER_SECONDS. A quiet spool costs nothing: the thread sleeps in select().

Only the agent runs this (mailqueue/tasks.py starts it when the worker is ready).
"""

from __future__ import annotations

import logging
import select
import threading
import time
from collections.abc import Callable

from django.db import close_old_connections

from mailadmin.models import MailServer
from mailadmin.mta import agent
from mailqueue.index import watch_spool
from mailqueue.models import IndexRefresh
from mailqueue.spoolwatch import SpoolWatch

log = logging.getLogger(__name__)

SETTLE_SECONDS = 0.3
MIN_GAP_SECONDS = 1.0
LOST_AFTER_SECONDS = 30.0
# While a refresh is awaited, how often the thread looks at IndexRefresh.finished; a watch that
# could not be armed is tried again this often too.
POLL_SECONDS = 0.25
REARM_SECONDS = 10.0


class SpoolFollower:
    """Watches the spools of the instances this agent serves; `ask(name)` asks for a refresh of one."""

    def __init__(self, ask: Callable[[str], float | None]) -> None:
        self.ask = ask  # returns when it asked (time.time()), or None when it could not
        self.watches: dict[str, SpoolWatch | None] = {}
        self.armed_at: dict[str, float] = {}
        self.changed_at: dict[str, float] = {}  # monotonic time of the first unhandled change
        self.asked_at: dict[str, tuple[float, float]] = {}  # name → (monotonic, wall clock) of the last ask
        self.stopped = threading.Event()

    def arm(self, now: float) -> None:
        for name, instance in agent.served().items():
            watch = self.watches.get(name)
            if watch is not None and not watch.lost:
                continue
            if watch is None and now - self.armed_at.get(name, -REARM_SECONDS) < REARM_SECONDS:
                continue
            self.armed_at[name] = now
            self.watches[name] = watch_spool(instance.queue_dir)
            # Whatever changed while no watch was armed: one refresh lists the directories.
            self.changed_at.setdefault(name, now)

    def take_events(self, timeout: float) -> None:
        armed = {watch.fd: name for name, watch in self.watches.items() if watch is not None and not watch.lost}
        if armed:
            ready, _, _ = select.select(list(armed), [], [], timeout)
        else:
            ready = []
            self.stopped.wait(timeout)
        now = time.monotonic()
        for fd in ready:
            name = armed[fd]
            changes = self.watches[name].changes()
            if changes is None:
                self.watches[name].close()  # lost track (overflow, directory replaced): arm again
                self.watches[name] = None
                self.armed_at.pop(name, None)
                self.changed_at.setdefault(name, now)
            elif any(changes.values()):
                self.changed_at.setdefault(name, now)

    def awaiting(self, name: str, now: float) -> bool:
        """Whether a refresh asked for is still to finish (and not given up on)."""
        asked = self.asked_at.get(name)
        if asked is None or now - asked[0] > LOST_AFTER_SECONDS:
            return False
        finished = IndexRefresh.objects.filter(server__name=name).values_list("finished", flat=True).first()
        if finished is not None and finished.timestamp() >= asked[1]:
            del self.asked_at[name]
            return False
        return True

    def ask_due(self, now: float) -> None:
        for name, first_change in list(self.changed_at.items()):
            if now - first_change < SETTLE_SECONDS or self.awaiting(name, now):
                continue
            asked = self.asked_at.get(name)
            if asked is not None and now - asked[0] < MIN_GAP_SECONDS:
                continue
            wall = self.ask(name)
            if wall is not None:
                self.asked_at[name] = (now, wall)
                del self.changed_at[name]

    def waiting_time(self) -> float:
        """How long select() may sleep: long on a quiet spool, short while something is due."""
        return POLL_SECONDS if self.changed_at or self.asked_at else REARM_SECONDS

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                now = time.monotonic()
                self.arm(now)
                self.take_events(self.waiting_time())
                self.ask_due(time.monotonic())
            except Exception:  # the thread must outlive a database or broker hiccup; it tries again
                log.exception("following the spools failed; trying again")
                self.stopped.wait(1.0)
            finally:
                close_old_connections()


def ask_for_refresh(name: str) -> float | None:
    """Publish refresh_index for the served instance `name` to this host's queue; when, or None."""
    from mailqueue.tasks import refresh_index

    server = MailServer.objects.filter(name=name).only("pk", "celery_queue").first()
    if server is None:
        return None  # not registered (yet): nothing shows its index
    asked = time.time()
    refresh_index.apply_async(args=[server.pk], queue=server.celery_queue, expires=LOST_AFTER_SECONDS)
    return asked


_started: SpoolFollower | None = None


def start() -> SpoolFollower | None:
    """In the agent's main process, once: follow every served spool in a daemon thread."""
    global _started
    if _started is None and agent.served():
        _started = SpoolFollower(ask_for_refresh)
        threading.Thread(target=_started.run, name="spool-follower", daemon=True).start()
    return _started
