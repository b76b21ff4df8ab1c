"""Issue 15's map and class rows proven on the wire: rows added in the console, built and installed by
the real worker as one transaction with the cf, change what the real daemon answers, what it queues
and what `sendmail -bv` says; rolling back to the earlier build undoes each, rows included.

The instance is the session's (the worker is its agent); every file of its conf directory is put
back afterwards. Three installs: the imported configuration as it was (the "before"), the changes
(FEATUREs turned on and rows added in one build), and the rollback to the first.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mailadmin import buildrows, config, maps, requests
from mailadmin.models import ConfigBuild, MapEntry
from mailadmin.mta import daemon
from mailadmin.mta.gateway import Mta
from mailadmin.work import WorkStatus
from mailqueue.models import QueueAction
from mailqueue.parser import parse_queue_file
from testing.queue import run_action
from testing.smtp import (
    STRANGER,
    build_through_console,
    install_through_console,
    kept_conf_dir,
    rcpt_reply,
)
from testing.work import wait_terminal

RELAYED = "relayed.example"
HOSTED = "hosted.example"
PARTNER = "partner.example"
PARTNER_HOP = "[127.0.0.9]"
# The maps the test manages (imported from the instance's own files, or empty) and the FEATUREs
# that make the cf read the two database maps and class w from them.
MANAGED = ("aliases", "virtusertable", "mailertable", "local-host-names", "relay-domains")
FEATURES = ("virtusertable", "mailertable", "use_cw_file")


@pytest.fixture
def console(worker, instance_files, administrator, client):
    """The session's instance adopted by the console (its .mc, access map and map files imported
    into rows), an administrator's client, and its conf directory put back afterwards."""
    server = instance_files
    with kept_conf_dir(server):
        config.import_mc(server, Path(server.mc_path).read_text())
        config.import_access(server, Path(server.access_path).read_text())
        for name in MANAGED:
            source = Path(server.conf_dir) / name
            maps.import_text(server, name, source.read_text() if source.exists() else "", user=administrator)
        client.force_login(administrator)
        yield server, client


def map_rows(server) -> list[tuple]:
    return list(
        MapEntry.objects.filter(server=server)
        .order_by("map", "position", "id")
        .values_list("map", "position", "key", "value", "comment", "verbatim")
    )


def verify(server, address: str) -> str:
    """`sendmail -bv` on the installed cf, through the gateway (its verdict is in the output)."""
    return Mta(server).sendmail("-bv", address, action="test -bv", ok_codes=(0, 67, 68)).stdout_text


def address_test(server, address: str, user) -> dict:
    """Ask the address tester as its page does; the worker (the host's agent) answers."""
    row = wait_terminal(requests.ask(server, "address test", {"address": address}, user=user), 60)
    assert row.status == WorkStatus.DONE, row.error
    return row.result


def qf_text(server, queue_id: str) -> str:
    return (Path(server.queue_dir) / f"qf{queue_id}").read_bytes().decode("latin-1")


def queued(server, queue_id: str) -> list[tuple[str, str]]:
    """(R line address, r line final recipient) of each recipient the qf holds."""
    qf = Path(server.queue_dir) / f"qf{queue_id}"
    return [(r.address, r.final_recipient) for r in parse_queue_file(qf.read_bytes()).recipients]


