"""Build, install and roll back a server's sendmail.cf, with its access map, map and class files
and .mc, as one transaction.

Before either, the agent checks every path-typed value of the build (its option values and each
option or FEATURE line of its .mc) against the roots of its own configuration for the instance:
PidFile=/etc/shadow would have root's sendmail overwrite that file. A path outside them refuses
the build or install before anything is staged or touched.

build:   the rendered .mc → m4 → `sendmail -C staged.cf -bt` → every managed value must appear
         verbatim in its `O Name=value` line → the build's maps staged and compiled against the
         staged cf (mailadmin.mta.mapbuild; a map that fails fails the build) → diff against the
         live cf. Nothing live is touched.
install: compile the access map and every map of the build in a private side directory; only if
         all compile, keep each live file the install replaces (cf, .mc, access and access.db,
         each map and its .db) as *.prev, listed in a manifest written before anything live
         changes; put each in place (temp file, fsync, rename; the cf last); SIGHUP the daemon
         and wait until its greeting names the new build. If it does not come back with it,
         every file goes back (a file that did not exist is removed again) and the daemon is
         restarted on them.
A rollback is an install of an earlier build. The first install on a server first records the
configuration that was live before it as a build of origin "host", so it can be rolled back to.
"""

from __future__ import annotations

import difflib
import fcntl
import hashlib
import json
import os
import signal
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.utils import timezone

from mailadmin import config
from mailadmin.cf import mcfile
from mailadmin.cf.catalog import OPTIONS
from mailadmin.models import ConfigBuild, InstallJob, MailServer
from mailadmin.mta import agent, daemon, mapbuild
from mailadmin.mta.files import create_new, private_directory, replace_with, write_atomically
from mailadmin.mta.gateway import CommandFailed, Mta
from mailadmin.work import WorkStatus

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
    staged_maps = stage / f"{row.build_id}.maps"
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
        progress(65, "checking every value made it through m4 unchanged")
        present = set(cf_text.splitlines())
        missing = [line for line in expected_lines(row.expected_options) if line not in present]
        stamp_lines = [line for line in cf_text.splitlines() if line.startswith("DZ")]
        if not any(line.endswith(f"/{row.build_id}") for line in stamp_lines):
            missing.append(f"DZ…/{row.build_id}")
        if missing:
            raise BuildFailed("m4 changed these values, so the build is refused: " + ", ".join(missing))
        progress(75, "compiling the maps with the staged cf")
        try:
            log.append("\n".join(mapbuild.compile_into(staged_maps, row.maps, mta, staged_cf)))
        except mapbuild.MapBuildFailed as exc:
            log.append("\n".join(exc.log))
            raise BuildFailed(str(exc)) from exc
        diff = unified_diff(read_text(Path(server.cf_path)), cf_text, "installed sendmail.cf", f"{row.build_id}.cf")
        row.cf_text, row.cf_sha256, row.diff = cf_text, sha256(cf_text.encode()), diff
        ConfigBuild.objects.filter(pk=row.pk).update(
            cf_text=cf_text, cf_sha256=row.cf_sha256, diff=diff, log="\n".join(log)
        )
    finally:
        ConfigBuild.objects.filter(pk=row.pk).update(log="\n".join(log))
        staged_mc.unlink(missing_ok=True)
        staged_cf.unlink(missing_ok=True)
        mapbuild.discard(staged_maps)


