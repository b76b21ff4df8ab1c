"""A build keeps the rows it was made from; restoring them makes the rows say what the build said."""

from __future__ import annotations

from mailadmin import buildrows
from mailadmin.models import AccessEntry, ConfigBuild, ConfigValue, FeatureSetting, Listener, MailServer, MapEntry


def make_server() -> MailServer:
    return MailServer.objects.create(name="rows", hostname="rows.example", celery_queue="mta.rows")


def fill(server: MailServer, *, greeting: str, alias_target: str) -> None:
    ConfigValue.objects.update_or_create(server=server, name="SmtpGreetingMessage", defaults={"value": greeting})
    FeatureSetting.objects.update_or_create(server=server, name="greet_pause", defaults={"args": ["500"]})
    AccessEntry.objects.update_or_create(server=server, tag="Connect", key="10.1", defaults={"value": "REJECT"})
    MapEntry.objects.update_or_create(
        server=server, map="aliases", key="postmaster", verbatim="", defaults={"value": alias_target, "position": 2}
    )
    MapEntry.objects.get_or_create(server=server, map="aliases", position=1, verbatim="# kept as it was\n")
    Listener.objects.get_or_create(server=server, kind="daemon", name="MTA", address="127.0.0.1", port="2525")


def test_restoring_a_builds_rows_undoes_every_later_change_to_them(db):
    server = make_server()
    fill(server, greeting="$j old", alias_target="root")
    build = ConfigBuild.objects.create(server=server, mc_text="", rows=buildrows.snapshot(server))

    fill(server, greeting="$j new", alias_target="admin@example.org")
    ConfigValue.objects.create(server=server, name="MaxMessageSize", value="1000000")
    Listener.objects.create(server=server, kind="daemon", name="MSA", address="127.0.0.1", port="2587")
    AccessEntry.objects.filter(server=server).delete()
    assert set(buildrows.differences(server, build)) == {
        "options",
        "access map rows",
        "map and class rows",
        "listeners",
    }

    assert buildrows.restore(server, build)

    assert buildrows.snapshot(server) == build.rows
    assert buildrows.differences(server, build) == []
    assert dict(server.config_values.values_list("name", "value")) == {"SmtpGreetingMessage": "$j old"}
    assert list(MapEntry.objects.filter(server=server).values_list("position", "key", "value", "verbatim")) == [
        (1, "", "", "# kept as it was\n"),
        (2, "postmaster", "root", ""),
    ]
    assert list(server.listeners.values_list("name", "port")) == [("MTA", "2525")]
    assert server.auditevent_set.filter(action="restore rows", target=build.build_id).exists()


def test_a_build_that_kept_no_rows_restores_nothing_and_reports_no_difference(db):
    server = make_server()
    fill(server, greeting="$j", alias_target="root")
    found_on_host = ConfigBuild.objects.create(server=server, mc_text="", origin=ConfigBuild.Origin.HOST)

    assert buildrows.differences(server, found_on_host) == []
    assert not buildrows.restore(server, found_on_host)
    assert server.config_values.count() == 1 and server.map_entries.count() == 2
