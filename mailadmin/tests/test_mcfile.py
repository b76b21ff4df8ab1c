"""Parsing and rendering .mc files: what is managed, what is kept verbatim, where new lines go,
and two real-m4 round trips (Debian's stock sendmail.mc and the embedded instance's .mc)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from mailadmin.cf import catalog, m4safe, mcfile
from mailadmin.cf.mcfile import BuildStamp, FeatureDecl, OptionDefine, Unmanaged
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
            "DAEMON_OPTIONS(`Port=25,Name=A')dnl\nDAEMON_OPTIONS(`Port=587,Name=B')dnl\n",
            "DaemonPortOptions is given 2 times",
        ),
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


def test_single_daemon_options_line_is_managed():
    doc = parse("DAEMON_OPTIONS(`Port=2525,Addr=127.0.0.1,Name=MTA-x')dnl\n")
    assert doc.options() == {"DaemonPortOptions": "Port=2525,Addr=127.0.0.1,Name=MTA-x"}


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
    rendered = render(doc, doc.options(), doc.features(), "roundtrip-1", roots)
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
    assert {"SmartHost", "QueueDirectory", "PidFile", "LogLevel", "DaemonPortOptions"} <= set(doc.options())
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
