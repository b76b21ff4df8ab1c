"""Typed values are fixed points of m4: hostile input is refused with the rule it broke, and
whatever is accepted comes out of the real m4 and Debian's cf tree verbatim."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mailadmin.cf import catalog, m4safe, mcfile
from mailadmin.mta.gateway import CommandFailed, run_m4
from testing.hostile_values import hostile_values, probe_corpus
from testing.instances import make_instance_root, reserved_words

M4 = "/usr/bin/m4"
CF_TREE = "/usr/share/sendmail/cf"
# What the host's agent reports for an instance built with this tree (the value types take it as data).
RESERVED = reserved_words(CF_TREE, M4)
# The directories an agent would declare for a Debian instance; path-typed values must lie under one.
ROOTS = ("/etc/mail", "/var/spool/mqueue", "/run/sendmail", "/var/log")
# _NO_MAKEINFO_ skips cfhead.m4's makeinfo.sh run (a shell per build, and a date in the cf).
BASE_MC = f"""divert(-1)dnl
define(`_NO_MAKEINFO_')dnl
include(`{CF_TREE}/m4/cf.m4')dnl
divert(0)dnl
OSTYPE(`debian')dnl
MAILER(`local')dnl
MAILER(`smtp')dnl
"""
BASE = mcfile.parse_mc(BASE_MC, reserved=RESERVED, roots=ROOTS)


def build(mc_text: str, workdir: Path) -> str:
    """Real m4 on an .mc, through the gateway; fails the test on `*** ERROR`."""
    workdir.mkdir(parents=True, exist_ok=True)
    mc, cf = workdir / "t.mc", workdir / "t.cf"
    mc.write_text(mc_text)
    try:
        run_m4(M4, mc, cf, timeout=30)
    except CommandFailed as exc:
        pytest.fail(f"m4 failed: {exc}")
    return cf.read_text()


def typed_fields() -> list[tuple[str, m4safe.ValueType]]:
    """Every typed field of the catalog, the access-map key type, and DaemonPortOptions' parts."""
    fields = [(f"option {name}", spec.type) for name, spec in catalog.OPTIONS.items()]
    fields += [(f"FEATURE({f}) {a.name}", a.type) for f, spec in catalog.FEATURES.items() for a in spec.args]
    fields += [("access map key", m4safe.AddressOrNetworkValue())]
    fields += [(f"DaemonPortOptions {key}=", t) for key, t in m4safe.DaemonPortValue.FIELDS.items()]
    return fields


def refusal(value_type: m4safe.ValueType, raw: str, roots: tuple[str, ...] = ROOTS) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        value_type.clean(raw, reserved=RESERVED, roots=roots)
    return caught.value


# ---------------------------------------------------------------------------------------------
# Hostile input


def test_the_hostile_corpus_is_large_and_distinct(tmp_path):
    values = hostile_values(str(tmp_path / "canary"))
    assert len(values) == len(set(values)) >= 500
    assert len(probe_corpus(str(tmp_path / "canary"))) == 372


def test_every_hostile_value_is_refused_by_every_typed_field_naming_the_rule(tmp_path):
    values = hostile_values(str(tmp_path / "canary"))
    accepted, unnamed = [], []
    for label, value_type in typed_fields():
        for raw in values:
            try:
                # The canary's directory is a root: a hostile path is refused for what it is, not where.
                value_type.clean(raw, reserved=RESERVED, roots=(str(tmp_path),))
            except ValidationError as exc:
                if exc.code not in m4safe.RULE_CODES or len(exc.message) < 15:
                    unnamed.append((label, raw[:40], exc.code, exc.message))
                continue
            accepted.append((label, raw[:60]))
    assert accepted == []
    assert unnamed == []
    assert not (tmp_path / "canary").exists()


@pytest.mark.parametrize(
    "value_type, raw, code, words",
    [
        (m4safe.HostnameValue(), "a,b.example.com", "comma", "comma — not allowed in sendmail option values"),
        (m4safe.HostnameValue(), "lower.example.com", "macro_name", "‘lower’ is an m4 macro name"),
        (m4safe.HostnameValue(), "Lower.Example.com", "macro_name", "‘lower’ is an m4 macro name"),
        (m4safe.HostnameValue(), "dnl.x", "macro_name", "‘dnl’ is an m4 macro name"),
        (m4safe.PathValue(), "/etc/mail/ALIAS_FILE", "macro_name", "‘ALIAS_FILE’ is an m4 macro name"),
        (m4safe.HostnameValue(), "__file__.example.com", "macro_name", "‘__file__’"),
        (m4safe.NumberValue(), "5000\nConnect:10 RELAY", "line_break", "line break"),
        (m4safe.PathValue(), "/etc/mail/x\x00", "control_character", "control character (U+0000)"),
        (m4safe.PathValue(), "/etc/mail/x y", "whitespace", "space"),
        (m4safe.WordValue(), "a\tb", "control_character", "U+0009"),
        (m4safe.HostnameValue(), "mаil.example.com", "not_ascii", "non-ASCII character (U+0430"),
        (m4safe.PathValue(), "/tmp/x;id", "shell_character", "semicolon"),
        (m4safe.PathValue(), "/tmp/$(id)", "dollar", "dollar sign"),
        (m4safe.CipherListValue(), "HIGH:!aNULL`'", "quote", "backquote"),
        (m4safe.EnumValue(("a",)), "a#b", "hash", "hash sign"),
        (m4safe.RelayValue(), "[10.0.0.1];id", "shell_character", "semicolon"),
        (m4safe.RelayValue(), "relay[1.2.3.4]", "invalid", "Brackets are allowed only around a whole address"),
        (m4safe.PathValue(), "/etc/mail/../x", "invalid", "“..”"),
        (m4safe.PathValue(), "x" * 600, "too_long", "at most 255"),
        (m4safe.NumberValue(1, 10), "11", "out_of_range", "out of range"),
        (m4safe.EnumValue(("priority", "host")), "hosts", "choice", "not one of the choices"),
        (m4safe.ListValue(m4safe.WordValue()), "a,,b", "empty_item", "empty item"),
        (m4safe.ListValue(m4safe.WordValue()), "a,b,a", "duplicate", "listed twice"),
        (m4safe.ListValue(m4safe.WordValue()), "a,b(", "bracket", "Item 2: Contains a parenthesis"),
        (m4safe.IntervalValue(), "30m1h", "invalid", "out of order"),
        (m4safe.IntervalValue(None), "3", "invalid", "Has no unit"),
        (m4safe.DaemonPortValue(), "Port=25,Addr=10.0.0.1,Port=26", "duplicate", "Port= is given twice"),
        (m4safe.DaemonPortValue(), "Port=25,Name=x')dnl", "quote", "single quote"),
        (m4safe.PathValue(), "", "required", "required"),
    ],
)
def test_each_refusal_says_which_rule_was_broken(value_type, raw, code, words):
    error = refusal(value_type, raw)
    assert error.code == code
    assert words in error.message


def test_nothing_that_was_refused_reached_m4_and_no_payload_ran(tmp_path):
    """A control build shows the canary mechanism works: an unvalidated payload runs. Then every
    value any field accepts from both corpora is built through real m4, and the canary stays absent."""
    control = tmp_path / "control-canary"
    raw_payload = f"define(`confFALLBACK_SMARTHOST', `esyscmd(touch {control})')dnl\n"
    build(BASE_MC.replace("MAILER(`local')", raw_payload + "MAILER(`local')"), tmp_path / "control")
    assert control.exists(), "the control payload should have run: the canary test proves nothing otherwise"

    canary = tmp_path / "canary"
    values = hostile_values(str(canary)) + probe_corpus(str(canary))
    roots = (str(tmp_path),)
    accepted: dict[str, list[str]] = {}
    for name, spec in catalog.OPTIONS.items():
        for raw in values:
            try:
                value = spec.type.clean(raw, reserved=RESERVED, roots=roots)
            except ValidationError:
                continue
            if value not in accepted.setdefault(name, []):
                accepted[name].append(value)
    assert sum(map(len, accepted.values())) > 0
    rounds = max(map(len, accepted.values()))
    for number in range(rounds):
        options = {name: found[number] for name, found in accepted.items() if number < len(found)}
        mc = mcfile.render_mc(BASE, options, {}, f"probe-{number}", reserved=RESERVED, roots=roots)
        cf = build(mc, tmp_path / f"round{number}")
        assert m4safe.missing_lines(cf, catalog.expected_lines(options)) == []
    assert not canary.exists()


# ---------------------------------------------------------------------------------------------
# What the types accept


@pytest.mark.parametrize(
    "value_type, raw, cleaned",
    [
        (m4safe.HostnameValue(), "Mail.Example.COM", "mail.example.com"),
        (m4safe.HostnameValue(), "localhost", "localhost"),
        (m4safe.HostnameValue(), "xn--bcher-kva.example", "xn--bcher-kva.example"),
        (m4safe.RelayValue(), "[192.0.2.1]", "[192.0.2.1]"),
        (m4safe.RelayValue(), "[IPv6:2001:DB8:0:0::1]", "[IPv6:2001:db8::1]"),
        (m4safe.RelayValue(), "[Relay.Example.net]", "[relay.example.net]"),
        (m4safe.RelayValue(allow_mailer=True), "ESMTP:[192.0.2.1]", "esmtp:[192.0.2.1]"),
        (m4safe.RelayValue(allow_mailer=True), "relay:mail.example.net", "relay:mail.example.net"),
        (m4safe.PathValue(), "/etc/mail/certs/server+1.pem", "/etc/mail/certs/server+1.pem"),
        (m4safe.NumberValue(0, 100), "0", "0"),
        (m4safe.IntervalValue(), "1h30m", "1h30m"),
        (m4safe.IntervalValue(), "0s", "0s"),
        (m4safe.IntervalValue("s"), "60", "60"),
        (m4safe.EnumValue(("True", "PostMilter")), "postmilter", "PostMilter"),
        (m4safe.BoolValue(), "false", "False"),
        (m4safe.ListValue(m4safe.WordValue()), "clamav, spamass rspamd", "clamav,spamass,rspamd"),
        (m4safe.ListValue(m4safe.ArgumentValue(), " "), "mail.local,-l", "mail.local -l"),
        (m4safe.CipherListValue(), "DEFAULT@SECLEVEL=2", "DEFAULT@SECLEVEL=2"),
        (m4safe.MailboxValue(), "hostmaster@Example.org", "hostmaster@example.org"),
        (m4safe.AddressOrNetworkValue(), "192.168.2", "192.168.2"),
        (m4safe.AddressOrNetworkValue(), "ipv6:2001:DB8::1", "IPv6:2001:db8::1"),
        (m4safe.AddressOrNetworkValue(), "IPv6:2001:db8", "IPv6:2001:db8"),
        (m4safe.AddressOrNetworkValue(), "Spam.Example", "spam.example"),
        (m4safe.ChoiceOrPathValue(("none", "i")), "NONE", "none"),
        (m4safe.DaemonPortValue(), "port=2525, addr=127.0.0.1, name=MTA-x", "Port=2525,Addr=127.0.0.1,Name=MTA-x"),
        (m4safe.DaemonPortValue(), "Family=inet6,Port=smtp,Addr=::1,M=Ea", "Family=inet6,Port=smtp,Addr=::1,M=Ea"),
        (m4safe.MillisecondsValue(), "5000", "5000"),
        (m4safe.WordValue(required=False), "", ""),
    ],
)
def test_accepted_values_are_cleaned_to_one_canonical_spelling(value_type, raw, cleaned):
    assert value_type.clean(raw, reserved=RESERVED, roots=ROOTS) == cleaned
    assert value_type.clean(cleaned, reserved=RESERVED, roots=ROOTS) == cleaned


def test_daemon_options_compose_from_fields_and_split_back():
    value_type = m4safe.DaemonPortValue()
    fields = {"Port": "587", "Addr": "127.0.0.1", "Name": "MSA", "M": "Ea", "Family": ""}
    value = value_type.compose(fields, reserved=RESERVED)
    assert value == "Port=587,Addr=127.0.0.1,Name=MSA,M=Ea"
    assert value_type.fields(value) == {"Port": "587", "Addr": "127.0.0.1", "Name": "MSA", "M": "Ea"}
    assert refusal(value_type, "Family=inet6,Port=25,Addr=127.0.0.1").code == "invalid"


def test_every_catalog_type_describes_itself_in_one_line():
    for label, value_type in typed_fields():
        description = value_type.describe()
        assert description and "\n" not in description and len(description) < 160, label


# ---------------------------------------------------------------------------------------------
# Paths lie under the instance's roots; nothing is judged without the agent's report


@pytest.fixture
def instance_root(tmp_path):
    """A root as an agent declares it (a real directory), holding a link that points out of it."""
    return make_instance_root(tmp_path)


@pytest.mark.parametrize(
    "value_type, raw",
    [
        (m4safe.PathValue(), "/etc/shadow"),
        (m4safe.PathValue(), "/root/.ssh/authorized_keys"),
        (m4safe.PathValue(), "ROOT-evil/sendmail.pid"),
        (m4safe.PathValue(), "ROOT/escape/shadow"),
        (m4safe.ChoiceOrPathValue(("none", "i")), "/etc/ssl/dh.pem"),
        (m4safe.ListValue(m4safe.PathValue()), "ROOT/run/a,/etc/shadow"),
    ],
)
def test_a_path_outside_the_roots_is_refused_naming_the_roots_allowed(value_type, raw, instance_root):
    error = refusal(value_type, raw.replace("ROOT", instance_root), roots=(instance_root,))
    assert error.code == "outside_roots"
    assert "outside this instance's directories" in error.message and instance_root in error.message


def test_a_dotdot_escape_from_a_root_is_refused(instance_root):
    error = refusal(m4safe.PathValue(), f"{instance_root}/run/../../../etc/shadow", roots=(instance_root,))
    assert error.code == "invalid" and "“..”" in error.message


def test_a_path_under_the_roots_is_accepted(instance_root):
    roots = ("/var/log", instance_root)
    for raw in (f"{instance_root}/run/sendmail.pid", f"{instance_root}/not-yet/dead.letter", instance_root):
        assert m4safe.PathValue().clean(raw, reserved=RESERVED, roots=roots) == raw
    assert m4safe.ChoiceOrPathValue(("none",)).clean("none", reserved=RESERVED, roots=()) == "none"


def test_without_declared_roots_no_path_is_accepted():
    error = refusal(m4safe.PathValue(), "/etc/mail/x.pem", roots=())
    assert error.code == "no_roots" and "has not declared its directories" in error.message


def test_without_the_agents_macro_names_no_value_is_judged():
    """An empty set of macro names would let lower.example.com through: every type refuses to judge."""
    for label, value_type in typed_fields():
        for raw in ("lower.example.com", "/etc/mail/x", "Port=25", "5"):
            with pytest.raises(ValidationError) as caught:
                value_type.clean(raw, reserved=frozenset(), roots=ROOTS)
            assert caught.value.code == "not_reported", label
            assert "has not reported its cf tree's macro names yet" in caught.value.message


def test_each_type_names_the_paths_in_its_value():
    assert m4safe.PathValue().paths("/etc/mail/a") == ("/etc/mail/a",)
    assert m4safe.ChoiceOrPathValue(("none",)).paths("none") == ()
    assert m4safe.ChoiceOrPathValue(("none",)).paths("/x/dh.pem") == ("/x/dh.pem",)
    assert m4safe.ListValue(m4safe.PathValue()).paths("/a,/b") == ("/a", "/b")
    assert m4safe.HostnameValue().paths("mail.example.com") == ()


# ---------------------------------------------------------------------------------------------
# The oracle


def test_check_rendered_lists_the_option_lines_missing_from_a_cf():
    cf = "O PidFile=/run/x.pid\nO LogLevel=9\n#O QueueLA=8\n"
    assert m4safe.check_rendered(cf, {"PidFile": "/run/x.pid", "LogLevel": "9"}) == []
    assert m4safe.check_rendered(cf, {"LogLevel": "12", "QueueLA": "8"}) == ["O LogLevel=12", "O QueueLA=8"]
    assert m4safe.missing_lines("DSrelay.example\n", ["DSrelay.example", "DH"]) == ["DH"]


def test_unexpected_changes_ignores_stamps_and_the_options_being_set():
    before = "##### built by a\nDZ8.17/one\n#O QueueLA=8\nO LogLevel=9\nR$* $@ ok\n"
    after = "##### built by b\nDZ8.17/two\nO QueueLA=3\nO LogLevel=9\nR$* $@ changed\n"
    assert m4safe.unexpected_changes(before, after, ["O QueueLA"]) == ["- R$* $@ ok", "+ R$* $@ changed"]


# ---------------------------------------------------------------------------------------------
# Property: whatever a validator accepts, m4 reproduces verbatim and changes nothing else

LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
HOSTNAME = st.lists(LABEL, min_size=1, max_size=4).map(".".join).filter(lambda h: not h.split(".")[-1].isdigit())
MIXED_CASE_HOSTNAME = st.tuples(HOSTNAME, st.booleans()).map(lambda pair: pair[0].upper() if pair[1] else pair[0])
COMPONENT = st.from_regex(r"[A-Za-z0-9_+-][A-Za-z0-9_.+-]{0,12}", fullmatch=True)
# Under one of the roots: a path anywhere else is refused before m4 could see it.
PATH = st.tuples(st.sampled_from(ROOTS), st.lists(COMPONENT, min_size=1, max_size=5)).map(
    lambda pair: pair[0] + "/" + "/".join(pair[1])
)
IPV4 = st.ip_addresses(v=4).map(str)
IPV6 = st.ip_addresses(v=6).map(str)
WORD = st.from_regex(r"[A-Za-z0-9_-]{1,16}", fullmatch=True)
SEPARATOR = st.sampled_from([",", " ", ", "])


def any_case(choices):
    return st.sampled_from(choices).flatmap(lambda c: st.sampled_from([c, c.lower(), c.upper()]))


def listed(items):
    return st.tuples(st.lists(items, min_size=1, max_size=5, unique=True), SEPARATOR).map(
        lambda pair: pair[1].join(pair[0])
    )


def relay(allow_mailer: bool):
    target = st.one_of(
        MIXED_CASE_HOSTNAME,
        IPV4.map(lambda a: f"[{a}]"),
        IPV6.map(lambda a: f"[IPv6:{a}]"),
        HOSTNAME.map(lambda h: f"[{h}]"),
    )
    if not allow_mailer:
        return target
    return st.tuples(st.sampled_from(["", *(m + ":" for m in m4safe.SMTP_MAILERS)]), target).map("".join)


def interval():
    units = st.lists(st.sampled_from("wdhms"), min_size=1, max_size=5, unique=True).map(
        lambda us: sorted(us, key="wdhms".index)
    )
    parts = units.flatmap(lambda us: st.tuples(*[st.integers(0, 999).map(lambda n, u=u: f"{n}{u}") for u in us]))
    return st.one_of(parts.map("".join), st.integers(0, 10**6).map(str))


def daemon_options():
    fields = st.fixed_dictionaries(
        {"Port": st.one_of(st.integers(1, 65535).map(str), st.sampled_from(["smtp", "submission"]))},
        optional={
            "Addr": st.one_of(IPV4, IPV6),
            "Name": WORD,
            "M": st.sets(st.sampled_from("abcfsuACEOS"), min_size=1).map("".join),
        },
    )
    return fields.map(lambda f: ",".join(f"{k}={v}" for k, v in f.items()))


# One option per kind of value, each an `O` line (or SmartHost's DS line) m4 fills in directly.
PROPERTY_CASES = {
    "ServerCertFile": PATH,
    "HeloName": MIXED_CASE_HOSTNAME,
    "FallbackSmartHost": relay(False),
    "SmartHost": relay(True),
    "MaxDaemonChildren": st.integers(0, 100_000).map(str),
    "Timeout.starttls": interval(),
    "QueueSortOrder": any_case(catalog.OPTIONS["QueueSortOrder"].type.choices),
    "SoftBounce": any_case(["True", "False"]),
    "PrivacyOptions": listed(any_case(catalog.OPTIONS["PrivacyOptions"].type.item_type.choices)),
    "InputMailFilters": listed(WORD),
    "ProcessTitlePrefix": WORD,
    "CipherList": st.lists(st.from_regex(r"[!+-]?[A-Za-z0-9@][A-Za-z0-9._=+@-]{0,10}", fullmatch=True), min_size=1).map(
        ":".join
    ),
    "DoubleBounceAddress": st.tuples(
        st.from_regex(r"[A-Za-z0-9_+-]([A-Za-z0-9._+-]{0,10}[A-Za-z0-9_+-])?", fullmatch=True),
        st.one_of(st.just(""), HOSTNAME.map(lambda h: "@" + h)),
    ).map("".join),
    "DHParameters": st.one_of(st.sampled_from(["none", "i", "2"]), PATH),
    "DaemonPortOptions": daemon_options(),
}
_baselines: dict[str, str] = {}


def baseline_cf(workdir: Path) -> str:
    if "cf" not in _baselines:
        mc = mcfile.render_mc(BASE, {}, {}, "property", reserved=RESERVED, roots=ROOTS)
        _baselines["cf"] = build(mc, workdir / "baseline")
    return _baselines["cf"]


@pytest.mark.parametrize("name", PROPERTY_CASES)
def test_accepted_values_come_out_of_m4_verbatim_and_change_nothing_else(name, tmp_path_factory):
    spec = catalog.OPTIONS[name]
    workdir = tmp_path_factory.mktemp(name.replace(".", "_"))
    baseline = baseline_cf(tmp_path_factory.getbasetemp())
    own_lines = [spec.expected_line("").rstrip("=")]

    @settings(
        max_examples=25,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
    )
    @given(PROPERTY_CASES[name])
    def accepted_is_verbatim(raw):
        try:
            value = spec.type.clean(raw, reserved=RESERVED, roots=ROOTS)
        except ValidationError:
            assume(False)
        cf = build(mcfile.render_mc(BASE, {name: value}, {}, "property", reserved=RESERVED, roots=ROOTS), workdir)
        assert spec.expected_line(value) in cf.splitlines()
        changes = m4safe.unexpected_changes(baseline, cf, own_lines)
        if spec.kind == catalog.CALL:
            # cfhead.m4's DAEMON_OPTIONS keeps each socket line after a newline of its own.
            changes = [change for change in changes if change != "+ "]
        assert changes == []

    accepted_is_verbatim()


def test_a_flag_accepts_its_word_exactly_and_nothing_else():
    flag = m4safe.FlagValue("terminate", "Refuse with 421", "meaning")
    assert flag.clean("terminate", reserved=RESERVED) == "terminate"
    for other in ("Terminate", "terminate ", "nodelay", "terminate\n", "`terminate'", "dnl"):
        with pytest.raises(ValidationError):
            flag.clean(other, reserved=RESERVED)
    with pytest.raises(ValueError):
        m4safe.FlagValue("two words", "label", "meaning")
