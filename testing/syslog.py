"""sendmail's log lines in tests: sendmail only logs through /dev/log, so where no syslog daemon
listens there, listen for the length of a test and append each line to the files named."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DEV_LOG = "/dev/log"


@contextmanager
def sendmail_log(*files: str | Path) -> Iterator[bool]:
    """Yields True while this process collects the lines into `files`; False when someone else's
    syslog holds /dev/log (the lines then go to its files, not these)."""
    from mailadmin.mta import logsink

    if os.path.exists(DEV_LOG):
        yield False
        return
    sink = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sink.bind(DEV_LOG)
    sink.settimeout(0.2)
    done = threading.Event()

    def receive() -> None:
        outputs = [open(path, "a", buffering=1) for path in files]  # noqa: SIM115 (closed below)
        try:
            while not done.is_set():
                try:
                    line = logsink.format_line(sink.recv(65536)) + "\n"
                except TimeoutError:
                    continue
                for output in outputs:
                    output.write(line)
        finally:
            for output in outputs:
                output.close()

    thread = threading.Thread(target=receive, daemon=True)
    thread.start()
    try:
        yield True
    finally:
        done.set()
        thread.join(5)
        sink.close()
        os.unlink(DEV_LOG)
