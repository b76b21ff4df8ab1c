"""What the pages show about one MailServer, read from the rows its host's agent writes.

The web tier never touches an MTA (DESIGN.md, "Pages read rows"): the host's agent takes a
HostSnapshot of each instance every AGENT_SNAPSHOT_SECONDS and after every daemon action and
install (mailadmin.mta.snapshot gathers it with the dataclasses and parsers below), and this
module turns that row back into what the templates show. Nothing here blocks or raises for a
broken MTA: problems are text, and a host whose agent is silent loads at once and says since when.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone
from django.utils.timesince import timesince

from mailadmin.models import AuditEvent, HostSnapshot, MailServer, ServiceAction

# The dashboard shows this many log lines; the snapshot keeps more (tlsconfig reads its STARTTLS lines).
LOG_TAIL_LINES = 30


def _from_dict(cls, data: dict | None):
    """A dataclass from a snapshot dict, ignoring keys it does not know (a newer agent) and
    defaulting the ones it lacks (an older one)."""
    known = {f.name for f in fields(cls)}
    return cls(**{key: value for key, value in (data or {}).items() if key in known})


@dataclass(frozen=True)
class SendmailVersion:
    version: str = ""
    compile_options: list[str] = field(default_factory=list)
    error: str = ""


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


@dataclass
class SpoolCounts:
    """Files in a queue by sendmail's prefix: qf queued, hf quarantined, Qf lost, df data, xf transcript."""

    queue_dir: str = ""
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


def cf_stamp(text: str) -> str:
    """version.m4 writes DZ<sendmail version>/<confCF_VERSION>: the build stamp the 220 greeting shows as $Z."""
    return next((line[2:].strip() for line in text.splitlines() if line.startswith("DZ")), "")


@dataclass
class InstalledCf:
    path: str = ""
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

    def to_dict(self) -> dict:
        """JSON for HostSnapshot.cf."""
        return {
            "path": self.path,
            "exists": self.exists,
            "mtime": self.mtime.isoformat() if self.mtime else None,
            "size": self.size,
            "sha256": self.sha256,
            "version": self.version,
            "options": [[option.name, option.value, option.active] for option in self.options],
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: dict | None) -> InstalledCf:
        data = dict(data or {})
        mtime = data.pop("mtime", None)
        options = data.pop("options", None) or []
        cf = _from_dict(cls, data)
        cf.mtime = datetime.fromisoformat(mtime) if mtime else None
        cf.options = [CfOption(name, value, bool(active)) for name, value, active in options]
        return cf


@dataclass(frozen=True)
class InstalledMc:
    path: str = ""
    text: str = ""
    truncated: bool = False
    error: str = ""


@dataclass(frozen=True)
class LogTail:
    path: str = ""
    lines: list[str] = field(default_factory=list)
    note: str = ""


@dataclass(frozen=True)
class DaemonStatus:
    """The daemon as the agent last saw it: the PidFile's pid, whether that is a live sendmail
    process, and the greeting a real SMTP connection got (mailadmin.mta.daemon.status)."""

    pid: int | None = None
    process_alive: bool = False
    banner: str = ""
    banner_error: str = ""

    @property
    def answering(self) -> bool:
        return self.banner.startswith("220")

    @property
    def summary(self) -> str:
        if self.answering:
            return f"running (pid {self.pid})" if self.process_alive else "answering (no sendmail process in PidFile)"
        if self.process_alive:
            return f"process {self.pid} alive but not answering: {self.banner_error or self.banner}"
        return "not running"


# --- The agent's silence ------------------------------------------------------------------------


def stale_after() -> timedelta:
    """An agent that has not answered for this long is shown as not answering: AGENT_STALE_SECONDS,
    and never less than three snapshot intervals (two missed polls are not an outage)."""
    return timedelta(seconds=max(settings.AGENT_STALE_SECONDS, 3 * settings.AGENT_SNAPSHOT_SECONDS))


@dataclass(frozen=True)
class AgentSilence:
    """The host's agent has not answered lately (since = its last answer), or not yet (since None).

    `answering`: the agent does answer, it has only not sent this instance's first snapshot yet
    (a host that just joined); its work is not waiting on anything.
    """

    queue: str
    since: datetime | None = None
    answering: bool = False

    @property
    def message(self) -> str:
        if self.answering:
            return f"The agent on {self.queue} has not reported on this instance yet; its first report is on its way."
        if self.since is None:
            return f"The agent on {self.queue} has not reported yet."
        when = timezone.localtime(self.since).strftime("%Y-%m-%d %H:%M:%S %Z")
        return f"The agent on {self.queue} has not answered since {when} ({ago(self.since)})."


def ago(when: datetime | None) -> str:
    """How long ago, to the second under a minute ("8 s ago"); Django's timesince stops at minutes."""
    if when is None:
        return ""
    seconds = int((timezone.now() - when).total_seconds())
    if seconds < 60:
        return f"{max(seconds, 0)} s ago"
    return f"{timesince(when)} ago"


def last_answer(server: MailServer, snapshot: HostSnapshot | None = None) -> datetime | None:
    """When the server's agent last answered: its host's last_seen or its last snapshot, the later."""
    times = [snapshot.taken_at] if snapshot is not None else []
    if server.host_id and server.host.last_seen:
        times.append(server.host.last_seen)
    return max(times, default=None)


def agent_silence(
    server: MailServer, snapshot: HostSnapshot | None = None, *, need_snapshot: bool = False
) -> AgentSilence | None:
    """None while the agent answers; otherwise what to say. `need_snapshot`: the page shows the
    instance's snapshot, so "not reported yet" also applies to an answering agent without one."""
    last = last_answer(server, snapshot)
    stale = last is None or timezone.now() - last > stale_after()
    if not stale and (snapshot is not None or not need_snapshot):
        return None
    return AgentSilence(queue=server.celery_queue, since=last if stale else None, answering=not stale)


