"""The queue index: QueueMessage rows mirroring a server's spool, brought up to date incrementally.

A refresh that lists reads the control-file names of every queue directory with their inodes
(readdir, no stat) and compares them with what the index holds. A new or gone name, a changed
kind (qf → hf) or a new inode is a change, because sendmail rewrites a control file only by
writing a temporary file and renaming it; only changed files are read. Files last seen cut
short are read again every time. Every QUEUE_INDEX_DEEP_SECONDS a deep refresh also compares
size and mtime (one lstat per file), which catches edits made in place by something other
than sendmail and an inode reused between two refreshes.

A listing arms an inotify watch first (spoolwatch.py); until the watch loses track, the next
refreshes skip the listing and read just the names the kernel reported.

What the index holds is kept in the refreshing process between refreshes, tagged with a
random token that every refresh writes with its rows; a process whose copy carries another
token reads the rows again, drops its watch and lists. Refreshes of one server take turns on
a lock file. Large reads are spread over forked children (fanout.py) while the parent writes
rows.
"""

from __future__ import annotations

import functools
import os
import secrets
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from mailadmin.models import MailServer
from mailadmin.mta.files import host_lock
from mailqueue import dsn, spool
from mailqueue.digest import digest, unreadable
from mailqueue.fanout import fanout
from mailqueue.models import IndexRefresh, QueueMessage, RecipientDomain
from mailqueue.parser import decode_encoded_words, is_job_file, recipient_domains, state_of
from mailqueue.spoolwatch import SpoolWatch

WRITE_BATCH = 500
TEXT_LIMIT = 400
NEWEST_EPOCH = 32503680000  # year 3000: later "times" are damage, not dates
# Below this many files one process reads faster than forking children does.
FANOUT_MIN_FILES = 3000
# Column order of the rows the readers build; "server" first, the rest as named.
COLUMNS = [
    "server",
    "queue_id",
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
    "dsn",
    "bounce_of",
    "truncated",
]
RECIPIENTS_POSITION = COLUMNS.index("recipients")


@dataclass
class RefreshResult:
    files_seen: int = 0
    files_read: int = 0
    removed: int = 0
    seconds: float = 0.0
    deep: bool = False
    listed: bool = True  # False: only the names a watch reported were looked at
    errors: list[str] = field(default_factory=list)


@dataclass
class KnownSpool:
    """What the index rows of one server say, in the shape readdir gives (spool.list_control)."""

    token: int
    names: dict[str, dict[str, int]]  # queue directory → {control file name: inode}
    facts: dict[str, tuple[str, str, int, int, bool, str]]  # id → (kind, directory, size, mtime_ns, truncated, state)
    # Both follow from facts; kept up to date beside it so a refresh never walks 100,000 facts.
    truncated: set[str]  # the ids read again at every refresh
    states: Counter
    # Armed before the listing these names came from; None: list again at the next refresh.
    watch: SpoolWatch | None = None

    @property
    def rows(self) -> int:
        return len(self.facts)

    def forget(self, queue_id: str) -> None:
        old = self.facts.pop(queue_id, None)
        if old is not None:
            kind, directory, _, _, _, state = old
            self.names.get(directory, {}).pop(kind + queue_id, None)
            self.states[state] -= 1
            self.truncated.discard(queue_id)

    def learn(self, rows: list[tuple]) -> None:
        """Take in rows just written (COLUMNS order), in bulk: a first build brings 100,000."""
        for queue_id in [row[1] for row in rows if row[1] in self.facts]:
            self.forget(queue_id)
        self.take([(row[1], row[2], row[4], row[5], row[6], row[7], bool(row[-1]), row[3]) for row in rows])

    def take(self, entries: list[tuple[str, str, str, int, int, int, bool, str]]) -> None:
        """Add jobs not known yet: (queue id, kind, directory, inode, size, mtime_ns, truncated, state)."""
        for directory in {entry[2] for entry in entries}:
            self.names.setdefault(directory, {}).update(
                {kind + queue_id: inode for queue_id, kind, where, inode, *_ in entries if where == directory}
            )
        self.facts.update({entry[0]: (entry[1], entry[2], *entry[4:]) for entry in entries})
        self.states.update(entry[7] for entry in entries)
        self.truncated.update(entry[0] for entry in entries if entry[6])


