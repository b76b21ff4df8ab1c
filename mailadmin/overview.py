"""What the dashboard shows about one MailServer, read from disk and from sendmail itself.

Every function here is read-only and never raises for a broken or missing MTA: a page that
explains what is wrong is worth more than a 500. Problems come back as text in an `error`
or `note` field.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime

from mailadmin.models import AuditEvent, MailServer, ServiceAction
from mailadmin.mta import daemon
from mailadmin.mta.gateway import CommandFailed, Mta, MtaError

LOG_TAIL_BYTES = 256 * 1024
MC_READ_LIMIT = 1024 * 1024


@dataclass(frozen=True)
class SendmailVersion:
    version: str = ""
    compile_options: list[str] = field(default_factory=list)
    error: str = ""


# Keyed by (binary path, mtime_ns): an upgraded binary gets a new mtime and is asked again.
_version_cache: dict[tuple[str, int], SendmailVersion] = {}


def parse_version_report(text: str) -> SendmailVersion:
    """Read `Version x` and the `Compiled with:` list (continued on indented lines) from `-d0.1` output."""
    version = ""
    options: list[str] = []
    in_options = False
    for line in text.splitlines():
        stripped = line.strip()
        if line.startswith("Version "):
            version = stripped.removeprefix("Version ").strip()
            in_options = False
        elif stripped.startswith("Compiled with:"):
            options.extend(stripped.removeprefix("Compiled with:").split())
            in_options = True
        elif in_options and stripped and line[:1].isspace():
            options.extend(stripped.split())
        else:
            in_options = False
    return SendmailVersion(version=version, compile_options=options)


def sendmail_version(server: MailServer) -> SendmailVersion:
    binary = server.sendmail_bin
    try:
        mtime = os.stat(binary).st_mtime_ns
    except OSError as exc:
        return SendmailVersion(error=f"{binary}: {exc.strerror or exc}")
    key = (binary, mtime)
    if key in _version_cache:
        return _version_cache[key]
    try:
        output = Mta(server).version_report().stdout_text
    except CommandFailed as exc:
        # A broken cf makes `-bt` exit non-zero, but the version lines are printed before the cf is read.
        output = exc.result.stdout_text
        if not parse_version_report(output).version:
            return SendmailVersion(error=str(exc))
    except MtaError as exc:
        return SendmailVersion(error=str(exc))
    found = parse_version_report(output)
    if not found.version:
        return SendmailVersion(error=f"{binary} did not report a sendmail version; is it sendmail?")
    _version_cache[key] = found
    return found


@dataclass
class SpoolCounts:
    """Files in a queue by sendmail's prefix: qf queued, hf quarantined, Qf lost, df data, xf transcript."""

    queue_dir: str
    directories: list[str] = field(default_factory=list)
    queued: int = 0
    quarantined: int = 0
    lost: int = 0
    data: int = 0
    transcripts: int = 0
    error: str = ""

    @property
    def messages(self) -> int:
        return self.queued + self.quarantined


_SPOOL_PREFIXES = {"qf": "queued", "hf": "quarantined", "Qf": "lost", "df": "data", "xf": "transcripts"}


def queue_directories(queue_dir: str) -> list[str]:
    """The directories a QueueDirectory value names: itself, or every match of a trailing `prefix*`."""
    parent, last = os.path.split(queue_dir.rstrip("/") or "/")
    if "*" not in last:
        return [queue_dir]
    with os.scandir(parent) as entries:
        return sorted(entry.path for entry in entries if fnmatch.fnmatchcase(entry.name, last) and entry.is_dir())


def _count_directory(counts: SpoolCounts, directory: str) -> None:
    # sendmail puts control, data and transcript files in qf/, df/ and xf/ when those subdirectories exist.
    scanned = [directory] + [
        os.path.join(directory, sub) for sub in ("qf", "df", "xf") if os.path.isdir(os.path.join(directory, sub))
    ]
    for path in scanned:
        with os.scandir(path) as entries:
            for entry in entries:
                attribute = _SPOOL_PREFIXES.get(entry.name[:2])
                if attribute and entry.is_file():
                    setattr(counts, attribute, getattr(counts, attribute) + 1)


def spool_counts(queue_dir: str) -> SpoolCounts:
    counts = SpoolCounts(queue_dir=queue_dir)
    try:
        counts.directories = queue_directories(queue_dir)
    except OSError as exc:
        counts.error = f"{exc.filename}: {exc.strerror or exc}"
        return counts
    if not counts.directories:
        counts.error = f"no directory matches {queue_dir}"
    problems = []
    for directory in counts.directories:
        try:
            _count_directory(counts, directory)
        except OSError as exc:
            problems.append(f"{exc.filename}: {exc.strerror or exc}")
    counts.error = counts.error or "; ".join(problems)
    return counts


@dataclass(frozen=True)
class CfOption:
    """One `O Name=value` line; a commented `#O Name=value` is the default sendmail uses when unset."""

    name: str
    value: str
    active: bool


