"""mailadmin.maps, the service: add, edit, delete and import, each audited; refusals by field;
lossless import byte for byte; who may write program, file and :include: targets.
"""

import pytest
from django.core.exceptions import ValidationError

from mailadmin import maps
from mailadmin.models import AuditEvent, MapEntry
from testing.map_samples import CONTINUED_ALIASES, DEBIAN_ALIASES, LOCAL_HOST_NAMES, MAILERTABLE, VIRTUSERS


@pytest.fixture
def server(mta_server):
    return mta_server


def keys(server, name):
    return [row.key or row.verbatim for row in maps.entries(server, name)]


def test_adding_a_row_manages_the_file_and_is_audited(server, operator):
    assert not maps.is_managed(server, "virtusertable") and maps.rendered_maps(server) == {}
    maps.add(server, "virtusertable", " info@example.org ", "alice", "sales", user=operator)
    server.refresh_from_db()
    assert maps.is_managed(server, "virtusertable")
    assert maps.rendered_maps(server) == {"virtusertable": "# sales\ninfo@example.org\talice\n"}
    event = AuditEvent.objects.get(action="add virtusertable row")
    assert (event.user, event.target, event.detail) == (operator, "info@example.org", "info@example.org alice  # sales")


def test_a_duplicate_key_is_refused_at_the_key_and_nothing_changes(server, operator):
    maps.add(server, "aliases", "postmaster", "root", user=operator)
    with pytest.raises(ValidationError) as refused:
        maps.add(server, "aliases", "postmaster", "alice", user=operator)
    assert "already has a row" in refused.value.message_dict["key"][0]
    other = maps.add(server, "aliases", "abuse", "root", user=operator)
    with pytest.raises(ValidationError) as refused:
        maps.edit(other, "postmaster", "root", user=operator)
    assert "key" in refused.value.message_dict
    assert keys(server, "aliases") == ["postmaster", "abuse"]
    assert AuditEvent.objects.filter(action__startswith="add aliases").count() == 2
    assert not AuditEvent.objects.filter(action="edit aliases row").exists()


def test_a_program_target_is_refused_to_an_operator_and_taken_from_an_administrator(server, operator, administrator):
    with pytest.raises(ValidationError) as refused:
        maps.add(server, "aliases", "vacation", "|vacation alice", user=operator)
    assert "administrators only" in refused.value.message_dict["value"][0]
    assert not MapEntry.objects.filter(server=server).exists()
    maps.add(server, "aliases", "vacation", "|vacation alice", user=administrator)
    assert maps.rendered(server, "aliases") == 'vacation: "|vacation alice"\n'
    row = maps.entries(server, "aliases").get()
    with pytest.raises(ValidationError):
        maps.edit(row, "vacation", "|vacation bob", user=operator)


def test_an_include_list_must_lie_under_the_instances_roots(server, administrator):
    root = server.roots[0]
    maps.add(server, "aliases", "staff", f":include:{root}/staff", user=administrator)
    with pytest.raises(ValidationError) as refused:
        maps.add(server, "aliases", "secrets", ":include:/etc/shadow", user=administrator)
    assert "value" in refused.value.message_dict


def test_editing_keeps_the_position_and_is_audited_with_before_and_after(server, operator):
    first = maps.add(server, "relay-domains", "one.example", user=operator)
    maps.add(server, "relay-domains", "two.example", user=operator)
    maps.edit(first, "uno.example", "", "renamed", user=operator)
    assert maps.rendered(server, "relay-domains") == "# renamed\nuno.example\ntwo.example\n"
    event = AuditEvent.objects.get(action="edit relay-domains row")
    assert event.detail == "one.example → uno.example  # renamed"


def test_imported_text_cannot_be_edited_as_a_row_but_can_be_deleted(server, operator):
    maps.import_text(server, "aliases", CONTINUED_ALIASES, user=operator)
    block = maps.entries(server, "aliases").exclude(verbatim="").first()
    with pytest.raises(ValidationError):
        maps.edit(block, "x", "root", user=operator)
    maps.delete(block, user=operator)
    assert block.verbatim not in maps.rendered(server, "aliases")
    assert AuditEvent.objects.filter(action="delete aliases row", detail__endswith="kept lines").exists()


@pytest.mark.parametrize(
    "name,text",
    [
        ("aliases", DEBIAN_ALIASES),
        ("aliases", CONTINUED_ALIASES),
        ("virtusertable", VIRTUSERS),
        ("mailertable", MAILERTABLE),
        ("local-host-names", LOCAL_HOST_NAMES),
        ("aliases", "dup: alice\ndup: bob\n"),
    ],
)
def test_an_import_renders_back_byte_for_byte_and_is_audited(server, operator, name, text):
    typed, kept = maps.import_text(server, name, text, user=operator)
    assert maps.rendered(server, name) == text
    event = AuditEvent.objects.get(action=f"import {name}")
    assert event.detail == f"{typed} rows, {kept} lines kept as they were" and event.user == operator
    server.refresh_from_db()
    assert maps.is_managed(server, name)


def test_a_second_import_replaces_the_rows_and_a_duplicate_alias_stays_text(server, operator):
    maps.add(server, "aliases", "old", "root", user=operator)
    maps.import_text(server, "aliases", "dup: alice\ndup: bob\n", user=operator)
    rows = list(maps.entries(server, "aliases"))
    assert [(r.key, r.verbatim) for r in rows] == [("dup", ""), ("", "dup: bob\n")]


def test_deleting_the_last_row_leaves_an_empty_managed_file_and_stop_managing_forgets_it(server, operator):
    row = maps.add(server, "trusted-users", "www-data", user=operator)
    maps.delete(row, user=operator)
    assert maps.rendered_maps(server) == {"trusted-users": ""}
    maps.stop_managing(server, "trusted-users", user=operator)
    assert maps.rendered_maps(server) == {}
    assert AuditEvent.objects.filter(action="stop managing trusted-users").exists()


def test_the_mailers_offered_are_stock_until_the_agent_shows_the_cf(server):
    from django.utils import timezone

    from mailadmin.models import HostSnapshot

    HostSnapshot.objects.filter(server=server).delete()
    assert maps.mailers(server) == (list(maps.STOCK_MAILERS), False)
    HostSnapshot.objects.create(server=server, taken_at=timezone.now(), cf_text="Mlocal, P=x\nMrelay, P=[IPC]\n")
    assert maps.mailers(server) == (["local", "relay"], True)


def test_importmc_with_maps_imports_the_files_found_and_skips_what_is_not_text(server, tmp_path, capsys):
    from pathlib import Path

    from django.core.management import call_command

    (tmp_path / "aliases").write_text(DEBIAN_ALIASES)
    (tmp_path / "mailertable").write_text(MAILERTABLE)
    (tmp_path / "virtusertable").write_bytes(b"caf\xe9@example.org\talice\n")
    call_command("importmc", server.mc_path, server=server.name, maps=str(tmp_path))
    out = capsys.readouterr().out
    server.refresh_from_db()
    assert server.mc_template == Path(server.mc_path).read_text()  # what importmc already did
    assert maps.rendered_maps(server) == {"aliases": DEBIAN_ALIASES, "mailertable": MAILERTABLE}
    assert f"imported {tmp_path}/aliases: 12 rows, 0 lines kept as they were" in out
    assert f"skipped {tmp_path}/virtusertable: not UTF-8" in out
    assert not maps.is_managed(server, "local-host-names")