def test_map_rows_installed_from_the_console_change_what_the_daemon_does_and_a_rollback_undoes_them(
    console, administrator, submit, worker
):
    server, client = console

    # 1. The configuration as imported, installed by the console: the "before".
    before = install_through_console(client, build_through_console(client, server, worker), worker)
    rows_before = map_rows(server)
    assert f"/{before.build.build_id};" in daemon.status(server).banner
    code, text = rcpt_reply(server, f"user@{RELAYED}", source=STRANGER)
    assert (code, text) == (550, f"5.7.1 <user@{RELAYED}>... Relaying denied"), (code, text)
    assert "User unknown" in verify(server, "team")

    # 2. One build: the FEATUREs that read the tables and class w, and a row in each map.
    for feature in FEATURES:
        config.set_feature(server, feature, [], True)
    maps.add(server, "relay-domains", RELAYED, comment="partner we relay for", user=administrator)
    maps.add(server, "local-host-names", HOSTED, user=administrator)
    maps.add(server, "virtusertable", f"info@{HOSTED}", "bob@remote.example", user=administrator)
    maps.add(server, "virtusertable", f"sales@{HOSTED}", "team", user=administrator)
    maps.add(server, "mailertable", PARTNER, f"smtp:{PARTNER_HOP}", user=administrator)
    maps.add(server, "aliases", "team", "alice@remote.example, carol@remote.example", user=administrator)
    changed = build_through_console(client, server, worker)
    assert "NOTE" not in changed.log and "WARNING" not in changed.log, changed.log
    install_through_console(client, changed, worker)
    assert f"/{changed.build_id};" in daemon.status(server).banner

    # relay-domains (class R): the stranger refused a moment ago may now relay to the domain.
    assert rcpt_reply(server, f"user@{RELAYED}", source=STRANGER)[0] == 250
    assert rcpt_reply(server, "user@elsewhere.example", source=STRANGER)[0] == 550
    # virtusertable: sendmail rewrites a virtuser in ruleset 0 when the client names it, so the qf's
    # R line keeps the address as given and its r line (the DSN final recipient) names the mapped one;
    # a virtuser mapped to a local alias is expanded at the queue run, into R lines of their own.
    (to_bob, to_team) = (submit.send(recipients=(f"{who}@{HOSTED}",))[0] for who in ("info", "sales"))
    assert queued(server, to_bob) == [(f"<info@{HOSTED}>", "RFC822; bob@remote.example")], qf_text(server, to_bob)
    run_action(server, QueueAction.Verb.DELIVER, queue_ids=[to_team])  # deferred: the relay never answers
    assert sorted(queued(server, to_team)) == [
        ("alice@remote.example", f"RFC822; sales@{HOSTED}"),
        ("carol@remote.example", f"RFC822; sales@{HOSTED}"),
    ], qf_text(server, to_team)
    # mailertable: the route, in sendmail's -bv and in the address tester's answer.
    assert f"mailer smtp, host {PARTNER_HOP}, user someone@{PARTNER}" in verify(server, f"someone@{PARTNER}")
    answer = address_test(server, f"someone@{PARTNER}", administrator)
    routed = {d["address"]: (d["mailer"], d["host"]) for d in answer["verify"]["deliveries"]}
    assert routed == {f"someone@{PARTNER}": ("smtp", PARTNER_HOP)}, answer["sentence"]
    # aliases: one name, both addresses.
    expanded = verify(server, "team")
    assert "alice@remote.example... deliverable" in expanded and "carol@remote.example... deliverable" in expanded

    # 3. Roll back to the first build from its page: every change undone, the rows too.
    rollback = install_through_console(client, before.build, worker)
    assert rollback.rollback and "the options, FEATUREs, access, map and listener rows are those" in rollback.output
    assert f"/{before.build.build_id};" in daemon.status(server).banner
    code, text = rcpt_reply(server, f"user@{RELAYED}", source=STRANGER)
    assert (code, text) == (550, f"5.7.1 <user@{RELAYED}>... Relaying denied"), (code, text)
    (to_bob,) = submit.send(recipients=(f"info@{HOSTED}",))
    assert "bob@remote.example" not in qf_text(server, to_bob)
    assert f"host {PARTNER_HOP}" not in verify(server, f"someone@{PARTNER}")
    assert "User unknown" in verify(server, "team")
    assert map_rows(server) == rows_before
    assert set(config.features_of(server)).isdisjoint(FEATURES)
    assert buildrows.differences(server, ConfigBuild.objects.get(pk=before.build.pk)) == []
