"""What `make install` writes, as pure functions: systemd units, the environment file, Redis's
configuration, the nginx site, the relay's agent configuration and the self-signed certificate.

The templates live in deploy/ with {{name}} placeholders (neither systemd's %-specifiers nor
nginx's $variables collide with them). Nothing here runs a program or touches the file system
beyond reading those templates: installer/steps.py writes the files, the tests render them
against their own paths.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from tlsconfig.generate import CLOCK_SKEW, general_names, key_usage, name, new_private_key

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "deploy"
UNITS = (
    "mailadmin-redis.service",
    "mailadmin-web.service",
    "mailadmin-worker.service",
    "mailadmin-beat.service",
    "mailadmin-agent@.service",
)
# What runs for the console itself; the agent is enabled per MTA host (mailadmin-agent@<host>).
CONSOLE_UNITS = UNITS[:4]
DATABASES = ("sqlite", "postgres")
_PLACEHOLDER = re.compile(r"\{\{([a-z_]+)\}\}")
# An agent's host name, as mailadmin.mta.agent demands it (the Celery queue is mta.<host>).
_AGENT_HOST = re.compile(r"[a-z0-9][a-z0-9-]{0,38}")


@dataclass(frozen=True)
class Layout:
    """Where an installed console lives. The defaults are the documented ones; tests move them."""

    hostname: str
    database: str = "sqlite"
    prefix: str = "/opt/mailadmin"
    venv: str = "/opt/mailadmin/.venv"
    conf_dir: str = "/etc/mailadmin"
    var_dir: str = "/var/lib/mailadmin"
    run_dir: str = "/run/mailadmin"
    systemd_dir: str = "/etc/systemd/system"
    nginx_dir: str = "/etc/nginx"
    user: str = "mailadmin"
    nginx_group: str = "www-data"
    https_port: int = 443
    http_port: int = 80
    # None: every IPv4 and IPv6 address; the tests give 127.0.0.1.
    listen_address: str | None = None
    redis_address: str = "127.0.0.1"
    redis_port: int = 6390
    redis_state_name: str = "mailadmin-redis"
    web_workers: int = 2

    @property
    def console_dir(self) -> str:
        return f"{self.var_dir}/console"

    @property
    def static_dir(self) -> str:
        return f"{self.var_dir}/staticfiles"

    @property
    def env_file(self) -> str:
        return f"{self.conf_dir}/mailadmin.env"

    @property
    def local_env_file(self) -> str:
        return f"{self.conf_dir}/local.env"

    @property
    def agent_config(self) -> str:
        return f"{self.conf_dir}/agent.toml"

    @property
    def redis_conf(self) -> str:
        return f"{self.conf_dir}/redis.conf"

    @property
    def tls_dir(self) -> str:
        return f"{self.conf_dir}/tls"

    @property
    def cert_file(self) -> str:
        return f"{self.tls_dir}/console.crt"

    @property
    def key_file(self) -> str:
        return f"{self.tls_dir}/console.key"

    @property
    def manage_command(self) -> str:
        return "/usr/local/sbin/mailadmin-manage"

    @property
    def socket(self) -> str:
        return f"{self.run_dir}/web.sock"

    @property
    def nginx_site(self) -> str:
        return f"{self.nginx_dir}/sites-available/mailadmin"

    @property
    def nginx_site_link(self) -> str:
        return f"{self.nginx_dir}/sites-enabled/mailadmin"

    def moved(self, **changes) -> Layout:
        return replace(self, **changes)


def fill(template: str, values: dict[str, object]) -> str:
    """The template with every {{name}} replaced; a placeholder without a value is an error."""
    missing = sorted({m for m in _PLACEHOLDER.findall(template) if m not in values})
    if missing:
        raise KeyError(f"no value for {', '.join(missing)}")
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), template)


def _template(name: str) -> str:
    return (TEMPLATE_DIR / name).read_text()


def _common(layout: Layout) -> dict[str, object]:
    return {
        "prefix": layout.prefix,
        "venv": layout.venv,
        "user": layout.user,
        "env_file": layout.env_file,
        "local_env_file": layout.local_env_file,
        "console_dir": layout.console_dir,
        "var_dir": layout.var_dir,
        "redis_address": layout.redis_address,
        "redis_port": layout.redis_port,
    }


def render_unit(unit: str, layout: Layout) -> str:
    values = _common(layout) | {
        "socket": layout.socket,
        "run_dir": layout.run_dir,
        "run_dir_name": layout.run_dir.removeprefix("/run/"),
        "nginx_group": layout.nginx_group,
        "web_workers": layout.web_workers,
        "agent_config": layout.agent_config,
        "redis_conf": layout.redis_conf,
        "redis_state_name": layout.redis_state_name,
        # The console's processes wait for a local PostgreSQL; nothing to wait for with SQLite.
        "database_unit": "postgresql.service" if layout.database == "postgres" else "",
    }
    return fill(_template(unit), values)


def render_manage_command(layout: Layout) -> str:
    return fill(_template("mailadmin-manage"), _common(layout))


def render_units(layout: Layout) -> dict[str, str]:
    return {unit: render_unit(unit, layout) for unit in UNITS}


def render_env(layout: Layout, *, redis_password: str, database_url: str = "") -> str:
    if layout.database == "postgres" and not database_url:
        raise ValueError("--database=postgres needs the database's URL")
    database_line = (
        f"MAILADMIN_DATABASE_URL={database_url}"
        if database_url
        else f"# SQLite: {layout.console_dir}/db.sqlite3 (make install --database=postgres for PostgreSQL)"
    )
    values = _common(layout) | {
        "allowed_hosts": allowed_hosts(layout.hostname),
        "redis_password": redis_password,
        "database_line": database_line,
    }
    return fill(_template("mailadmin.env"), values)


def render_agent_host_env(layout: Layout) -> str:
    """The environment file of a host that runs only an agent (the console's secrets go in local.env)."""
    return fill(_template("agent-host.env"), _common(layout))


def postgres_setup_script(password: str) -> str:
    """psql input (as the postgres superuser) that makes the role and database `mailadmin` if missing and
    sets the role's password; run again, it changes nothing but the password. The password arrives as
    a psql variable on stdin (:'password' quotes it), never on a command line."""
    if not re.fullmatch(r"[0-9a-f]{16,}", password):
        raise ValueError("the generated database password is hex")
    return (
        f"\\set password '{password}'\n"
        "SELECT 'CREATE ROLE mailadmin LOGIN' WHERE NOT EXISTS "
        "(SELECT FROM pg_roles WHERE rolname = 'mailadmin') \\gexec\n"
        "ALTER ROLE mailadmin LOGIN PASSWORD :'password';\n"
        "SELECT 'CREATE DATABASE mailadmin OWNER mailadmin' WHERE NOT EXISTS "
        "(SELECT FROM pg_database WHERE datname = 'mailadmin') \\gexec\n"
    )


def parse_env(text: str) -> dict[str, str]:
    """KEY=VALUE lines of an environment file (comments and blank lines skipped, no quoting used)."""
    found = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            found[key.strip()] = value.strip()
    return found


def allowed_hosts(hostname: str) -> str:
    """The console's name, and localhost for a check from the host itself."""
    return ",".join(dict.fromkeys([hostname, "localhost"]))


def render_redis_conf(layout: Layout, *, redis_password: str, redis_dir: str | None = None) -> str:
    values = _common(layout) | {
        "redis_password": redis_password,
        "redis_dir": redis_dir or f"/var/lib/{layout.redis_state_name}",
        # The console's own processes always connect over loopback; other hosts' agents to the address given.
        "redis_bind": " ".join(dict.fromkeys(["127.0.0.1", layout.redis_address])),
    }
    return fill(_template("redis.conf"), values)


def _listen_lines(layout: Layout, port: int, extra: str) -> str:
    addresses = [f"{layout.listen_address}:"] if layout.listen_address else ["", "[::]:"]
    return "\n".join(f"    listen {address}{port}{extra};" for address in addresses)


def render_nginx_site(layout: Layout) -> str:
    https_base = "https://$host" if layout.https_port == 443 else f"https://$host:{layout.https_port}"
    values = {
        "socket": layout.socket,
        "hostname": layout.hostname,
        "http_listen": _listen_lines(layout, layout.http_port, " default_server"),
        "https_listen": _listen_lines(layout, layout.https_port, " ssl http2 default_server"),
        "https_base": https_base,
        "cert_file": layout.cert_file,
        "key_file": layout.key_file,
        "static_dir": layout.static_dir,
    }
    return fill(_template("nginx-site.conf"), values)


def agent_host_name(hostname: str) -> str:
    """The agent's host name for this machine: the first label, as the agent allows it."""
    label = re.sub(r"[^a-z0-9-]", "-", hostname.split(".")[0].lower()).strip("-")[:39]
    if not _AGENT_HOST.fullmatch(label):
        raise ValueError(f"cannot make an agent host name of {hostname!r}; give --agent-host")
    return label


def render_agent_config(host: str, hostname: str, join_token: str = "") -> str:
    """The agent configuration of a Debian relay: /etc/mail, /var/spool/mqueue, Debian's binaries."""
    if not _AGENT_HOST.fullmatch(host):
        raise ValueError("an agent's host name is 1-39 lower-case letters, digits and '-'")
    token_line = (
        f'join_token = "{join_token}"'
        if join_token
        else f'# join_token = "…"              # from `manage.py jointoken {host}` on the console'
    )
    return fill(_template("agent.toml"), {"host": host, "hostname": hostname, "join_token_line": token_line})


def default_hostname() -> str:
    return socket.getfqdn()


def self_signed_certificate(hostname: str, *, days: int = 825) -> tuple[bytes, bytes]:
    """(certificate PEM, private key PEM) for the console's HTTPS until an administrator installs
    a real certificate: an ECDSA P-256 key, the host name as subject and SAN, serverAuth."""
    key = new_private_key("ec256")
    now = datetime.now(UTC)
    subject = name(hostname, "mailadmin (self-signed)")
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage(signs_certificates=False, rsa_key=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(general_names([hostname])), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem
