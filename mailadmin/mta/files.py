"""The one home of durable file writes on an MTA host: a whole file or nothing, with its mode
from the first byte, and the rename made durable.

Every writer of MTA files (cf install, instance set-up, certificate deployment, the agent's
configuration) and every remover that must survive a crash (queue deletes) goes through here.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


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
