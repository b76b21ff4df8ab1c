"""The queue index: QueueMessage rows mirroring a server's spool, brought up to date incrementally.

A refresh lists the control files (one readdir and one lstat each), compares kind, inode,
size and mtime with the rows, parses only the files that differ and drops rows whose file
is gone. sendmail rewrites a control file through tf + rename, so any change it makes shows
as a new inode.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db import transaction
from django.utils import timezone

from mailadmin.models import MailServer
from mailqueue import spool
from mailqueue.models import IndexRefresh, QueueMessage
from mailqueue.parser import QueueFile

WRITE_BATCH = 500
TEXT_LIMIT = 400
UPDATED_FIELDS = [
    "kind",
    "state",
    "directory",
    "inode",
    "file_size",
    "mtime_ns",
    "sender",
    "recipients",
    "recipient_count",
    "first_domain",
    "subject",
    "reason",
    "status_message",
    "created",
    "last_attempt",
    "attempts",
    "priority",
    "body_size",
    "problems",
    "truncated",
]


@dataclass
class RefreshResult:
    files_seen: int = 0
    files_read: int = 0
    removed: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


def _when(epoch: int | None) -> datetime | None:
    if not epoch or epoch < 0 or epoch > 32503680000:
        return None
    return datetime.fromtimestamp(epoch, tz=UTC)


def _clip(text: str) -> str:
    return text[:TEXT_LIMIT]


def row_for(server: MailServer, found: spool.ControlFile, parsed: QueueFile) -> QueueMessage:
    try:
        body_size = os.stat(spool.data_file_path(found.queue_dir, found.queue_id, parsed)).st_size
    except OSError:
        body_size = None
    addresses = [r.address for r in parsed.recipients]
    return QueueMessage(
        server=server,
        queue_id=found.queue_id,
        kind=found.kind,
        state=parsed.state,
        directory=found.queue_dir,
        inode=found.inode,
        file_size=found.size,
        mtime_ns=found.mtime_ns,
        sender=_clip(parsed.sender_address),
        recipients="\n".join(addresses),
        recipient_count=len(addresses),
        first_domain=_clip(parsed.recipients[0].domain if parsed.recipients else ""),
        subject=_clip(parsed.subject),
        reason=_clip(parsed.quarantine_reason),
        status_message=_clip(parsed.status_message),
        created=_when(parsed.created),
        last_attempt=_when(parsed.last_attempt),
        attempts=max(0, min(parsed.attempts, 2**31 - 1)),
        priority=parsed.priority if parsed.priority is not None and abs(parsed.priority) < 2**62 else None,
        body_size=body_size,
        problems="\n".join(parsed.problems),
        truncated=parsed.truncated,
    )


def _stamp(found: spool.ControlFile) -> tuple:
    return (found.kind, found.queue_dir, found.inode, found.size, found.mtime_ns)


def refresh(server: MailServer) -> RefreshResult:
    """Bring the server's rows in line with its spool, re-reading only control files that changed."""
    started = time.monotonic()
    result = RefreshResult()
    files, result.errors = spool.scan(server.queue_dir)
    current = {found.queue_id: found for found in files}
    result.files_seen = len(current)
    rows = QueueMessage.objects.filter(server=server)
    known = {
        queue_id: (pk, (kind, directory, inode, size, mtime))
        for pk, queue_id, kind, directory, inode, size, mtime in rows.values_list(
            "pk", "queue_id", "kind", "directory", "inode", "file_size", "mtime_ns"
        )
    }
    changed = [found for queue_id, found in current.items() if known.get(queue_id, (0, None))[1] != _stamp(found)]
    gone = [pk for queue_id, (pk, _) in known.items() if queue_id not in current]
    fresh: list[QueueMessage] = []
    for found in changed:
        parsed = spool.read_control(found.path, found.kind, found.queue_id)
        if parsed is not None:
            fresh.append(row_for(server, found, parsed))
    result.files_read = len(fresh)
    result.removed = len(gone)
    with transaction.atomic():
        for start in range(0, len(gone), WRITE_BATCH):
            QueueMessage.objects.filter(pk__in=gone[start : start + WRITE_BATCH]).delete()
        QueueMessage.objects.bulk_create(
            fresh,
            batch_size=WRITE_BATCH,
            update_conflicts=True,
            unique_fields=["server", "queue_id"],
            update_fields=UPDATED_FIELDS,
        )
    result.seconds = time.monotonic() - started
    IndexRefresh.objects.update_or_create(
        server=server,
        defaults={
            "finished": timezone.now(),
            "seconds": result.seconds,
            "files_seen": result.files_seen,
            "files_read": result.files_read,
            "removed": result.removed,
            "error": "; ".join(result.errors),
        },
    )
    return result