def parse_cf_options(text: str) -> list[CfOption]:
    options = []
    for line in text.splitlines():
        active = line.startswith("O ")
        if not active and not line.startswith("#O "):
            continue
        name, _, value = line.split(" ", 1)[1].partition("=")
        options.append(CfOption(name=name.strip(), value=value, active=active))
    return options


@dataclass
class InstalledCf:
    path: str
    exists: bool = False
    mtime: datetime | None = None
    size: int = 0
    sha256: str = ""
    version: str = ""
    options: list[CfOption] = field(default_factory=list)
    error: str = ""

    @property
    def active_options(self) -> list[CfOption]:
        return [option for option in self.options if option.active]

    @property
    def default_options(self) -> list[CfOption]:
        return [option for option in self.options if not option.active]

    @property
    def option_count(self) -> int:
        return len(self.active_options)


def installed_cf(server: MailServer) -> InstalledCf:
    cf = InstalledCf(path=server.cf_path)
    try:
        with open(server.cf_path, "rb") as handle:
            stat = os.fstat(handle.fileno())
            raw = handle.read()
    except OSError as exc:
        cf.error = f"{server.cf_path}: {exc.strerror or exc}"
        return cf
    cf.exists = True
    cf.mtime = datetime.fromtimestamp(stat.st_mtime, tz=UTC)
    cf.size = len(raw)
    cf.sha256 = hashlib.sha256(raw).hexdigest()
    text = raw.decode("utf-8", "replace")
    # version.m4 writes DZ<sendmail version>/<confCF_VERSION>: the build stamp the 220 greeting shows as $Z.
    cf.version = next((line[2:].strip() for line in text.splitlines() if line.startswith("DZ")), "")
    cf.options = parse_cf_options(text)
    return cf


@dataclass(frozen=True)
class InstalledMc:
    path: str
    text: str = ""
    truncated: bool = False
    error: str = ""


def installed_mc(server: MailServer) -> InstalledMc:
    try:
        with open(server.mc_path, "rb") as handle:
            raw = handle.read(MC_READ_LIMIT + 1)
    except OSError as exc:
        return InstalledMc(path=server.mc_path, error=f"{server.mc_path}: {exc.strerror or exc}")
    return InstalledMc(
        path=server.mc_path,
        text=raw[:MC_READ_LIMIT].decode("utf-8", "replace"),
        truncated=len(raw) > MC_READ_LIMIT,
    )


@dataclass(frozen=True)
class LogTail:
    path: str
    lines: list[str] = field(default_factory=list)
    note: str = ""


def log_tail(server: MailServer, lines: int = 30) -> LogTail:
    path = server.log_file
    if not path:
        return LogTail(path="", note="No log file is configured for this server.")
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            start = max(0, size - LOG_TAIL_BYTES)
            handle.seek(start)
            raw = handle.read()
    except OSError as exc:
        return LogTail(path=path, note=f"{path}: {exc.strerror or exc}")
    text = raw.decode("utf-8", "replace")
    all_lines = text.splitlines()
    if start > 0 and all_lines:
        all_lines = all_lines[1:]  # the read began mid-line
    # "tag[pid]:" or "tag:" — a bare substring test would also match the log of a server tagged "tag2".
    markers = (f"{server.syslog_tag}[", f"{server.syslog_tag}:")
    matching = [line for line in all_lines if any(marker in line for marker in markers)]
    note = "" if matching else f"No lines tagged {server.syslog_tag} in the last {LOG_TAIL_BYTES // 1024} KiB."
    return LogTail(path=path, lines=matching[-lines:], note=note)


@dataclass
class ServerOverview:
    server: MailServer
    status: daemon.DaemonStatus
    version: SendmailVersion
    spool: SpoolCounts
    cf: InstalledCf
    last_action: ServiceAction | None
    audit_events: list[AuditEvent]
    log: LogTail

    @property
    def problems(self) -> list[str]:
        """What is wrong, in the words a postmaster would use, most serious first."""
        found = []
        if self.version.error:
            found.append(f"sendmail cannot be run: {self.version.error}")
        if not self.cf.exists:
            found.append(f"The configuration file is missing: {self.cf.error}")
        if not self.status.answering:
            where = f"{self.server.smtp_address}:{self.server.smtp_port}"
            why = self.status.banner_error or self.status.banner or "no greeting"
            if self.status.process_alive:
                found.append(f"The daemon (pid {self.status.pid}) does not answer on {where}: {why}.")
            else:
                found.append(f"The daemon is not running: nothing answers on {where} ({why}).")
        if self.spool.error:
            found.append(f"The queue cannot be read: {self.spool.error}")
        if self.spool.lost:
            found.append(f"{self.spool.lost} lost queue file(s) (Qf): sendmail could not read them.")
        return found


def server_overview(server: MailServer) -> ServerOverview:
    return ServerOverview(
        server=server,
        status=daemon.status(server),
        version=sendmail_version(server),
        spool=spool_counts(server.queue_dir),
        cf=installed_cf(server),
        last_action=server.service_actions.order_by("-created", "-id").first(),
        audit_events=list(AuditEvent.objects.filter(server=server).select_related("user")[:10]),
        log=log_tail(server),
    )
