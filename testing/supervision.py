"""`make run` as a newcomer runs it, for the tests of its supervision (mailadmin/tests/test_make_run.py).

Every run here has a var directory of its own (MAILADMIN_VAR_DIR: database, instance, Redis data,
logs), its own ports (web, Redis, the embedded daemon) and its own log-sink socket instead of
/dev/log, so it never meets a developer's `make run` or another test's processes. A run's processes
are found the way scripts/stop finds them: by MAILADMIN_RUN_VAR=<var dir> in /proc/PID/environ;
the sendmail daemon (which forks away with an environment of its own) by its PidFile and its port.
"""

from __future__ import annotations

import os
import secrets
import select
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from testing.processes import ROOT, free_port, wait_for

ADMIN_PASSWORD = "make-run-test-password"  # bootstrap's ensureadmin prints no generated one
RUNNING = "mailadmin is running: http://"


def run_processes(var_dir: Path) -> dict[int, str]:
    """pid → Procfile service ("" for honcho itself) of every live process of any run of `var_dir`."""
    tag = f"MAILADMIN_RUN_VAR={var_dir}".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if tag in environ:
            name = next((v[20:].decode() for v in environ if v.startswith(b"HONCHO_PROCESS_NAME=")), "")
            found[int(entry.name)] = name.partition(".")[0]
    return found


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def is_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class RunDirectory:
    """A var directory prepared once by scripts/bootstrap, and the environment of every run in it."""

    def __init__(self, path: Path):
        self.path = path
        self.web_port, self.redis_port, self.daemon_port = free_port(), free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILADMIN_", "DJANGO_"))}
        self.env = dict(
            env,
            MAILADMIN_VAR_DIR=str(path),
            MAILADMIN_WEB_ADDR=f"127.0.0.1:{self.web_port}",
            MAILADMIN_REDIS_PORT=str(self.redis_port),
            MAILADMIN_LOCAL_PORT=str(self.daemon_port),
            MAILADMIN_LOGSINK_SOCKET=str(path / "run" / "log.sock"),
            MAILADMIN_ADMIN_PASSWORD=ADMIN_PASSWORD,
        )

    @classmethod
    def create(cls) -> RunDirectory:
        """Under the checkout's var/ (sendmail refuses files below a world-writable directory); bootstrap
        lays it out as it does var/ (root's, the web tier's console/ inside) and prepares the instance."""
        parent = ROOT / "var" / "test-make-run"
        parent.mkdir(exist_ok=True)
        parent.chmod(0o711)  # the web tier's user passes through to its console/, and lists nothing
        directory = cls(parent / secrets.token_hex(4))
        directory.path.mkdir()
        subprocess.run(["scripts/bootstrap"], cwd=ROOT, env=directory.env, check=True, capture_output=True, timeout=300)
        return directory

    @property
    def daemon_pid_file(self) -> Path:
        return self.path / "instances" / "local" / "run" / "sendmail.pid"

    def daemon_pid(self) -> int | None:
        try:
            pid = int(self.daemon_pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if is_alive(pid) else None

    def processes(self) -> dict[int, str]:
        return run_processes(self.path)

    def stop(self) -> str:
        """`make stop` from another process; returns what it printed."""
        done = subprocess.run(
            ["make", "--no-print-directory", "stop"],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return done.stdout + done.stderr

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def terminal_signals() -> None:
    """The signal dispositions of a job started from a terminal. A suite run in the background (CI,
    nohup) inherits SIGINT and SIGHUP ignored, and a shell cannot trap a signal it was started with
    ignored: `make run` would then seem deaf to Ctrl-C only because of how the tests were started."""
    for number in (signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGTERM):
        signal.signal(number, signal.SIG_DFL)


class MakeRun:
    """One `make run` in its own process group (a terminal's foreground job), its output kept.

    output: "file" (a regular file), "pipe" (read here; close_output() is the reader going away),
    or "pty" (a terminal whose session leader is make; close_output() is the terminal closing).
    """

    def __init__(self, directory: RunDirectory, output: str = "file"):
        self.directory = directory
        self.kind = output
        self.chunks: list[bytes] = []
        self.reader: threading.Thread | None = None
        self.reading = threading.Event()
        self.daemon_pid: int | None = None
        argv = ["make", "--no-print-directory", "run"]
        common = dict(
            cwd=ROOT, env=directory.env, stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=terminal_signals
        )
        if output == "file":
            self.logfile = directory.path / f"make-run-{secrets.token_hex(3)}.out"
            with open(self.logfile, "wb") as out:
                self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, **common)
        elif output == "pipe":
            self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, **common)
            self._read_from(self.proc.stdout.fileno())
        elif output == "pty":
            self.master, slave = os.openpty()
            # setsid --ctty: make leads a session whose controlling terminal is the pty, as in a terminal window.
            # (setsid makes the session itself: with start_new_session it would fork and exit at once.)
            self.proc = subprocess.Popen(
                ["setsid", "--ctty", *argv],
                stdout=slave,
                stderr=slave,
                **{**common, "stdin": slave, "start_new_session": False},
            )
            os.close(slave)
            self._read_from(self.master)
        else:
            raise ValueError(output)

    def _read_from(self, fd: int) -> None:
        def read() -> None:
            while not self.reading.is_set():
                if select.select([fd], [], [], 0.1)[0]:
                    try:
                        chunk = os.read(fd, 65536)
                    except OSError:
                        return
                    if not chunk:
                        return
                    self.chunks.append(chunk)

        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()

    def output(self) -> str:
        if self.kind == "file":
            return self.logfile.read_text(errors="replace")
        return b"".join(self.chunks).decode(errors="replace")

    def wait_running(self, timeout: float = 120) -> None:
        """Until the run says it is running (web and daemon answer); remembers the daemon's pid."""
        wait_for(lambda: RUNNING in self.output() or self.proc.poll() is not None, timeout, "make run to be running")
        assert RUNNING in self.output(), self.output()
        self.daemon_pid = self.directory.daemon_pid()
        assert self.daemon_pid, "the daemon answers but its PidFile names no live process"

    def close_output(self) -> None:
        """The output's reader goes away: the pipe's read end, or the terminal (its pty master), closes."""
        self.reading.set()
        self.reader.join(5)
        if self.kind == "pipe":
            self.proc.stdout.close()
        else:
            os.close(self.master)

    def signal_group(self, signum: int) -> None:
        """What a terminal does (Ctrl-C: SIGINT) or a shell whose terminal hung up (SIGHUP) to its foreground job."""
        os.killpg(self.proc.pid, signum)

    def leftovers(self) -> list[str]:
        """What of this run is still alive: processes by their environment, the daemon, the ports."""
        left = [f"{name or 'honcho'} (pid {pid})" for pid, name in self.directory.processes().items()]
        if self.daemon_pid and is_alive(self.daemon_pid):
            left.append(f"the sendmail daemon (pid {self.daemon_pid})")
        d = self.directory
        ports = {"web": d.web_port, "Redis": d.redis_port, "the daemon": d.daemon_port}
        left += [f"something on the {name} port {port}" for name, port in ports.items() if answers(port)]
        if self.proc.poll() is None:
            left.append(f"make itself (pid {self.proc.pid})")
        return left

    def wait_all_gone(self, timeout: float = 15) -> float:
        """Seconds until nothing of the run is left; fails naming what is left after `timeout`."""
        started = time.monotonic()
        deadline = started + timeout
        while self.leftovers():
            if time.monotonic() > deadline:
                raise AssertionError(f"still running {timeout:g} s later: {self.leftovers()}\n{self.output()}")
            time.sleep(0.1)
        return time.monotonic() - started

    def kill_everything(self) -> None:
        """For a failed test's clean-up: SIGKILL make's group, then `make stop`."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
        self.directory.stop()
