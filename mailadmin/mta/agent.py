"""The agent's own configuration: which sendmail instances this MTA host serves, and where they are.

An MTA host decides what it is. Its agent (a root Celery worker consuming `mta.<host>`) reads a
TOML file on its own host (MAILADMIN_AGENT_CONFIG, e.g. /etc/mailadmin/agent.toml; `make run`
writes var/agent.toml for the embedded instance), validates every path in it here, and from
then on every path and binary it uses comes from this file, never from a database row:

- each instance declares its roots (conf, cert, queue, run and log directories); every path of
  the instance must resolve (realpath) under one of them, and none of the console's own secrets
  (SECRET_KEY file, Fernet keys, database, Redis password) may lie under any root;
- sendmail, m4 and makemap are pinned to the exact files named (root-owned, not writable by
  group or others); the gateway refuses to run anything else;
- `bind(server)` overwrites a MailServer row's path and binary attributes (in memory) with the
  configured ones before the agent acts on it, so a tampered row changes nothing.

The file format (one [instances.NAME] table per sendmail instance):

    host = "relay1"                  # the agent consumes Celery queue mta.relay1
    join_token = "…"                 # once, from `manage.py jointoken relay1`

    [instances.main]
    hostname = "relay1.example.org"
    roots = ["/etc/mail", "/var/spool/mqueue", "/run/sendmail", "/var/log"]
    conf_dir = "/etc/mail"
    mc = "/etc/mail/sendmail.mc"
    cf = "/etc/mail/sendmail.cf"
    access = "/etc/mail/access"
    cert_dir = "/etc/mail/tls"
    queue_dir = "/var/spool/mqueue"
    pid_file = "/run/sendmail/mta/sendmail.pid"
    log_file = "/var/log/mail.log"
    syslog_tag = "sm-mta"
    smtp_address = "127.0.0.1"
    smtp_port = 25
    # optional: sendmail, m4, makemap, cf_tree, queue_interval, embedded, description
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from django.core.exceptions import ValidationError

from mailadmin import validators
from mailadmin.cf.paths import under_any

ENVIRONMENT_VARIABLE = "MAILADMIN_AGENT_CONFIG"
DEFAULT_BINARIES = {"sendmail": "/usr/sbin/sendmail", "m4": "/usr/bin/m4", "makemap": "/usr/sbin/makemap"}
DEFAULT_CF_TREE = "/usr/share/sendmail/cf"
_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,38}")
PATH_FIELDS = ("conf_dir", "mc_path", "cf_path", "access_path", "cert_dir", "queue_dir", "pid_file", "log_file")
BINARY_FIELDS = ("sendmail_bin", "m4_bin", "makemap_bin")


class AgentConfigError(Exception):
    """The agent's configuration file is unusable; the message lists every problem found."""


class NotServedHere(Exception):
    """This process is not the agent of that instance (or of any): it must not touch it."""


@dataclass(frozen=True)
class Instance:
    """One sendmail instance exactly as the host's agent configuration declares it (validated)."""

    name: str
    hostname: str
    roots: tuple[str, ...]
    conf_dir: str
    mc_path: str
    cf_path: str
    access_path: str
    cert_dir: str
    queue_dir: str
    pid_file: str
    log_file: str
    syslog_tag: str
    sendmail_bin: str
    m4_bin: str
    makemap_bin: str
    cf_tree: str
    smtp_address: str
    smtp_port: int
    queue_interval: str = "30m"
    embedded: bool = False
    description: str = ""

    def server_fields(self) -> dict:
        """The MailServer column values this instance reports (the console shows them, never sets them)."""
        fields = asdict(self)
        fields.pop("name")
        fields["roots"] = list(self.roots)
        return fields

    def under_roots(self, path: str) -> bool:
        return under_any(path, self.roots)


@dataclass(frozen=True)
class AgentConfig:
    host: str
    path: str
    instances: dict[str, Instance] = field(default_factory=dict)
    join_token: str = ""

    @property
    def celery_queue(self) -> str:
        return f"mta.{self.host}"


def console_secret_paths() -> list[str]:
    """The console's own secrets: no root an agent serves may hold one, or lie inside their directory."""
    from django.conf import settings

    # The directory covers what lies in it; the keys file and the database may be moved elsewhere.
    paths = [Path(settings.CONSOLE_DIR), Path(os.environ.get("MAILADMIN_KEYS_FILE", str(settings.CONSOLE_DIR)))]
    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3"):
        paths.append(Path(str(database["NAME"])))
    return [os.path.realpath(p) for p in paths]


