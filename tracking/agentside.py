"""The agent's side of tracking: read the instance's mail log on from its checkpoint into trace rows.

Runs only in the host's agent (the log is root's, 0600 where the console's sink writes it). The
paths and the syslog tag come from the host's own configuration (agent.bind), never the database.
Each batch of whole lines and the checkpoint after it are stored in one transaction, so an agent
stopped at any moment resumes exactly where the last stored batch ended.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from mailadmin.models import MailServer
from mailadmin.mta import agent
from mailadmin.mta.files import host_lock
from tracking.follower import Checkpoint, read_new
from tracking.models import LogCheckpoint
from tracking.parser import parse_line
from tracking.traces import store_lines


@dataclass
class IngestResult:
    lines_read: int = 0
    lines_kept: int = 0
    batches: int = 0


def local_zone():
    """The zone traditional syslog timestamps are written in: this host's."""
    return datetime.now().astimezone().tzinfo


def ingest(server: MailServer) -> IngestResult:
    """Read everything new in the instance's log; lines of other programs and instances are skipped
    (another tag), lines without a syslog header are kept (they cannot be told apart)."""
    agent.bind(server)
    path, tag = Path(server.log_file), server.syslog_tag
    result = IngestResult()
    if not server.log_file:
        return result
    with host_lock(f"log-ingest-{server.pk}"):
        row, _ = LogCheckpoint.objects.get_or_create(server=server)
        checkpoint = Checkpoint(row.inode, row.fingerprint, row.offset) if row.updated_at else None
        zone = local_zone()
        for batch in read_new(path, checkpoint):
            lines = [parse_line(raw) for raw in batch.lines]
            mine = [line for line in lines if line.tag == tag or line.kind == "unparsed"]
            with transaction.atomic():
                store_lines(server, mine, now=timezone.now(), zone=zone)
                LogCheckpoint.objects.filter(pk=row.pk).update(
                    inode=batch.checkpoint.inode,
                    fingerprint=batch.checkpoint.fingerprint,
                    offset=batch.checkpoint.offset,
                    source=batch.source[:255],
                    lines_read=row.lines_read + result.lines_read + len(lines),
                    lines_kept=row.lines_kept + result.lines_kept + len(mine),
                    problem="",
                    updated_at=timezone.now(),
                )
            result.lines_read += len(lines)
            result.lines_kept += len(mine)
            result.batches += 1
    return result