_known_by_server: dict[int, KnownSpool] = {}
# A process keeps what it knows of this many servers (and one inotify instance for each; a
# user gets 128 on Debian).
KNOWN_SERVERS = 8


def _table() -> str:
    return connection.ops.quote_name(QueueMessage._meta.db_table)


def _load_known(server: MailServer, token: int) -> KnownSpool:
    known = KnownSpool(token=token, names={}, facts={}, truncated=set(), states=Counter())
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT queue_id, kind, directory, inode, file_size, mtime_ns, truncated, state FROM {_table()} "
            "WHERE server_id = %s",
            [server.pk],
        )
        known.take([(*row[:6], bool(row[6]), row[7]) for row in cursor.fetchall()])
    return known


def _row_count(server: MailServer) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {_table()} WHERE server_id = %s", [server.pk])
        return cursor.fetchone()[0]


def _take_known(server: MailServer, last: IndexRefresh | None) -> KnownSpool:
    """What the index holds, from this process's copy when no one else wrote rows since.

    The copy leaves the cache until the refresh commits: a failure half-way must not leave a
    copy behind, nor a watch whose events were read and not acted on. A watch is kept only
    with a copy that is still right: it says what changed since this process's last refresh,
    and nothing about rows someone else wrote (a dropped copy's watch closes itself).
    """
    token = last.token if last else 0
    cached = _known_by_server.pop(server.pk, None)
    if cached is not None and token and cached.token == token and cached.rows == _row_count(server):
        return cached
    return _load_known(server, token)


def _keep_known(server: MailServer, known: KnownSpool) -> None:
    _known_by_server[server.pk] = known
    while len(_known_by_server) > KNOWN_SERVERS:
        del _known_by_server[next(iter(_known_by_server))]


@functools.lru_cache(maxsize=4096)  # jobs queued in the same second are common, strftime is not cheap
def _sql_time(epoch: int | None) -> str | None:
    """A Unix time as the text Django stores for a UTC DateTimeField on SQLite (and PostgreSQL reads in UTC,
    the time zone Django sets on its connections)."""
    if not epoch or epoch < 0 or epoch > NEWEST_EPOCH:
        return None
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))


