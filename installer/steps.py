"""The steps of `make install` after scripts/install has copied the code and built the venv:
directories and their owners, the configuration under /etc/mailadmin (secrets kept across runs),
PostgreSQL if asked for, the units and the nginx site, then migrate, collectstatic and the first
administrator as the web tier's user, and the services enabled and started.

With --root DIR everything is written under DIR instead of /, and nothing is run that would
change the machine (no apt-get, no users, no database, no systemctl): that is how the tests
install into a staging tree.
"""

from __future__ import annotations

import argparse
import os
import pwd
import secrets
import subprocess
import sys
from pathlib import Path

from installer import render
from mailadmin.mta.files import write_atomically


def say(text: str) -> None:
    print(f"\033[1m==> {text}\033[0m", flush=True)


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make install ARGS=", description="Install mailadmin as systemd services.")
    parser.add_argument("--database", choices=render.DATABASES, default="sqlite")
    parser.add_argument("--hostname", help="the console's HTTPS name (default: this host's FQDN)")
    parser.add_argument("--root", default="/", help="install under this staging directory instead of /")
    parser.add_argument("--venv", help="(scripts/install) use this existing venv instead of building one")
    parser.add_argument("--agent-host", help="this MTA host's name for its agent (default: the first label)")
    parser.add_argument("--no-agent", action="store_true", help="this machine is not an MTA host: no agent")
    parser.add_argument(
        "--agent-only", action="store_true", help="a further MTA host: only its agent, the console runs elsewhere"
    )
    parser.add_argument(
        "--redis-address", default="127.0.0.1", help="where the console's Redis listens (other hosts' agents)"
    )
    args = parser.parse_args(argv)
    if args.agent_only and args.no_agent:
        parser.error("--agent-only and --no-agent exclude each other")
    return args


class Target:
    """The tree being installed into (/ or a staging root) and the owners of what goes in it."""

    def __init__(self, root: str, user: str):
        self.root = Path(root).resolve()
        self.staging = self.root != Path("/")
        try:
            entry = pwd.getpwnam(user)
            self.user_ids = (entry.pw_uid, entry.pw_gid)
        except KeyError:
            if not self.staging:
                raise SystemExit(f"the user {user} does not exist (scripts/install creates it)") from None
            print(f"  (no user {user} on this machine: the staged files stay root's)")
            self.user_ids = (0, 0)
        self.group_id = self.user_ids[1]

    def path(self, installed: str) -> Path:
        return self.root / installed.lstrip("/")

    def directory(self, installed: str, mode: int, uid: int = 0, gid: int = 0) -> None:
        path = self.path(installed)
        path.mkdir(parents=True, exist_ok=True)
        self.chown(path, uid, gid)
        os.chmod(path, mode)

    def write(self, installed: str, content: str | bytes, mode: int, uid: int = 0, gid: int = 0) -> None:
        """Created with its final mode (write_atomically), then given to its owner."""
        path = self.path(installed)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, content.encode() if isinstance(content, str) else content, mode)
        self.chown(path, uid, gid)

    def chown(self, path: Path, uid: int, gid: int) -> None:
        # Staging as another user (no root): the files stay that user's.
        if os.geteuid() == 0:
            os.chown(path, uid, gid)

    def read(self, installed: str) -> str:
        path = self.path(installed)
        return path.read_text() if path.exists() else ""


def systemd_is_running() -> bool:
    """systemd is PID 1 and up (a container usually has no systemd: then nothing is started)."""
    if not Path("/run/systemd/system").is_dir():
        return False
    state = subprocess.run(["systemctl", "is-system-running"], capture_output=True, text=True)
    return state.stdout.strip() in {"running", "degraded", "starting"}


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    print("  $ " + " ".join(argv), flush=True)
    return subprocess.run(argv, check=True, **kwargs)


def as_user(user: str, argv: list[str]) -> list[str]:
    return ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--", *argv]


# --- Steps ---------------------------------------------------------------------------------------


def make_directories(target: Target, layout: render.Layout) -> None:
    uid, gid = target.user_ids
    # /etc/mailadmin: the web tier's user may read the environment file, nothing else there is its.
    target.directory(layout.conf_dir, 0o750, 0, target.group_id)
    target.directory(layout.tls_dir, 0o700)
    target.directory(layout.var_dir, 0o755)
    # The console's own state (database, secret key, Fernet keys, beat schedule): its user's alone.
    target.directory(layout.console_dir, 0o700, uid, gid)
    # collectstatic writes it as the web tier's user; nginx's user reads it.
    target.directory(layout.static_dir, 0o755, uid, gid)
    # The system's own directories: made if missing (a staging root), never re-owned.
    for system_dir in (layout.systemd_dir, f"{layout.nginx_dir}/sites-available", f"{layout.nginx_dir}/sites-enabled"):
        target.path(system_dir).mkdir(parents=True, exist_ok=True)


