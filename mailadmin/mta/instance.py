"""The embedded sendmail instance: its own etc/mail, spool and daemon under var/.

It never touches /etc/mail. Nothing it does leaves the machine: deliveries stay queued
(DeliveryMode queueonly, and queue runs relay to [127.0.0.2] port 2, where nothing listens,
so every attempt ends "Deferred: Connection refused"); host lookups use files only; no MSA
listens on 587. [127.0.0.1] cannot be the relay: it is one of sendmail's own names, so the
smart host would be dropped and the queue run would bounce mail off a failed MX lookup.
"""

from __future__ import annotations

import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from mailadmin.mta.gateway import Mta

# Relay target for queue runs: a loopback address that is not one of sendmail's own names,
# on a port nothing listens on.
DEFER_RELAY = "[127.0.0.2]"
DEFER_PORT = 2
# Where a running syslog daemon (rsyslog on Debian) puts sendmail's lines; without one,
# `make run` starts mailadmin's own sink and the instance reads that file instead.
SYSTEM_MAIL_LOG = "/var/log/mail.log"


class InstanceError(Exception):
    pass


def qualified_hostname(hosts_file: str = "/etc/hosts") -> str:
    """This host's FQDN as /etc/hosts gives it, without asking DNS.

    sendmail resolves its own name at every start; an unqualified answer costs 60 s per call
    and a name missing from /etc/hosts sends DNS queries off the machine.
    """
    short = socket.gethostname()
    try:
        lines = Path(hosts_file).read_text().splitlines()
    except OSError as exc:
        raise InstanceError(f"cannot read {hosts_file}: {exc}") from exc
    for line in lines:
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2 and short in fields[1:]:
            if "." in fields[1]:
                return fields[1]
            break
    raise InstanceError(
        f"the host name {short!r} has no qualified name in {hosts_file}; run scripts/bootstrap "
        f"(it adds '127.0.1.1 {short}.localdomain {short}') or add one yourself"
    )


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def conf_dir(self) -> Path:
        return self.root / "etc" / "mail"

    @property
    def spool(self) -> Path:
        return self.root / "spool"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    def conf(self, name: str) -> Path:
        return self.conf_dir / name


def render_embedded_mc(
    layout: Layout,
    *,
    name: str,
    hostname: str,
    address: str,
    port: int,
    cf_tree: str,
    queue_dir: str,
    pid_file: str,
    access_path: str,
) -> str:
    """The base .mc of an embedded instance (a pure function of its parameters)."""
    conf = layout.conf_dir
    lines = [
        "divert(-1)dnl",
        f"include(`{cf_tree}/m4/cf.m4')dnl",
        # debian.m4 derives confCW_FILE and friends from MAIL_SETTINGS_DIR, so it comes first.
        f"define(`MAIL_SETTINGS_DIR', `{conf}/')dnl",
        "divert(0)dnl",
        f"VERSIONID(`mailadmin embedded instance {name}')dnl",
        "OSTYPE(`debian')dnl",
        # After OSTYPE: debian.m4 sets confCF_VERSION itself and would override ours.
        f"define(`confCF_VERSION', `mailadmin-{name}')dnl",
        f"define(`confDOMAIN_NAME', `{hostname}')dnl",
        f"define(`confSERVICE_SWITCH_FILE', `{conf}/service.switch')dnl",
        f"define(`ALIAS_FILE', `{conf}/aliases')dnl",
        f"define(`HELP_FILE', `{conf}/helpfile')dnl",
        f"define(`QUEUE_DIR', `{queue_dir}')dnl",
        f"define(`confPID_FILE', `{pid_file}')dnl",
        f"define(`STATUS_FILE', `{layout.spool}/sendmail.st')dnl",
        f"define(`confHOST_STATUS_DIRECTORY', `{layout.spool}/host_status')dnl",
        f"define(`confDEAD_LETTER_DROP', `{layout.spool}/dead.letter')dnl",
        f"define(`confCONTROL_SOCKET_NAME', `{layout.run_dir}/smcontrol')dnl",
        f"define(`confPROCESS_TITLE_PREFIX', `{name}')dnl",
        "define(`confDONT_BLAME_SENDMAIL', `safe,TrustStickyBit')dnl",
        "define(`confLOG_LEVEL', `9')dnl",
        "define(`confDELIVERY_MODE', `queueonly')dnl",
        f"define(`SMART_HOST', `{DEFER_RELAY}')dnl",
        f"define(`RELAY_MAILER_ARGS', `TCP $h {DEFER_PORT}')dnl",
        f"define(`ESMTP_MAILER_ARGS', `TCP $h {DEFER_PORT}')dnl",
        f"define(`SMTP_MAILER_ARGS', `TCP $h {DEFER_PORT}')dnl",
        "define(`confTO_CONNECT', `5s')dnl",
        "define(`confDONT_PROBE_INTERFACES', `True')dnl",
        "define(`confPRIVACY_FLAGS', `authwarnings,noexpn,novrfy')dnl",
        "define(`confTO_IDENT', `0s')dnl",
        f"DAEMON_OPTIONS(`Port={port},Addr={address},Name=MTA-{name}')dnl",
        "FEATURE(`no_default_msa')dnl",
        "FEATURE(`nocanonify')dnl",
        "FEATURE(`accept_unresolvable_domains')dnl",
        f"FEATURE(`access_db', `hash -T<TMPF> {access_path}')dnl",
        "MAILER(`local')dnl",
        "MAILER(`smtp')dnl",
    ]
    return "\n".join(lines) + "\n"