def read_row(server_pk: int, queue_id: str, kind: str, queue_dir: str, control_fd: int, data_fd: int) -> tuple | None:
    """One QueueMessage row (in COLUMNS order) from a control file; None when it is gone.

    Files are opened relative to descriptors of their directories: one path step instead of
    eight is a fifth of the system time of reading 100,000 small files.
    """
    try:
        fd = os.open(kind + queue_id, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=control_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        facts = unreadable(f"cannot read {kind}{queue_id}: {exc.strerror or exc}")
        return _row(server_pk, queue_id, kind, queue_dir, (0, 0, 0), facts, None)
    try:
        stat = os.fstat(fd)
        data = _read_at_most(fd, stat.st_size, spool.CONTROL_FILE_LIMIT + 1)
    finally:
        os.close(fd)
    facts = digest(data[: spool.CONTROL_FILE_LIMIT], queue_id=queue_id, kind=kind)
    if len(data) > spool.CONTROL_FILE_LIMIT:
        facts = facts._replace(problems=(*facts.problems, spool.CONTROL_FILE_CUT))
    body_size, bounce_of = None, ""
    try:
        if facts.data_dir:  # the job names its own data directory (several queue directories)
            body_fd = os.open(os.path.join(facts.data_dir, f"df{queue_id}"), os.O_RDONLY | os.O_NOFOLLOW)
        else:
            body_fd = os.open(f"df{queue_id}", os.O_RDONLY | os.O_NOFOLLOW, dir_fd=data_fd)
        try:
            body_size = os.fstat(body_fd).st_size
            if dsn.made_here(facts.sender, facts.flags):  # only then is the body worth a read
                bounce_of = dsn.original_queue_id(os.read(body_fd, dsn.BODY_READ_LIMIT))
        finally:
            os.close(body_fd)
    except (OSError, ValueError):  # ValueError: a d line naming a path with a NUL byte
        pass
    stamp = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
    return _row(server_pk, queue_id, kind, queue_dir, stamp, facts, body_size, bounce_of)


def _read_at_most(fd: int, expected: int, limit: int) -> bytes:
    """The file's bytes up to `limit`, asking for what fstat promised (a 4 MiB buffer per read is slow)."""
    data = os.read(fd, min(expected + 1, limit))
    while expected < len(data) < limit:  # it grew since fstat: read on to the end
        more = os.read(fd, min(1 << 16, limit - len(data)))
        if not more:
            break
        data += more
    return data


def _text(value: str) -> str:
    """Field text for a row: PostgreSQL's text cannot hold U+0000, so no engine's index gets one."""
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def _row(
    server_pk: int,
    queue_id: str,
    kind: str,
    queue_dir: str,
    stamp: tuple[int, int, int],
    facts,
    body_size: int | None,
    bounce_of: str = "",
) -> tuple:
    recipients = facts.recipients
    first_domain = recipients[0].rpartition("@")[2].lower() if recipients and "@" in recipients[0] else ""
    priority = facts.priority
    return (
        server_pk,
        queue_id,
        kind,
        state_of(kind, facts.attempts),
        queue_dir,
        *stamp,
        _text(facts.sender[:TEXT_LIMIT]),
        _text("\n".join(recipients)),
        len(recipients),
        _text(first_domain[:TEXT_LIMIT]),
        _text(decode_encoded_words(facts.subject)[:TEXT_LIMIT]),
        _text(facts.reason[:TEXT_LIMIT]),
        _text(facts.status_message[:TEXT_LIMIT]),
        _sql_time(facts.created),
        _sql_time(facts.last_attempt),
        max(0, min(facts.attempts, 2**31 - 1)),
        priority if priority is not None and abs(priority) < 2**62 else None,
        body_size,
        _text("\n".join(facts.problems)),
        dsn.is_dsn(facts.sender, facts.flags),
        bounce_of,
        facts.truncated,
    )


def _reader(server_pk: int):
    def read(jobs: Sequence[tuple[str, str, str]]) -> list[tuple]:
        rows = []
        directories: dict[str, tuple[int, int]] = {}
        try:
            for queue_id, kind, queue_dir in jobs:
                if queue_dir not in directories:
                    directories[queue_dir] = _open_directories(queue_dir)
                row = read_row(server_pk, queue_id, kind, queue_dir, *directories[queue_dir])
                if row is not None:
                    rows.append(row)
        finally:
            for descriptor in {fd for pair in directories.values() for fd in pair}:
                os.close(descriptor)
        return rows

    return read


def _open_directories(queue_dir: str) -> tuple[int, int]:
    """Descriptors of a queue directory's control and data directories (the same one when flat)."""
    control, data = spool.control_dir(queue_dir), spool.data_dir(queue_dir)
    control_fd = os.open(control, os.O_RDONLY | os.O_DIRECTORY)
    if data == control:
        return control_fd, control_fd
    try:
        return control_fd, os.open(data, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        os.close(control_fd)
        raise


def _columns() -> list[str]:
    quote = connection.ops.quote_name
    return [quote(QueueMessage._meta.get_field(name).column) for name in COLUMNS]


def _as_sql_time(column: str) -> str:
    """A datetime column selected as the text _sql_time makes, so that unchanged values compare equal."""
    if connection.vendor == "postgresql":
        return f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"
    # SQLite stores that very text; CAST has no declared type, so no converter turns it into a datetime.
    return f"CAST({column} AS TEXT)"


def _write(cursor, rows: list[tuple], indexed: dict) -> list[tuple[str, str, bool]]:
    """Insert new rows; update existing ones in only the columns that changed.

    Returns (queue id, recipients, replaced) of the rows whose domain rows are to be written:
    the new ones, and those whose recipients changed (replaced: their old domain rows go).

    An UPDATE rewrites every index whose columns it names, whatever the values: setting all
    columns of 1,000 quarantined jobs writes about 17 MB of index pages, setting the four
    that changed writes 7.
    """
    columns = _columns()
    existing = [row for row in rows if row[1] in indexed]
    new = [row for row in rows if row[1] not in indexed]
    _insert(cursor, _table(), columns, new)
    addressed = [(row[1], row[RECIPIENTS_POSITION], False) for row in new]
    if not existing:
        return addressed
    selected = [
        _as_sql_time(column) if name in ("created", "last_attempt") else column
        for name, column in zip(COLUMNS, columns, strict=True)
    ]
    cursor.execute(
        f"SELECT {', '.join(selected)} FROM {_table()} WHERE {columns[0]} = %s AND {columns[1]} IN "
        f"({', '.join(['%s'] * len(existing))})",
        [existing[0][0], *(row[1] for row in existing)],
    )
    before = {row[1]: row for row in cursor.fetchall()}
    by_changed_columns: dict[tuple[int, ...], list[tuple]] = {}
    for row in existing:
        old = before.get(row[1])
        changed = tuple(
            position for position in range(2, len(COLUMNS)) if old is None or old[position] != row[position]
        )
        if changed:
            by_changed_columns.setdefault(changed, []).append(row)
    readdressed: list[tuple[str, str, bool]] = []
    for changed, group in by_changed_columns.items():
        cursor.executemany(
            f"UPDATE {_table()} SET {', '.join(f'{columns[position]} = %s' for position in changed)} "
            f"WHERE {columns[0]} = %s AND {columns[1]} = %s",
            [[*(row[position] for position in changed), row[0], row[1]] for row in group],
        )
        if RECIPIENTS_POSITION in changed:
            readdressed += [(row[1], row[RECIPIENTS_POSITION], True) for row in group]
    return addressed + readdressed


def _insert(cursor, table: str, columns: list[str], rows: list) -> None:
    if rows and connection.vendor == "postgresql":
        # COPY: a first build of 100,000 rows takes a fifth of the time of as many INSERTs.
        with cursor.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    elif rows:
        cursor.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})", rows
        )