@contextmanager
def install_lock(server: MailServer):
    """One install at a time per server, across workers and processes."""
    fd = os.open(staging_dir(server) / "install.lock", os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def expected_stamp(row: ConfigBuild) -> str:
    """What the first line of the daemon's greeting shows when it runs this build's cf: `/<build id>;`
    for the console's builds; for the host's own, `/<its DZ version>;` ('' if its cf sets none)."""
    if row.origin == ConfigBuild.Origin.HOST:
        version = next((line[2:] for line in row.cf_text.splitlines() if line.startswith("DZ")), "")
        return f"/{version};" if version else ""
    return f"/{row.build_id};"


def greeting_names_build(status: daemon.DaemonStatus, row: ConfigBuild) -> bool:
    return status.answering and expected_stamp(row) in status.banner.splitlines()[0]


def reload_and_confirm(server: MailServer, mta: Mta, row: ConfigBuild) -> str:
    pid = daemon.live_pid(server)
    if pid is None:
        return "the daemon is not running; it will use this cf when it starts"
    mta.signal_daemon(pid, signal.SIGHUP)
    up = daemon.wait_until_answering(server, timeout=RELOAD_TIMEOUT, not_pid=pid)
    if not greeting_names_build(up, row):
        raise daemon.DaemonError(f"the daemon answers without build {row.build_id}: {up.banner.splitlines()[0]}")
    return f"daemon reloaded (pid {pid} → {up.pid}) and answers with {row.build_id}"


# --- the files one install replaces, and their *.prev -------------------------------------------


@dataclass(frozen=True)
class Placement:
    """One live file an install puts in place: written from `data`, or a compiled file renamed from `staged`."""

    target: Path
    mode: int
    data: bytes | None = None
    staged: Path | None = None


def prev_of(path: Path) -> Path:
    return path.with_name(path.name + ".prev")


def manifest_path(server: MailServer) -> Path:
    return staging_dir(server) / "install.prev.json"


def previous_paths(server: MailServer) -> list[Path]:
    """Every *.prev an install may keep (cf, .mc, access and its db, each map and its db), and the
    manifest that says which of them the last install kept."""
    live = [Path(server.cf_path), Path(server.mc_path), Path(server.access_path), Path(server.access_path + ".db")]
    for name in mapbuild.MAP_NAMES:
        live.extend(mapbuild.installed_files(server, name))
    return [prev_of(path) for path in live] + [manifest_path(server)]


def placements(server: MailServer, row: ConfigBuild, work_dir: Path) -> list[Placement]:
    """What the install of `row` puts where, in order: the maps, the access map, the .mc, the cf last
    (a rerun that finds the build's cf live knows every other file went in before it)."""
    planned = []
    for name in mapbuild.MAP_NAMES:
        if name not in row.maps:
            continue
        source = mapbuild.source_path(server, name)
        planned.append(Placement(source, mapbuild.SOURCE_MODE, data=mapbuild.encoded(row.maps[name])))
        if mapbuild.is_compiled(name):
            staged_db = mapbuild.db_of(work_dir / "maps" / name)
            # aliases.db keeps the mode sendmail gave it; makemap's maps get the access map's.
            mode = os.stat(staged_db).st_mode & 0o777 if name == mapbuild.ALIASES else mapbuild.DB_MODE
            planned.append(Placement(mapbuild.db_of(source), mode, staged=staged_db))
    access = Path(server.access_path)
    planned.append(Placement(access, 0o644, data=row.access_text.encode()))
    planned.append(Placement(mapbuild.db_of(access), 0o640, staged=work_dir / "access.db"))
    if row.mc_text:
        # Debian's `make` and sendmailconfig rebuild the cf from this file: it must be the build's.
        planned.append(Placement(Path(server.mc_path), 0o644, data=row.mc_text.encode()))
    planned.append(Placement(Path(server.cf_path), 0o644, data=row.cf_text.encode()))
    return planned


def read_manifest(server: MailServer) -> dict:
    try:
        return json.loads(manifest_path(server).read_text())
    except (OSError, ValueError):
        return {}


def write_manifest(server: MailServer, manifest: dict) -> None:
    write_atomically(manifest_path(server), json.dumps(manifest, indent=1).encode(), mode=0o600)


def keep_previous(server: MailServer, row: ConfigBuild, planned: list[Placement]) -> None:
    """Copy every live file the install replaces to *.prev and list them (and the ones that do not
    exist yet) in the manifest, all before anything live changes.

    A rerun of the same install (its worker died) finds the manifest naming it unfinished and keeps
    the .prev files the first attempt made: the live files may already be partly the new ones.
    """
    manifest = read_manifest(server)
    if manifest.get("build") == row.build_id and not manifest.get("finished"):
        return
    files = {}
    for placement in planned:
        target = placement.target
        existed = target.is_file()
        if existed:
            write_atomically(prev_of(target), target.read_bytes(), mode=os.stat(target).st_mode & 0o777)
        files[str(target)] = existed
    write_manifest(server, {"build": row.build_id, "finished": False, "files": files})


def put_in_place(planned: list[Placement]) -> None:
    for placement in planned:
        if placement.staged is not None:
            # Newer than the source written a moment ago: sendmail warns of an alias db older than its file.
            os.utime(placement.staged)
            replace_with(placement.staged, placement.target, placement.mode)
        else:
            write_atomically(placement.target, placement.data or b"", placement.mode)


def restore_previous(server: MailServer, mta: Mta) -> str:
    """Put back every file the manifest lists (remove the ones that did not exist), restart the daemon."""
    manifest = read_manifest(server)
    for name, existed in manifest.get("files", {}).items():
        target = Path(name)
        if existed:
            kept = prev_of(target)
            write_atomically(target, kept.read_bytes(), mode=os.stat(kept).st_mode & 0o777)
        else:
            target.unlink(missing_ok=True)
    if manifest:
        write_manifest(server, {**manifest, "finished": True})
    if daemon.live_pid(server) is not None:
        daemon.stop(server, mta)
    return daemon.start(server, mta)


def stage_install(server: MailServer, row: ConfigBuild, mta: Mta, work_dir: Path) -> list[str]:
    """Compile the access map and every map of the build under `work_dir`, against the build's cf."""
    private_directory(work_dir)
    staged_cf = work_dir / "sendmail.cf"
    create_new(staged_cf, row.cf_text.encode())
    log = mapbuild.compile_into(work_dir / "maps", row.maps, mta, staged_cf)
    access = work_dir / "access"
    create_new(access, row.access_text.encode())
    mapbuild.db_of(access).unlink(missing_ok=True)  # a crashed attempt's leftover
    mta.makemap("hash", access, cf_path=staged_cf)
    return log


# --- the configuration that was live before the console's first install -------------------------


def record_host_build(server: MailServer, live_cf: bytes | None) -> ConfigBuild | None:
    """On the first install on a server, keep what is live (cf, .mc, access map, every managed map
    file that exists) as a build of origin "host", so it can be rolled back to like any build.
    Its rows stay empty: nothing says which rows would describe it."""
    if live_cf is None or server.builds.filter(origin=ConfigBuild.Origin.HOST).exists():
        return None
    if config.build_with_cf(server, sha256(live_cf)) is not None:
        return None
    sources, not_text = mapbuild.live_sources(server)
    note = "The configuration found live on the host before the console's first install."
    if not_text:
        note += f" Not UTF-8, kept with replacement characters (not byte for byte): {', '.join(not_text)}."
    now = timezone.now()
    cf_written = datetime.fromtimestamp(os.stat(server.cf_path).st_mtime, tz=UTC)
    return ConfigBuild.objects.create(
        server=server,
        origin=ConfigBuild.Origin.HOST,
        status=WorkStatus.DONE,
        progress=100,
        finished_at=now,
        created_by=None,
        mc_text=read_text(Path(server.mc_path)),
        access_text=read_text(Path(server.access_path)),
        maps=sources,
        cf_text=live_cf.decode("utf-8", "replace"),
        cf_sha256=sha256(live_cf),
        log=note,
        installed_at=cf_written,
    )


def install(job: InstallJob, mta: Mta, progress: Progress) -> str:
    """Install job.build with its access map, maps and .mc; safe to run again after a worker died at
    any step.

    Everything is compiled in a side directory first: a map that does not compile fails the install
    with nothing live changed. The previous files are copied to *.prev and listed in a manifest
    before anything live changes, so a rerun (or the automatic rollback) finds them on disk, not
    in memory; a rerun of an unfinished install keeps the first attempt's *.prev files. The cf is
    put in place last, so a build whose cf is live and greets has all its files in place.
    """
    server, row = job.server, job.build
    refuse_paths_outside_roots(row, InstallFailed, "install")
    live_cf = Path(server.cf_path)
    work_dir = staging_dir(server) / f"install-{row.build_id}"
    with install_lock(server):
        current = live_cf.read_bytes() if live_cf.exists() else None
        already_live = current is not None and sha256(current) == row.cf_sha256
        if already_live and greeting_names_build(daemon.status(server), row):
            return mark_installed(row, f"{row.build_id} is already the live cf and the daemon greets with it")
        host = record_host_build(server, current)
        try:
            progress(10, "compiling the access map and the maps")
            try:
                notes = stage_install(server, row, mta, work_dir)
            except (mapbuild.MapBuildFailed, CommandFailed) as exc:
                raise InstallFailed(f"{exc}. Nothing live was changed.") from exc
            planned = placements(server, row, work_dir)
            progress(20, "keeping the previous files (*.prev)")
            keep_previous(server, row, planned)
            progress(35, "installing the maps, the access map, the .mc and the cf")
            put_in_place(planned)
            progress(60, "reloading the daemon and waiting for its greeting")
            try:
                outcome = reload_and_confirm(server, mta, row)
            except (daemon.DaemonError, CommandFailed) as exc:
                progress(80, "the new cf failed; putting the previous files back")
                restored = restore_previous(server, mta)
                raise InstallFailed(
                    f"{exc}. The previous cf and access map were put back, with the maps and the .mc: {restored}"
                ) from exc
            write_manifest(server, {**read_manifest(server), "finished": True})
        finally:
            mapbuild.discard(work_dir)
    extra = [line for line in notes if line.startswith(("NOTE", "WARNING"))]
    if host is not None:
        extra.append(f"the configuration live before it is kept as {host.build_id} (origin: host)")
    return mark_installed(row, "; ".join([outcome, *extra]))


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
