"""The one module that runs the MTA's binaries: sendmail, m4 and makemap.

Rules it enforces for every caller: argument lists only (a shell never sees a value), a
timeout on every call, a typed error that carries the exit code and what the program
printed, and the exact command line for the audit log. Nothing else in the project
imports subprocess.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# sendmail, m4 and makemap need nothing from the caller's environment; a fixed one keeps
# a web request's or worker's variables (and any LD_* surprises) away from them.
BASE_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C", "LC_ALL": "C"}
WAIT_HEARTBEAT_SECONDS = 1.0


class MtaError(Exception):
    """Anything that went wrong while running an MTA binary."""


class CommandNotFound(MtaError):
    def __init__(self, argv: list[str]):
        self.argv = tuple(argv)
        super().__init__(f"{argv[0]}: program not found (is it installed?)")


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes
    seconds: float

    @property
    def command_line(self) -> str:
        return shlex.join(self.argv)

    @property
    def stdout_text(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    @property
    def stderr_text(self) -> str:
        return self.stderr.decode("utf-8", "replace")


@dataclass
class CommandFailed(MtaError):
    result: CommandResult
    reason: str = ""
    argv: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.argv = self.result.argv
        super().__init__(str(self))

    @property
    def returncode(self) -> int:
        return self.result.returncode

    @property
    def stderr(self) -> str:
        return self.result.stderr_text

    @property
    def output(self) -> str:
        """What the program printed, stderr first: sendmail reports cf errors on stdout."""
        return "\n".join(t for t in (self.result.stderr_text.strip(), self.result.stdout_text.strip()) if t)

    def __str__(self) -> str:
        name = os.path.basename(self.result.argv[0])
        why = self.reason or f"exited with status {self.result.returncode}"
        detail = self.output
        return f"{name} {why}" + (f": {detail[-2000:]}" if detail else "")


class CommandTimedOut(CommandFailed):
    pass


def validate_argv(argv: object) -> list[str]:
    if not isinstance(argv, list):
        raise TypeError(f"a command must be a list of strings, not {type(argv).__name__}")
    if not argv:
        raise ValueError("empty command")
    for arg in argv:
        if not isinstance(arg, str):
            raise TypeError(f"command arguments must be strings, not {type(arg).__name__}")
        if "\0" in arg:
            raise ValueError("a command argument contains a NUL byte")
    return argv


def run(
    argv: list[str],
    *,
    timeout: float,
    stdin: bytes | Path | None = None,
    stdout_path: Path | None = None,
    ok_codes: tuple[int, ...] = (0,),
    while_waiting: Callable[[], None] | None = None,
) -> CommandResult:
    """Run one program and wait for it, killing its whole process group on timeout.

    Output goes through temporary files, not pipes: `sendmail -bd` leaves a daemon behind,
    and a daemon holding a pipe open would make the caller wait for it forever.
    `while_waiting` is called every WAIT_HEARTBEAT_SECONDS while the program runs (a work row
    renews its lease with it, so a long queue run is not taken for a dead worker).
    """
    argv = validate_argv(argv)
    started = time.monotonic()
    with tempfile.TemporaryFile() as err_file, _output_file(stdout_path) as out_file, _input(stdin) as in_file:
        try:
            proc = subprocess.Popen(
                argv,
                stdin=in_file,
                stdout=out_file,
                stderr=err_file,
                env=dict(BASE_ENV, TZ=os.environ.get("TZ", "UTC")),
                close_fds=True,
                start_new_session=True,
            )
        except FileNotFoundError:
            raise CommandNotFound(argv) from None
        except PermissionError as exc:
            raise CommandNotFound(argv) from exc
        returncode = _wait(proc, started + timeout, while_waiting)
        timed_out = returncode is None
        if timed_out:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            returncode = proc.wait()
        err_file.seek(0)
        stderr = err_file.read()
        stdout = b""
        if stdout_path is None:
            out_file.seek(0)
            stdout = out_file.read()
    result = CommandResult(tuple(argv), returncode, stdout, stderr, time.monotonic() - started)
    if timed_out:
        raise CommandTimedOut(result, reason=f"did not finish within {timeout:g} s and was killed")
    if returncode not in ok_codes:
        raise CommandFailed(result)
    return result


def _wait(proc: subprocess.Popen, deadline: float, while_waiting: Callable[[], None] | None) -> int | None:
    """The exit code, or None when the deadline passed first."""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        try:
            return proc.wait(timeout=min(remaining, WAIT_HEARTBEAT_SECONDS) if while_waiting else remaining)
        except subprocess.TimeoutExpired:
            if while_waiting is not None and time.monotonic() < deadline:
                while_waiting()


class _output_file:
    def __init__(self, path: Path | None):
        self.path = path

    def __enter__(self):
        if self.path is None:
            self.handle = tempfile.TemporaryFile()
        else:
            # A fresh file: whatever was there (a crashed run's leftover, a planted link) is unlinked,
            # and the new one is never an existing file nor reached through a link.
            self.path.unlink(missing_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            self.handle = os.fdopen(fd, "wb")
        return self.handle

    def __exit__(self, *exc):
        if self.path is not None:
            self.handle.flush()
            os.fsync(self.handle.fileno())
        self.handle.close()


class _input:
    def __init__(self, source: bytes | Path | None):
        self.source = source

    def __enter__(self):
        if isinstance(self.source, Path):
            self.handle = open(self.source, "rb")
        else:
            self.handle = tempfile.TemporaryFile()
            self.handle.write(self.source or b"")
            self.handle.seek(0)
        return self.handle

    def __exit__(self, *exc):
        self.handle.close()


def m4_errors(stderr: str) -> list[str]:
    """The `*** ERROR` lines sendmail's cf macros print while m4 still exits 0."""
    return [line for line in stderr.splitlines() if line.startswith("*** ERROR")]