def expected_cf_values(server) -> dict[str, str]:
    """cf option lines the base build must contain verbatim (m4 rewrites words that are macro names)."""
    return {
        "QueueDirectory": server.queue_dir,
        "PidFile": server.pid_file,
        "AliasFile": str(Path(server.conf_dir) / "aliases"),
        "ServiceSwitchFile": str(Path(server.conf_dir) / "service.switch"),
    }


def check_cf_values(cf_text: str, expected: dict[str, str]) -> list[str]:
    present = set(cf_text.splitlines())
    return [f"O {name}={value}" for name, value in expected.items() if f"O {name}={value}" not in present]


def embedded_defaults(name: str, root: Path, port: int, address: str = "127.0.0.1") -> dict:
    layout = Layout(root)
    return {
        "embedded": True,
        "description": f"Embedded instance under {root}",
        "hostname": qualified_hostname(),
        "conf_dir": str(layout.conf_dir),
        "mc_path": str(layout.conf("sendmail.mc")),
        "cf_path": str(layout.conf("sendmail.cf")),
        "access_path": str(layout.conf("access")),
        "cert_dir": str(layout.conf("certs")),
        "queue_dir": str(layout.spool / "mqueue"),
        "pid_file": str(layout.run_dir / "sendmail.pid"),
        "log_file": SYSTEM_MAIL_LOG if Path(SYSTEM_MAIL_LOG).exists() else str(settings.MAILADMIN_LOG_SINK),
        "syslog_tag": f"sm-{name}"[:40],
        "smtp_address": address,
        "smtp_port": port,
        "celery_queue": f"mta.{name}",
    }


def write_support_files(server) -> None:
    """Directories and the small files sendmail expects; existing files are kept as they are."""
    layout = Layout(Path(server.conf_dir).parent.parent)
    for directory, mode in [
        (layout.root, 0o755),
        (layout.root / "etc", 0o755),
        (layout.conf_dir, 0o755),
        (Path(server.cert_dir), 0o700),
        (layout.spool, 0o755),
        (Path(server.queue_dir), 0o700),
        (layout.spool / "host_status", 0o755),
        (layout.run_dir, 0o755),
    ]:
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, mode)
    Path(server.log_file).parent.mkdir(parents=True, exist_ok=True)
    defaults = {
        "service.switch": "passwd\tfiles\nhosts\tfiles\naliases\tfiles\n",
        "local-host-names": f"{server.hostname}\nlocalhost\n",
        "trusted-users": "",
        "relay-domains": "",
        "aliases": "postmaster: root\nMAILER-DAEMON: postmaster\nabuse: postmaster\nroot: postmaster@remote.example\n",
        "access": "Connect:127.0.0.1\tRELAY\nConnect:localhost\tRELAY\n",
    }
    for name, content in defaults.items():
        path = layout.conf(name)
        if not path.exists():
            path.write_text(content)
            os.chmod(path, 0o644)
    helpfile = layout.conf("helpfile")
    if not helpfile.exists():
        if Path("/etc/mail/helpfile").exists():
            shutil.copyfile("/etc/mail/helpfile", helpfile)
        else:
            helpfile.write_text("")
    status_file = layout.spool / "sendmail.st"
    if not status_file.exists():
        status_file.write_text("")


def install_file(staged: Path, target: Path) -> None:
    """rename() a fully written, fsynced file over the target and make the rename durable."""
    with open(staged, "rb") as handle:
        os.fsync(handle.fileno())
    os.chmod(staged, 0o644)
    os.replace(staged, target)
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def build_base_cf(server, mta: Mta) -> str:
    """Write the base .mc, build it with m4, let sendmail check it, install it atomically.

    Returns the cf text. A failed build leaves the live cf untouched.
    """
    layout = Layout(Path(server.conf_dir).parent.parent)
    mc = render_embedded_mc(
        layout,
        name=server.name,
        hostname=server.hostname,
        address=server.smtp_address,
        port=server.smtp_port,
        cf_tree=server.cf_tree,
        queue_dir=server.queue_dir,
        pid_file=server.pid_file,
        access_path=server.access_path,
    )
    mc_path, cf_path = Path(server.mc_path), Path(server.cf_path)
    staged_mc = mc_path.with_name(mc_path.name + ".new")
    staged_mc.write_text(mc)
    staged_cf = cf_path.with_name(cf_path.name + ".new")
    try:
        mta.m4(staged_mc, staged_cf)
        mta.check_cf(staged_cf)
        cf_text = staged_cf.read_text(errors="replace")
        missing = check_cf_values(cf_text, expected_cf_values(server))
        if missing:
            raise InstanceError(
                "m4 changed these values (a word in the path is an m4 macro name; move the instance): "
                + ", ".join(missing)
            )
        install_file(staged_mc, mc_path)
        install_file(staged_cf, cf_path)
    finally:
        for leftover in (staged_mc, staged_cf):
            leftover.unlink(missing_ok=True)
    return cf_text


def prepare(server, mta: Mta) -> None:
    """Everything an embedded instance needs before its daemon can start; safe to repeat.

    Only what is missing is made: once the console has installed builds of its own, running
    this again (every `make run`) must not put the base cf back.
    """
    write_support_files(server)
    if not Path(server.cf_path).exists():
        build_base_cf(server, mta)
    if not Path(server.access_path + ".db").exists():
        mta.makemap("hash", Path(server.access_path))
    if not (Path(server.conf_dir) / "aliases.db").exists():
        mta.newaliases()
