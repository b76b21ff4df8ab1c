"""The sendmail daemon of a MailServer: is it up, and start / stop / restart / reload it.

Status comes from two independent facts: the PidFile names a live sendmail process, and a
real SMTP connection to the daemon's address gets a 220 banner. Either can be false alone
(a stale PidFile; a daemon stopped with SIGSTOP or refusing connections).
"""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

from mailadmin.mta.gateway import Mta
from mailadmin.overview import DaemonStatus  # the pages read the same shape from the snapshot

START_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0
# How long a start may go without any live sendmail process before it counts as failed.
DEAD_GRACE = 3.0


class DaemonError(Exception):
    pass


def read_pid_file(path: str) -> int | None:
    """Line 1 of sendmail's PidFile is the pid (line 2 the command line it was started with)."""
    try:
        first = Path(path).read_text(errors="replace").splitlines()[0].strip()
    except (OSError, IndexError):
        return None
    return int(first) if first.isdigit() else None


def is_sendmail_process(pid: int) -> bool:
    # comm keeps the executable's name even after sendmail rewrites its process title;
    # checking it keeps us from signalling an unrelated process that reused a stale pid.
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return comm == "sendmail" and state != "Z"


# /proc gives a process's start to the clock tick and a file's mtime to the nanosecond, but the two
# clocks can disagree by a little: a PidFile written up to this long before its process "started"
# still counts as that process's.
CLOCK_SLACK_SECONDS = 1.0


def started_after_pid_file(pid: int, pid_file: str) -> bool:
    """True when `pid` came into being after its PidFile was last written: a stale file whose pid the
    kernel has handed to another sendmail since (another instance's queue runner, say).

    sendmail writes its PidFile after it has forked into the background (and again after a SIGHUP
    re-exec), so the daemon a PidFile really names is always older than the file.
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        age = float(Path("/proc/uptime").read_text().split()[0]) - int(fields[19]) / os.sysconf("SC_CLK_TCK")
        written = Path(pid_file).stat().st_mtime
    except (OSError, ValueError, IndexError):
        return False
    return time.time() - age > written + CLOCK_SLACK_SECONDS


def live_pid(server) -> int | None:
    """The daemon's pid, if its PidFile names a live sendmail that is not younger than the file."""
    pid = read_pid_file(server.pid_file)
    return pid if pid and is_sendmail_process(pid) and not started_after_pid_file(pid, server.pid_file) else None


def smtp_banner(address: str, port: int, timeout: float = 3.0) -> str:
    """Connect, read the greeting (all lines of a multi-line 220), say QUIT."""
    with socket.create_connection((address, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        data = b""
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
            lines = data.split(b"\r\n")
            if len(lines) > 1 and lines[-2][3:4] == b" ":
                break
        try:
            sock.sendall(b"QUIT\r\n")
        except OSError:
            pass
    return data.decode("utf-8", "replace").strip()


def status(server, timeout: float = 3.0, greeting: tuple[str, str] | None = None) -> DaemonStatus:
    """The PidFile's process and the daemon's greeting; `greeting` (banner, error) is one a caller
    already got from its own SMTP session (the snapshot's EHLO), so the daemon is not asked twice."""
    pid = read_pid_file(server.pid_file)
    alive = bool(pid) and is_sendmail_process(pid)
    if greeting is not None:
        banner, error = greeting
    else:
        try:
            banner, error = smtp_banner(server.smtp_address, server.smtp_port, timeout), ""
        except OSError as exc:
            banner, error = "", exc.strerror or str(exc) or type(exc).__name__
    return DaemonStatus(pid=pid, process_alive=alive, banner=banner, banner_error=error)


def wait_until_answering(server, timeout: float = START_TIMEOUT, not_pid: int | None = None) -> DaemonStatus:
    """Wait for a live daemon (other than not_pid) that greets with 220.

    A daemon that dies while starting (a cf that passes `-bt` but names a missing queue
    directory, say) leaves no process behind: that is reported after DEAD_GRACE seconds
    instead of waiting out the whole timeout.
    """
    started = time.monotonic()
    while True:
        current = status(server, timeout=2.0)
        if current.answering and current.process_alive and current.pid != not_pid:
            return current
        elapsed = time.monotonic() - started
        gone = not current.process_alive and not current.answering
        if elapsed > timeout or (gone and elapsed > DEAD_GRACE):
            why = "exited" if gone else f"did not answer within {timeout:g} s"
            raise DaemonError(
                f"the daemon on {server.smtp_address}:{server.smtp_port} {why} ({current.summary}); "
                f"its reason is in its log ({server.log_file or 'syslog'})"
            )
        time.sleep(0.1)


def wait_until_gone(pid: int, timeout: float = STOP_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while is_sendmail_process(pid):
        if time.monotonic() > deadline:
            raise DaemonError(f"sendmail process {pid} did not exit within {timeout:g} s after SIGTERM")
        time.sleep(0.05)


def start(server, mta: Mta, progress=lambda percent, note: None) -> str:
    current = status(server, timeout=2.0)
    if current.answering and current.process_alive:
        return f"already running (pid {current.pid}): {current.banner.splitlines()[0]}"
    progress(30, "starting sendmail -bd")
    mta.start_daemon()
    progress(60, "waiting for the 220 greeting")
    up = wait_until_answering(server)
    return f"started (pid {up.pid}): {up.banner.splitlines()[0]}"


def stop(server, mta: Mta, progress=lambda percent, note: None) -> str:
    pid = live_pid(server)
    if pid is None:
        return "already stopped"
    progress(20, f"sending SIGTERM to {pid}")
    mta.signal_daemon(pid, signal.SIGTERM)
    progress(40, f"waiting for {pid} to exit")
    wait_until_gone(pid)
    return f"stopped (pid {pid})"


def restart(server, mta: Mta, progress=lambda percent, note: None) -> str:
    stopped = stop(server, mta, progress)
    started = start(server, mta, progress)
    return f"{stopped}; {started}"


def reload(server, mta: Mta, progress=lambda percent, note: None) -> str:
    """SIGHUP: sendmail re-execs itself with its original argv and writes a new PidFile."""
    pid = live_pid(server)
    if pid is None:
        raise DaemonError("the daemon is not running; start it instead of reloading")
    progress(30, f"sending SIGHUP to {pid}")
    mta.signal_daemon(pid, signal.SIGHUP)
    progress(60, "waiting for the re-executed daemon")
    up = wait_until_answering(server, not_pid=pid)
    return f"reloaded (pid {pid} → {up.pid}): {up.banner.splitlines()[0]}"


VERBS = {"start": start, "stop": stop, "restart": restart, "reload": reload}
