"""Map and class file rows and listeners through the API: the same service as the pages (rows that
reach the rendered file, the same refusals by field, the audit naming the token), the scopes and
host limits of every other endpoint, the privilege rule of alias targets by the user's role now,
map names that are one of the eight and never a path, and a schema that documents it all.

The hosts are the session's real instance (its agent reported its macro names and directories,
which listeners and file targets are judged against) and, for host limits, a row with no MTA."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.management import call_command
from django.db import transaction
from django.test import Client

from api.models import ApiToken
from mailadmin import config, listeners, maps
from mailadmin.cf import maps as mapfiles
from mailadmin.models import AuditEvent, Listener, MapEntry
from testing.api import call, make_token, remote_server
from testing.hostile_values import hostile_values

WRITE = ("config:read", "config:build")


@pytest.fixture
def server(mta_server):
    config.import_mc(mta_server, Path(mta_server.mc_path).read_text())
    return mta_server


def rows_url(server, map_name: str, *tail) -> str:
    return "/".join([f"/api/v1/servers/{server.name}/maps/{map_name}/rows", *map(str, tail)]) + "/"


def listeners_url(server, *tail) -> str:
    return "/".join([f"/api/v1/servers/{server.name}/listeners", *map(str, tail)]) + "/"


def by_field(exc: ValidationError) -> dict[str, list[str]]:
    """A service refusal as the API words it."""
    return {
        "non_field_errors" if field == NON_FIELD_ERRORS else field: list(msgs)
        for field, msgs in exc.message_dict.items()
    }


def sample(values: list[str]) -> list[str]:
    """Every third hostile value, and every one that carries a line break, tab or `#` (what would split
    a row or start a comment in a map file or a .mc): the whole list takes a minute per field here."""
    return [value for index, value in enumerate(values) if index % 3 == 0 or any(c in value for c in "\r\n\t#")]


def test_a_row_added_through_the_api_is_in_the_rendered_file_and_its_audit_names_the_token(server, administrator):
    token = make_token(administrator, *WRITE, name="alias bot")
    body = {"key": "webmaster", "value": "alice,  bob@example.org", "comment": "the web team"}
    response = call("POST", rows_url(server, "aliases"), token, body)
    assert response.status_code == 201, response.content
    row = response.json()
    assert (row["key"], row["value"], row["comment"], row["kept"]) == (
        "webmaster",
        "alice, bob@example.org",
        "the web team",
        False,
    )
    assert maps.rendered(server, "aliases") == "# the web team\nwebmaster: alice, bob@example.org\n"
    assert call("GET", row["url"], token).json() == row

    files = {entry["name"]: entry for entry in call("GET", f"/api/v1/servers/{server.name}/maps/", token).json()}
    assert list(files) == list(mapfiles.MAP_NAMES)
    assert (files["aliases"]["managed"], files["aliases"]["rows"]) == (True, 1)
    assert (files["virtusertable"]["managed"], files["virtusertable"]["rows"]) == (False, 0)

    as_json = call("GET", files["aliases"]["text_url"], token)
    assert as_json.json() == {"name": "aliases", "managed": True, "text": maps.rendered(server, "aliases")}
    as_text = Client().get(files["aliases"]["text_url"], HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_ACCEPT="text/plain")
    assert as_text.status_code == 200 and as_text["Content-Type"].startswith("text/plain")
    assert as_text.content.decode() == maps.rendered(server, "aliases")
    unmanaged = call("GET", files["virtusertable"]["text_url"], token, query={"format": "txt"})
    assert unmanaged.status_code == 200 and unmanaged["Content-Type"] == "text/plain; charset=utf-8"
    assert unmanaged.content == b""
    # A refusal is JSON even to a caller that asked for text.
    missing = f"/api/v1/servers/{server.name}/maps/passwd/text/"
    refused = Client().get(missing, HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_ACCEPT="text/plain")
    assert refused.status_code == 404 and refused.json() == {"detail": "Not found."}

    event = AuditEvent.objects.get(action="add aliases row", server=server)
    assert event.api_token == str(ApiToken.objects.get()) and event.api_token.startswith("alias bot (")
    assert event.user == administrator and event.target == "webmaster"


def test_rows_come_in_file_order_kept_text_is_deleted_not_edited_and_a_patch_keeps_the_rest(server, administrator):
    token = make_token(administrator, *WRITE)
    text = (
        "# hosted for the shop\n\n"
        "info@example.org\talice\n"
        "#  an odd comment\n"
        "@example.org\terror:5.1.1:550 No such user\n"
    )
    maps.import_text(server, "virtusertable", text)
    listed = call("GET", rows_url(server, "virtusertable"), token).json()
    assert [(row["kept"], row["key"] or row["verbatim"]) for row in listed] == [
        (True, "# hosted for the shop\n\n"),
        (False, "info@example.org"),
        (True, "#  an odd comment\n"),
        (False, "@example.org"),
    ]
    kept, info, odd, catch_all = listed

    refused = call("PUT", kept["url"], token, {"key": "x@example.org", "value": "bob"})
    assert refused.status_code == 400 and list(refused.json()) == ["non_field_errors"]

    patched = call("PATCH", info["url"], token, {"value": "bob@example.net"})
    assert patched.status_code == 200, patched.content
    assert (patched.json()["key"], patched.json()["value"], patched.json()["position"]) == (
        "info@example.org",
        "bob@example.net",
        info["position"],
    )
    put = call("PUT", catch_all["url"], token, {"key": "@example.org", "value": "%1@example.net", "comment": "forward"})
    assert put.status_code == 200 and put.json()["comment"] == "forward"
    taken = call("PUT", catch_all["url"], token, {"key": "info@example.org", "value": "carol"})
    assert taken.status_code == 400 and list(taken.json()) == ["key"]

    assert call("DELETE", kept["url"], token).status_code == 204
    assert call("DELETE", odd["url"], token).status_code == 204
    assert maps.rendered(server, "virtusertable") == (
        "info@example.org\tbob@example.net\n# forward\n@example.org\t%1@example.net\n"
    )
    assert call("GET", kept["url"], token).status_code == 404
    for row in call("GET", rows_url(server, "virtusertable"), token).json():
        assert call("DELETE", row["url"], token).status_code == 204
    # The last row gone, the file is still the console's: the next build writes it empty.
    assert maps.is_managed(server, "virtusertable") and maps.rendered(server, "virtusertable") == ""
    actions = list(AuditEvent.objects.filter(server=server).values_list("action", flat=True))
    assert actions.count("edit virtusertable row") == 2 and actions.count("delete virtusertable row") == 4


def test_a_map_name_is_one_of_the_eight_and_a_row_is_reached_only_through_its_own_map_and_host(server, administrator):
    token = make_token(administrator, *WRITE)
    row = maps.add(server, "local-host-names", "example.org", user=administrator)
    for name in ("access", "passwd", "ALIASES", "aliases.db", "..", "..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd"):
        for method, body in (("GET", None), ("POST", {"key": "root", "value": "alice"})):
            response = call(method, f"/api/v1/servers/{server.name}/maps/{name}/rows/", token, body)
            assert response.status_code == 404 and response.json() == {"detail": "Not found."}, (name, method)
        response = call("GET", f"/api/v1/servers/{server.name}/maps/{name}/text/", token)
        assert response.status_code == 404, name
    assert call("GET", rows_url(server, "relay-domains", row.pk), token).status_code == 404
    assert call("DELETE", rows_url(server, "relay-domains", row.pk), token).status_code == 404
    other = remote_server("other")
    assert call("GET", f"/api/v1/servers/{other.name}/maps/local-host-names/rows/{row.pk}/", token).status_code == 404
    assert MapEntry.objects.filter(pk=row.pk).exists()
    assert not MapEntry.objects.filter(server=server).exclude(pk=row.pk).exists()


def test_without_the_scope_or_outside_its_hosts_a_token_changes_nothing(server, administrator, viewer):
    row = maps.add(server, "relay-domains", "partner.example", user=administrator)
    listener = Listener.objects.get(server=server)
    reader = make_token(administrator, "config:read")
    for method, url, body in (
        ("POST", rows_url(server, "relay-domains"), {"key": "other.example"}),
        ("PUT", rows_url(server, "relay-domains", row.pk), {"key": "other.example"}),
        ("PATCH", rows_url(server, "relay-domains", row.pk), {"key": "other.example"}),
        ("DELETE", rows_url(server, "relay-domains", row.pk), None),
        ("POST", listeners_url(server), {"kind": "daemon", "port": "2600", "address": "127.0.0.1"}),
        ("PUT", listeners_url(server, listener.pk), {"port": "2600"}),
        ("DELETE", listeners_url(server, listener.pk), None),
    ):
        response = call(method, url, reader, body)
        assert response.status_code == 403 and "config:build" in response.json()["detail"], (method, url)
    assert call("GET", rows_url(server, "relay-domains"), reader).status_code == 200
    unrelated = make_token(administrator, "queue:read")
    assert call("GET", f"/api/v1/servers/{server.name}/maps/", unrelated).status_code == 403
    assert call("GET", listeners_url(server), unrelated).status_code == 403
    # Reading needs only a viewer's role.
    assert call("GET", listeners_url(server), make_token(viewer, "config:read")).status_code == 200

    elsewhere = make_token(administrator, *WRITE, servers=[remote_server("other")])
    for method, url in (("GET", f"/api/v1/servers/{server.name}/maps/"), ("GET", rows_url(server, "relay-domains"))):
        assert call(method, url, elsewhere).status_code == 404
    assert call("DELETE", rows_url(server, "relay-domains", row.pk), elsewhere).status_code == 404
    assert call("DELETE", listeners_url(server, listener.pk), elsewhere).status_code == 404

    assert list(MapEntry.objects.filter(server=server).values_list("key", flat=True)) == ["partner.example"]
    assert Listener.objects.filter(server=server).count() == 1
    denied = AuditEvent.objects.filter(outcome=AuditEvent.Outcome.DENIED)
    assert denied.count() == 9 and all(event.api_token for event in denied)


def test_program_and_file_targets_follow_the_role_the_tokens_user_has_now(server, administrator):
    token = make_token(administrator, *WRITE)
    program = {"key": "autoreply", "value": "|vacation alice", "comment": "out of office"}
    response = call("POST", rows_url(server, "aliases"), token, program)
    assert response.status_code == 201, response.content
    assert 'autoreply: "|vacation alice"\n' in maps.rendered(server, "aliases")
    # Even an administrator's file target must lie under the instance's own directories.
    outside = call("POST", rows_url(server, "aliases"), token, {"key": "leak", "value": "/etc/passwd"})
    assert outside.status_code == 400 and list(outside.json()) == ["value"]
    assert "outside the instance's directories" in outside.json()["value"][0]

    administrator.groups.set([Group.objects.get_or_create(name="operator")[0]])
    for method, url, body in (
        ("POST", rows_url(server, "aliases"), {"key": "runner", "value": "|vacation bob"}),
        ("PATCH", rows_url(server, "aliases", MapEntry.objects.get(key="autoreply").pk), {"value": "|vacation bob"}),
        ("POST", rows_url(server, "aliases"), {"key": "plain", "value": "alice"}),
    ):
        response = call(method, url, token, body)
        assert response.status_code == 403 and "administrator" in response.json()["detail"], (method, body)
    assert list(MapEntry.objects.filter(server=server).values_list("key", "value")) == [
        ("autoreply", "|vacation alice")
    ]


def test_hostile_map_values_get_the_services_refusal_by_field_and_change_nothing(server, administrator, tmp_path):
    token = make_token(administrator, *WRITE)
    maps.add(server, "mailertable", "partner.example", "esmtp:[mx.partner.example]", user=administrator)
    before = {name: maps.rendered(server, name) for name in mapfiles.MAP_NAMES}
    good = {
        "aliases": {"key": "webmaster", "value": "alice", "comment": ""},
        "mailertable": {"key": "other.example", "value": "esmtp:[mx.other.example]", "comment": ""},
        "relay-domains": {"key": "partner.example", "value": "", "comment": ""},
    }
    fields = [("aliases", "key"), ("aliases", "value"), ("aliases", "comment"), ("mailertable", "value")]
    fields.append(("relay-domains", "key"))
    refused = accepted = 0
    for map_name, field in fields:
        for value in sample(hostile_values(str(tmp_path / "canary"))):
            body = {**good[map_name], field: value}
            try:
                maps.clean(server, map_name, body["key"], body["value"], body["comment"], user=administrator)
            except ValidationError as exc:
                expected = by_field(exc)
            else:
                expected = None
            response = call("POST", rows_url(server, map_name), token, body)
            if expected is None:  # harmless once trimmed (an m4 word is an ordinary one here): stored so
                assert response.status_code == 201, (map_name, field, value, response.content)
                stored = response.json()[field]
                assert stored == value.strip() and stored.isascii() and stored.isprintable(), (field, value, stored)
                assert call("DELETE", response.json()["url"], token).status_code == 204
                accepted += 1
                continue
            assert response.status_code == 400 and response.json() == expected, (map_name, field, value)
            assert field in expected, (map_name, field, value, expected)
            refused += 1
    assert refused > 800, (refused, accepted)
    assert {name: maps.rendered(server, name) for name in mapfiles.MAP_NAMES} == before
    assert AuditEvent.objects.filter(action__startswith="add ").count() == accepted + 1  # the mailertable row
    assert AuditEvent.objects.filter(action__startswith="delete ").count() == accepted
    assert not (tmp_path / "canary").exists()


def test_listeners_are_added_changed_and_removed_as_on_their_page(server, administrator):
    token = make_token(administrator, *WRITE, name="listener bot")
    (imported,) = call("GET", listeners_url(server), token).json()
    assert imported["kind"] == "daemon" and imported["port"] == str(server.smtp_port)
    assert imported["mc_line"].startswith("DAEMON_OPTIONS(`Name=")

    body = {"kind": "daemon", "name": "MTA-2", "address": "127.0.0.1", "port": "2600", "comment": "second port"}
    response = call("POST", listeners_url(server), token, body)
    assert response.status_code == 201, response.content
    added = response.json()
    assert added["mc_line"] == "DAEMON_OPTIONS(`Name=MTA-2,Port=2600,Addr=127.0.0.1')"
    spec, comment = listeners.listeners_of(server)[-1]
    assert (spec.port, spec.address, comment) == ("2600", "127.0.0.1", "second port")

    clash = call("POST", listeners_url(server), token, {**body, "name": "MTA-3"})
    assert clash.status_code == 400 and list(clash.json()) == ["non_field_errors"]
    bad_kind = call("POST", listeners_url(server), token, {**body, "kind": "server"})
    assert bad_kind.status_code == 400 and list(bad_kind.json()) == ["kind"]

    changed = call("PUT", added["url"], token, {"name": "MTA-2", "address": "127.0.0.1", "port": "2601"})
    assert changed.status_code == 200 and changed.json()["port"] == "2601" and changed.json()["comment"] == ""
    other_kind = call("PUT", added["url"], token, {"kind": "client", "port": "2601"})
    assert other_kind.status_code == 400 and list(other_kind.json()) == ["kind"]
    assert call("DELETE", added["url"], token).status_code == 204
    assert call("GET", added["url"], token).status_code == 404
    assert [row["id"] for row in call("GET", listeners_url(server), token).json()] == [imported["id"]]

    named = AuditEvent.objects.filter(server=server, action__endswith="listener")
    assert list(named.order_by("id").values_list("action", flat=True)) == [
        "add listener",
        "edit listener",
        "delete listener",
    ]
    assert {event.api_token for event in named} == {str(ApiToken.objects.get())}


def test_hostile_listener_values_are_refused_by_field_and_change_nothing(server, administrator, tmp_path):
    token = make_token(administrator, *WRITE)
    good = {"kind": "daemon", "name": "MTA-h", "address": "127.0.0.1", "port": "2600", "comment": ""}
    refused = 0
    for field in ("name", "family", "port", "address", "modifiers", "extra", "comment"):
        for value in sample(hostile_values(str(tmp_path / "canary"))):
            body = {**good, field: value}
            with transaction.atomic():
                savepoint = transaction.savepoint()
                try:
                    listeners.add(server, body["kind"], body, body["comment"])
                except ValidationError as exc:
                    expected = by_field(exc)
                else:
                    expected = None
                transaction.savepoint_rollback(savepoint)
            response = call("POST", listeners_url(server), token, body)
            if expected is None:  # what strip() leaves of it is harmless
                assert response.status_code == 201, (field, value, response.content)
                assert call("DELETE", response.json()["url"], token).status_code == 204
                continue
            assert response.status_code == 400 and response.json() == expected, (field, value)
            assert set(expected) <= {field, "non_field_errors"}, (field, value, expected)
            refused += 1
    assert refused > 1000, refused
    assert Listener.objects.filter(server=server).count() == 1
    assert not (tmp_path / "canary").exists()


def test_the_schema_documents_the_new_endpoints_and_stays_valid(tmp_path):
    schema = json.loads(call("GET", "/api/schema/", query={"format": "json"}).content)
    paths = schema["paths"]
    for path, methods in (
        ("/api/v1/servers/{server}/maps/", {"get"}),
        ("/api/v1/servers/{server}/maps/{map_name}/rows/", {"get", "post"}),
        ("/api/v1/servers/{server}/maps/{map_name}/rows/{id}/", {"get", "put", "patch", "delete"}),
        ("/api/v1/servers/{server}/maps/{map_name}/text/", {"get"}),
        ("/api/v1/servers/{server}/listeners/", {"get", "post"}),
        ("/api/v1/servers/{server}/listeners/{id}/", {"get", "put", "delete"}),
    ):
        assert set(paths[path]) == methods, path
    (map_name,) = [
        p
        for p in paths["/api/v1/servers/{server}/maps/{map_name}/rows/"]["get"]["parameters"]
        if p["name"] == "map_name"
    ]
    assert map_name["schema"]["enum"] == sorted(mapfiles.MAP_NAMES)
    text = paths["/api/v1/servers/{server}/maps/{map_name}/text/"]["get"]["responses"]["200"]["content"]
    assert set(text) == {"application/json", "text/plain"}
    # The same check as `manage.py spectacular --validate --fail-on-warn`: any warning fails it.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