def _domain_table() -> str:
    return connection.ops.quote_name(RecipientDomain._meta.db_table)


def _write_domains(cursor, server_pk: int, addressed: list[tuple[str, str, bool]]) -> None:
    """The RecipientDomain rows of messages just written: (queue id, recipients, replaced).

    Written after the messages (and their indexes, on a first build), so the ids are looked
    up through the (server, queue id) index: per batch, or all at once for a large build.
    """
    if not addressed:
        return
    if len(addressed) > FANOUT_MIN_FILES:
        cursor.execute(f"SELECT queue_id, id FROM {_table()} WHERE server_id = %s", [server_pk])
        pk_of = dict(cursor.fetchall())
    else:
        pk_of = {}
        for start in range(0, len(addressed), WRITE_BATCH):
            batch = addressed[start : start + WRITE_BATCH]
            cursor.execute(
                f"SELECT queue_id, id FROM {_table()} WHERE server_id = %s AND queue_id IN "
                f"({', '.join(['%s'] * len(batch))})",
                [server_pk, *(queue_id for queue_id, _, _ in batch)],
            )
            pk_of.update(cursor.fetchall())
    replaced = [pk_of[queue_id] for queue_id, _, again in addressed if again and queue_id in pk_of]
    for start in range(0, len(replaced), WRITE_BATCH):
        batch = replaced[start : start + WRITE_BATCH]
        cursor.execute(f"DELETE FROM {_domain_table()} WHERE message_id IN ({', '.join(['%s'] * len(batch))})", batch)
    domains = [
        (server_pk, pk_of[queue_id], domain, own)
        for queue_id, recipients, _ in addressed
        if queue_id in pk_of
        for domain, own in recipient_domains(recipients.split("\n")).items()
    ]
    _insert(cursor, _domain_table(), ["server_id", "message_id", "domain", "own"], domains)


