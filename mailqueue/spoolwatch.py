"""Which control-file names changed in a server's queue directories, as the kernel saw it.

Listing a flat spool of 100,000 jobs means reading 200,000 names (their df files too) at
every refresh, and that listing was most of a refresh. An inotify instance armed before a
listing reports every name created, written, renamed or removed after it, so the next
refresh only looks at those names. The kernel queues a bounded number of events: when it
overflows, or a watched directory is moved, removed or replaced, or the process was forked
since arming (a forked child would take events its parent is owed), the watch says it no
longer knows and the caller lists the directories again.

Linux only, through libc (ctypes: the standard library has no inotify); anywhere arming
fails, the caller lists, as it did before.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import struct
import weakref
from collections.abc import Iterable

IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_UNMOUNT = 0x00002000
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_ISDIR = 0x40000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

# sendmail changes a finished control file only by renaming a new one over it; writes that
# end in a close and hard links (IN_CREATE) are what other programs may do.
NAME_EVENTS = IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
LOST_TRACK = IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT | IN_Q_OVERFLOW | IN_IGNORED
_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then the name
READ_BYTES = 1 << 20
# Names kept between two refreshes; past this, listing again is cheaper than remembering.
MOST_NAMES = 200_000


class _Libc:
    def __init__(self) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self.init1 = libc.inotify_init1
        self.init1.argtypes = [ctypes.c_int]
        self.add_watch = libc.inotify_add_watch
        self.add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]


_libc: _Libc | None = None


def _calls() -> _Libc:
    global _libc
    if _libc is None:
        _libc = _Libc()
    return _libc


def _checked(result: int) -> int:
    if result < 0:
        number = ctypes.get_errno()
        raise OSError(number, os.strerror(number))
    return result


class SpoolWatch:
    """Names changed since arming (or since the last `changes()`) in a set of directories."""

    def __init__(self, directories: dict[str, str]) -> None:
        """Arm on {queue directory: its control directory}; raises OSError when it cannot."""
        self.pid = os.getpid()
        self.fd = _checked(_calls().init1(IN_NONBLOCK | IN_CLOEXEC))
        # A watch nobody holds any more (replaced, evicted, dropped by a failed refresh) closes.
        self._closer = weakref.finalize(self, _close_in, self.pid, self.fd)
        self.directories = dict(directories)
        self._by_descriptor: dict[int, str] = {}
        self._identity: dict[str, tuple[int, int]] = {}
        self._pending: dict[str, set[str]] = {queue_dir: set() for queue_dir in directories}
        self._pending_count = 0
        self.lost = False
        try:
            for queue_dir, control in directories.items():
                watch = _checked(
                    _calls().add_watch(self.fd, os.fsencode(control), NAME_EVENTS | LOST_TRACK | IN_ONLYDIR)
                )
                self._by_descriptor[watch] = queue_dir
                stat = os.stat(control)
                self._identity[queue_dir] = (stat.st_dev, stat.st_ino)
        except BaseException:
            self.close()
            raise

    def covers(self, directories: Iterable[str]) -> bool:
        """Whether this watch is for exactly these queue directories, in this process."""
        return self.pid == os.getpid() and set(directories) == set(self.directories)

    def changes(self) -> dict[str, set[str]] | None:
        """{queue directory: control-file names touched} since the last call; None when lost.

        Once it has returned None it always does: the caller lists and arms a new watch.
        """
        self._drain()
        if not self.lost:
            for queue_dir, control in self.directories.items():
                try:
                    stat = os.stat(control)
                except OSError:
                    self.lost = True
                    break
                if (stat.st_dev, stat.st_ino) != self._identity[queue_dir]:
                    self.lost = True  # another directory now answers to this path
                    break
        if self.lost or self.pid != os.getpid():
            self.lost = True
            return None
        changed, self._pending = self._pending, {queue_dir: set() for queue_dir in self.directories}
        self._pending_count = 0
        return changed

    def _drain(self) -> None:
        if self.pid != os.getpid():
            return  # the parent's events: reading them here would steal them from it
        while not self.lost:
            try:
                data = os.read(self.fd, READ_BYTES)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                self.lost = True
                return
            self._take(data)

    def _take(self, data: bytes) -> None:
        offset = 0
        while offset + _EVENT.size <= len(data):
            descriptor, mask, _, length = _EVENT.unpack_from(data, offset)
            name = data[offset + _EVENT.size : offset + _EVENT.size + length].rstrip(b"\0")
            offset += _EVENT.size + length
            if mask & LOST_TRACK:
                self.lost = True
                return
            if mask & IN_ISDIR or name[:1] not in (b"q", b"h", b"Q") or name[1:2] != b"f":
                continue
            queue_dir = self._by_descriptor.get(descriptor)
            if queue_dir is None:
                continue
            pending = self._pending[queue_dir]
            before = len(pending)
            pending.add(os.fsdecode(name))
            self._pending_count += len(pending) - before
            if self._pending_count > MOST_NAMES:
                self.lost = True
                return

    def close(self) -> None:
        """Release the inotify instance (only in the process that armed it)."""
        self._closer()
        self.fd = -1
        self.lost = True


def _close_in(pid: int, fd: int) -> None:
    if pid == os.getpid():  # a forked child's copy of the descriptor is not its own to close
        os.close(fd)
