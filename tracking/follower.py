"""Reading a mail log incrementally from a checkpoint, through logrotate, in an MTA host's agent.

A checkpoint names the file the reader was in by its inode and a fingerprint (the hash of its
first line), and how far it had read (a byte offset just after a whole line). Next time:

- the same file, grown: read on from the offset;
- renamed away by logrotate (`mail.log` → `mail.log.1`, maybe gzipped later): the rotated file
  with the checkpoint's fingerprint is finished from the offset, then the new file read whole;
- copied and truncated (logrotate's copytruncate): the live file's first line changed, so the
  copy (`mail.log.1`, same fingerprint) is finished from the offset, then the live file from 0;
- the first run ever: the rotated files still there are read oldest first (`.N.gz` … `.1`), then
  the live file, so the history logrotate kept is imported once.

Only whole lines are returned; a line still being written stays for the next read. Lines come in
batches, each with the checkpoint after it: the caller stores its rows and that checkpoint in one
transaction, so a reader stopped at any point (a restart of the agent) reads nothing twice and
skips nothing.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

BATCH_BYTES = 1 << 20
FINGERPRINT_BYTES = 512


@dataclass(frozen=True)
class Checkpoint:
    inode: int
    fingerprint: str
    offset: int


@dataclass(frozen=True)
class Batch:
    """Whole lines read from `source` (a file name, for the record) and where reading stands after them."""

    source: str
    lines: list[str]
    checkpoint: Checkpoint


def fingerprint_of(first_bytes: bytes) -> str:
    """The first line (up to FINGERPRINT_BYTES): a file no longer than that has none yet."""
    end = first_bytes.find(b"\n")
    if end < 0:
        return ""
    return hashlib.sha256(first_bytes[: end + 1]).hexdigest()[:32]


def _open(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    return os.fdopen(fd, "rb")


def _identity(path: Path) -> tuple[int, str] | None:
    """(inode, fingerprint) of a log file, or None if it is gone or unreadable."""
    try:
        with _open(path) as handle:
            inode = os.fstat(handle.fileno()).st_ino if path.suffix != ".gz" else os.stat(path).st_ino
            return inode, fingerprint_of(handle.read(FINGERPRINT_BYTES))
    except (OSError, EOFError, gzip.BadGzipFile):
        return None


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def rotated_files(path: Path) -> list[Path]:
    """`mail.log.1`, `mail.log.2.gz` …, newest first (logrotate's numbering)."""
    pattern = re.compile(re.escape(path.name) + r"\.(\d{1,4})(\.gz)?")
    found = []
    for candidate in path.parent.iterdir() if path.parent.is_dir() else ():
        match = pattern.fullmatch(candidate.name)
        if match and candidate.is_file() and not candidate.is_symlink():
            found.append((int(match.group(1)), candidate))
    return [candidate for _, candidate in sorted(found)]


def _read_from(path: Path, offset: int, inode: int, fingerprint: str) -> Iterator[Batch]:
    """Whole lines of `path` from `offset`, in batches of about BATCH_BYTES."""
    try:
        handle = _open(path)
    except OSError:
        return
    with handle:
        if offset:
            if path.suffix == ".gz":
                skipped = handle.read(offset)  # a gzip stream cannot seek cheaply: read past
                if len(skipped) < offset:
                    return
            else:
                handle.seek(offset)
        carry = b""
        while True:
            chunk = handle.read(BATCH_BYTES)
            if not chunk:
                return
            data = carry + chunk
            end = data.rfind(b"\n")
            if end < 0:
                carry = data
                continue
            whole, carry = data[: end + 1], data[end + 1 :]
            offset += len(whole)
            if not fingerprint and offset:
                fingerprint = fingerprint_of(whole[:FINGERPRINT_BYTES])
            lines = whole.decode("utf-8", "replace").split("\n")[:-1]
            yield Batch(path.name, lines, Checkpoint(inode, fingerprint, offset))


def _live(path: Path, offset: int, identity: tuple[int, str]) -> Iterator[Batch]:
    inode, fingerprint = identity
    if offset == 0:
        # Nothing read yet: even a file with no whole line gets a checkpoint (its inode).
        yield Batch(path.name, [], Checkpoint(inode, fingerprint, 0))
    yield from _read_from(path, offset, inode, fingerprint)


def _is_checkpoint_file(identity: tuple[int, str] | None, candidate: Path, checkpoint: Checkpoint) -> bool:
    if identity is None:
        return False
    if checkpoint.fingerprint:
        return identity[1] == checkpoint.fingerprint
    # No whole line had been read: only the inode can say (a renamed file; a gzipped one is new).
    return candidate.suffix != ".gz" and identity[0] == checkpoint.inode


def read_new(path: Path, checkpoint: Checkpoint | None) -> Iterator[Batch]:
    """Every whole line written to the log at `path` since `checkpoint` (None: the first run)."""
    live = _identity(path)
    if checkpoint is None:
        for rotated in reversed(rotated_files(path)):
            identity = _identity(rotated)
            if identity:
                yield from _read_from(rotated, 0, *identity)
        if live:
            yield from _live(path, 0, live)
        return
    unchanged = live and live[0] == checkpoint.inode and checkpoint.fingerprint in ("", live[1])
    if unchanged and _size(path) >= checkpoint.offset:
        yield from _live(path, checkpoint.offset, live)
        return
    # Rotated (renamed, or copied and truncated): finish the file we were in, wherever it is now,
    # then the files rotated after it (more than one rotation while the agent was down), oldest first.
    rotated = rotated_files(path)
    for number, candidate in enumerate(rotated):
        if _is_checkpoint_file(_identity(candidate), candidate, checkpoint):
            yield from _read_from(candidate, checkpoint.offset, checkpoint.inode, checkpoint.fingerprint)
            for newer in reversed(rotated[:number]):
                identity = _identity(newer)
                if identity:
                    yield from _read_from(newer, 0, *identity)
            break
    if live:
        yield from _live(path, 0, live)
