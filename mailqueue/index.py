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

from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from mailadmin.models import MailServer
from mailqueue import spool
from mailqueue.models import IndexRefresh, QueueMessage
from mailqueue.parser import QueueFile, strip_angles

WRITE_BATCH = 500
INDEXED_HEADERS = frozenset({b"subject"})
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


def row_for(server: MailServer, found: spool.ControlFile, parsed: QueueFile, data_dir: str) -> dict:
    """The column values of one QueueMessage row, as plain Python values."""
    try:
        body_size = os.stat(os.path.join(parsed.data_dir or data_dir, f"df{found.queue_id}")).st_size
    except OSError:
        body_size = None
    addresses = [strip_angles(r.address) for r in parsed.recipients]
    return {
        "server": server.pk,
        "queue_id": found.queue_id,
        "kind": found.kind,
        "state": parsed.state,
        "directory": found.queue_dir,
        "inode": found.inode,
        "file_size": found.size,
        "mtime_ns": found.mtime_ns,
        "sender": _clip(parsed.sender_address),
        "recipients": "\n".join(addresses),
        "recipient_count": len(addresses),
        "first_domain": _clip(parsed.recipients[0].domain if parsed.recipients else ""),
        "subject": _clip(parsed.subject),
        "reason": _clip(parsed.quarantine_reason),
        "status_message": _clip(parsed.status_message),
        "created": _when(parsed.created),
        "last_attempt": _when(parsed.last_attempt),
        "attempts": max(0, min(parsed.attempts, 2**31 - 1)),
        "priority": parsed.priority if parsed.priority is not None and abs(parsed.priority) < 2**62 else None,
        "body_size": body_size,
        "problems": "\n".join(parsed.problems),
        "truncated": parsed.truncated,
    }


def upsert(rows: list[dict]) -> None:
    """Insert or update rows by (server, queue_id) in batches of one statement each.

    Plain executemany instead of bulk_create: building a model instance per row cost more than
    reading and parsing the file it came from.
    """
    if not rows:
        return
    names = ["server", "queue_id", *UPDATED_FIELDS]
    fields = [QueueMessage._meta.get_field(name) for name in names]
    quote = connection.ops.quote_name
    columns = [quote(field.column) for field in fields]
    sql = (
        f"INSERT INTO {quote(QueueMessage._meta.db_table)} ({', '.join(columns)}) "
        f"VALUES ({', '.join(['%s'] * len(columns))}) "
        f"ON CONFLICT ({columns[0]}, {columns[1]}) DO UPDATE SET "
        + ", ".join(f"{column} = excluded.{column}" for column in columns[2:])
    )
    adapt = connection.ops.adapt_datetimefield_value
    dated = {"created", "last_attempt"}
    with connection.cursor() as cursor:
        for start in range(0, len(rows), WRITE_BATCH):
            cursor.executemany(
                sql,
                [
                    [adapt(row[name]) if name in dated else row[name] for name in names]
                    for row in rows[start : start + WRITE_BATCH]
                ],
            )


def _stamp(found: spool.ControlFile) -> tuple:
    return (found.kind, found.queue_dir, found.inode, found.size, found.mtime_ns)


def _known_stamps(server: MailServer) -> dict[str, tuple[int, tuple]]:
    """queue id → (row id, stamp) for every indexed job, read as plain tuples (100k rows are common)."""
    table = connection.ops.quote_name(QueueMessage._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, queue_id, kind, directory, inode, file_size, mtime_ns FROM {table} WHERE server_id = %s",
            [server.pk],
        )
        return {row[1]: (row[0], row[2:]) for row in cursor.fetchall()}


def refresh(server: MailServer) -> RefreshResult:
    """Bring the server's rows in line with its spool, re-reading only control files that changed."""
    started = time.monotonic()
    result = RefreshResult()
    files, result.errors = spool.scan(server.queue_dir)
    current = {found.queue_id: found for found in files}
    result.files_seen = len(current)
    known = _known_stamps(server)
    changed = [found for queue_id, found in current.items() if known.get(queue_id, (0, None))[1] != _stamp(found)]
    gone = [pk for queue_id, (pk, _) in known.items() if queue_id not in current]
    data_dirs = {queue_dir: spool.data_dir(queue_dir) for queue_dir in {found.queue_dir for found in changed}}
    fresh: list[dict] = []
    for found in changed:
        parsed = spool.read_control(found.path, found.kind, found.queue_id, INDEXED_HEADERS)
        if parsed is not None:
            fresh.append(row_for(server, found, parsed, data_dirs[found.queue_dir]))
    result.files_read = len(fresh)
    result.removed = len(gone)
    with transaction.atomic():
        for start in range(0, len(gone), WRITE_BATCH):
            QueueMessage.objects.filter(pk__in=gone[start : start + WRITE_BATCH]).delete()
        upsert(fresh)
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
            "state_counts": dict(
                QueueMessage.objects.filter(server=server).order_by().values_list("state").annotate(n=Count("id"))
            ),
        },
    )
    return result