def _binary_problem(label: str, path: str) -> str | None:
    if not path.startswith("/"):
        return f"{label} = {path!r}: must be an absolute path"
    try:
        info = os.stat(path)
    except OSError as exc:
        return f"{label} = {path}: {exc.strerror or exc}"
    if not stat.S_ISREG(info.st_mode) or not info.st_mode & 0o111:
        return f"{label} = {path}: not an executable file"
    if info.st_uid != 0 or info.st_mode & 0o022:
        return f"{label} = {path}: must be owned by root and writable by nobody else"
    return None


def parse_instance(name: str, table: dict, problems: list[str]) -> Instance | None:
    where = f"[instances.{name}]"
    if not _NAME.fullmatch(name):
        problems.append(f"{where}: an instance name is 1-39 lower-case letters, digits and '-'")
        return None

    def text(key: str, default: str | None = None) -> str:
        value = table.get(key, default)
        if not isinstance(value, str) or not value:
            problems.append(f"{where} {key}: required text")
            return ""
        return value

    def check(label: str, validator, value) -> None:
        try:
            validator(value)
        except ValidationError as exc:
            problems.append(f"{where} {label}: {' '.join(exc.messages)}")

    raw_roots = table.get("roots")
    if not isinstance(raw_roots, list) or not raw_roots or not all(isinstance(r, str) for r in raw_roots):
        problems.append(f"{where} roots: a list of the instance's directories (conf, cert, queue, run, log)")
        raw_roots = []
    roots = []
    for root in raw_roots:
        real = os.path.realpath(root)
        if not root.startswith("/") or real == "/":
            problems.append(f"{where} roots: {root!r} must be an absolute directory other than /")
        elif not os.path.isdir(real):
            problems.append(f"{where} roots: {root} is not a directory")
        else:
            roots.append(real)
    paths = {
        "conf_dir": text("conf_dir"),
        "mc_path": text("mc"),
        "cf_path": text("cf"),
        "access_path": text("access"),
        "cert_dir": text("cert_dir"),
        "queue_dir": text("queue_dir"),
        "pid_file": text("pid_file"),
        "log_file": text("log_file"),
    }
    for key, value in paths.items():
        if value and roots:
            check(
                f"{key} = {value!r}", validators.ServerPathValidator(roots, allow_queue_glob=key == "queue_dir"), value
            )
    secrets = console_secret_paths()
    for root in roots:
        for secret in secrets:
            if os.path.commonpath([root, secret]) in (root, secret):
                problems.append(f"{where} roots: {root} overlaps the console's own secret {secret}")
    binaries = {
        "sendmail_bin": text("sendmail", DEFAULT_BINARIES["sendmail"]),
        "m4_bin": text("m4", DEFAULT_BINARIES["m4"]),
        "makemap_bin": text("makemap", DEFAULT_BINARIES["makemap"]),
    }
    for key, value in binaries.items():
        problem = value and _binary_problem(f"{where} {key.removesuffix('_bin')}", value)
        if problem:
            problems.append(problem)
    cf_tree = text("cf_tree", DEFAULT_CF_TREE)
    if cf_tree and not os.path.isfile(os.path.join(cf_tree, "m4", "cf.m4")):
        problems.append(f"{where} cf_tree = {cf_tree}: no m4/cf.m4 there")
    hostname = text("hostname")
    if hostname:
        check(f"hostname = {hostname!r}", validators.validate_hostname, hostname)
    syslog_tag = text("syslog_tag", "sendmail")
    if syslog_tag:
        check(f"syslog_tag = {syslog_tag!r}", validators.validate_syslog_tag, syslog_tag)
    address = text("smtp_address", "127.0.0.1")
    try:
        ipaddress.ip_address(address)
    except ValueError:
        problems.append(f"{where} smtp_address = {address!r}: an IP address")
    port = table.get("smtp_port", 25)
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        problems.append(f"{where} smtp_port: a port number")
        port = 0
    interval = text("queue_interval", "30m")
    if interval:
        check(f"queue_interval = {interval!r}", validators.validate_queue_interval, interval)
    embedded = table.get("embedded", False)
    description = table.get("description", "")
    if not isinstance(embedded, bool) or not isinstance(description, str):
        problems.append(f"{where}: embedded is true or false, description is text")
    known = {"hostname", "roots", "conf_dir", "mc", "cf", "access", "cert_dir", "queue_dir", "pid_file", "log_file"}
    known |= {"syslog_tag", "sendmail", "m4", "makemap", "cf_tree", "smtp_address", "smtp_port", "queue_interval"}
    known |= {"embedded", "description"}
    for key in sorted(set(table) - known):
        problems.append(f"{where} {key}: unknown setting")
    return Instance(
        name=name,
        hostname=hostname,
        roots=tuple(roots),
        **paths,
        syslog_tag=syslog_tag,
        **binaries,
        cf_tree=cf_tree,
        smtp_address=address,
        smtp_port=port,
        queue_interval=interval,
        embedded=bool(embedded),
        description=str(description)[:200],
    )


