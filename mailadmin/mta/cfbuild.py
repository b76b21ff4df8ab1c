"""Build, install and roll back a server's sendmail.cf.

Before either, the agent checks every path-typed value of the build (its option values and each
option or FEATURE line of its .mc) against the roots of its own configuration for the instance:
PidFile=/etc/shadow would have root's sendmail overwrite that file. A path outside them refuses
the build or install before anything is staged or touched.

build:   the rendered .mc → m4 → `sendmail -C staged.cf -bt` → every managed value must appear
         verbatim in its `O Name=value` line → diff against the live cf. Nothing live is touched.
install: keep the live cf as sendmail.cf.prev, put the new one in place (temp file, fsync,
         rename), rebuild the access db the same way, SIGHUP the daemon and wait until its
         greeting names the new build. If it does not come back with it, the previous cf and
         access db go back and the daemon is restarted on them.
A rollback is an install of an earlier build.
"""

from __future__ import annotations

import difflib
import fcntl
import hashlib
import os
import signal
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from django.utils import timezone

from mailadmin import config
from mailadmin.cf import mcfile
from mailadmin.cf.catalog import OPTIONS
from mailadmin.models import ConfigBuild, InstallJob, MailServer
from mailadmin.mta import agent, daemon
from mailadmin.mta.files import create_new, private_directory, write_atomically
from mailadmin.mta.gateway import CommandFailed, Mta

Progress = Callable[[int, str], None]
RELOAD_TIMEOUT = 20.0


class BuildFailed(Exception):
    pass


class InstallFailed(Exception):
    pass


def paths_outside_roots(row: ConfigBuild) -> list[str]:
    """`what=path` for each path-typed value of the build outside the roots this agent's own
    configuration declares for the instance (NotServedHere if it serves no such instance)."""
    roots = agent.instance(row.server.name).roots
    return mcfile.paths_outside(row.mc_text, row.expected_options or {}, roots)


def refuse_paths_outside_roots(row: ConfigBuild, error: type[Exception], what: str) -> None:
    outside = paths_outside_roots(row)
    if outside:
        roots = ", ".join(agent.instance(row.server.name).roots)
        raise error(
            f"the agent refuses to {what} build {row.build_id}: these paths lie outside the directories "
            f"it serves for {row.server.name} ({roots}): {', '.join(outside)}"
        )


def staging_dir(server: MailServer) -> Path:
    """Private scratch space next to the live files, so the final rename never crosses a file system;
    checked at every use (ours, 0700, not a symlink)."""
    return private_directory(Path(server.conf_dir) / ".mailadmin")


def expected_lines(options: dict[str, str]) -> list[str]:
    """The cf lines that prove each value came through m4 unchanged (catalog options know their own)."""
    return [
        OPTIONS[name].expected_line(value) if name in OPTIONS else f"O {name}={value}"
        for name, value in options.items()
    ]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def unified_diff(old: str, new: str, old_name: str, new_name: str) -> str:
    return "".join(
        difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True), old_name, new_name, n=2)
    )


def read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def build(row: ConfigBuild, mta: Mta, progress: Progress) -> None:
    server = row.server
    refuse_paths_outside_roots(row, BuildFailed, "build")
    stage = staging_dir(server)
    staged_mc, staged_cf = stage / f"{row.build_id}.mc", stage / f"{row.build_id}.cf"
    log: list[str] = []
    try:
        create_new(staged_mc, row.mc_text.encode())
        progress(20, "running m4")
        try:
            result = mta.m4(staged_mc, staged_cf)
            log.append(f"$ {result.command_line}\n{result.stderr_text}")
            progress(50, "sendmail is checking the staged cf")
            checked = mta.check_cf(staged_cf)
            log.append(f"$ {checked.command_line}\n{checked.stdout_text}{checked.stderr_text}")
        except CommandFailed as exc:
            log.append(f"$ {exc.result.command_line}\n{exc.output}")
            raise BuildFailed(str(exc)) from exc
        cf_text = staged_cf.read_text(errors="replace")
        progress(75, "checking every value made it through m4 unchanged")
        present = set(cf_text.splitlines())
        missing = [line for line in expected_lines(row.expected_options) if line not in present]
        stamp_lines = [line for line in cf_text.splitlines() if line.startswith("DZ")]
        if not any(line.endswith(f"/{row.build_id}") for line in stamp_lines):
            missing.append(f"DZ…/{row.build_id}")
        if missing:
            raise BuildFailed("m4 changed these values, so the build is refused: " + ", ".join(missing))
        diff = unified_diff(read_text(Path(server.cf_path)), cf_text, "installed sendmail.cf", f"{row.build_id}.cf")
        row.cf_text, row.cf_sha256, row.diff = cf_text, sha256(cf_text.encode()), diff
        ConfigBuild.objects.filter(pk=row.pk).update(
            cf_text=cf_text, cf_sha256=row.cf_sha256, diff=diff, log="\n".join(log)
        )
    finally:
        ConfigBuild.objects.filter(pk=row.pk).update(log="\n".join(log))
        staged_mc.unlink(missing_ok=True)
        staged_cf.unlink(missing_ok=True)