def _delete(server: MailServer, queue_ids: list[str]) -> None:
    with connection.cursor() as cursor:
        for start in range(0, len(queue_ids), WRITE_BATCH):
            batch = queue_ids[start : start + WRITE_BATCH]
            cursor.execute(
                f"DELETE FROM {_domain_table()} WHERE message_id IN (SELECT id FROM {_table()} "
                f"WHERE server_id = %s AND queue_id IN ({', '.join(['%s'] * len(batch))}))",
                [server.pk, *batch],
            )
            cursor.execute(
                f"DELETE FROM {_table()} WHERE server_id = %s AND queue_id IN ({', '.join(['%s'] * len(batch))})",
                [server.pk, *batch],
            )


def _drop_secondary_indexes(rows: int) -> list[str]:
    """On SQLite, before filling an empty table: drop its secondary indexes, return their SQL.

    Building an index over 100,000 rows at once costs about half of keeping it up to date row
    by row. DDL is transactional in SQLite: the caller's transaction creates the very same
    indexes again (their SQL is read from sqlite_master) or, if it fails, never dropped them.
    The messages table and the domain table are each looked at on their own.
    """
    if connection.vendor != "sqlite" or rows < FANOUT_MIN_FILES:
        return []
    dropped = []
    with connection.cursor() as cursor:
        for model in (QueueMessage, RecipientDomain):
            table = model._meta.db_table
            cursor.execute(f"SELECT 1 FROM {connection.ops.quote_name(table)} LIMIT 1")
            if cursor.fetchone() is not None:
                continue
            cursor.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = %s AND sql IS NOT NULL",
                [table],
            )
            indexes = cursor.fetchall()
            for name, _ in indexes:
                cursor.execute(f"DROP INDEX {connection.ops.quote_name(name)}")
            dropped += [sql for _, sql in indexes]
    return dropped


def _changed_names(current: dict[str, dict[str, int]], known: KnownSpool) -> list[tuple[str, str]]:
    """(directory, name) of every control file that is new or has another inode than indexed."""
    changed = []
    for queue_dir, entries in current.items():
        inode_of = known.names.get(queue_dir, {}).get
        changed += [(queue_dir, name) for name, inode in entries.items() if inode_of(name) != inode]
    return changed


def _changed_on_disk(current: dict[str, dict[str, int]], known: KnownSpool) -> list[tuple[str, str]]:
    """Deep check: also the files whose size or mtime differ from the index (an lstat each)."""
    changed = []
    for queue_dir, entries in current.items():
        where = spool.control_dir(queue_dir)
        inode_of = known.names.get(queue_dir, {}).get
        for name, inode in entries.items():
            facts = known.facts.get(name[2:])
            if inode_of(name) != inode or facts is None or facts[0] != name[:2]:
                changed.append((queue_dir, name))
                continue
            try:
                stat = os.lstat(os.path.join(where, name))
            except FileNotFoundError:
                continue
            if (stat.st_ino, stat.st_size, stat.st_mtime_ns) != (inode, facts[2], facts[3]):
                changed.append((queue_dir, name))
    return changed


