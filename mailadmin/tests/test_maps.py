"""mailadmin.cf.maps, the pure module: real-looking files round-trip byte for byte, rows are typed,
and no hostile value in any field of any map can split a row, add one, or start a comment.
"""

import pytest
from django.core.exceptions import ValidationError

from mailadmin.cf import maps
from mailadmin.cf.maps import Row, Verbatim
from testing.hostile_values import hostile_values
from testing.map_samples import CONTINUED_ALIASES, DEBIAN_ALIASES, LOCAL_HOST_NAMES, MAILERTABLE, VIRTUSERS

ROOTS = ("/var/lib/mailadmin/instance",)
MAILERS = ("local", "smtp", "esmtp", "relay")


def roundtrip(name: str, text: str) -> list:
    lines = maps.parse(name, text)
    assert maps.render(name, lines) == text
    return lines


@pytest.mark.parametrize(
    "name,text",
    [
        ("aliases", DEBIAN_ALIASES),
        ("aliases", CONTINUED_ALIASES),
        ("aliases", "no newline at the end: root"),
        ("aliases", "\r\nwindows: root\r\n"),
        ("virtusertable", VIRTUSERS),
        ("mailertable", MAILERTABLE),
        ("genericstable", "alice\talice.smith@example.org\n"),
        ("domaintable", "old.example\texample.org\n\n\n"),
        ("local-host-names", LOCAL_HOST_NAMES),
        ("relay-domains", "partner.example\n10.1\n192.0.2.7\n"),
        ("trusted-users", "www-data\n"),
        ("trusted-users", ""),
        ("aliases", "caf\ufffd: root\n\x00\n"),
    ],
)
def test_a_real_looking_file_renders_back_byte_for_byte(name, text):
    roundtrip(name, text)


def test_debian_stock_aliases_become_twelve_rows_and_the_header_is_the_first_rows_comment():
    lines = roundtrip("aliases", DEBIAN_ALIASES)
    assert maps.counts(lines) == (12, 0)
    assert lines[0] == Row("mailer-daemon", "postmaster", "/etc/aliases")
    assert all(isinstance(line, Row) for line in lines)


def test_continuation_lines_and_forms_not_modelled_are_kept_as_text_in_place():
    lines = roundtrip("aliases", CONTINUED_ALIASES)
    assert isinstance(lines[0], Verbatim) and "staff: alice,\n\tbob,\n  carol@example.org\n" in lines[0].text
    assert Row("webmaster", "alice, bob@example.org", "the web team") in lines
    kept = "".join(line.text for line in lines if isinstance(line, Verbatim))
    assert "owner-staff:alice\n" in kept and '"|/usr/bin/procmail -f-"' in kept


def test_a_class_file_line_with_a_trailing_comment_stays_text():
    lines = roundtrip("local-host-names", LOCAL_HOST_NAMES)
    assert lines[2] == Verbatim("# hosted\nexample.org # with a comment\n")
    assert [line.key for line in lines if isinstance(line, Row)] == ["localhost", "vm.localdomain"]
    assert maps.counts(lines) == (2, 2)


def test_rendered_rows_are_canonical():
    assert maps.render("aliases", [Row("team", "alice, bob@example.org", "both")]) == (
        "# both\nteam: alice, bob@example.org\n"
    )
    assert maps.render("virtusertable", [Row("@example.org", "%1@mail.example.org")]) == (
        "@example.org\t%1@mail.example.org\n"
    )
    assert maps.render("relay-domains", [Verbatim("# no newline"), Row("partner.example", "")]) == (
        "# no newline\npartner.example\n"
    )


def clean(name, key, value="", comment="", **kwargs):
    return maps.clean_row(name, key, value, comment, roots=ROOTS, mailers=MAILERS, **kwargs)