def parse(text: str, path: str = "<agent config>") -> AgentConfig:
    """Parse and validate an agent configuration; every problem found is in the one error."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AgentConfigError(f"{path}: {exc}") from None
    problems: list[str] = []
    host = data.get("host")
    if not isinstance(host, str) or not _NAME.fullmatch(host):
        problems.append("host: 1-39 lower-case letters, digits and '-' (the agent's queue is mta.<host>)")
        host = ""
    token = data.get("join_token", "")
    if not isinstance(token, str):
        problems.append("join_token: text")
        token = ""
    tables = data.get("instances")
    if not isinstance(tables, dict) or not tables:
        problems.append("[instances.NAME]: at least one instance")
        tables = {}
    for key in sorted(set(data) - {"host", "join_token", "instances"}):
        problems.append(f"{key}: unknown setting")
    instances = {}
    for name, table in tables.items():
        if not isinstance(table, dict):
            problems.append(f"instances.{name}: a table")
            continue
        found = parse_instance(name, table, problems)
        if found is not None:
            instances[name] = found
    if problems:
        raise AgentConfigError(f"{path}:\n  " + "\n  ".join(problems))
    return AgentConfig(host=host, path=path, instances=instances, join_token=token)


def load_file(path: str | Path) -> AgentConfig:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise AgentConfigError(f"{path}: {exc.strerror or exc}") from None
    return parse(text, str(path))


def render(host: str, instances: list[Instance], join_token: str = "") -> str:
    """The TOML text of a configuration (setuplocal and the tests write theirs with this)."""
    lines = [f'host = "{host}"']
    if join_token:
        lines.append(f'join_token = "{join_token}"')
    keys = {"mc_path": "mc", "cf_path": "cf", "access_path": "access"}
    keys |= {"sendmail_bin": "sendmail", "m4_bin": "m4", "makemap_bin": "makemap"}
    for inst in instances:
        lines += ["", f"[instances.{inst.name}]"]
        for name, value in asdict(inst).items():
            if name == "name":
                continue
            key = keys.get(name, name)
            if isinstance(value, bool):
                lines.append(f"{key} = {'true' if value else 'false'}")
            elif isinstance(value, int):
                lines.append(f"{key} = {value}")
            elif isinstance(value, tuple | list):
                lines.append(f"{key} = [{', '.join(_toml_string(v) for v in value)}]")
            else:
                lines.append(f"{key} = {_toml_string(value)}")
    return "\n".join(lines) + "\n"


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- The instances this process serves -------------------------------------------------------

_served: dict[str, Instance] = {}
_configs: list[AgentConfig] = []


def serve(config: AgentConfig) -> None:
    """This process acts as the agent of these instances from now on."""
    _configs.append(config)
    _served.update(config.instances)


def serve_from_environment() -> AgentConfig | None:
    """Load MAILADMIN_AGENT_CONFIG, if set (the agent worker and the host's management commands)."""
    path = os.environ.get(ENVIRONMENT_VARIABLE)
    if not path:
        return None
    config = load_file(path)
    serve(config)
    return config


def serve_host_commands(instance_name: str = "") -> None:
    """For management commands run as root on an MTA host: serve its agent configuration
    (MAILADMIN_AGENT_CONFIG, or the embedded one under var/), unless this process already serves
    the instance the command is about."""
    from django.conf import settings

    if instance_name in _served or any(c.path == str(settings.MAILADMIN_AGENT_CONFIG) for c in _configs):
        return
    serve(load_file(settings.MAILADMIN_AGENT_CONFIG))


def configs() -> list[AgentConfig]:
    return list(_configs)


def served() -> dict[str, Instance]:
    return dict(_served)


def instance(name: str) -> Instance:
    try:
        return _served[name]
    except KeyError:
        raise NotServedHere(
            f"this process is not the agent of {name!r}; only that host's agent touches its files and binaries"
        ) from None


def pinned_binaries() -> frozenset[str]:
    return frozenset(getattr(inst, b) for inst in _served.values() for b in BINARY_FIELDS)


def bind(server):
    """Put the configured paths and binaries of `server`'s instance on the row (in memory) and return it.

    Everything the agent does to an instance reads these attributes, so whatever the database
    says, only the host's own configuration decides what is run and touched.
    """
    found = instance(server.name)
    for name, value in found.server_fields().items():
        setattr(server, name, value)
    server.agent_bound = True
    return server


def forget_all() -> None:
    """For tests: serve nothing again."""
    _served.clear()
    _configs.clear()
