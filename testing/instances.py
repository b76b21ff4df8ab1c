"""Throw-away sendmail instances: start one (own directory under var/test-instances, own port, never
/etc/mail, never port 25), stop it, and put its MailServer row back for the tests that ask for it."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
from pathlib import Path

from django.utils import timezone

from testing.processes import free_port


def start_instance(
    *, address: str = "127.0.0.1", port: int | None = None, hostname: str | None = None, defer_relay: str = ""
) -> dict:
    """Create, build and start a throw-away embedded instance; returns its MailServer field values.

    `defer_relay` replaces the host its queue runs relay to ([127.0.0.2], port 2, where nothing
    listens): a second instance listening there receives what the first one relays.

    The row itself is deleted again, so tests that do not ask for an instance see an empty
    server table; `instance_row` puts it back for those that do. Needs the test database.
    """
    from django.conf import settings
    from django.db import connection

    from mailadmin.models import MailServer
    from mailadmin.mta import daemon, instance
    from mailadmin.mta.gateway import Mta

    test_db = settings.DATABASES["default"]["TEST"]["NAME"]
    assert connection.settings_dict["NAME"] == test_db, "the test database is not set up; refusing to use the dev one"
    name = "t" + secrets.token_hex(3)
    root = Path(settings.MAILADMIN_INSTANCES_DIR) / name
    embedded = instance.embedded_instance(
        name, root, port or free_port(), address=address, log_file=str(root / "syslog"), hostname=hostname
    )
    serve_instance(embedded)
    fields = {**embedded.server_fields(), "celery_queue": f"mta.{name}"}
    server = MailServer.objects.create(name=name, **fields)
    instance.prepare(server, Mta(server), defer_relay or instance.DEFER_RELAY)
    daemon.start(server, Mta(server))
    server.delete()
    return {"name": name, **fields}


def agent_config_path(name: str) -> Path:
    """Where the test agent configuration of instance `name` lives (outside every root it declares)."""
    from django.conf import settings

    return Path(settings.VAR_DIR) / "test-agents" / f"{name}.toml"


def serve_instance(embedded):
    """Write the instance's agent configuration and make this process its agent (as the host's
    agent worker would be); returns the parsed configuration."""
    from mailadmin.mta import agent, instance

    config = instance.write_agent_config(agent_config_path(embedded.name), embedded.name, [embedded])
    agent.serve(config)
    return config


def stop_instance(fields: dict) -> None:
    from mailadmin.models import MailServer
    from mailadmin.mta import daemon

    pid = daemon.live_pid(MailServer(**fields))
    if pid:
        os.kill(pid, signal.SIGCONT)
        os.kill(pid, signal.SIGTERM)
        daemon.wait_until_gone(pid)
    shutil.rmtree(Path(fields["conf_dir"]).parent.parent, ignore_errors=True)
    agent_config_path(fields["name"]).unlink(missing_ok=True)


DEBIAN_CF_TREE = "/usr/share/sendmail/cf"
DEBIAN_M4 = "/usr/bin/m4"


def reserved_words(cf_tree: str = DEBIAN_CF_TREE, m4_bin: str = DEBIAN_M4) -> frozenset[str]:
    """The macro names an agent reports for its cf tree (computed once per tree and cached)."""
    from mailadmin.mta.macronames import macro_names

    return macro_names(cf_tree, m4_bin)


def make_instance_root(base: Path) -> str:
    """A root as an agent declares it (a real directory under `base`), with a run/ directory and a
    link `escape` inside it that points out of it (to /etc)."""
    root = base / "instance"
    (root / "run").mkdir(parents=True)
    (root / "escape").symlink_to("/etc")
    return os.path.realpath(root)


def instance_row(fields: dict):
    """The instance as a MailServer row again, with its daemon answering."""
    from mailadmin.models import AgentHost, MailServer
    from mailadmin.mta import agent, daemon
    from mailadmin.mta.gateway import Mta

    values = dict(fields)
    name = values.pop("name")
    host, _ = AgentHost.objects.get_or_create(
        name=name, defaults={"celery_queue": values["celery_queue"], "token_verified": True}
    )
    if not host.approved:
        AgentHost.objects.filter(pk=host.pk).update(approved_at=timezone.now(), last_seen=timezone.now())
    values["reserved_words"] = sorted(reserved_words(values["cf_tree"], values["m4_bin"]))
    server, _ = MailServer.objects.update_or_create(name=name, defaults={**values, "host": host})
    agent.instance(name)  # this process serves it (start_instance made it so)
    pid = daemon.live_pid(server)
    if pid:
        os.kill(pid, signal.SIGCONT)
    if not daemon.status(server).answering:
        daemon.start(server, Mta(server))
    return server
