"""The catalog against Debian's installed cf tree and the real m4: names, defaults, FEATURE
arguments, and the dependency rules m4 only reports with `*** ERROR` while exiting 0."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from mailadmin.cf import catalog, m4safe, mcfile
from mailadmin.mta.gateway import CommandFailed, m4_errors, run_m4
from testing.instances import reserved_words

M4 = "/usr/bin/m4"
CF_TREE = Path("/usr/share/sendmail/cf")
RESERVED = reserved_words(str(CF_TREE), M4)
# The directories the agent declares; the map files and mailer programs below lie under them.
ROOTS = ("/etc/mail", "/usr/local/bin", "/usr/lib/sm.bin")
PROTO = (CF_TREE / "m4" / "proto.m4").read_text()
CFHEAD = (CF_TREE / "m4" / "cfhead.m4").read_text()
# _OPTION(Name, `m4 name', `default shown as #O Name=default when unset')
TREE_OPTIONS = {
    name: (m4, default.replace("MAIL_SETTINGS_DIR`'", "/etc/mail/"))
    for name, m4, default in re.findall(r"^_OPTION\(([^,]+), `(\w+)'(?:, `([^']*(?:`'[^']*)?)')?\)", PROTO, re.M)
}
# Where the tree's #O line shows an example value, not what sendmail does when the option is unset.
TREE_EXAMPLES = {
    "FallbackSmartHost": "fall.back.host.net",
    "HostStatusDirectory": ".hoststat",
    "ProcessTitlePrefix": "prefix",
    "ControlSocketName": "/var/spool/mqueue/.control",
    "DeadLetterDrop": "/var/tmp/dead.letter",
}
# Debian's sendmail -d0.1 (reference/SENDMAIL-FACTS.md §1).
DEBIAN_COMPILE_OPTIONS = (
    "DNSMAP IPV6_FULL LDAPMAP LDAP_NETWORK_TIMEOUT LDAP_REFERRALS LOG MAP_REGEX MATCHGECOS MAXDAEMONS=64 MILTER "
    "MIME7TO8 MIME8TO7 NAMED_BIND NETINET NETINET6 NETUNIX NEWDB=5.3 NIS NISPLUS PIPELINING SASLv2 SCANF SOCKETMAP "
    "STARTTLS TCPWRAPPERS TLS_EC TLS_VRFY_PER_CTX USERDB USE_LDAP_INIT XDEBUG"
).split()
HEAD = f"""divert(-1)dnl
define(`_NO_MAKEINFO_')dnl
include(`{CF_TREE}/m4/cf.m4')dnl
divert(0)dnl
OSTYPE(`debian')dnl
"""
TAIL = "MAILER(`local')dnl\nMAILER(`smtp')dnl\n"


def m4_run(mc_text: str, workdir: Path) -> tuple[str, list[str]]:
    """The cf and the `*** ERROR` lines of a real m4 build (which exits 0 on those)."""
    workdir.mkdir(parents=True, exist_ok=True)
    mc, cf = workdir / "t.mc", workdir / "t.cf"
    mc.write_text(mc_text)
    try:
        result = run_m4(M4, mc, cf, timeout=30)
    except CommandFailed as exc:
        return cf.read_text(), m4_errors(exc.result.stderr_text) or [exc.result.stderr_text]
    return cf.read_text(), m4_errors(result.stderr_text)


def raw_feature_line(name: str, args: tuple[str, ...]) -> str:
    return f"FEATURE(`{name}'" + "".join(f", `{a}'" for a in args) + ")dnl\n"


# ---------------------------------------------------------------------------------------------
# Names and defaults


def test_every_option_m4_name_exists_in_the_installed_tree():
    assert len(TREE_OPTIONS) > 150
    for name, spec in catalog.OPTIONS.items():
        if name in TREE_OPTIONS or spec.kind == catalog.OPTION:
            assert TREE_OPTIONS.get(name, ("missing",))[0] == spec.m4, name
        elif spec.kind == catalog.DEFINE:
            assert f"`{spec.m4}'" in PROTO, name
            assert spec.expected_line("").rstrip("=") in PROTO.replace("`'", "").replace("_OPTION(", "O "), name
        else:
            assert f"define(`{spec.m4}'" in CFHEAD, name


def test_defaults_match_the_trees_commented_option_lines():
    for name, spec in catalog.OPTIONS.items():
        if name not in TREE_OPTIONS:
            continue
        tree_default = TREE_OPTIONS[name][1]
        if name in TREE_EXAMPLES:
            assert (tree_default, spec.default) == (TREE_EXAMPLES[name], ""), name
        else:
            assert spec.default == tree_default, name


def test_the_issues_options_are_all_there_with_their_documented_defaults():
    wanted = {
        "CACertFile": "confCACERT",
        "CACertPath": "confCACERT_PATH",
        "ServerCertFile": "confSERVER_CERT",
        "ServerKeyFile": "confSERVER_KEY",
        "ClientCertFile": "confCLIENT_CERT",
        "ClientKeyFile": "confCLIENT_KEY",
        "CRLFile": "confCRL",
        "DHParameters": "confDH_PARAMETERS",
        "Timeout.starttls": "confTO_STARTTLS",
        "TLSSrvOptions": "confTLS_SRV_OPTIONS",
        "ConnectionRateWindowSize": "confCONNECTION_RATE_WINDOW_SIZE",
        "FallbackSmartHost": "confFALLBACK_SMARTHOST",
        "InputMailFilters": "confINPUT_MAIL_FILTERS",
        "PidFile": "confPID_FILE",
        "QueueSortOrder": "confQUEUE_SORT_ORDER",
        "RejectLogInterval": "confREJECT_LOG_INTERVAL",
        "SuperSafe": "confSAFE_QUEUE",
        "SmartHost": "SMART_HOST",
        "MaxDaemonChildren": "confMAX_DAEMON_CHILDREN",
        "ConnectionRateThrottle": "confCONNECTION_RATE_THROTTLE",
        "MaxMessageSize": "confMAX_MESSAGE_SIZE",
        "QueueDirectory": "QUEUE_DIR",
        "LogLevel": "confLOG_LEVEL",
        "DaemonPortOptions": "DAEMON_OPTIONS",
    }
    assert {name: catalog.OPTIONS[name].m4 for name in wanted} == wanted
    defaults = {n: catalog.OPTIONS[n].default for n in ("Timeout.starttls", "ConnectionRateWindowSize")}
    assert defaults == {"Timeout.starttls": "1h", "ConnectionRateWindowSize": "60s"}
    assert catalog.OPTIONS["RejectLogInterval"].default == "3h"
    assert catalog.OPTIONS["TLSSrvOptions"].type.clean("V", reserved=RESERVED) == "V"
    assert catalog.OPTIONS["QueueSortOrder"].type.clean("none", reserved=RESERVED) == "none"
    for value in ("true", "false", "interactive", "postmilter"):
        catalog.OPTIONS["SuperSafe"].type.clean(value, reserved=RESERVED)
    assert catalog.OPTIONS["InputMailFilters"].type.clean("a b", reserved=RESERVED) == "a,b"
    eight_thirteen = {n for n, s in catalog.OPTIONS.items() if s.since == "8.13" or "8.13" in s.revised}
    assert {"ConnectionRateWindowSize", "FallbackSmartHost", "RejectLogInterval", "SuperSafe", "PidFile"} <= (
        eight_thirteen
    )


def test_macro_style_entries_are_flagged_and_render_their_own_line():
    smart = catalog.OPTIONS["SmartHost"]
    assert smart.macro_style and not smart.cf_line
    assert smart.mc_line("[192.0.2.1]") == "define(`SMART_HOST', `[192.0.2.1]')"
    assert smart.expected_line("[192.0.2.1]") == "DS[192.0.2.1]"
    assert catalog.OPTIONS["MailHub"].expected_line("mailhub.example") == "DHmailhub.example"
    daemon = catalog.OPTIONS["DaemonPortOptions"]
    assert daemon.macro_style and daemon.cf_line
    assert daemon.mc_line("Port=25") == "DAEMON_OPTIONS(`Port=25')"
    log_level = catalog.OPTIONS["LogLevel"]
    assert not log_level.macro_style and log_level.cf_line
    assert catalog.expected_lines({"LogLevel": "9", "QueueDirectory": "/q"}) == ["O LogLevel=9", "O QueueDirectory=/q"]


def test_every_entry_has_a_group_help_and_version():
    for name, spec in catalog.OPTIONS.items():
        assert spec.group and 20 < len(spec.help) < 300 and re.fullmatch(r"8\.\d+", spec.since), name
        assert all(feature in catalog.FEATURES for feature in spec.requires), name
    for name, spec in catalog.FEATURES.items():
        assert (CF_TREE / "feature" / f"{name}.m4").exists(), name
        assert 20 < len(spec.help) < 300, name
        for arg in spec.args:
            assert arg.name and arg.help and isinstance(arg.type, m4safe.ValueType), (name, arg.name)


# ---------------------------------------------------------------------------------------------
# What this sendmail can do


def test_available_says_why_an_option_or_feature_is_missing():
    assert catalog.available(catalog.OPTIONS["ServerCertFile"], DEBIAN_COMPILE_OPTIONS) == (True, "")
    usable, why = catalog.available(catalog.OPTIONS["DANE"], DEBIAN_COMPILE_OPTIONS)
    assert not usable and "DANE" in why and "sendmail -d0.1" in why
    usable, why = catalog.available(catalog.OPTIONS["CACertFile"], ["NEWDB=5.3", "MILTER"])
    assert not usable and "STARTTLS" in why
    assert catalog.available(catalog.FEATURES["badmx"], DEBIAN_COMPILE_OPTIONS) == (True, "")
    usable, why = catalog.available(catalog.FEATURES["badmx"], ["DNSMAP"])
    assert not usable and "MAP_REGEX" in why
    assert catalog.available(catalog.OPTIONS["LogLevel"], []) == (True, "")
    assert catalog.map_types_available(DEBIAN_COMPILE_OPTIONS) == ["hash", "btree"]


# ---------------------------------------------------------------------------------------------
# FEATURE rules


@pytest.mark.parametrize(
    "selected, fragment",
    [
        ({"ratecontrol": ()}, "FEATURE(ratecontrol) requires FEATURE(access_db)"),
        ({"conncontrol": ("", "terminate")}, "FEATURE(conncontrol) requires FEATURE(access_db)"),
        ({"access_db": (), "ratecontrol": ("nodelay",)}, "`nodelay' needs FEATURE(delay_checks)"),
        ({"access_db": (), "conncontrol": ("nodelay", "terminate")}, "`nodelay' needs FEATURE(delay_checks)"),
        ({"greet_pause": ()}, "needs FEATURE(access_db)"),
        ({"nosuchfeature": ()}, "not one the console knows"),
        ({"access_db": (), "ratecontrol": ("nodelay", "terminate", "x")}, "at most 2 argument"),
        ({"access_db": (), "ratecontrol": ("later",)}, "not one of the choices"),
        ({"access_db": ("hash",)}, "both the map type and the map file"),
        ({"access_db": ("hash", "/etc/mail/access", "skip,nosuch")}, "Item 2"),
        ({"dnsbl": ()}, "zone is required"),
        ({"always_add_domain": ("lower.example",)}, "‘lower’ is an m4 macro name"),
        ({"greet_pause": ("5000\nConnect:10 RELAY",)}, "line break"),
        ({"delay_checks": ("Friend",)}, "write it as ‘friend’"),
    ],
)
def test_check_features_explains_what_m4_would_reject(selected, fragment):
    problems = catalog.check_features(selected, reserved=RESERVED, roots=ROOTS)
    assert any(fragment in problem for problem in problems), problems


def test_a_consistent_selection_has_no_problems():
    selected = {
        "access_db": ("hash", "/etc/mail/access"),
        "delay_checks": ("friend",),
        "ratecontrol": ("nodelay", "terminate"),
        "conncontrol": ("nodelay",),
        "greet_pause": ("5000",),
    }
    assert catalog.check_features(selected, reserved=RESERVED, roots=ROOTS) == []
    assert catalog.feature_warnings(selected) == []
    assert catalog.feature_warnings({"block_bad_helo": ()}) != []
    assert catalog.feature_warnings({"greet_pause": ("500",)}) != []


def test_check_features_flags_exactly_the_cases_where_m4_prints_error_and_exits_0(tmp_path):
    """Every combination of access_db, delay_checks and ratecontrol/conncontrol arguments (plus
    greet_pause and blocklist_recipients without access_db): the catalog refuses a selection
    exactly when real m4 prints `*** ERROR` for it."""
    cases: list[dict[str, tuple[str, ...]]] = []
    for feature, args, access_db, delay_checks in itertools.product(
        ("ratecontrol", "conncontrol"),
        ((), ("nodelay",), ("", "terminate"), ("nodelay", "terminate"), ("nodelay", "hangup")),
        (False, True),
        (False, True),
    ):
        selected = {"access_db": ()} if access_db else {}
        if delay_checks:
            selected["delay_checks"] = ()
        selected[feature] = args
        cases.append(selected)
    cases += [
        {"greet_pause": ()},
        {"greet_pause": ("2000",)},
        {"access_db": (), "greet_pause": ()},
        {"blocklist_recipients": ()},
        {"access_db": (), "blocklist_recipients": ()},
        {"dnsbl": ()},
        {"dnsbl": ("bl.example.org",)},
        {"delay_checks": ("later",)},
        {"nocanonify": ("always",)},
    ]
    disagreements, outcomes = [], set()
    for number, selected in enumerate(cases):
        lines = "".join(raw_feature_line(n, selected[n]) for n in catalog.feature_order(selected))
        _, errors = m4_run(HEAD + lines + TAIL, tmp_path / str(number))
        outcomes.add(bool(errors))
        problems = catalog.check_features(selected, reserved=RESERVED, roots=ROOTS)
        if bool(errors) != bool(problems):
            disagreements.append((selected, errors, problems))
    assert disagreements == []
    assert outcomes == {True, False}


def test_feature_order_puts_prerequisites_first():
    order = catalog.feature_order(["ratecontrol", "greet_pause", "conncontrol", "delay_checks", "access_db"])
    assert order[0] == "access_db"
    assert order.index("delay_checks") < order.index("ratecontrol")
    assert order.index("delay_checks") < order.index("conncontrol")
    assert catalog.must_precede("access_db", "ratecontrol") and not catalog.must_precede("ratecontrol", "access_db")
    assert catalog.feature_order(catalog.FEATURES) and set(catalog.feature_order(catalog.FEATURES)) == set(
        catalog.FEATURES
    )


# How each FEATURE's values must appear in the cf.
def _oracle(name: str, values: tuple[str, ...]) -> list[str]:
    if name == "access_db":
        return [f"Kaccess {values[0]} -T<TMPF> {values[1]}"]
    if name == "greet_pause":
        return [f"R<?> <$*>\t\t$# {values[0]}"]
    if name == "local_lmtp":
        return [f"Mlocal,\t\tP={values[0]},", f"\t\tA={values[1]}"]
    if name == "smrsh":
        return [f"Mprog,\t\tP={values[0]},"]
    if name in ("virtusertable", "mailertable"):
        return [f"K{'virtuser' if name == 'virtusertable' else name} {values[0]} {values[1]}"]
    if name == "always_add_domain":
        return [f"R$+\t\t\t$@ $1 < @ {values[0]} >"]
    if name == "dnsbl":
        return [f"$(dnsbl $4.$3.$2.$1.{values[0]}. $: OK $)"]
    return []


EVERY_FEATURE = {
    "access_db": ("hash", "/etc/mail/access-x", "skip,lookupdotdomain"),
    "delay_checks": ("friend", "n"),
    "greet_pause": ("4321",),
    "ratecontrol": ("nodelay", "terminate"),
    "conncontrol": ("nodelay", "terminate"),
    "mtamark": ("t",),
    "use_client_ptr": (),
    "local_lmtp": ("/usr/local/bin/lmtp-x", "lmtp -z"),
    "smrsh": ("/usr/lib/sm.bin/smrsh-x",),
    "virtusertable": ("btree", "/etc/mail/vut-x"),
    "mailertable": ("hash", "/etc/mail/mt-x"),
    "always_add_domain": ("added.example",),
    "nocanonify": ("canonify_hosts",),
    "no_default_msa": (),
    "accept_unresolvable_domains": (),
    "relay_hosts_only": (),
    "use_cw_file": (),
    "use_ct_file": (),
    "blocklist_recipients": (),
    "dnsbl": ("bl.example.org", "quarantine", "t"),
    "require_rdns": (),
    "block_bad_helo": (),
    "badmx": (),
    "masquerade_envelope": (),
    "masquerade_entire_domain": (),
    "allmasquerade": (),
    "limited_masquerade": (),
    "local_no_masquerade": (),
}


def test_every_feature_builds_cleanly_with_its_values_verbatim(tmp_path):
    assert set(EVERY_FEATURE) == set(catalog.FEATURES)
    doc = mcfile.parse_mc(HEAD + TAIL, reserved=RESERVED, roots=ROOTS)
    mc = mcfile.render_mc(doc, {}, EVERY_FEATURE, "features", reserved=RESERVED, roots=ROOTS)
    (tmp_path / "t.mc").write_text(mc)
    result = run_m4(M4, tmp_path / "t.mc", tmp_path / "t.cf", timeout=30)
    assert result.stderr_text == ""
    cf = (tmp_path / "t.cf").read_text()
    for name, values in EVERY_FEATURE.items():
        for expected in _oracle(name, values):
            assert expected in cf, (name, expected)


def test_feature_arguments_round_trip_through_m4_form():
    assert catalog.feature_m4_args("access_db", ("hash", "/etc/mail/access")) == ("hash -T<TMPF> /etc/mail/access",)
    assert catalog.feature_m4_args("access_db", ("", "", "skip")) == ("", "skip")
    assert catalog.feature_values("access_db", ("", "skip")) == ("", "", "skip")
    assert catalog.feature_values("access_db", ("hash /etc/mail/access",)) == ("hash", "/etc/mail/access")
    assert catalog.feature_values("access_db", ("LDAP",)) is None
    assert catalog.feature_m4_args("mtamark", ("t",)) == ("", "t")
    assert catalog.feature_values("mtamark", ("550 go away",)) is None
    assert catalog.feature_m4_args("ratecontrol", ("", "terminate")) == ("", "terminate")
    assert catalog.feature_m4_args("virtusertable", ("hash", "/etc/mail/v")) == ("hash /etc/mail/v",)


def test_argument_types_refuse_what_would_reach_m4_raw():
    lmtp_args = catalog.FEATURES["local_lmtp"].args[1].type
    assert lmtp_args.clean("lmtp -z", reserved=RESERVED) == "lmtp -z"
    for hostile in ("$u", "lmtp;id", "a,b)", "../x"):
        with pytest.raises(ValidationError):
            lmtp_args.clean(hostile, reserved=RESERVED)


# ---------------------------------------------------------------------------------------------
# Path-typed values: under the instance's roots when set, listed for the agent to check again


# Every option and FEATURE argument that names a file or directory root's sendmail opens, writes or runs.
PATH_OPTIONS = {
    "CACertFile",
    "CACertPath",
    "ServerCertFile",
    "ServerKeyFile",
    "ClientCertFile",
    "ClientKeyFile",
    "CRLFile",
    "CRLPath",
    "DHParameters",
    "QueueDirectory",
    "HostStatusDirectory",
    "PidFile",
    "AliasFile",
    "HelpFile",
    "StatusFile",
    "ControlSocketName",
    "DeadLetterDrop",
    "ServiceSwitchFile",
    "HostsFile",
    "SafeFileEnvironment",
}
PATH_FEATURE_ARGS = {
    ("access_db", "map file"),
    ("local_lmtp", "mailer path"),
    ("smrsh", "smrsh path"),
    ("virtusertable", "map file"),
    ("mailertable", "map file"),
}


def test_every_path_typed_option_and_feature_argument_is_listed_for_the_agent():
    options = {name: "/nowhere/x" for name in catalog.OPTIONS}
    features = {name: ("/nowhere/x",) * len(spec.args) for name, spec in catalog.FEATURES.items()}
    found = catalog.path_values(options, features)
    assert {what for what, _ in found if not what.startswith("FEATURE(")} == PATH_OPTIONS
    listed = {what for what, _ in found if what.startswith("FEATURE(")}
    assert listed == {f"FEATURE({name}) {arg}" for name, arg in PATH_FEATURE_ARGS}
    assert {path for _, path in found} == {"/nowhere/x"}
    assert catalog.path_values({"DHParameters": "none", "PidFile": "", "NoSuchOption": "/x"}, {"nosuch": ("/x",)}) == []


def test_a_map_file_or_mailer_outside_the_roots_is_refused_naming_the_roots():
    for selected in (
        {"access_db": ("hash", "/etc/shadow")},
        {"virtusertable": ("hash", "/root/.ssh/authorized_keys")},
        {"local_lmtp": ("/bin/sh",)},
        {"smrsh": ("/usr/bin/env",)},
    ):
        problems = catalog.check_features(selected, reserved=RESERVED, roots=ROOTS)
        assert any("outside this instance's directories" in p and "/etc/mail" in p for p in problems), problems
    assert catalog.check_features({"access_db": ("hash", "/etc/mail/access")}, reserved=RESERVED, roots=ROOTS) == []
    no_roots = catalog.check_features({"access_db": ("hash", "/etc/mail/access")}, reserved=RESERVED, roots=())
    assert any("has not declared its directories" in p for p in no_roots)


# ---------------------------------------------------------------------------------------------
# Flag arguments: ratecontrol's and conncontrol's `nodelay' and `terminate'


def test_ratecontrol_and_conncontrol_arguments_are_flags_with_a_label_and_a_meaning():
    for name in ("ratecontrol", "conncontrol"):
        flags = [arg.flag for arg in catalog.FEATURES[name].args]
        assert [flag.word for flag in flags] == ["nodelay", "terminate"], name
        assert "421" in flags[1].label and "452" in flags[1].meaning
        assert "delay_checks" in flags[0].meaning
    assert catalog.FEATURES["access_db"].args[0].flag is None


def test_a_flag_keeps_its_position_so_terminate_alone_is_the_second_argument():
    assert catalog.feature_m4_args("conncontrol", ("", "terminate")) == ("", "terminate")
    assert catalog.feature_m4_args("ratecontrol", ("nodelay", "")) == ("nodelay",)
    assert catalog.feature_values("ratecontrol", ("", "terminate")) == ("", "terminate")
    problems = catalog.check_features({"access_db": (), "ratecontrol": ("terminate",)}, reserved=RESERVED)
    assert any("not one of the choices" in problem for problem in problems), problems


def test_a_flag_is_matched_exactly_because_ratecontrol_m4_compares_terminate_case_sensitively(tmp_path):
    """m4 prints *** ERROR for `Terminate', so the console refuses it rather than folding its case."""
    _, errors = m4_run(
        HEAD + raw_feature_line("access_db", ()) + raw_feature_line("ratecontrol", ("", "Terminate")) + TAIL, tmp_path
    )
    assert errors
    problems = catalog.check_features({"access_db": (), "ratecontrol": ("", "Terminate")}, reserved=RESERVED)
    assert any("not one of the choices" in problem for problem in problems), problems


@pytest.mark.parametrize(
    "feature, reply",
    [("ratecontrol", "Connection rate limit exceeded."), ("conncontrol", "Too many open connections.")],
)
def test_ticking_terminate_builds_a_cf_whose_rule_answers_421_instead_of_452(tmp_path, feature, reply):
    doc = mcfile.parse_mc(HEAD + TAIL, reserved=RESERVED, roots=ROOTS)
    built = {}
    for args in (("", "terminate"), ()):
        features = {"access_db": (), feature: args}
        mc = mcfile.render_mc(doc, {}, features, "flags", reserved=RESERVED, roots=ROOTS)
        assert (f"FEATURE(`{feature}', `', `terminate')dnl" in mc) == bool(args)
        built[args], errors = m4_run(mc, tmp_path / str(len(args)))
        assert errors == []
    assert f"$#error $@ 4.3.2 $: 421 {reply}" in built[("", "terminate")]
    assert f"$#error $@ 4.3.2 $: 452 {reply}" in built[()]
    assert "421" not in "".join(line for line in built[()].splitlines() if reply in line)


def test_an_imported_mc_with_the_flag_words_fills_the_flags():
    text = (
        HEAD
        + "".join(
            raw_feature_line(name, args)
            for name, args in [
                ("access_db", ()),
                ("delay_checks", ()),
                ("ratecontrol", ("nodelay", "terminate")),
                ("conncontrol", ("", "terminate")),
            ]
        )
        + TAIL
    )
    features = mcfile.parse_mc(text, reserved=RESERVED, roots=ROOTS).features()
    assert features["ratecontrol"] == ("nodelay", "terminate")
    assert features["conncontrol"] == ("", "terminate")
