"""Where sendmail keeps a job's files, and reading them (read-only; actions live in actions.py).

A QueueDirectory value may end in `prefix*` (several queue directories), and each directory
may hold qf/, df/ and xf/ subdirectories, in which case control, data and transcript files
live there (op guide, "Queue File Formats").
"""

from __future__ import annotations

import errno
import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG
from typing import BinaryIO, NamedTuple

# The layout (which directories hold which files) has one home, mailadmin/mta/spool.py; re-exported here.
from mailadmin.mta.spool import control_dir, data_dir, queue_directories, transcript_dir  # noqa: F401
from mailqueue.parser import QueueFile, is_job_file, parse_queue_file, split_file_name

CONTROL_FILE_LIMIT = 4 * 1024 * 1024
CONTROL_FILE_CUT = f"only the first {CONTROL_FILE_LIMIT} bytes were read"
BODY_PREVIEW_LIMIT = 16 * 1024


class ControlFile(NamedTuple):
    """A control file as readdir + lstat saw it (a tuple: a refresh makes one per queued job)."""

    kind: str
    queue_id: str
    path: str
    queue_dir: str
    inode: int
    size: int
    mtime_ns: int


def _control_listings(queue_dir_setting: str, errors: list[str]) -> Iterator[tuple[str, str, Iterator[os.DirEntry]]]:
    """(queue directory, its control directory, the entries read from it) for each queue
    directory; what cannot be read is said in `errors`. The entries come lazily, read through a
    descriptor: they carry no joined path, a tenth less time on 200,000 names."""
    try:
        directories = queue_directories(queue_dir_setting)
    except OSError as exc:
        errors.append(f"{exc.filename}: {exc.strerror or exc}")
        return
    for queue_dir in directories:
        where = control_dir(queue_dir)
        try:
            descriptor = os.open(where, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            errors.append(f"{where}: {exc.strerror or exc}")
            continue
        try:
            with os.scandir(descriptor) as entries:
                yield queue_dir, where, _entries(entries, where, errors)
        finally:
            os.close(descriptor)


def _entries(entries: Iterator[os.DirEntry], where: str, errors: list[str]) -> Iterator[os.DirEntry]:
    try:
        yield from entries
    except OSError as exc:
        errors.append(f"{where}: {exc.strerror or exc}")


def scan(queue_dir_setting: str) -> tuple[list[ControlFile], list[str]]:
    """Every control file in every queue directory, with the stat facts the index compares; and errors."""
    found: list[ControlFile] = []
    errors: list[str] = []
    for queue_dir, where, entries in _control_listings(queue_dir_setting, errors):
        for entry in entries:
            parts = split_file_name(entry.name)
            if parts is None:
                continue
            try:
                stat = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # renamed or removed by sendmail while we looked
            path = os.path.join(where, entry.name)
            found.append(ControlFile(parts[0], parts[1], path, queue_dir, stat.st_ino, stat.st_size, stat.st_mtime_ns))
    return found, errors


def list_control(queue_dir_setting: str) -> tuple[dict[str, dict[str, int]], list[str]]:
    """queue directory → {control file name: inode} for every directory; and errors.

    One readdir per directory and no stat: readdir gives the inode, and sendmail changes a
    finished control file only by writing a new one and renaming it (tf → qf, qf → hf), so a
    new inode under the same name is a change. Names are only sorted from data and temporary
    files here (a cheap first-letter test: half of a flat spool is df files); the index checks
    the few it has not seen before.
    """
    errors: list[str] = []
    found = {
        queue_dir: {name: entry.inode() for entry in entries if (name := entry.name)[0] in "qhQ" and name[1:2] == "f"}
        for queue_dir, _, entries in _control_listings(queue_dir_setting, errors)
    }
    return found, errors


def more_jobs_than(queue_dir_setting: str, limit: int) -> bool:
    """Whether the queue directories hold more than `limit` control files; reads no further."""
    names = (entry.name for _, _, entries in _control_listings(queue_dir_setting, []) for entry in entries)
    return sum(1 for name in itertools.islice(filter(is_job_file, names), limit + 1)) > limit


def job_ids(queue_dir_setting: str, kinds: tuple[str, ...] = ("qf", "hf", "Qf")) -> set[str]:
    """Queue ids of the control files of these kinds, from readdir alone (no stat per file)."""
    listing, _ = list_control(queue_dir_setting)
    return {
        parts[1]
        for entries in listing.values()
        for name in entries
        if (parts := split_file_name(name)) is not None and parts[0] in kinds
    }


class NotARegularFile(OSError):
    """A spool name that is a symbolic link, a FIFO, a device or a directory: never read through."""


def open_spool_file(path: str) -> BinaryIO:
    """Open a file of the spool for reading: never through a symbolic link (O_NOFOLLOW), never
    blocking on a FIFO (O_NONBLOCK), and only if it is a regular file."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not S_ISREG(os.fstat(fd).st_mode):
            raise NotARegularFile(errno.EINVAL, "not a regular file", path)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_control(path: str, kind: str, queue_id: str, only_headers: frozenset[bytes] | None = None) -> QueueFile | None:
    """Parse one control file; None when it vanished (sendmail finished or renamed it).

    A name that is a symbolic link or not a regular file is not read: the result says so."""
    try:
        with open_spool_file(path) as handle:
            data = handle.read(CONTROL_FILE_LIMIT + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        why = "a symbolic link" if exc.errno == errno.ELOOP else exc.strerror or str(exc)
        return QueueFile(queue_id=queue_id, kind=kind, problems=[f"{Path(path).name} was not read: {why}"])
    parsed = parse_queue_file(data[:CONTROL_FILE_LIMIT], queue_id=queue_id, kind=kind, only_headers=only_headers)
    if len(data) > CONTROL_FILE_LIMIT:
        parsed.problems.append(CONTROL_FILE_CUT)
    return parsed


class OutsideQueue(ValueError):
    """A path a control file names (its `d` line) that is not in one of the queue directories."""


def _real_directories(queue_dir_setting: str) -> list[tuple[str, str]]:
    return [(directory, os.path.realpath(directory)) for directory in queue_directories(queue_dir_setting)]


def named_queue_directory(queue_dir_setting: str, named: str) -> str | None:
    """The queue directory a control file's `d` line names, if it is one of the configured ones.

    sendmail writes the name of another of its queue directories there (relative to the base of
    a `prefix*` QueueDirectory, where it works), and refuses a job whose `d` names anything else
    ("Bogus data file directory"). Absolute names are accepted when they are one of them too.
    """
    if not named or "\0" in named:
        return None
    setting = queue_dir_setting.rstrip("/") or "/"
    parent, last = os.path.split(setting)
    base = parent if "*" in last else setting
    wanted = os.path.realpath(os.path.join(base, named))
    return next((directory for directory, real in _real_directories(queue_dir_setting) if real == wanted), None)


def inside_queue(queue_dir_setting: str, path: str) -> bool:
    """Whether the directory holding `path` is (after symbolic links) one of the queue
    directories or a directory below one (qf/, df/, xf/)."""
    where = os.path.realpath(os.path.dirname(path))
    return any(os.path.commonpath([real, where]) == real for _, real in _real_directories(queue_dir_setting))


def data_file_path(queue_dir_setting: str, queue_dir: str, queue_id: str, parsed: QueueFile | None = None) -> str:
    """Where a job's data file is: in its own queue directory, or in the one its `d` line names.

    Raises OutsideQueue when that is not one of the configured queue directories (whatever the
    control file says, nothing outside them is read or removed).
    """
    directory = data_dir(queue_dir)
    if parsed is not None and parsed.data_dir:
        named = named_queue_directory(queue_dir_setting, parsed.data_dir)
        if named is None:
            raise OutsideQueue(
                f"the control file names {parsed.data_dir!r} as its data directory, which is not one of "
                f"the queue directories ({queue_dir_setting})"
            )
        directory = data_dir(named)
    path = os.path.join(directory, f"df{queue_id}")
    if not inside_queue(queue_dir_setting, path):
        raise OutsideQueue(f"{directory} leads outside the queue directories ({queue_dir_setting})")
    return path


def find_control(queue_dir_setting: str, queue_id: str) -> ControlFile | None:
    """The current control file of one job (qf, hf or Qf), wherever it is."""
    for queue_dir in queue_directories(queue_dir_setting):
        where = control_dir(queue_dir)
        for kind in ("qf", "hf", "Qf"):
            path = os.path.join(where, kind + queue_id)
            try:
                stat = os.lstat(path)
            except FileNotFoundError:
                continue
            return ControlFile(kind, queue_id, path, queue_dir, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    return None


@dataclass(frozen=True)
class BodyPreview:
    text: str
    size: int
    truncated: bool
    error: str = ""


def body_preview(path: str, limit: int = BODY_PREVIEW_LIMIT) -> BodyPreview:
    """The start of a df file as text for a page (the template escapes it)."""
    try:
        with open_spool_file(path) as handle:
            size = os.fstat(handle.fileno()).st_size
            raw = handle.read(limit)
    except OSError as exc:
        why = "a symbolic link, not read" if exc.errno == errno.ELOOP else exc.strerror or str(exc)
        return BodyPreview("", 0, False, error=f"{Path(path).name}: {why}")
    text = raw.decode("utf-8", "replace")
    return BodyPreview(text, size, size > limit)
