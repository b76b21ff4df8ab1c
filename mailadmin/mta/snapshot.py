"""The agent's snapshot of one instance: what the pages show about it, written as a HostSnapshot row.

Daemon status and greeting, sendmail's version and compile options, spool counts, the installed
cf (hash, DZ stamp, options, text) and .mc, the log tail, and the STARTTLS facts (certificate
directory, key file modes, the EHLO reply). The web tier reads the row (mailadmin.overview) and
never touches the MTA. `take` runs in the host's agent only: every N seconds (the beat task
poll_agents rings the agent's queue) and at the end of every daemon action and install.

Gathering never stops at the first problem: each fact that cannot be read is said in its own
`error`/`note`, and an unexpected failure of one part is recorded in the row's `error` while the
other parts are still written.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import asdict
from datetime import UTC, datetime

from django.db import transaction
from django.utils import timezone

from mailadmin.models import AgentHost, HostSnapshot, MailServer
from mailadmin.mta import agent, daemon, spool, tlsfacts
from mailadmin.mta.gateway import CommandFailed, Mta, MtaError
from mailadmin.overview import (
    InstalledCf,
    InstalledMc,
    LogTail,
    SendmailVersion,
    cf_stamp,
    parse_cf_options,
    parse_version_report,
)

log = logging.getLogger(__name__)

CF_TEXT_LIMIT = 2 * 1024 * 1024
MC_READ_LIMIT = 1024 * 1024
LOG_TAIL_BYTES = 256 * 1024
# The dashboard shows the last 30; tlsconfig looks for sendmail's STARTTLS complaints further back.
LOG_TAIL_LINES = 200

# Keyed by (binary path, mtime_ns): an upgraded binary gets a new mtime and is asked again.
_version_cache: dict[tuple[str, int], SendmailVersion] = {}


def sendmail_version(server: MailServer) -> SendmailVersion:
    """`sendmail -d0.1 -bt` of the agent's pinned binary, asked once per binary file."""
    mta = Mta(server)  # binds the server to the agent's configuration: the binary is the pinned one
    binary = server.sendmail_bin
    try:
        mtime = os.stat(binary).st_mtime_ns
    except OSError as exc:
        return SendmailVersion(error=f"{binary}: {exc.strerror or exc}")
    key = (binary, mtime)
    if key in _version_cache:
        return _version_cache[key]
    try:
        output = mta.version_report().stdout_text
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


def installed_cf(cf_path: str) -> tuple[InstalledCf, str, bool]:
    """The cf's facts, its text (at most CF_TEXT_LIMIT bytes) and whether that text was cut."""
    cf = InstalledCf(path=cf_path)
    try:
        with open(cf_path, "rb") as handle:
            stat = os.fstat(handle.fileno())
            raw = handle.read()
    except OSError as exc:
        cf.error = f"{cf_path}: {exc.strerror or exc}"
        return cf, "", False
    cf.exists = True
    cf.mtime = datetime.fromtimestamp(stat.st_mtime, tz=UTC)
    cf.size = len(raw)
    cf.sha256 = hashlib.sha256(raw).hexdigest()
    text = raw.decode("utf-8", "replace")
    cf.version = cf_stamp(text)
    cf.options = parse_cf_options(text)
    return cf, raw[:CF_TEXT_LIMIT].decode("utf-8", "replace"), len(raw) > CF_TEXT_LIMIT


def installed_mc(mc_path: str) -> InstalledMc:
    try:
        with open(mc_path, "rb") as handle:
            raw = handle.read(MC_READ_LIMIT + 1)
    except OSError as exc:
        return InstalledMc(path=mc_path, error=f"{mc_path}: {exc.strerror or exc}")
    return InstalledMc(
        path=mc_path, text=raw[:MC_READ_LIMIT].decode("utf-8", "replace"), truncated=len(raw) > MC_READ_LIMIT
    )


def log_tail(path: str, syslog_tag: str, lines: int = LOG_TAIL_LINES) -> LogTail:
    """The last `lines` lines of the log tagged `syslog_tag`, from its last LOG_TAIL_BYTES."""
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
    all_lines = raw.decode("utf-8", "replace").splitlines()
    if start > 0 and all_lines:
        all_lines = all_lines[1:]  # the read began mid-line
    # "tag[pid]:" or "tag:" — a bare substring test would also match the log of a server tagged "tag2".
    markers = (f"{syslog_tag}[", f"{syslog_tag}:")
    matching = [line for line in all_lines if any(marker in line for marker in markers)]
    note = "" if matching else f"No lines tagged {syslog_tag} in the last {LOG_TAIL_BYTES // 1024} KiB."
    return LogTail(path=path, lines=matching[-lines:], note=note)


def take(server: MailServer) -> HostSnapshot:
    """Gather everything about the instance and write it as its HostSnapshot row (agent only).

    Raises agent.NotServedHere in a process that is not the host's agent, before touching anything.
    """
    agent.bind(server)
    started = timezone.now()
    problems: list[str] = []

    def gather(label: str, read, fallback):
        try:
            return read()
        except Exception as exc:  # one unreadable part must not cost the others
            log.exception("snapshot of %s: %s failed", server.name, label)
            problems.append(f"{label}: {exc or type(exc).__name__}")
            return fallback

    version = gather("sendmail version", lambda: asdict(sendmail_version(server)), {})
    counts = gather("queue", lambda: asdict(spool.spool_counts(server.queue_dir)), {})
    cf, cf_text, cut = gather("sendmail.cf", lambda: installed_cf(server.cf_path), (InstalledCf(), "", False))
    mc = gather("sendmail.mc", lambda: asdict(installed_mc(server.mc_path)), {})
    tail = gather("log", lambda: asdict(log_tail(server.log_file, server.syslog_tag)), {})
    active = {option.name: option.value for option in cf.active_options}
    tls = gather(
        "STARTTLS facts",
        lambda: tlsfacts.gather(server.cert_dir, active, server.smtp_address, server.smtp_port),
        {},
    )
    # One SMTP session per snapshot (each one is a line in the mail log): the EHLO's greeting is
    # the daemon's greeting too.
    hello = tls.get("ehlo")
    greeting = (hello["greeting"], hello["error"]) if hello else None
    status = gather("daemon status", lambda: asdict(daemon.status(server, greeting=greeting)), {})
    values = {
        "taken_at": started,
        "daemon": status,
        "version": version,
        "spool": counts,
        "cf": {**cf.to_dict(), "text_truncated": cut},
        "cf_text": cf_text,
        "mc": mc,
        "log": tail,
        "tls": tls,
        "error": "; ".join(problems),
    }
    with transaction.atomic():
        row = HostSnapshot.objects.select_for_update().filter(server=server).first()
        # A snapshot begun later (after a daemon action, say) and written first is the truer one.
        if row is None or row.taken_at <= started:
            if row is not None and cf.sha256 and row.cf.get("sha256") == cf.sha256:
                values.pop("cf_text")  # the same cf as last time: not another copy of it into the database
            row, _ = HostSnapshot.objects.update_or_create(server=server, defaults=values)
        if server.host_id:
            AgentHost.objects.filter(pk=server.host_id).update(last_seen=timezone.now())
    return row