def kept_secrets(target: Target, layout: render.Layout) -> dict[str, str]:
    """The secrets of an earlier install, so that running `make install` again changes none."""
    earlier = render.parse_env(target.read(layout.env_file))
    return {
        "redis_password": earlier.get("MAILADMIN_REDIS_PASSWORD") or secrets.token_hex(32),
        "database_url": earlier.get("MAILADMIN_DATABASE_URL", ""),
    }


def ensure_postgres(database_url: str) -> str:
    """Debian's PostgreSQL with a role and database `mailadmin` (password generated once); the URL."""
    password = ""
    if database_url.startswith("postgres://mailadmin:"):
        password = database_url.removeprefix("postgres://mailadmin:").partition("@")[0]
    password = password or secrets.token_hex(24)
    if not list(Path("/usr/lib/postgresql").glob("*/bin/postgres")):
        run(["apt-get", "install", "-y", "--no-install-recommends", "postgresql"], env=_apt_env())
    if subprocess.run(["runuser", "-u", "postgres", "--", "psql", "-Atc", "select 1"], capture_output=True).returncode:
        # No systemd (a container): start Debian's cluster(s) by hand.
        run(["pg_ctlcluster", _postgres_version(), "main", "start"])
    psql = ["runuser", "-u", "postgres", "--", "psql", "-v", "ON_ERROR_STOP=1", "-Atq"]
    print("  $ psql (create role and database mailadmin)", flush=True)
    subprocess.run(psql, input=render.postgres_setup_script(password), text=True, check=True)
    return f"postgres://mailadmin:{password}@127.0.0.1:5432/mailadmin"


def _postgres_version() -> str:
    versions = sorted(p.name for p in Path("/etc/postgresql").iterdir() if p.name.isdigit())
    return versions[-1]


def _apt_env() -> dict[str, str]:
    return dict(os.environ, DEBIAN_FRONTEND="noninteractive")


def write_configuration(target: Target, layout: render.Layout, kept: dict[str, str]) -> None:
    target.write(
        layout.env_file,
        render.render_env(layout, redis_password=kept["redis_password"], database_url=kept["database_url"]),
        0o640,
        0,
        target.group_id,
    )
    target.write(layout.redis_conf, render.render_redis_conf(layout, redis_password=kept["redis_password"]), 0o600)
    for unit, text in render.render_units(layout).items():
        target.write(f"{layout.systemd_dir}/{unit}", text, 0o644)
    target.write(layout.nginx_site, render.render_nginx_site(layout), 0o644)
    target.write(layout.manage_command, render.render_manage_command(layout), 0o755)
    link = target.path(layout.nginx_site_link)
    if not link.is_symlink():
        link.symlink_to(layout.nginx_site)
    if target.path(layout.cert_file).exists() and target.path(layout.key_file).exists():
        print(f"  keeping the certificate {layout.cert_file}")
    else:
        certificate, key = render.self_signed_certificate(layout.hostname)
        target.write(layout.key_file, key, 0o600)
        target.write(layout.cert_file, certificate, 0o644)
        print(f"  made a self-signed certificate for {layout.hostname}: {layout.cert_file}")


def write_agent_config(target: Target, layout: render.Layout, host: str, join_token: str) -> bool:
    """Written once: from then on the host's configuration is the postmaster's. True if written now."""
    if target.path(layout.agent_config).exists():
        print(f"  keeping the agent configuration {layout.agent_config}")
        return False
    target.write(layout.agent_config, render.render_agent_config(host, layout.hostname, join_token), 0o600)
    return True


def manage(layout: render.Layout, env: dict[str, str], *command: str, capture: bool = False) -> str:
    """manage.py as the web tier's user, in the environment the units get."""
    argv = as_user(layout.user, [f"{layout.venv}/bin/python", f"{layout.prefix}/manage.py", *command])
    # Captured: the output is a value (a join token), and what the command tells a person is said here instead.
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.DEVNULL} if capture else {}
    done = run(argv, cwd=layout.prefix, env=env, text=True, **pipes)
    return done.stdout or ""


def unit_environment(target: Target, layout: render.Layout) -> dict[str, str]:
    base = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    return base | render.parse_env(target.read(layout.env_file)) | render.parse_env(target.read(layout.local_env_file))


def disable_debian_default_site(layout: render.Layout) -> None:
    """Debian's stock site also claims port 80 as default_server; the console's site takes over."""
    default = Path(layout.nginx_dir) / "sites-enabled" / "default"
    if default.is_symlink() and os.readlink(default).endswith("sites-available/default"):
        say("Disabling nginx's stock site (sites-enabled/default): the console's site answers on 80 and 443")
        default.unlink()


def start_services(layout: render.Layout, agent_host: str | None) -> None:
    units = list(render.CONSOLE_UNITS)
    if agent_host:
        units.append(f"mailadmin-agent@{agent_host}.service")
    if not systemd_is_running():
        say("systemd is not running here (a container?): the services are installed but not started")
        print("  On a host with systemd, start them with:")
        print(f"    systemctl daemon-reload && systemctl enable --now {' '.join(units)}")
        print("    nginx -t && systemctl reload nginx")
        return
    say("Starting the services")
    run(["systemctl", "daemon-reload"])
    run(["systemctl", "enable", *units])
    # Started, or restarted on an upgrade so that the running ones take the new code and configuration.
    run(["systemctl", "restart", *units])
    run(["nginx", "-t"])
    run(["systemctl", "enable", "nginx"])
    run(["systemctl", "reload-or-restart", "nginx"])


