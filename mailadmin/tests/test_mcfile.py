"""Parsing and rendering .mc files: what is managed, what is kept verbatim, where new lines go,
and two real-m4 round trips (Debian's stock sendmail.mc and the embedded instance's .mc)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from mailadmin.cf import catalog, m4safe, mcfile
from mailadmin.cf.mcfile import BuildStamp, FeatureDecl, ListenerSpec, OptionDefine, Unmanaged
from mailadmin.mta.gateway import run_m4
from mailadmin.mta.instance import Layout, render_embedded_mc
from testing.instances import reserved_words

M4 = "/usr/bin/m4"
CF_TREE = "/usr/share/sendmail/cf"
STOCK_MC = Path("/etc/mail/sendmail.mc")
# What the host's agent reports: its cf tree's macro names, and the directories of a Debian instance.
RESERVED = reserved_words(CF_TREE, M4)
ROOTS = ("/etc/mail", "/var/spool/mqueue", "/run/sendmail", "/var/log")


def parse(text: str, roots: tuple[str, ...] = ROOTS) -> mcfile.McDocument:
    return mcfile.parse_mc(text, reserved=RESERVED, roots=roots)


def render(doc, options, features, build_id, roots: tuple[str, ...] = ROOTS) -> str:
    return mcfile.render_mc(doc, options, features, build_id, reserved=RESERVED, roots=roots)


SMALL = """divert(-1)dnl
# a comment with a stray ` quote, ignored before cf.m4
include(`/usr/share/sendmail/cf/m4/cf.m4')dnl
divert(0)dnl
VERSIONID(`small')
OSTYPE(`debian')dnl
define(`confCF_VERSION', `old-build')dnl
define(`confLOG_LEVEL', `9')dnl keep this comment
define(confTO_CONNECT, 5s)dnl
define(`confPRIVACY_FLAGS',dnl
`noexpn,novrfy')dnl
dnl define(`confMAX_HOP', `30')dnl
FEATURE(`access_db', `hash -T<TMPF> /etc/mail/access')dnl
FEATURE(`greet_pause', `1000')dnl
MAILER(`local')dnl
MAILER(`smtp')dnl
"""


def managed(doc: mcfile.McDocument) -> list:
    return [s for s in doc.segments if not isinstance(s, Unmanaged)]


def m4_cf(mc_text: str, workdir: Path) -> str:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "t.mc").write_text(mc_text)
    run_m4(M4, workdir / "t.mc", workdir / "t.cf", timeout=30)
    return (workdir / "t.cf").read_text()


def without_stamps(cf_text: str) -> list[str]:
    """The cf minus what legitimately differs between two builds: makeinfo's `#####` banner
    (build time and directory) and the DZ build stamp."""
    return [line for line in cf_text.splitlines() if not line.startswith(("#####", "DZ"))]


# ---------------------------------------------------------------------------------------------
# Parsing


def test_parse_finds_the_managed_lines_and_keeps_everything_else_verbatim():
    doc = parse(SMALL)
    assert doc.text() == SMALL
    assert managed(doc) == [
        BuildStamp("old-build", "dnl\n", "define(`confCF_VERSION', `old-build')dnl\n"),
        OptionDefine(
            "confLOG_LEVEL", "9", "dnl keep this comment\n", "define(`confLOG_LEVEL', `9')dnl keep this comment\n"
        ),
        OptionDefine("confTO_CONNECT", "5s", "dnl\n", "define(confTO_CONNECT, 5s)dnl\n"),
        OptionDefine(
            "confPRIVACY_FLAGS", "noexpn,novrfy", "dnl\n", "define(`confPRIVACY_FLAGS',dnl\n`noexpn,novrfy')dnl\n"
        ),
        FeatureDecl(
            "access_db",
            ("hash", "/etc/mail/access"),
            "dnl\n",
            "FEATURE(`access_db', `hash -T<TMPF> /etc/mail/access')dnl\n",
        ),
        FeatureDecl("greet_pause", ("1000",), "dnl\n", "FEATURE(`greet_pause', `1000')dnl\n"),
    ]
    assert doc.options() == {"LogLevel": "9", "Timeout.connect": "5s", "PrivacyOptions": "noexpn,novrfy"}
    assert doc.features() == {"access_db": ("hash", "/etc/mail/access"), "greet_pause": ("1000",)}
    assert doc.build_stamp() == "old-build"
    assert doc.notes == []


@pytest.mark.parametrize(
    "text, note",
    [
        ("define(`confLOG_LEVEL', `banana')dnl\n", "LogLevel ‘banana’ is kept as written"),
        ("define(`confLOG_LEVEL', `')dnl\n", "a value is required"),
        ("define(`confFALLBACK_SMARTHOST', `lower.example.com')dnl\n", "‘lower’ is an m4 macro name"),
        ("define(`confFALLBACK_SMARTHOST', `Relay.Example.com')dnl\n", "would write it as ‘relay.example.com’"),
        ("FEATURE(`access_db', `LDAP')dnl\n", "arguments the console does not model"),
        ("FEATURE(`access_db', `hash /etc/mail/access')dnl\n", "would write its arguments differently"),
        ("FEATURE(`msp')dnl\n", "FEATURE(msp) is not in the console's catalog"),
        ("undefine(`confLOG_LEVEL')dnl\n", "changes confLOG_LEVEL in a way the console does not model"),
        (
            "define(`confLOG_LEVEL', `9')dnl\ndefine(`confLOG_LEVEL', `12')dnl\n",
            "LogLevel is given 2 times",
        ),
        (
            "MASQUERADE_AS(`a.example.org')dnl\nMASQUERADE_AS(`b.example.org')dnl\n",
            "MasqueradeAs is given 2 times",
        ),
        ("DAEMON_OPTIONS(`Port=25,Addr=mail.example.org')dnl\n", "is not an IP address"),
        ("DAEMON_OPTIONS(`Port=25,M=h')dnl\n", "only the letters abcfrsuACEOS"),
        ("CLIENT_OPTIONS(`Family=inet,children=5')dnl\n", "the other keys a client line may have"),
        ("DAEMON_OPTIONS(`Port=25,Name=divert')dnl\n", "‘divert’ is an m4 macro name"),
    ],
)
def test_lines_that_cannot_be_managed_are_kept_with_a_note(text, note):
    doc = parse(text)
    assert managed(doc) == []
    assert doc.text() == text
    assert any(note in n for n in doc.notes), doc.notes


@pytest.mark.parametrize(
    "text",
    [
        # inside a multi-line ifdef: conditional, so not a plain setting
        "ifdef(`X', `\ndefine(`confLOG_LEVEL', `9')dnl\n')dnl\n",
        # inside an unterminated quote that a later line closes
        "VERSIONID(`one\ndefine(`confLOG_LEVEL', `9')dnl\ntwo')\n",
        # after changequote nothing can be read reliably
        "changequote([,])dnl\ndefine([confLOG_LEVEL], [9])dnl\ndefine(`confLOG_LEVEL', `9')dnl\n",
        # trailing space inside the argument is part of the value for m4
        "define(`confLOG_LEVEL', `9' )dnl\n",
        # two constructs on one line
        "define(`confLOG_LEVEL', `9')define(`confMAX_HOP', `30')dnl\n",
        # indented: the indentation is output text
        "  define(`confLOG_LEVEL', `9')dnl\n",
        # a form feed does not end m4's dnl comment
        "dnl comment\x0cdefine(`confLOG_LEVEL', `9')dnl\n",
        # CRLF line ends leave a \r that m4 would output
        "define(`confLOG_LEVEL', `9')\r\n",
    ],
)
def test_anything_in_doubt_stays_unmanaged(text):
    doc = parse(text)
    assert managed(doc) == []
    assert doc.text() == text


def test_a_daemon_options_line_is_a_listener_not_an_option():
    doc = parse("DAEMON_OPTIONS(`Port=2525,Addr=127.0.0.1,Name=MTA-x')dnl # the test port\n")
    assert doc.options() == {}
    spec = ListenerSpec("daemon", name="MTA-x", port="2525", address="127.0.0.1")
    assert doc.listeners() == [(spec, "the test port")]
    assert spec.mc_line() == "DAEMON_OPTIONS(`Name=MTA-x,Port=2525,Addr=127.0.0.1')"
    assert spec.cf_line() == "O DaemonPortOptions=Name=MTA-x,Port=2525,Addr=127.0.0.1"


def test_every_example_mc_in_the_tree_reads_back_byte_for_byte():
    for path in sorted(Path(CF_TREE).rglob("*.mc")) + [STOCK_MC]:
        text = path.read_text(encoding="latin-1")  # some of the tree's examples are not UTF-8
        assert parse(text).text() == text, path


# ---------------------------------------------------------------------------------------------
# Rendering


def test_unchanged_values_render_the_file_unchanged_apart_from_the_stamp():
    doc = parse(SMALL)
    out = render(doc, doc.options(), doc.features(), "b7")
    assert out == SMALL.replace("old-build", "b7")


def test_changed_values_are_rewritten_in_place_keeping_their_comment():
    doc = parse(SMALL)
    options = {**doc.options(), "LogLevel": "12"}
    features = {**doc.features(), "greet_pause": ("2000",)}
    out = render(doc, options, features, "b7")
    assert "define(`confLOG_LEVEL', `12')dnl keep this comment\n" in out
    assert "FEATURE(`greet_pause', `2000')dnl\n" in out
    assert out.count("confLOG_LEVEL") == 1


def test_unset_values_are_dropped():
    doc = parse(SMALL)
    options = {k: v for k, v in doc.options().items() if k != "PrivacyOptions"}
    out = render(doc, options, {"access_db": ("hash", "/etc/mail/access")}, "b7")
    assert "confPRIVACY_FLAGS" not in out and "noexpn" not in out and "greet_pause" not in out


def test_new_options_follow_the_last_option_and_new_features_precede_mailer():
    doc = parse(SMALL)
    options = {**doc.options(), "SmartHost": "[192.0.2.1]", "MaxDaemonChildren": "20"}
    features = {**doc.features(), "use_client_ptr": ()}
    lines = render(doc, options, features, "b7").splitlines()
    privacy_end = lines.index("`noexpn,novrfy')dnl")
    assert lines[privacy_end + 1 : privacy_end + 3] == [
        "define(`confMAX_DAEMON_CHILDREN', `20')dnl",
        "define(`SMART_HOST', `[192.0.2.1]')dnl",
    ]
    assert lines[lines.index("MAILER(`local')dnl") - 1] == "FEATURE(`use_client_ptr')dnl"


def test_without_options_new_ones_follow_ostype_after_the_stamp():
    text = "include(`/usr/share/sendmail/cf/m4/cf.m4')dnl\nOSTYPE(`debian')dnl\nMAILER(`local')dnl\n"
    out = render(parse(text), {"LogLevel": "9"}, {}, "b1")
    assert out.splitlines()[1:4] == [
        "OSTYPE(`debian')dnl",
        "define(`confCF_VERSION', `b1')dnl",
        "define(`confLOG_LEVEL', `9')dnl",
    ]


def test_the_stamp_moves_after_ostype_where_debian_m4_cannot_override_it():
    text = "define(`confCF_VERSION', `early')dnl\nOSTYPE(`debian')dnl\nMAILER(`local')dnl\n"
    out = render(parse(text), {}, {}, "b2")
    assert out == "OSTYPE(`debian')dnl\ndefine(`confCF_VERSION', `b2')dnl\nMAILER(`local')dnl\n"


def test_a_new_feature_goes_before_an_existing_one_that_must_follow_it():
    text = "OSTYPE(`debian')dnl\nFEATURE(`greet_pause', `1000')dnl\nFEATURE(`use_cw_file')dnl\nMAILER(`local')dnl\n"
    features = {"greet_pause": ("1000",), "use_cw_file": (), "ratecontrol": (), "access_db": ()}
    lines = render(parse(text), {}, features, "b3").splitlines()
    assert lines.index("FEATURE(`access_db')dnl") < lines.index("FEATURE(`greet_pause', `1000')dnl")
    assert lines.index("FEATURE(`ratecontrol')dnl") < lines.index("MAILER(`local')dnl")
    assert lines.index("FEATURE(`access_db')dnl") < lines.index("FEATURE(`ratecontrol')dnl")


def test_rendering_is_pure():
    doc = parse(SMALL)
    args = (doc, {"LogLevel": "9", "QueueLA": "8"}, {"access_db": (), "delay_checks": ("friend",)}, "b9")
    assert render(*args) == render(*args)
    assert parse(SMALL).segments == doc.segments


@pytest.mark.parametrize(
    "options, features, build_id",
    [
        ({"LogLevel": "9\nO QueueDirectory=/tmp/evil"}, {}, "b1"),
        ({"FallbackSmartHost": "Relay.Example.com"}, {}, "b1"),
        ({"NoSuchOption": "1"}, {}, "b1"),
        ({}, {"ratecontrol": ("nodelay",)}, "b1"),
        ({}, {}, "b1')dnl"),
        ({}, {}, "dnl"),
        ({"PidFile": "/etc/shadow"}, {}, "b1"),
        ({"DeadLetterDrop": "/root/.ssh/authorized_keys"}, {}, "b1"),
        ({}, {"access_db": ("hash", "/etc/shadow")}, "b1"),
    ],
)
def test_render_refuses_values_that_were_not_cleaned(options, features, build_id):
    with pytest.raises(mcfile.UnsafeValue):
        render(parse(SMALL), options, features, build_id)


# ---------------------------------------------------------------------------------------------
# Round trips through the real m4


def round_trip(text: str, tmp_path: Path, roots: tuple[str, ...] = ROOTS) -> tuple[mcfile.McDocument, str, str]:
    doc = parse(text, roots)
    rendered = mcfile.render_mc(
        doc, doc.options(), doc.features(), "roundtrip-1", reserved=RESERVED, roots=roots, listeners=doc.listeners()
    )
    return doc, m4_cf(text, tmp_path / "original"), m4_cf(rendered, tmp_path / "rendered")


def test_debians_stock_mc_round_trips_to_the_same_cf(tmp_path):
    doc, original, rebuilt = round_trip(STOCK_MC.read_text(), tmp_path)
    assert doc.features() == {
        "no_default_msa": (),
        "use_cw_file": (),
        "access_db": ("", "", "skip"),
        "greet_pause": ("1000",),
        "delay_checks": ("friend", "n"),
        "conncontrol": ("nodelay", "terminate"),
        "ratecontrol": ("nodelay", "terminate"),
    }
    assert doc.options()["ConnectionRateWindowSize"] == "10m"
    assert "PrivacyOptions" in doc.options()
    assert without_stamps(rebuilt) == without_stamps(original)
    assert "DZ8.17.1.9/roundtrip-1" in rebuilt.splitlines()


def test_the_embedded_instance_mc_round_trips_to_the_same_cf(tmp_path):
    layout = Layout(tmp_path / "instance")
    text = render_embedded_mc(
        layout,
        name="rt",
        hostname="mail.example.test",
        address="127.0.0.1",
        port=2525,
        cf_tree=CF_TREE,
        queue_dir=str(layout.spool / "mqueue"),
        pid_file=str(layout.run_dir / "sendmail.pid"),
        access_path=str(layout.conf("access")),
    )
    doc, original, rebuilt = round_trip(text, tmp_path, roots=(os.path.realpath(tmp_path / "instance"),))
    assert doc.notes == []
    assert {"SmartHost", "QueueDirectory", "PidFile", "LogLevel"} <= set(doc.options())
    assert doc.listeners() == [(ListenerSpec("daemon", name="MTA-rt", port="2525", address="127.0.0.1"), "")]
    assert set(doc.features()) == {"no_default_msa", "nocanonify", "accept_unresolvable_domains", "access_db"}
    assert without_stamps(rebuilt) == without_stamps(original)


def test_changing_one_imported_option_changes_only_its_cf_line(tmp_path):
    doc = parse(STOCK_MC.read_text())
    before = m4_cf(render(doc, doc.options(), doc.features(), "one"), tmp_path / "before")
    options = {**doc.options(), "LogLevel": "12", "ConnectionRateWindowSize": "2m"}
    after = m4_cf(render(doc, options, doc.features(), "one"), tmp_path / "after")
    assert m4safe.check_rendered(after, {"LogLevel": "12", "ConnectionRateWindowSize": "2m"}) == []
    prefixes = [catalog.OPTIONS[n].expected_line("").rstrip("=") for n in ("LogLevel", "ConnectionRateWindowSize")]
    assert m4safe.unexpected_changes(before, after, prefixes) == []


# ---------------------------------------------------------------------------------------------
# Paths: under the instance's roots, and every one of them visible to the agent's check


def test_a_path_outside_the_roots_read_from_a_mc_stays_verbatim_with_a_note():
    text = "define(`confPID_FILE', `/etc/shadow')dnl\nFEATURE(`access_db', `hash -T<TMPF> /root/access')dnl\n"
    doc = parse(text)
    assert managed(doc) == [] and doc.text() == text
    assert any("PidFile ‘/etc/shadow’ is kept as written" in note and "/etc/mail" in note for note in doc.notes)
    assert any("FEATURE(access_db) is kept as written" in note for note in doc.notes)
    inside = parse("define(`confPID_FILE', `/run/sendmail/mta/sendmail.pid')dnl\n")
    assert inside.options() == {"PidFile": "/run/sendmail/mta/sendmail.pid"}


def test_nothing_is_parsed_or_rendered_without_the_agents_macro_names():
    with pytest.raises(ValidationError, match="has not reported its cf tree's macro names yet"):
        mcfile.parse_mc(SMALL, reserved=frozenset(), roots=ROOTS)
    with pytest.raises(mcfile.UnsafeValue, match="has not reported"):
        mcfile.render_mc(parse(SMALL), {}, {}, "b1", reserved=frozenset(), roots=ROOTS)


def test_declared_paths_lists_every_path_of_a_mc_managed_or_kept_verbatim():
    text = (
        "define(`confPID_FILE', `/etc/shadow')dnl\n"
        "define(`confDEAD_LETTER_DROP', `/var/spool/mqueue/dead.letter')dnl\n"
        "define(`confDH_PARAMETERS', `none')dnl\n"
        "define(`confLOG_LEVEL', `9')dnl\n"
        "FEATURE(`access_db', `hash -o -T<TMPF> /root/access')dnl\n"
        "FEATURE(`mailertable', `hash /etc/mail/mailertable')dnl\n"
        "FEATURE(`local_lmtp', `/bin/sh', `sh -c id')dnl\n"
    )
    assert mcfile.declared_paths(text) == [
        ("PidFile", "/etc/shadow"),
        ("DeadLetterDrop", "/var/spool/mqueue/dead.letter"),
        ("FEATURE(access_db)", "/root/access"),
        ("FEATURE(mailertable) map file", "/etc/mail/mailertable"),
        ("FEATURE(local_lmtp) mailer path", "/bin/sh"),
    ]
    outside = mcfile.paths_outside(text, {"ServerKeyFile": "/etc/ssl/private/k.pem", "LogLevel": "9"}, ROOTS)
    assert outside == [
        "ServerKeyFile=/etc/ssl/private/k.pem",
        "PidFile=/etc/shadow",
        "FEATURE(access_db)=/root/access",
        "FEATURE(local_lmtp) mailer path=/bin/sh",
    ]
    assert mcfile.paths_outside(text, {}, ()) != [] and mcfile.paths_outside(SMALL, {}, ()) == [
        "FEATURE(access_db) map file=/etc/mail/access"
    ]


# ---------------------------------------------------------------------------------------------
# Listeners: DAEMON_OPTIONS / CLIENT_OPTIONS as typed rows

MTA_V4 = ListenerSpec("daemon", name="MTA-v4", family="inet", port="smtp", address="127.0.0.1")
MSP_V4 = ListenerSpec("daemon", name="MSP-v4", family="inet", port="submission", address="127.0.0.1", modifiers="Ea")


def render_listeners(doc, listeners, build_id="b1") -> str:
    return mcfile.render_mc(
        doc, doc.options(), doc.features(), build_id, reserved=RESERVED, roots=ROOTS, listeners=listeners
    )


def test_debians_two_stock_daemon_lines_import_as_listeners_and_render_byte_for_byte():
    text = STOCK_MC.read_text()
    doc = parse(text)
    assert doc.listeners() == [(MTA_V4, ""), (MSP_V4, "")]
    assert not [n for n in doc.notes if "DAEMON_OPTIONS" in n]
    assert without_stamp_line(render_listeners(doc, doc.listeners())) == text


def without_stamp_line(mc_text: str) -> str:
    return "".join(line for line in mc_text.splitlines(keepends=True) if "confCF_VERSION" not in line)


def test_a_changed_listener_is_rewritten_in_its_own_place_and_a_new_one_follows_the_last():
    text = STOCK_MC.read_text()
    doc = parse(text)
    second = ListenerSpec("daemon", name="MSP-v4", family="inet", port="2587", address="127.0.0.1", modifiers="Ea")
    extra = ListenerSpec("daemon", name="MTA-2", port="2526", address="127.0.0.2", extra="children=20,Listen=64")
    lines = render_listeners(doc, [(MTA_V4, ""), (second, "moved"), (extra, "")]).splitlines()
    original = text.splitlines()
    at = original.index("DAEMON_OPTIONS(`Family=inet,  Name=MSP-v4, Port=submission, M=Ea, Addr=127.0.0.1')dnl")
    assert lines[at] == "DAEMON_OPTIONS(`Name=MSP-v4,Family=inet,Port=2587,Addr=127.0.0.1,M=Ea')dnl # moved"
    assert lines[at + 1] == "DAEMON_OPTIONS(`Name=MTA-2,Port=2526,Addr=127.0.0.2,children=20,Listen=64')dnl"
    assert lines[at - 2] == original[at - 2]  # MTA-v4's line, as written


def test_removed_listeners_leave_no_line_and_new_ones_go_before_mailer_in_a_file_without_any():
    doc = parse(STOCK_MC.read_text())
    out = render_listeners(doc, [])
    assert "\nDAEMON_OPTIONS(" not in out and "dnl DAEMON_OPTIONS(`Family=inet6, Name=MTA-v6" in out
    bare = parse("OSTYPE(`debian')dnl\nFEATURE(`no_default_msa')dnl\nMAILER(`local')dnl\n")
    lines = render_listeners(bare, [(MTA_V4, "")]).splitlines()
    assert lines[lines.index("MAILER(`local')dnl") - 1] == (
        "DAEMON_OPTIONS(`Name=MTA-v4,Family=inet,Port=smtp,Addr=127.0.0.1')dnl"
    )


def test_without_listeners_the_files_own_lines_stay():
    doc = parse(STOCK_MC.read_text())
    out = render(doc, doc.options(), doc.features(), "b1")
    assert without_stamp_line(out) == STOCK_MC.read_text()


@pytest.mark.parametrize(
    "kind, fields, rule",
    [
        ("daemon", {"port": "25", "modifiers": "h"}, "only the letters abcfrsuACEOS"),
        ("client", {"modifiers": "E"}, "only the letters hAS"),
        ("daemon", {"port": "25", "modifiers": "EE"}, "each at most once"),
        ("daemon", {"port": "70000"}, "Port="),
        ("daemon", {"port": "25", "address": "::1", "family": "inet"}, "does not belong to Family=inet"),
        ("daemon", {"port": "25", "extra": "Listen=10,Listen=20"}, "Listen= is given twice"),
        ("daemon", {"port": "25", "extra": "Bogus=1"}, "the other keys a daemon line may have"),
        ("daemon", {"port": "25", "extra": "InputMailFilters=a;b;a"}, "Names a milter twice"),
        ("daemon", {"port": "25", "extra": "DeliveryMode=x"}, "DeliveryMode="),
        ("daemon", {}, "Give at least a port"),
        ("server", {"port": "25"}, "neither daemon nor client"),
    ],
)
def test_listener_fields_are_refused_with_the_rule_they_break(kind, fields, rule):
    with pytest.raises(ValidationError, match=rule):
        mcfile.clean_listener(kind, fields, reserved=RESERVED)


def test_every_hostile_value_is_refused_by_every_listener_field(tmp_path):
    from testing.hostile_values import hostile_values

    accepted = []
    for field in ("name", "address", "port", "modifiers", "extra"):
        for raw in hostile_values(str(tmp_path / "canary")):
            fields = {"port": "2525", field: raw}
            try:
                spec = mcfile.clean_listener("daemon", fields, reserved=RESERVED)
            except ValidationError:
                continue
            if raw.strip(" "):  # spaces alone are an empty field
                accepted.append((field, raw, spec))
    assert accepted == []


def test_two_daemons_on_one_socket_are_a_problem_and_render_refuses_them():
    smtp = ListenerSpec("daemon", name="A", port="smtp", address="127.0.0.1")
    twenty_five = ListenerSpec("daemon", name="B", port="25", address="127.0.0.1")
    assert mcfile.listener_problems([smtp, twenty_five])[0].startswith("Two daemons listen on 127.0.0.1 port 25")
    assert mcfile.listener_problems([smtp, ListenerSpec("client", port="25", address="127.0.0.1")]) == []
    with pytest.raises(mcfile.UnsafeValue, match="Two daemons"):
        render_listeners(parse(SMALL), [(smtp, ""), (twenty_five, "")])


@pytest.mark.parametrize(
    "spec, comment",
    [
        (ListenerSpec("daemon", name="x')dnl", port="25"), ""),
        (ListenerSpec("daemon", port="25", extra="Listen=1\nO QueueDirectory=/tmp"), ""),
        (ListenerSpec("daemon", port="25", address="lower"), ""),
        (ListenerSpec("daemon", name="ABC", port="smtp"), 42),
    ],
)
def test_render_refuses_listeners_that_were_not_cleaned(spec, comment):
    with pytest.raises(mcfile.UnsafeValue):
        render_listeners(parse(SMALL), [(spec, comment)])


def test_a_listener_comment_cannot_end_its_dnl():
    out = render_listeners(parse(SMALL), [(MTA_V4, "one\ndefine(`confLOG_LEVEL', `99')")])
    assert "dnl # onedefine(`confLOG_LEVEL', `99')\n" in out
    assert out.count("confLOG_LEVEL") == 2  # the file's own line and the comment's inert text


# ---------------------------------------------------------------------------------------------
# Masquerading: macro calls, not define()s


MASQUERADING = """include(`/usr/share/sendmail/cf/m4/cf.m4')dnl
OSTYPE(`debian')dnl
MASQUERADE_AS(`example.org')dnl
MASQUERADE_DOMAIN(`a.example.org')dnl
MASQUERADE_DOMAIN(`b.example.org')dnl
EXPOSED_USER(`root')dnl
FEATURE(`masquerade_envelope')dnl
MAILER(`local')dnl
"""


def test_masquerading_is_read_as_catalog_values_with_several_domain_lines_as_one_list():
    doc = parse(MASQUERADING)
    assert doc.options() == {
        "MasqueradeAs": "example.org",
        "MasqueradeDomains": "a.example.org b.example.org",
        "ExposedUsers": "root",
    }
    assert doc.features() == {"masquerade_envelope": ()}
    assert any("MasqueradeDomains is given on 2 lines" in note for note in doc.notes)
    out = render(doc, doc.options(), doc.features(), "m1")
    assert out.count("MASQUERADE_DOMAIN(") == 1
    assert "MASQUERADE_DOMAIN(`a.example.org b.example.org')dnl\n" in out


def test_new_masquerading_goes_after_ostype_and_before_mailer():
    text = "include(`/usr/share/sendmail/cf/m4/cf.m4')dnl\nOSTYPE(`debian')dnl\nMAILER(`local')dnl\n"
    options = {"MasqueradeAs": "example.org", "ExposedUsers": "root daemon"}
    lines = render(parse(text), options, {"allmasquerade": ()}, "m2").splitlines()
    assert lines[1:7] == [
        "OSTYPE(`debian')dnl",
        "define(`confCF_VERSION', `m2')dnl",
        "MASQUERADE_AS(`example.org')dnl",
        "EXPOSED_USER(`root daemon')dnl",
        "FEATURE(`allmasquerade')dnl",
        "MAILER(`local')dnl",
    ]
    assert catalog.expected_lines(options) == ["DMexample.org", "C{E}root daemon"]


@pytest.mark.parametrize(
    "options",
    [
        {"MasqueradeAs": "example.org')dnl"},
        {"MasqueradeAs": "lower.example.org"},
        {"MasqueradeDomains": "a.example.org,b.example.org"},
        {"ExposedUsers": "root\nO QueueDirectory=/tmp"},
    ],
)
def test_render_refuses_masquerading_values_that_were_not_cleaned(options):
    with pytest.raises(mcfile.UnsafeValue):
        render(parse(MASQUERADING), options, {}, "m3")


# ---------------------------------------------------------------------------------------------
# The build stamp wins over every file that may set it; a .mc written for Build gets cf.m4


def test_the_stamp_follows_a_domain_file_that_sets_confcf_version_itself():
    doc = parse(Path("/etc/mail/submit.mc").read_text())
    lines = render(doc, doc.options(), doc.features(), "s1").splitlines()
    stamp = lines.index("define(`confCF_VERSION', `s1')dnl")
    assert stamp > lines.index("DOMAIN(`debian-msp')dnl")
    assert stamp > lines.index("FEATURE(`msp', `[127.0.0.1]', `25')dnl")


def test_no_catalog_feature_file_sets_confcf_version_so_the_stamp_need_not_follow_them():
    for name in catalog.FEATURES:
        assert "confCF_VERSION" not in (Path(CF_TREE) / "feature" / f"{name}.m4").read_text(), name


BUILD_STYLE = "divert(-1)\n# for Build\ndivert(0)dnl\nOSTYPE(linux)dnl\nDOMAIN(generic)dnl\nMAILER(local)dnl\n"


def test_a_mc_written_for_build_gets_the_instances_cf_m4_at_its_top_and_says_so():
    doc = parse(BUILD_STYLE)
    assert doc.needs_cf_m4 and any("written for sendmail's own Build" in note for note in doc.notes)
    out = mcfile.render_mc(doc, {}, {}, "b1", reserved=RESERVED, roots=ROOTS, cf_tree=CF_TREE)
    assert out.startswith(f"include(`{CF_TREE}/m4/cf.m4')dnl\ndivert(-1)\n")
    assert "DOMAIN(generic)dnl\ndefine(`confCF_VERSION', `b1')dnl\n" in out
    assert not parse(SMALL).needs_cf_m4
    assert render(parse(SMALL), {}, {}, "b1").startswith("divert(-1)dnl\n")


@pytest.mark.parametrize("cf_tree", ["relative/cf", "/usr/share/../cf", "/usr/share/cf')dnl", "/usr/lower/cf", "/a b"])
def test_a_cf_tree_that_is_not_a_plain_absolute_path_is_refused(cf_tree):
    with pytest.raises(mcfile.UnsafeValue):
        mcfile.render_mc(parse(BUILD_STYLE), {}, {}, "b1", reserved=RESERVED, roots=ROOTS, cf_tree=cf_tree)
