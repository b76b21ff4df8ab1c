"""Rate, connection and greeting controls set in the console, proven on the live daemon.

The instance here is this module's own, so its limits never reach other tests. The test
client connects from 127.0.0.2 (named in /etc/hosts by the bootstrap): loopback 127.0.0.1
has a Connect: RELAY row, which exempts it, and the console's own greeting checks come from
there, so they never count against the limits under test.
"""

import socket
import time

from mailadmin import config, tasks
from mailadmin.models import ConfigBuild, HostSnapshot, InstallJob
from mailadmin.mta import daemon
from mailadmin.work import WorkStatus

CLIENT = "127.0.0.2"


def post(client, path: str, data: dict) -> None:
    response = client.post(path, data)
    assert response.status_code == 302, response.content[:500]
    follow = client.get(response["Location"])
    errors = [m.message for m in follow.context["messages"] if m.level_tag == "error"] if follow.context else []
    assert not errors, errors


def build_and_install(server, client) -> ConfigBuild:
    post(client, f"/servers/{server.name}/builds/", {})
    build = ConfigBuild.objects.latest("pk")
    tasks.run_config_build(build.pk)
    build.refresh_from_db()
    assert build.status == WorkStatus.DONE, build.error
    post(client, f"/builds/{build.pk}/install/", {})
    job = InstallJob.objects.latest("pk")
    tasks.run_install(job.pk)
    job.refresh_from_db()
    assert job.status == WorkStatus.DONE, job.error
    assert f"/{build.build_id};" in daemon.status(server).banner
    # The install ends with a snapshot: the pages show the new build live at once, not at the next poll.
    snapshot = HostSnapshot.objects.get(server=server)
    assert snapshot.cf["sha256"] == build.cf_sha256
    assert f"/{build.build_id};" in snapshot.daemon["banner"]
    assert config.live_build(server) == build
    return build


def connect(server, *, speak_first: bytes = b"", wait: float = 0.0) -> tuple[socket.socket, str]:
    sock = socket.create_connection((server.smtp_address, server.smtp_port), timeout=10, source_address=(CLIENT, 0))
    if speak_first:
        sock.sendall(speak_first)
    time.sleep(wait)
    return sock, sock.recv(4096).decode().splitlines()[0]


def greeting(server) -> str:
    sock, first = connect(server)
    sock.close()
    return first


def test_client_rate_limits_the_third_connection_in_the_window(private_console):
    server, client = private_console
    post(
        client,
        f"/servers/{server.name}/config/feature/",
        {"name": "ratecontrol", "enabled": "on", "args": ["", "terminate"]},
    )
    post(client, f"/servers/{server.name}/access/add/", {"tag": "ClientRate", "key": CLIENT, "value": "2"})
    build = build_and_install(server, client)
    assert "ClientRate:127.0.0.2\t2" in build.access_text

    replies = [greeting(server) for _ in range(3)]

    assert replies[0].startswith("220 ") and replies[1].startswith("220 ")
    assert replies[2] == "421 4.3.2 Connection rate limit exceeded."


def test_client_conn_refuses_a_second_simultaneous_connection(private_console):
    server, client = private_console
    post(
        client,
        f"/servers/{server.name}/config/feature/",
        {"name": "conncontrol", "enabled": "on", "args": ["", "terminate"]},
    )
    post(client, f"/servers/{server.name}/access/add/", {"tag": "ClientConn", "key": CLIENT, "value": "1"})
    build_and_install(server, client)

    first, first_reply = connect(server)
    try:
        assert first_reply.startswith("220 ")
        second, second_reply = connect(server)
        second.close()
    finally:
        first.close()
    assert second_reply == "421 4.3.2 Too many open connections."


def test_greet_pause_rejects_a_client_that_talks_first(private_console):
    server, client = private_console
    post(client, f"/servers/{server.name}/config/feature/", {"name": "greet_pause", "enabled": "on", "args": []})
    post(client, f"/servers/{server.name}/access/add/", {"tag": "GreetPause", "key": CLIENT, "value": "1500"})
    build_and_install(server, client)

    sock, reply = connect(server, speak_first=b"EHLO impatient.example\r\n")
    sock.close()

    assert reply == f"554 {server.hostname} ESMTP not accepting messages"
