"""TLS facts as the pages read them: the installed cf's options and the agent's snapshot dict (pure).

Gathering them (modes, owners, the live EHLO reply) is the agent's job: mailadmin/tests/test_snapshot.py."""

import pytest

from mailadmin.overview import InstalledCf, parse_cf_options
from tlsconfig import facts

CF = """O ServerCertFile=/etc/mail/tls/server.pem
O ServerKeyFile=/etc/mail/tls/server.key
#O ClientKeyFile
#O Timeout.starttls=1h
O Timeout.starttls=30m
#O CACertFile
O DHParameters=none
"""
TLS = {
    "cert_dir": {"path": "/etc/mail/tls", "exists": True, "is_dir": True, "mode": "0700", "owner": "root:root"},
    "files": {
        "/etc/mail/tls/server.key": {
            "exists": True,
            "mode": "0640",
            "owner": "root:smmsp",
            "problem": "readable by group or others: sendmail will not offer STARTTLS with this key",
        },
        "/etc/mail/tls/server.pem": {"exists": True, "mode": "0644", "owner": "root:root", "problem": ""},
    },
    "key_problems": ["ServerKeyFile /etc/mail/tls/server.key: readable by group or others (mode 0640)"],
    "ehlo": {"greeting": "220 mx ESMTP", "hello": "mx Hello", "extensions": ["PIPELINING", "STARTTLS"], "error": ""},
}


def installed(text: str) -> InstalledCf:
    return InstalledCf(path="/x/sendmail.cf", exists=True, options=parse_cf_options(text))


def test_set_and_default_tls_options_are_told_apart_with_the_agents_file_facts():
    options = {o.name: o for o in facts.tls_options(installed(CF), TLS)}
    assert list(options) == list(facts.TLS_OPTION_NAMES)
    assert options["ServerKeyFile"].is_set and options["ServerKeyFile"].file.mode == "0640"
    assert "readable by group or others" in options["ServerKeyFile"].file.problem
    assert options["ServerCertFile"].file.problem == "" and options["ServerCertFile"].file.owner == "root:root"
    assert options["Timeout.starttls"].value == "30m" and options["Timeout.starttls"].default == "1h"
    assert not options["CACertFile"].is_set and options["CACertFile"].file is None
    assert options["DHParameters"].value == "none" and options["DHParameters"].file is None
    assert facts.key_problems(TLS) == TLS["key_problems"]


def test_without_a_snapshot_every_fact_says_it_is_not_reported():
    options = {o.name: o for o in facts.tls_options(installed(CF), {})}
    assert options["ServerKeyFile"].file.problem == facts.NOT_REPORTED
    assert facts.EhloReply.from_snapshot({}).error == facts.NOT_REPORTED
    assert facts.cert_dir("/etc/mail/tls", None).problem == facts.NOT_REPORTED


@pytest.mark.parametrize("line,offered", [("STARTTLS", True), ("starttls", True), ("SIZE 100", False)])
def test_starttls_is_read_from_the_extension_list(line, offered):
    assert facts.EhloReply(extensions=["PIPELINING", line]).starttls is offered
    assert facts.EhloReply.from_snapshot({"ehlo": {"extensions": ["PIPELINING", line]}}).starttls is offered
