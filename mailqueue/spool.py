"""Where sendmail keeps a job's files, and reading them (read-only; actions live in actions.py).

A QueueDirectory value may end in `prefix*` (several queue directories), and each directory
may hold qf/, df/ and xf/ subdirectories, in which case control, data and transcript files
live there (op guide, "Queue File Formats").
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from mailadmin.overview import queue_directories
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


def control_dir(queue_dir: str) -> str:
    sub = os.path.join(queue_dir, "qf")
    return sub if os.path.isdir(sub) else queue_dir


def data_dir(queue_dir: str) -> str:
    sub = os.path.join(queue_dir, "df")
    return sub if os.path.isdir(sub) else queue_dir


def transcript_dir(queue_dir: str) -> str:
    sub = os.path.join(queue_dir, "xf")
    return sub if os.path.isdir(sub) else queue_dir


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


def read_control(path: str, kind: str, queue_id: str, only_headers: frozenset[bytes] | None = None) -> QueueFile | None:
    """Parse one control file; None when it vanished (sendmail finished or renamed it)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(CONTROL_FILE_LIMIT + 1)
    except FileNotFoundError:
        return None
    parsed = parse_queue_file(data[:CONTROL_FILE_LIMIT], queue_id=queue_id, kind=kind, only_headers=only_headers)
    if len(data) > CONTROL_FILE_LIMIT:
        parsed.problems.append(CONTROL_FILE_CUT)
    return parsed


def data_file_path(queue_dir: str, queue_id: str, parsed: QueueFile | None = None) -> str:
    directory = parsed.data_dir if parsed and parsed.data_dir else data_dir(queue_dir)
    return os.path.join(directory, f"df{queue_id}")


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
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            raw = handle.read(limit)
    except OSError as exc:
        return BodyPreview("", 0, False, error=f"{Path(path).name}: {exc.strerror or exc}")
    text = raw.decode("utf-8", "replace")
    return BodyPreview(text, size, size > limit)
