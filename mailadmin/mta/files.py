"""The one home of durable file writes on an MTA host: a whole file or nothing, with its mode
from the first byte, and the rename made durable.

Every writer of MTA files (cf install, instance set-up, certificate deployment, the agent's
configuration) and every remover that must survive a crash (queue deletes) goes through here.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class UnsafeDirectory(Exception):
    """A directory the agent would stage files in is not its own private one."""


def private_directory(path: Path) -> Path:
    """`path` as a directory only this process's user can use: created 0700 if missing; refused if
    it is a symlink, not a directory, owned by someone else, or open to group or others (another
    local account could then swap a staged file between the check and the install)."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(path)
    problems = []
    if stat.S_ISLNK(info.st_mode):
        problems.append("is a symbolic link")
    elif not stat.S_ISDIR(info.st_mode):
        problems.append("is not a directory")
    if info.st_uid != os.geteuid():
        problems.append(f"is owned by uid {info.st_uid}, not {os.geteuid()}")
    if info.st_mode & 0o077:
        problems.append(f"has mode {stat.S_IMODE(info.st_mode):04o}, not 0700")
    if problems:
        raise UnsafeDirectory(f"{path} " + " and ".join(problems) + "; the agent stages nothing there")
    return path


def create_new(path: Path, data: bytes = b"", mode: int = 0o600) -> None:
    """Write a file that did not exist a moment ago (O_EXCL|O_NOFOLLOW): a leftover of a crashed run
    is removed first (unlink removes a symlink itself, never its target)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def fsync_directory(path: str | Path) -> None:
    """Make a rename or unlink in `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(target: Path, data: bytes, mode: int = 0o644) -> None:
    """Write a fresh sibling temp file (O_EXCL, O_NOFOLLOW, created with its final mode), fsync it,
    rename it over the target and fsync the directory: readers see the old file or the new one.

    The mode is given to open() itself, so the file is never readable more widely whatever the
    umask allows; the explicit fchmod covers a umask that would have narrowed it further.
    """
    temp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb", closefd=True) as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    fsync_directory(target.parent)


def replace_with(staged: Path, target: Path, mode: int = 0o644) -> None:
    """rename() an already written file (m4's output, say) over the target, fsynced first, and make
    the rename durable."""
    with open(staged, "rb") as handle:
        os.fsync(handle.fileno())
    os.chmod(staged, mode)
    os.replace(staged, target)
    fsync_directory(target.parent)


@contextmanager
def host_lock(name: str) -> Iterator[None]:
    """One holder at a time of the lock `name` on this host, across the agent's worker processes
    (an index refresh or a log ingest that two tasks started at once must not run twice)."""
    from django.conf import settings

    locks = Path(settings.VAR_DIR) / "locks"
    locks.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(locks / f"{name}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