def page_silence(server: MailServer) -> AgentSilence | None:
    """For the banner of every per-server page (one small query when the server has no host)."""
    return agent_silence(server, None if server.host_id else snapshot_of(server))


# --- Reading the snapshot -----------------------------------------------------------------------


def snapshot_of(server: MailServer) -> HostSnapshot | None:
    return HostSnapshot.objects.filter(server=server).first()


# The readers below take the snapshot when the caller already has it (None: there is none).
_READ = object()


def _snapshot(server: MailServer, snapshot) -> HostSnapshot | None:
    return snapshot_of(server) if snapshot is _READ else snapshot


def sendmail_version(server: MailServer, snapshot=_READ) -> SendmailVersion:
    snapshot = _snapshot(server, snapshot)
    return _from_dict(SendmailVersion, snapshot.version if snapshot else None)


def installed_cf(server: MailServer, snapshot=_READ) -> InstalledCf:
    """The cf as the agent last saw it; with no snapshot, a cf that is not known to exist."""
    snapshot = _snapshot(server, snapshot)
    if snapshot is None:
        return InstalledCf(path=server.cf_path, error="its host's agent has not reported it yet")
    return InstalledCf.from_dict(snapshot.cf)


def installed_mc(server: MailServer, snapshot=_READ) -> InstalledMc:
    snapshot = _snapshot(server, snapshot)
    if snapshot is None:
        return InstalledMc(path=server.mc_path, error="its host's agent has not reported it yet")
    return _from_dict(InstalledMc, snapshot.mc)


def log_tail(server: MailServer, lines: int = LOG_TAIL_LINES, snapshot=_READ) -> LogTail:
    """The last `lines` lines tagged with the server's syslog tag, as the agent last read them."""
    snapshot = _snapshot(server, snapshot)
    if snapshot is None:
        return LogTail(path=server.log_file, note="Its host's agent has not reported the log yet.")
    tail = _from_dict(LogTail, snapshot.log)
    return LogTail(path=tail.path, lines=list(tail.lines)[-lines:] if lines else [], note=tail.note)


def daemon_status(server: MailServer, snapshot=_READ) -> DaemonStatus | None:
    snapshot = _snapshot(server, snapshot)
    return _from_dict(DaemonStatus, snapshot.daemon) if snapshot is not None else None


def spool_counts(server: MailServer, snapshot=_READ) -> SpoolCounts | None:
    snapshot = _snapshot(server, snapshot)
    return _from_dict(SpoolCounts, snapshot.spool) if snapshot is not None else None


@dataclass
class ServerOverview:
    server: MailServer
    snapshot: HostSnapshot | None
    silence: AgentSilence | None
    status: DaemonStatus | None
    version: SendmailVersion
    spool: SpoolCounts | None
    cf: InstalledCf
    last_action: ServiceAction | None
    audit_events: list[AuditEvent]
    log: LogTail

    @property
    def taken_at(self) -> datetime | None:
        return self.snapshot.taken_at if self.snapshot else None

    @property
    def taken_ago(self) -> str:
        return ago(self.taken_at)

    @property
    def starttls(self) -> bool | None:
        """Did the daemon offer STARTTLS in its EHLO reply to the agent (None: not known)?"""
        ehlo = (self.snapshot.tls or {}).get("ehlo") if self.snapshot else None
        return bool(ehlo.get("starttls")) if ehlo and not ehlo.get("error") else None

    @property
    def problems(self) -> list[str]:
        """What is wrong with the instance as its agent last saw it, in a postmaster's words,
        most serious first (the agent's own silence is the page's banner, not repeated here)."""
        if self.snapshot is None:
            return []
        found = []
        if self.version.error:
            found.append(f"sendmail cannot be run: {self.version.error}")
        if not self.cf.exists:
            found.append(f"The configuration file is missing: {self.cf.error}")
        status = self.status or DaemonStatus()
        if not status.answering:
            where = f"{self.server.smtp_address}:{self.server.smtp_port}"
            why = status.banner_error or status.banner or "no greeting"
            if status.process_alive:
                found.append(f"The daemon (pid {status.pid}) does not answer on {where}: {why}.")
            else:
                found.append(f"The daemon is not running: nothing answers on {where} ({why}).")
        if self.spool is not None and self.spool.error:
            found.append(f"The queue cannot be read: {self.spool.error}")
        if self.spool is not None and self.spool.lost:
            found.append(f"{self.spool.lost} lost queue file(s) (Qf): sendmail could not read them.")
        for problem in (self.snapshot.tls or {}).get("key_problems", []):
            found.append(f"STARTTLS: {problem}.")
        if self.snapshot.error:
            found.append(f"The agent could not read everything: {self.snapshot.error}")
        return found


def server_overview(server: MailServer) -> ServerOverview:
    """Everything the dashboard shows, from rows only: it loads at once whatever the host is doing."""
    snapshot = snapshot_of(server)
    return ServerOverview(
        server=server,
        snapshot=snapshot,
        silence=agent_silence(server, snapshot, need_snapshot=True),
        status=daemon_status(server, snapshot),
        version=sendmail_version(server, snapshot),
        spool=spool_counts(server, snapshot),
        cf=installed_cf(server, snapshot),
        last_action=server.service_actions.order_by("-created", "-id").first(),
        audit_events=list(AuditEvent.objects.filter(server=server).select_related("user")[:10]),
        log=log_tail(server, LOG_TAIL_LINES, snapshot),
    )