def _compare_listing(
    current: dict[str, dict[str, int]], known: KnownSpool, *, deep: bool
) -> tuple[list[tuple[str, str]], list[str]]:
    """Names to read and ids gone, from a listing of every queue directory."""
    candidates = _changed_on_disk(current, known) if deep else _changed_names(current, known)
    vanished = {
        (queue_dir, name)
        for queue_dir, names in known.names.items()
        for name in names.keys() - current.get(queue_dir, {}).keys()
    }
    return _resolve(candidates, vanished, known)


def _compare_touched(touched: dict[str, set[str]], known: KnownSpool) -> tuple[list[tuple[str, str]], list[str]]:
    """Names to read and ids gone, from the names a watch reported.

    Every reported name still there is read, whatever its inode: the kernel saw it written,
    so an edit in place shows at once rather than at the next deep refresh.
    """
    candidates = []
    vanished = set()
    for queue_dir, names in touched.items():
        where = spool.control_dir(queue_dir)
        for name in names:
            try:
                os.lstat(os.path.join(where, name))
            except FileNotFoundError:
                vanished.add((queue_dir, name))
                continue
            except OSError:
                pass  # the reader says why it cannot read it
            candidates.append((queue_dir, name))
    return _resolve(candidates, vanished, known)


def _resolve(
    candidates: list[tuple[str, str]], vanished: set[tuple[str, str]], known: KnownSpool
) -> tuple[list[tuple[str, str]], list[str]]:
    """Add the files last seen cut short to the names to read; the ids of indexed names that
    vanished, unless the job is read under another name (qf → hf, or another directory)."""
    for queue_id in known.truncated:  # read again at every refresh until whole (or gone)
        kind, queue_dir = known.facts[queue_id][:2]
        if (queue_dir, kind + queue_id) not in vanished:
            candidates.append((queue_dir, kind + queue_id))
    read_again = {name[2:] for _, name in candidates}
    gone = [
        name[2:]
        for queue_dir, name in vanished
        if name[2:] not in read_again
        and (facts := known.facts.get(name[2:])) is not None
        and (facts[1], facts[0]) == (queue_dir, name[:2])
    ]
    return candidates, gone


def _watched_changes(watch: SpoolWatch | None, server: MailServer) -> dict[str, set[str]] | None:
    """What the watch saw since the last refresh; None when it cannot say and the spool is listed."""
    if watch is None or not settings.QUEUE_INDEX_WATCH:
        return None
    try:
        directories = spool.queue_directories(server.queue_dir)
    except OSError:
        return None
    return watch.changes() if watch.covers(directories) else None


def _arm(server: MailServer) -> SpoolWatch | None:
    return watch_spool(server.queue_dir) if settings.QUEUE_INDEX_WATCH else None


def watch_spool(queue_dir_setting: str) -> SpoolWatch | None:
    """An inotify watch on every control directory of a QueueDirectory setting; None where none can be armed."""
    try:
        return SpoolWatch(
            {queue_dir: spool.control_dir(queue_dir) for queue_dir in spool.queue_directories(queue_dir_setting)}
        )
    except OSError:
        return None  # no inotify here, or no instances left: every refresh lists


def _deep_due(last: IndexRefresh | None) -> bool:
    if last is None or last.deep_checked is None:
        return True
    return timezone.now() - last.deep_checked >= timedelta(seconds=settings.QUEUE_INDEX_DEEP_SECONDS)


def _needs_analyze(rows: int, analyzed_rows: int) -> bool:
    """Whether the planner's statistics are too far from the table to choose plans well."""
    return rows >= 1000 and not (analyzed_rows / 2 <= rows <= analyzed_rows * 2)


def refresh(server: MailServer) -> RefreshResult:
    """Bring the server's rows in line with its spool, reading only control files that changed."""
    started = time.monotonic()
    with host_lock(f"queue-index-{server.pk}"):
        return _refresh(server, started)