@contextmanager
def install_lock(server: MailServer):
    """One install at a time per server, across workers and processes."""
    fd = os.open(staging_dir(server) / "install.lock", os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def install_access_map(server: MailServer, mta: Mta, source_text: str) -> None:
    """Compile into a side file with makemap, then rename both source and db into place."""
    live_source = Path(server.access_path)
    stage = staging_dir(server)
    staged_source = stage / "access"
    create_new(staged_source, source_text.encode())
    (stage / "access.db").unlink(missing_ok=True)
    mta.makemap("hash", staged_source)
    write_atomically(live_source, source_text.encode())
    staged_db = stage / "access.db"
    os.chmod(staged_db, 0o640)
    os.replace(staged_db, live_source.with_name(live_source.name + ".db"))
    staged_source.unlink(missing_ok=True)


def greeting_names_build(status: daemon.DaemonStatus, build_id: str) -> bool:
    return status.answering and f"/{build_id};" in status.banner.splitlines()[0]


def reload_and_confirm(server: MailServer, mta: Mta, build_id: str) -> str:
    pid = daemon.live_pid(server)
    if pid is None:
        return "the daemon is not running; it will use this cf when it starts"
    mta.signal_daemon(pid, signal.SIGHUP)
    up = daemon.wait_until_answering(server, timeout=RELOAD_TIMEOUT, not_pid=pid)
    if not greeting_names_build(up, build_id):
        raise daemon.DaemonError(f"the daemon answers without build {build_id}: {up.banner.splitlines()[0]}")
    return f"daemon reloaded (pid {pid} → {up.pid}) and answers with {build_id}"


def previous_paths(server: MailServer) -> tuple[Path, Path]:
    """Where the cf and access source that were live before the current install are kept."""
    return Path(server.cf_path + ".prev"), Path(server.access_path + ".prev")


def restore_previous(server: MailServer, mta: Mta) -> str:
    prev_cf, prev_access = previous_paths(server)
    if prev_cf.exists():
        write_atomically(Path(server.cf_path), prev_cf.read_bytes())
    if prev_access.exists():
        install_access_map(server, mta, prev_access.read_text())
    if daemon.live_pid(server) is not None:
        daemon.stop(server, mta)
    return daemon.start(server, mta)


def install(job: InstallJob, mta: Mta, progress: Progress) -> str:
    """Install job.build; safe to run again after a worker died at any step.

    The previous cf and access source are written to *.prev files before anything live
    changes, so a rerun (or the automatic rollback) finds them on disk, not in memory.
    A rerun that finds the build's cf already live does not touch the .prev files again.
    """
    server, row = job.server, job.build
    refuse_paths_outside_roots(row, InstallFailed, "install")
    live_cf, live_access = Path(server.cf_path), Path(server.access_path)
    prev_cf, prev_access = previous_paths(server)
    with install_lock(server):
        current = live_cf.read_bytes() if live_cf.exists() else None
        already_live = current is not None and sha256(current) == row.cf_sha256
        if already_live and greeting_names_build(daemon.status(server), row.build_id):
            return mark_installed(row, f"{row.build_id} is already the live cf and the daemon greets with it")
        if not already_live:
            progress(15, "keeping the previous cf and access map (*.prev)")
            if current is not None:
                write_atomically(prev_cf, current)
            if live_access.exists():
                write_atomically(prev_access, live_access.read_bytes())
            progress(30, "installing the new cf")
            write_atomically(live_cf, row.cf_text.encode())
        progress(45, "rebuilding the access map")
        install_access_map(server, mta, row.access_text)
        progress(60, "reloading the daemon and waiting for its greeting")
        try:
            outcome = reload_and_confirm(server, mta, row.build_id)
        except (daemon.DaemonError, CommandFailed) as exc:
            progress(80, "the new cf failed; putting the previous one back")
            restored = restore_previous(server, mta)
            raise InstallFailed(f"{exc}. The previous cf and access map were put back: {restored}") from exc
    return mark_installed(row, outcome)


def mark_installed(row: ConfigBuild, outcome: str) -> str:
    ConfigBuild.objects.filter(pk=row.pk).update(installed_at=timezone.now())
    return outcome


def live_build(server: MailServer) -> ConfigBuild | None:
    """The build whose cf is on disk now (by content, not by what we last did): the agent's view,
    where config.live_build is the pages' (the cf's sha256 in the snapshot)."""
    try:
        digest = sha256(Path(server.cf_path).read_bytes())
    except OSError:
        return None
    return config.build_with_cf(server, digest)
