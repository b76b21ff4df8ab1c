"""TLS facts read from the installed cf, the files it names and the daemon's own EHLO reply."""

import socket

import pytest

from mailadmin.overview import InstalledCf, parse_cf_options
from tlsconfig import facts

CF = """O ServerCertFile=CERT
O ServerKeyFile=KEY
#O ClientKeyFile
#O Timeout.starttls=1h
O Timeout.starttls=30m
#O CACertFile
O DHParameters=none
"""


def installed(text: str) -> InstalledCf:
    return InstalledCf(path="/x/sendmail.cf", exists=True, options=parse_cf_options(text))


def test_set_and_default_tls_options_are_told_apart(tmp_path):
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    cert.write_text("cert")
    key.write_text("key")
    key.chmod(0o600)
    options = {o.name: o for o in facts.tls_options(installed(CF.replace("CERT", str(cert)).replace("KEY", str(key))))}

    assert list(options) == list(facts.TLS_OPTION_NAMES)
    assert options["ServerKeyFile"].is_set and options["ServerKeyFile"].file.mode == "0600"
    assert options["ServerKeyFile"].file.problem == ""
    assert options["Timeout.starttls"].value == "30m" and options["Timeout.starttls"].default == "1h"
    assert not options["CACertFile"].is_set and options["CACertFile"].file is None
    assert options["DHParameters"].value == "none" and options["DHParameters"].file is None
    assert not options["TLSSrvOptions"].is_set


def test_a_key_readable_by_others_is_flagged(tmp_path):
    key = tmp_path / "server.key"
    key.write_text("key")
    key.chmod(0o640)
    option = {o.name: o for o in facts.tls_options(installed(f"O ServerKeyFile={key}\n"))}["ServerKeyFile"]
    assert "readable by group or others" in option.file.problem
    certificate = facts.path_facts(str(key), private_key=False)
    assert certificate.problem == "" and certificate.mode == "0640"


def test_a_missing_file_is_a_problem_not_an_exception(tmp_path):
    found = facts.path_facts(str(tmp_path / "absent.pem"))
    assert not found.exists
    assert "No such file" in found.problem


def test_the_live_daemon_answers_ehlo(mta_server):
    reply = facts.ehlo(mta_server.smtp_address, mta_server.smtp_port)
    assert reply.error == ""
    assert reply.greeting.startswith(f"220 {mta_server.hostname} ESMTP Sendmail")
    assert "PIPELINING" in reply.extensions
    assert reply.starttls is False, "the test instance has no certificate"


def test_nothing_listening_is_an_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    reply = facts.ehlo("127.0.0.1", port, timeout=2)
    assert "refused" in reply.error.lower()
    assert reply.starttls is False


@pytest.mark.parametrize("line,offered", [("STARTTLS", True), ("starttls", True), ("SIZE 100", False)])
def test_starttls_is_read_from_the_extension_list(line, offered):
    assert facts.EhloReply(extensions=["PIPELINING", line]).starttls is offered
