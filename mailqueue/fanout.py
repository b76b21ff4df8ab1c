"""Run a pure function over slices of a list in forked children, and hand back what they return.

The first index build reads and parses every control file on the spool while the parent
writes rows to the database; on a two-core machine that work has to run beside the writes,
not before them. Celery's pool children are daemonic, and multiprocessing refuses to start
children from them, so this forks directly. A child only calls `work` (file reads and
parsing, no database, no logging) and leaves with os._exit, so nothing of the parent's
state is touched twice.
"""

from __future__ import annotations

import fcntl
import marshal
import os
import selectors
import signal
import struct
from collections.abc import Callable, Iterator, Sequence

_FRAME = struct.Struct("!Q")
_FAILED = 2**64 - 1
PIPE_BYTES = 1 << 20


class ChildFailed(RuntimeError):
    """A child raised, died or sent something unreadable; the parent writes nothing from it."""


def fanout(
    work: Callable[[Sequence], list],
    items: Sequence,
    *,
    children: int,
    batch: int = 500,
) -> Iterator[list]:
    """Yield `work(batch of items)` for every batch; each child takes every n-th batch.

    `work` must return values marshal can write (tuples, lists, str, int, float, bool, None).
    Results arrive in completion order, not in the order of `items`.
    """
    batches = [items[start : start + batch] for start in range(0, len(items), batch)]
    if children <= 1 or len(batches) <= 1:
        for part in batches:
            yield work(part)
        return
    pids: list[int] = []
    readers: dict[int, bytearray] = {}
    finished = False
    try:
        for number in range(children):
            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(read_end)
                _child(work, batches[number::children], write_end)
            os.close(write_end)
            _widen(read_end)
            pids.append(pid)
            readers[read_end] = bytearray()
        yield from _collect(readers)
        finished = True
    finally:
        for fd in readers:
            os.close(fd)
        for pid in pids:
            _reap(pid, kill=not finished)


def _child(work: Callable[[Sequence], list], batches: list[Sequence], write_end: int) -> None:
    status = 0
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        for part in batches:
            _send(write_end, marshal.dumps(work(part)))
        _send(write_end, b"")
    except BaseException as exc:  # noqa: BLE001 - everything must reach the parent, then exit
        status = 1
        try:
            message = f"{type(exc).__name__}: {exc}".encode("utf-8", "replace")[:2000]
            os.write(write_end, _FRAME.pack(_FAILED) + message)
        except OSError:
            pass
    finally:
        os._exit(status)


def _send(fd: int, payload: bytes) -> None:
    data = memoryview(_FRAME.pack(len(payload)) + payload)
    while data:
        written = os.write(fd, data)
        data = data[written:]


def _widen(fd: int) -> None:
    """A bigger pipe lets a child run ahead while the parent writes rows."""
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except (OSError, AttributeError):
        pass


def _collect(readers: dict[int, bytearray]) -> Iterator[list]:
    selector = selectors.DefaultSelector()
    for fd in readers:
        selector.register(fd, selectors.EVENT_READ)
    open_readers = set(readers)
    try:
        while open_readers:
            for key, _ in selector.select():
                fd = key.fd
                chunk = os.read(fd, PIPE_BYTES)
                buffer = readers[fd]
                if not chunk:
                    raise ChildFailed("an index reader ended without finishing its share")
                buffer += chunk
                while len(buffer) >= _FRAME.size:
                    (length,) = _FRAME.unpack_from(buffer)
                    if length == _FAILED:
                        raise ChildFailed(bytes(buffer[_FRAME.size :]).decode("utf-8", "replace"))
                    if len(buffer) < _FRAME.size + length:
                        break
                    payload = bytes(buffer[_FRAME.size : _FRAME.size + length])
                    del buffer[: _FRAME.size + length]
                    if not payload:
                        selector.unregister(fd)
                        open_readers.discard(fd)
                        break
                    try:
                        yield marshal.loads(payload)
                    except (ValueError, EOFError, TypeError) as exc:
                        raise ChildFailed(f"unreadable batch from an index reader: {exc}") from exc
    finally:
        selector.close()


def _reap(pid: int, *, kill: bool) -> None:
    """Wait for a child that sent its last batch; kill one the parent gave up on."""
    try:
        if kill:
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ChildProcessError, ProcessLookupError):
        pass