def install_agent_only(target: Target, layout: render.Layout, agent_host: str) -> int:
    """A further MTA host: its agent's unit, configuration and environment; the console is elsewhere."""
    say(f"Installing the agent of MTA host {agent_host} into {target.root} (the console runs elsewhere)")
    target.directory(layout.conf_dir, 0o750, 0, target.group_id)
    target.path(layout.systemd_dir).mkdir(parents=True, exist_ok=True)
    target.write(layout.env_file, render.render_agent_host_env(layout), 0o640, 0, target.group_id)
    target.write(
        f"{layout.systemd_dir}/mailadmin-agent@.service", render.render_unit("mailadmin-agent@.service", layout), 0o644
    )
    if write_agent_config(target, layout, agent_host, ""):
        say(f"Agent configuration {layout.agent_config} written for Debian's sendmail (host {agent_host})")
    local = render.parse_env(target.read(layout.local_env_file))
    missing = [name for name in AGENT_HOST_NEEDS if not local.get(name)]
    if target.staging or missing:
        if missing:
            say(f"Before the agent can start, put {', '.join(missing)} in {layout.local_env_file}")
        print(f"  and the join token (manage.py jointoken {agent_host}, on the console) in {layout.agent_config};")
        print(f"  then: systemctl daemon-reload && systemctl enable --now mailadmin-agent@{agent_host}")
        return 0
    if systemd_is_running():
        run(["systemctl", "daemon-reload"])
        run(["systemctl", "enable", f"mailadmin-agent@{agent_host}.service"])
        run(["systemctl", "restart", f"mailadmin-agent@{agent_host}.service"])
    else:
        say("systemd is not running here: start the agent with")
        print(f"    systemctl daemon-reload && systemctl enable --now mailadmin-agent@{agent_host}")
    return 0


# What an agent-only host must be told about the console (README, "Deploying on a relay").
AGENT_HOST_NEEDS = ("MAILADMIN_DATABASE_URL", "MAILADMIN_BROKER_URL", "MAILADMIN_KEYS")


def main(argv: list[str]) -> int:
    args = parse_arguments(argv)
    hostname = args.hostname or render.default_hostname()
    layout = render.Layout(hostname=hostname, database=args.database, redis_address=args.redis_address)
    target = Target(args.root, layout.user)
    agent_host = None if args.no_agent else (args.agent_host or render.agent_host_name(hostname))
    if args.agent_only:
        return install_agent_only(target, layout, agent_host)
    say(f"Installing mailadmin for https://{hostname}/ into {target.root} ({args.database})")

    make_directories(target, layout)
    kept = kept_secrets(target, layout)
    if args.database == "postgres" and not target.staging:
        say("PostgreSQL: role and database mailadmin")
        kept["database_url"] = ensure_postgres(kept["database_url"])
    elif args.database == "postgres" and not kept["database_url"]:
        # Staging: the URL of the database a real install would create.
        kept["database_url"] = f"postgres://mailadmin:{secrets.token_hex(24)}@127.0.0.1:5432/mailadmin"
    elif args.database == "sqlite":
        kept["database_url"] = ""
    say(f"Configuration in {layout.conf_dir}, units in {layout.systemd_dir}, nginx site {layout.nginx_site}")
    write_configuration(target, layout, kept)

    if target.staging:
        if agent_host:
            write_agent_config(target, layout, agent_host, "")
        say(f"Staged under {target.root}: nothing was started, no user or database was created")
        return 0

    env = unit_environment(target, layout)
    say("Migrating the database, collecting static files (as the user mailadmin)")
    manage(layout, env, "migrate", "--noinput", "-v0")
    manage(layout, env, "collectstatic", "--noinput", "-v0")
    manage(layout, env, "ensureadmin")
    if agent_host:
        # The console's own host joins like any other: with a one-time token, then an approval.
        fresh = not target.path(layout.agent_config).exists()
        token = manage(layout, env, "jointoken", agent_host, capture=True).strip() if fresh else ""
        if write_agent_config(target, layout, agent_host, token):
            say(f"Agent configuration {layout.agent_config} written for Debian's sendmail (host {agent_host})")
            print("  Check it, then approve the host under Servers → Hosts asking to join once the agent runs.")
        if not Path("/etc/mail/sendmail.mc").exists():
            print("  No /etc/mail/sendmail.mc here: install sendmail (apt-get install sendmail) before starting")
            print(f"  mailadmin-agent@{agent_host}, or run make install with --no-agent on a console without an MTA.")
            agent_host = None
    disable_debian_default_site(layout)
    start_services(layout, agent_host)
    say(f"Done: https://{hostname}/  (logs: journalctl -u 'mailadmin-*')")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
