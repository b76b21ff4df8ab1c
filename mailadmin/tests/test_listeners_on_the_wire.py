"""Issue 15's listeners proven on the wire: a DAEMON_OPTIONS row added on the listeners page, built and
installed by the real worker, opens a second port the real daemon greets on; rolling back to the
earlier build closes it again and puts the listener rows back.

The instance is the session's (the worker is its agent); every file of its conf directory is put
back afterwards.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mailadmin import config
from mailadmin.models import Listener
from mailadmin.mta import daemon
from testing.processes import free_port
from testing.smtp import build_through_console, greeting, install_through_console, kept_conf_dir


@pytest.fixture
def console(worker, instance_files, administrator, client):
    """The session's instance adopted by the console (.mc and access map imported into rows, its own
    DAEMON_OPTIONS line the first listener row), an administrator's client, its conf directory kept."""
    server = instance_files
    with kept_conf_dir(server):
        config.import_mc(server, Path(server.mc_path).read_text())
        config.import_access(server, Path(server.access_path).read_text())
        client.force_login(administrator)
        yield server, client


def listener_rows(server) -> list[tuple]:
    return list(
        Listener.objects.filter(server=server)
        .order_by("kind", "position", "id")
        .values_list("kind", "position", "name", "address", "port", "family", "modifiers", "extra", "comment")
    )


def test_a_listener_added_on_a_second_port_answers_there_after_install_and_a_rollback_closes_it(console, worker):
    server, client = console
    second = free_port()

    before = install_through_console(client, build_through_console(client, server, worker), worker)
    rows_before = listener_rows(server)
    assert greeting(server.smtp_address, second) is None

    response = client.post(
        f"/servers/{server.name}/listeners/add/",
        {"kind": "daemon", "name": "MTA-second", "address": "127.0.0.1", "port": str(second), "comment": "for tests"},
    )
    assert response.status_code == 302, response.content[:500]
    changed = build_through_console(client, server, worker)
    value = f"Name=MTA-second,Port={second},Addr=127.0.0.1"
    assert f"DAEMON_OPTIONS(`{value}')" in changed.mc_text
    assert f"O DaemonPortOptions={value}" in changed.cf_text.splitlines()
    install_through_console(client, changed, worker)

    # Both sockets are the same daemon's, running the new build.
    first_line = greeting(server.smtp_address, second)
    assert first_line is not None and first_line.startswith("220 "), first_line
    assert f"/{changed.build_id};" in first_line
    assert f"/{changed.build_id};" in daemon.status(server).banner

    rollback = install_through_console(client, before.build, worker)
    assert rollback.rollback
    assert f"/{before.build.build_id};" in daemon.status(server).banner
    assert greeting(server.smtp_address, second) is None
    assert listener_rows(server) == rows_before