def run_m4(m4_bin: str, mc_path: Path, cf_path: Path, *, timeout: float) -> CommandResult:
    """m4 mc_path > cf_path; a build with `*** ERROR` on stderr fails even though m4 exits 0."""
    result = run([m4_bin, str(mc_path)], timeout=timeout, stdout_path=cf_path)
    errors = m4_errors(result.stderr_text)
    if errors:
        raise CommandFailed(result, reason="reported errors (m4 exited 0)")
    return result


class BinaryRefused(MtaError):
    """A program that is not one of the binaries this host's agent configuration pins."""


class Mta:
    """The commands the agent runs against one of its instances, each one written to the audit log.

    The server row is bound to the agent's own configuration first (mailadmin.mta.agent): its
    paths and binaries come from the host, and a process that is not the instance's agent
    (the web tier, the central worker) gets NotServedHere before anything runs.
    """

    def __init__(self, server, *, user=None, while_waiting: Callable[[], None] | None = None):
        from mailadmin.mta import agent

        self.server = agent.bind(server)
        self.user = user
        self.while_waiting = while_waiting

    @property
    def timeout(self) -> float:
        from django.conf import settings

        return float(settings.MAILADMIN_COMMAND_TIMEOUT)

    def _audited(self, action: str, call, argv: list[str]) -> CommandResult:
        """Run `call` between writing its audit row and completing it with the result."""
        from mailadmin import audit
        from mailadmin.models import AuditEvent

        self.refuse_unpinned(action, argv)
        event = audit.record(action, user=self.user, server=self.server, argv=argv, outcome=AuditEvent.Outcome.STARTED)
        try:
            result = call()
        except CommandFailed as exc:
            audit.complete(event, exit_code=exc.returncode, outcome=AuditEvent.Outcome.FAILED, detail=str(exc))
            raise
        except Exception as exc:  # MtaError and whatever else stops the call: the row says so
            audit.complete(event, outcome=AuditEvent.Outcome.FAILED, detail=str(exc) or type(exc).__name__)
            raise
        audit.complete(
            event,
            exit_code=result.returncode,
            outcome=AuditEvent.Outcome.OK,
            detail=(result.stderr_text.strip() + "\n" + result.stdout_text.strip()[:4000]).strip(),
        )
        return result

    def refuse_unpinned(self, action: str, argv: list[str]) -> None:
        """Run nothing but the exact sendmail, m4 and makemap of the agent's configuration (audited when refused)."""
        from mailadmin import audit
        from mailadmin.models import AuditEvent
        from mailadmin.mta import agent

        if argv and argv[0] in agent.pinned_binaries():
            return
        message = f"{argv[0] if argv else '(empty)'} is not a binary this host's agent configuration pins; not run"
        audit.record(
            action, user=self.user, server=self.server, argv=argv, outcome=AuditEvent.Outcome.DENIED, detail=message
        )
        raise BinaryRefused(message)

    def sendmail_argv(self, *args: str, cf_path: str | None = None) -> list[str]:
        server = self.server
        return [server.sendmail_bin, "-C", cf_path or server.cf_path, "-L", server.syslog_tag, *args]

    def sendmail(
        self,
        *args: str,
        action: str = "sendmail",
        stdin: bytes | Path | None = None,
        ok_codes: tuple[int, ...] = (0,),
        timeout: float | None = None,
        cf_path: Path | None = None,
    ) -> CommandResult:
        """Run this instance's sendmail binary on its live cf, or on `cf_path` (a staged one the agent wrote)."""
        argv = self.sendmail_argv(*args, cf_path=str(cf_path) if cf_path else None)
        return self._audited(
            action,
            lambda: run(
                argv, timeout=timeout or self.timeout, stdin=stdin, ok_codes=ok_codes, while_waiting=self.while_waiting
            ),
            argv,
        )

    def m4(self, mc_path: Path, staged_cf: Path) -> CommandResult:
        argv = [self.server.m4_bin, str(mc_path)]
        return self._audited("m4", lambda: run_m4(self.server.m4_bin, mc_path, staged_cf, timeout=self.timeout), argv)

    def check_cf(self, cf_path: Path) -> CommandResult:
        """sendmail's own parse of a cf: exit 70 and messages on stdout when it is broken."""
        argv = self.sendmail_argv("-bt", cf_path=str(cf_path))
        return self._audited("check cf", lambda: run(argv, timeout=self.timeout, stdin=b""), argv)

    def makemap(self, map_type: str, source: Path, *, cf_path: Path | None = None) -> CommandResult:
        """`makemap TYPE source < source`: writes source.db next to it.

        -C: read TrustedUser and friends from this instance's cf, not the system's; a staged build
        passes its own staged cf, the one that will be live when the map is.
        """
        argv = [self.server.makemap_bin, "-C", str(cf_path or self.server.cf_path), map_type, str(source)]
        return self._audited("makemap", lambda: run(argv, timeout=self.timeout, stdin=source), argv)

    def map_lookup(self, map_name: str, key: str) -> CommandResult:
        """`/map NAME KEY` in sendmail's address test mode: what the compiled map really returns."""
        for part in (map_name, key):
            if not part or any(ch.isspace() or not ch.isprintable() for ch in part):
                raise ValueError("a map name or key with spaces or control characters cannot be looked up")
        return self.sendmail("-bt", action="map lookup", stdin=f"/map {map_name} {key}\n".encode())

    def newaliases(self) -> CommandResult:
        return self.sendmail("-bi", action="newaliases")

    def compile_aliases(self, aliases: Path, cf_path: Path) -> CommandResult:
        """`sendmail -C cf -oA<aliases> -bi`: newaliases on a staged alias file (writes aliases.db next
        to it), read with the staged cf. Exit 70 for a line it cannot parse; its warnings (duplicate
        names …) come on stdout with exit 0, so the caller keeps and shows them."""
        if not aliases.is_absolute() or any(ch == "," or ch.isspace() or not ch.isprintable() for ch in str(aliases)):
            # AliasFile is a comma-separated list: a comma would name a second alias file.
            raise ValueError(f"{aliases}: an alias file path must be absolute, without commas or spaces")
        return self.sendmail(f"-oA{aliases}", "-bi", action="newaliases", cf_path=cf_path)

    def start_daemon(self) -> CommandResult:
        return self.sendmail("-bd", f"-q{self.server.queue_interval}", action="daemon start")

    def signal_daemon(self, pid: int, signum: signal.Signals) -> None:
        from mailadmin import audit

        os.kill(pid, signum)
        audit.record(
            f"daemon {signum.name}",
            user=self.user,
            server=self.server,
            target=f"pid {pid}",
            argv=["kill", f"-{signum.name}", str(pid)],
            exit_code=0,
        )

    def makemap_types(self) -> list[str]:
        """Map types this makemap can build (`makemap -l`), e.g. hash, btree, cdb (read-only, not audited)."""
        argv = [self.server.makemap_bin, "-l"]
        self.refuse_unpinned("makemap -l", argv)
        return run(argv, timeout=10).stdout_text.split()

    def version_report(self) -> CommandResult:
        """`sendmail -d0.1 -bt`: the binary's version and compile options (read-only, not audited)."""
        # Short timeout: a page waits for this, and the answer is a few lines printed at once.
        argv = self.sendmail_argv("-d0.1", "-bt")
        self.refuse_unpinned("sendmail version", argv)
        return run(argv, timeout=10, stdin=b"")


def mta_for(item) -> Mta:
    """The gateway for a work row's commands: audited as its requester's, renewing its lease
    while a program runs."""
    from mailadmin import work

    return Mta(item.server, user=item.created_by, while_waiting=work.lease_keeper(item))
