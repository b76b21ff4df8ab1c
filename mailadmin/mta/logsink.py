"""A minimal syslog receiver for machines without a syslog daemon.

sendmail only logs through syslog(3). Where nothing listens on /dev/log its lines are lost,
so `make run` starts this sink there and appends every datagram to one file the console
reads (MailServer.log_file). It never replaces a live syslog daemon's socket.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import time
from pathlib import Path

PRIORITY = re.compile(rb"^<\d{1,3}>")


class SinkError(Exception):
    pass


def socket_is_live(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        probe.connect(path)
    except OSError as exc:
        if exc.errno in (errno.ECONNREFUSED, errno.ENOENT, errno.ENOTSOCK):
            return False
        raise
    finally:
        probe.close()
    return True


def format_line(datagram: bytes) -> str:
    """`<22>Nov 24 18:15:52 sm-local[25793]: text` → `Nov 24 18:15:52 sm-local[25793]: text`."""
    body = PRIORITY.sub(b"", datagram).rstrip(b"\n\0")
    text = body.decode("utf-8", "replace").replace("\n", " ")
    return text if text[:3].isalpha() else time.strftime("%b %d %H:%M:%S ") + text


def serve(socket_path: str, log_file: Path) -> None:
    if os.path.exists(socket_path):
        if socket_is_live(socket_path):
            raise SinkError(f"{socket_path} already has a syslog daemon; read its mail log instead")
        os.unlink(socket_path)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    sink = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sink.bind(socket_path)
    os.chmod(socket_path, 0o666)
    try:
        # The mail log is an MTA file: root's alone (the web tier reads the agent's snapshot of it).
        fd = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "a", buffering=1) as out:
            while True:
                out.write(format_line(sink.recv(65536)) + "\n")
    finally:
        sink.close()
        os.unlink(socket_path)
