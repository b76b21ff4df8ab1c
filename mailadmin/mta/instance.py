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

from mailadmin.mta import agent
from mailadmin.mta.files import create_new, replace_with, write_atomically
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
    defer_relay: str = DEFER_RELAY,
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
        f"define(`SMART_HOST', `{defer_relay}')dnl",
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


def embedded_instance(
    name: str,
    root: Path,
    port: int,
    address: str = "127.0.0.1",
    log_file: str | None = None,
    hostname: str | None = None,
) -> agent.Instance:
    """The agent's description of an embedded instance under `root` (its roots: the instance
    directory and the log's directory)."""
    layout = Layout(root)
    if log_file is None:
        log_file = SYSTEM_MAIL_LOG if Path(SYSTEM_MAIL_LOG).exists() else str(settings.MAILADMIN_LOG_SINK)
    roots = [os.path.realpath(root)]
    log_dir = os.path.realpath(os.path.dirname(log_file))
    if not any(os.path.commonpath([r, log_dir]) == r for r in roots):
        roots.append(log_dir)
    return agent.Instance(
        name=name,
        hostname=hostname or qualified_hostname(),
        roots=tuple(roots),
        conf_dir=str(layout.conf_dir),
        mc_path=str(layout.conf("sendmail.mc")),
        cf_path=str(layout.conf("sendmail.cf")),
        access_path=str(layout.conf("access")),
        cert_dir=str(layout.conf("certs")),
        queue_dir=str(layout.spool / "mqueue"),
        pid_file=str(layout.run_dir / "sendmail.pid"),
        log_file=log_file,
        syslog_tag=f"sm-{name}"[:40],
        sendmail_bin=agent.DEFAULT_BINARIES["sendmail"],
        m4_bin=agent.DEFAULT_BINARIES["m4"],
        makemap_bin=agent.DEFAULT_BINARIES["makemap"],
        cf_tree=agent.DEFAULT_CF_TREE,
        smtp_address=address,
        smtp_port=port,
        queue_interval="30m",
        embedded=True,
        description=f"Embedded instance under {root}",
    )


def write_agent_config(
    path: Path, host: str, instances: list[agent.Instance], join_token: str = ""
) -> agent.AgentConfig:
    """Write (0600) and validate an agent configuration for embedded instances; returns it parsed.

    The instance directories are created first (root-only), since the agent refuses roots that
    do not exist.
    """
    for inst in instances:
        for root in inst.roots:
            Path(root).mkdir(parents=True, exist_ok=True)
        os.chmod(inst.roots[0], 0o700)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, agent.render(host, instances, join_token).encode(), mode=0o600)
    return agent.load_file(path)


def write_support_files(server) -> None:
    """Directories and the small files sendmail expects; existing files are kept as they are."""
    layout = Layout(Path(server.conf_dir).parent.parent)
    for directory, mode in [
        (layout.root, 0o700),
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


def build_base_cf(server, mta: Mta, defer_relay: str = DEFER_RELAY) -> str:
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
        defer_relay=defer_relay,
    )
    mc_path, cf_path = Path(server.mc_path), Path(server.cf_path)
    staged_mc = mc_path.with_name(mc_path.name + ".new")
    create_new(staged_mc, mc.encode(), 0o644)
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
        replace_with(staged_mc, mc_path)
        replace_with(staged_cf, cf_path)
    finally:
        for leftover in (staged_mc, staged_cf):
            leftover.unlink(missing_ok=True)
    return cf_text


def prepare(server, mta: Mta, defer_relay: str = DEFER_RELAY) -> None:
    """Everything an embedded instance needs before its daemon can start; safe to repeat.

    Only what is missing is made: once the console has installed builds of its own, running
    this again (every `make run`) must not put the base cf back.
    """
    write_support_files(server)
    if not Path(server.cf_path).exists():
        build_base_cf(server, mta, defer_relay)
    if not Path(server.access_path + ".db").exists():
        mta.makemap("hash", Path(server.access_path))
    if not (Path(server.conf_dir) / "aliases.db").exists():
        mta.newaliases()