def _refresh(server: MailServer, started: float) -> RefreshResult:
    last = IndexRefresh.objects.filter(server=server).first()
    result = RefreshResult(deep=_deep_due(last))
    current = None
    known = _take_known(server, last)
    watch, known.watch = known.watch, None
    try:
        touched = None if result.deep else _watched_changes(watch, server)
        if touched is None:
            if watch is not None:
                watch.close()
            watch = _arm(server)  # before the listing: what changes after it is reported next time
            current, result.errors = spool.list_control(server.queue_dir)
            candidates, gone = _compare_listing(current, known, deep=result.deep and known.rows > 0)
        else:
            result.listed = False
            candidates, gone = _compare_touched(touched, known)
        analyze = _apply(server, last, known, candidates, gone, current, result, started)
    except BaseException:
        if watch is not None:
            watch.close()  # its events were read and not acted on: the next refresh lists
        raise
    known.watch = watch
    _keep_known(server, known)
    if analyze:
        with connection.cursor() as cursor:
            # Every row: statistics from a sample (PRAGMA analysis_limit) made SQLite choose worse
            # plans; a recipient filter sorted by size took 200 ms a page instead of 50.
            cursor.execute(f"ANALYZE {_table()}")
            cursor.execute(f"ANALYZE {_domain_table()}")  # the domain filter joins through it
    return result


def _apply(
    server: MailServer,
    last: IndexRefresh | None,
    known: KnownSpool,
    candidates: list[tuple[str, str]],
    gone: list[str],
    current: dict[str, dict[str, int]] | None,
    result: RefreshResult,
    started: float,
) -> bool:
    """Read the candidates, write their rows, delete the gone; in one transaction. Whether to ANALYZE."""
    jobs = [(name[2:], name[:2], queue_dir) for queue_dir, name in dict.fromkeys(candidates) if is_job_file(name)]
    strangers = len(candidates) - len(jobs)  # names sendmail does not give a job
    # Queue ids grow with time, so rows written in id order append to the indexes instead of
    # landing all over them.
    jobs.sort()
    read = _reader(server.pk)
    children = min(os.cpu_count() or 1, 4) if len(jobs) >= FANOUT_MIN_FILES else 1
    with transaction.atomic():
        _delete(server, gone)
        for queue_id in gone:
            known.forget(queue_id)
        dropped = _drop_secondary_indexes(len(jobs))
        addressed = []
        with connection.cursor() as cursor:
            for rows in fanout(read, jobs, children=children, batch=WRITE_BATCH):
                addressed += _write(cursor, rows, known.facts)
                known.learn(rows)
                result.files_read += len(rows)
            message_indexes = [sql for sql in dropped if RecipientDomain._meta.db_table not in sql]
            for index_sql in message_indexes:  # the (server, queue id) one finds the ids of the domain rows
                cursor.execute(index_sql)
            _write_domains(cursor, server.pk, addressed)
            for index_sql in dropped:
                if index_sql not in message_indexes:
                    cursor.execute(index_sql)
        known.token = secrets.randbits(62)
        result.removed = len(gone)
        if current is not None:
            result.files_seen = sum(len(entries) for entries in current.values()) - strangers
        else:
            result.files_seen = known.rows
        result.seconds = time.monotonic() - started
        analyzed_rows = last.analyzed_rows if last else 0
        # A rebuilt index has no planner statistics until the next ANALYZE.
        analyze = bool(dropped) or _needs_analyze(known.rows, analyzed_rows)
        now = timezone.now()
        IndexRefresh.objects.update_or_create(
            server=server,
            defaults={
                "finished": now,
                "seconds": result.seconds,
                "files_seen": result.files_seen,
                "files_read": result.files_read,
                "removed": result.removed,
                "error": "; ".join(result.errors),
                "state_counts": {state: count for state, count in known.states.items() if count > 0},
                "token": known.token,
                "deep_checked": now if result.deep else last.deep_checked,
                "analyzed_rows": known.rows if analyze else analyzed_rows,
                "listed": result.listed,
            },
        )
    return analyze