@pytest.mark.parametrize(
    "name,key,value",
    [
        ("aliases", "webmaster", "alice, bob@example.org"),
        ("virtusertable", "@example.org", "error:5.7.0:550 no such user here"),
        ("virtusertable", "info@example.org", "%1@mail.example.org"),
        ("mailertable", ".partner.example", "esmtp:[mx.partner.example]:2525"),
        ("mailertable", "old.example", "error:5.1.2:550 host gone"),
        ("genericstable", "alice", "alice.smith@example.org"),
        ("domaintable", "old.example", "example.org"),
        ("local-host-names", "index.example", ""),
        ("relay-domains", "10.1", ""),
        ("trusted-users", "www-data", ""),
    ],
)
def test_typed_rows_are_accepted_and_parse_back_as_the_same_row(name, key, value):
    row = clean(name, key, value, "a comment")
    assert maps.parse(name, maps.render(name, [row])) == [row]


def test_program_file_and_include_targets_are_for_administrators_and_under_the_roots():
    for target in (
        "|vacation alice",
        "/var/lib/mailadmin/instance/archive",
        ":include:/var/lib/mailadmin/instance/staff",
    ):
        with pytest.raises(ValidationError) as refused:
            clean("aliases", "x", target)
        assert "administrators only" in str(refused.value.message_dict["value"])
        row = clean("aliases", "x", target, privileged=True)
        text = maps.render("aliases", [row])
        # Imported, a program stays a row; a file or list stays text (its roots are the agent's to
        # judge at build time), byte for byte either way.
        expected = [row] if target.startswith("|") else [Verbatim(text)]
        assert maps.parse("aliases", text) == expected
    for outside in ("/etc/passwd", ":include:/etc/shadow", "/var/lib/mailadmin/instance/../../../etc/passwd"):
        with pytest.raises(ValidationError):
            clean("aliases", "x", outside, privileged=True)
    with pytest.raises(ValidationError):
        clean("aliases", "x", "|/bin/sh -c id", privileged=True)
    assert (
        maps.render("aliases", [clean("aliases", "x", "|vacation alice", privileged=True)]) == 'x: "|vacation alice"\n'
    )


def test_an_imported_mailertable_becomes_rows_whatever_mailers_it_names():
    lines = roundtrip("mailertable", MAILERTABLE)
    assert maps.counts(lines) == (4, 0)
    assert Row("local.example", "local:") in lines


def test_a_mailertable_row_names_a_mailer_the_cf_defines():
    with pytest.raises(ValidationError) as refused:
        clean("mailertable", "partner.example", "nosuch:[mx.partner.example]")
    assert "value" in refused.value.message_dict
    assert maps.mailers_in_cf("Mlocal, P=/usr/lib/sm.bin/mail.local\nMesmtp, P=[IPC]\nMlocal, P=x\n") == [
        "local",
        "esmtp",
    ]


def test_a_class_file_row_has_no_value():
    with pytest.raises(ValidationError) as refused:
        clean("relay-domains", "partner.example", "RELAY")
    assert "value" in refused.value.message_dict


@pytest.mark.parametrize("name", maps.MAP_NAMES)
def test_no_hostile_value_in_any_field_splits_a_row_or_reaches_the_file_unchecked(name, tmp_path):
    canary = str(tmp_path / "canary")
    spec = maps.spec_of(name)
    good = {"key": spec.example_key, "value": spec.example_value, "comment": "ok"}
    fields = ["key", "comment"] + (["value"] if spec.has_value else [])
    accepted = 0
    for field in fields:
        for hostile in hostile_values(canary):
            typed = {**good, field: hostile}
            try:
                row = clean(name, typed["key"], typed["value"], typed["comment"], privileged=True)
            except ValidationError:
                continue
            accepted += 1
            text = maps.render(name, [row])
            # Whatever was accepted is one row (its comment line at most), with no control character,
            # and reads back as exactly that row.
            assert text.count("\n") == (2 if row.comment else 1), (field, hostile)
            line = maps.render_row(name, row)
            assert line.count("\t") == (1 if spec.kind == maps.DATABASE else 0), (field, hostile)
            assert not any(ord(c) < 0x20 and c not in "\n\t" or ord(c) >= 0x7F for c in text), (field, hostile)
            assert "#" not in maps.render_row(name, row), (field, hostile)
            assert maps.parse(name, text) == [row], (field, hostile)
    assert not (tmp_path / "canary").exists()
    assert accepted < len(fields) * len(hostile_values(canary))  # most are refused


def test_an_unknown_map_is_refused():
    with pytest.raises(ValidationError):
        maps.spec_of("../passwd")
