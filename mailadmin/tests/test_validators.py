"""What a host's agent configuration may say about an instance: a hostile corpus against every rule."""

import pytest
from django.core.exceptions import ValidationError

from mailadmin import validators


@pytest.fixture
def roots(tmp_path):
    """Two instance roots in tmp_path and a directory outside them."""
    etc = tmp_path / "etc-mail"
    spool = tmp_path / "spool"
    outside = tmp_path / "outside"
    for directory in (etc, spool, outside):
        directory.mkdir()
    return etc, spool, outside


def path_validators(roots) -> tuple:
    """A path validator and a queue-directory validator for the two roots of `roots`."""
    etc, spool, _ = roots
    return (
        validators.ServerPathValidator([str(etc), str(spool)]),
        validators.ServerPathValidator([str(etc), str(spool)], allow_queue_glob=True),
    )


def rejects(validator, value, code=None):
    with pytest.raises(ValidationError) as caught:
        validator(value)
    if code:
        assert caught.value.code == code, caught.value.messages
    return caught.value.messages[0]


def test_paths_inside_a_root_pass(roots):
    PATH, QUEUE = path_validators(roots)
    etc, spool, _ = roots
    for value in (str(etc), f"{etc}/sendmail.cf", f"{etc}/", f"{etc}/not-yet-there/access", f"{spool}/mqueue"):
        PATH(value)
    QUEUE(f"{spool}/mqueue/q*")
    QUEUE(f"{spool}/mqueue")


HOSTILE_PATHS = {
    "../": ("ETC/../outside/x", "dotdot"),
    "trailing ..": ("ETC/..", "dotdot"),
    "%2e%2e/": ("ETC/%2e%2e/%2e%2e/x", "forbidden_character"),
    "..%01": ("ETC/..%01/x", "forbidden_character"),
    "..\\": ("ETC/..\\x", "forbidden_character"),
    "/./": ("ETC/./sendmail.cf", "not_canonical"),
    "//": ("ETC//sendmail.cf", "not_canonical"),
    "NUL": ("ETC/send\x00mail.cf", "not_ascii"),
    "newline": ("ETC/sendmail.cf\nO QueueDirectory=/tmp/evil", "space"),
    "carriage return": ("ETC/sendmail.cf\r", "space"),
    "tab": ("ETC/send\tmail.cf", "space"),
    "space": ("ETC/send mail.cf", "space"),
    "non-breaking space": ("ETC/send\u00a0mail.cf", "space"),
    "non-ASCII": ("ETC/séndmail.cf", "not_ascii"),
    "DEL": ("ETC/x\x7f", "not_ascii"),
    "escape": ("ETC/x\x1b[31m", "not_ascii"),
    "command substitution": ("ETC/$(touch /tmp/x)", "space"),
    "command substitution, no space": ("ETC/$(id)", "forbidden_character"),
    "variable": ("ETC/${HOME}", "forbidden_character"),
    "backticks": ("ETC/`id`", "forbidden_character"),
    "semicolon": ("ETC/x;id", "forbidden_character"),
    "pipe": ("ETC/x|id", "forbidden_character"),
    "ampersand": ("ETC/x&&id", "forbidden_character"),
    "redirect": ("ETC/x>y", "forbidden_character"),
    "quote": ("ETC/x'y", "forbidden_character"),
    "double quote": ('ETC/x"y', "forbidden_character"),
    "m4 esyscmd": ("ETC/esyscmd(touch /tmp/x)", "space"),
    "m4 esyscmd, no space": ("ETC/esyscmd(id)", "forbidden_character"),
    "m4 quotes": ("ETC/`x'", "forbidden_character"),
    "m4 comma": ("ETC/a,b", "forbidden_character"),
    "m4 dnl": ("ETC/dnl/sendmail.cf", "m4_word"),
    "m4 builtin word": ("ETC/include.cf", "m4_word"),
    "cf comment": ("ETC/x#y", "forbidden_character"),
    "glob": ("ETC/*.cf", "forbidden_character"),
    "question mark": ("ETC/sendmail.c?", "forbidden_character"),
    "brackets": ("ETC/[a]", "forbidden_character"),
    "braces": ("ETC/{a,b}", "forbidden_character"),
    "relative": ("etc/mail/sendmail.cf", "relative"),
    "home": ("~/sendmail.cf", "relative"),
    "outside the roots": ("OUTSIDE/sendmail.cf", "outside_roots"),
    "system file": ("/etc/passwd", "outside_roots"),
    "root itself": ("/", "outside_roots"),
    "prefix of a root's name": ("ETC-evil/sendmail.cf", "outside_roots"),
}


@pytest.mark.parametrize("case", HOSTILE_PATHS, ids=list(HOSTILE_PATHS))
def test_hostile_paths_are_rejected_with_the_rule_they_break(case, roots):
    PATH, QUEUE = path_validators(roots)
    etc, _, outside = roots
    template, code = HOSTILE_PATHS[case]
    value = template.replace("ETC", str(etc)).replace("OUTSIDE", str(outside))
    rejects(PATH, value, code)
    rejects(QUEUE, value, code)


def test_the_queue_glob_is_allowed_only_on_the_queue_directory(roots):
    PATH, QUEUE = path_validators(roots)
    _, spool, _ = roots
    message = rejects(PATH, f"{spool}/mqueue/q*", "forbidden_character")
    assert "queue directory only" in message
    for bad in ("*", "q*/x", "q**", "q*x", "q?", "q*;id"):
        rejects(QUEUE, f"{spool}/mqueue/{bad}")
    rejects(QUEUE, f"{spool}/../q*", "dotdot")


def test_a_symlink_escaping_a_root_is_rejected(roots):
    PATH, QUEUE = path_validators(roots)
    etc, _, outside = roots
    (etc / "certs").symlink_to(outside)
    message = rejects(PATH, f"{etc}/certs/server.key", "outside_roots")
    assert str(outside) in message
    rejects(QUEUE, f"{etc}/certs/q*", "outside_roots")


def test_a_symlink_into_a_root_is_followed(roots, tmp_path):
    PATH, QUEUE = path_validators(roots)
    etc, _, _ = roots
    (tmp_path / "link-to-etc").symlink_to(etc)
    PATH(f"{tmp_path}/link-to-etc/sendmail.cf")


def test_the_message_names_the_allowed_roots(roots):
    PATH, QUEUE = path_validators(roots)
    _, _, outside = roots
    message = rejects(PATH, f"{outside}/x")
    assert "outside the instance's roots" in message
    assert "etc-mail" in message


GOOD_HOSTNAMES = ["mx.example.org", "mail-1.example.co.uk", "a.b", "vm.localdomain", "x1.example.org"]
BAD_HOSTNAMES = {
    "localhost": "not_qualified",
    "mx": "not_qualified",
    "mx.example.org.": "empty_label",
    ".example.org": "empty_label",
    "mx..example.org": "empty_label",
    "-mx.example.org": "hostname_label",
    "mx-.example.org": "hostname_label",
    "mx_1.example.org": "hostname_label",
    "m x.example.org": "hostname",
    "mx.example.org\n": "hostname",
    "mx.example.org\nO QueueDirectory=/tmp/evil": "hostname",
    "mäil.example.org": "hostname",
    "192.168.1.10": "numeric_tld",
    "[127.0.0.1]": "hostname_label",
    "`id`.example.org": "hostname_label",
    "$(id).example.org": "hostname_label",
    "esyscmd(id).example.org": "hostname_label",
    "dnl.example.org": "m4_word",
    "mail.divert.example.org": "m4_word",
    ("a" * 64) + ".example.org": "hostname_label",
    ".".join(["a" * 63] * 4) + ".org": "hostname_length",
}


@pytest.mark.parametrize("value", GOOD_HOSTNAMES)
def test_qualified_hostnames_pass(value):
    validators.validate_hostname(value)


@pytest.mark.parametrize("value", BAD_HOSTNAMES, ids=[repr(v)[:40] for v in BAD_HOSTNAMES])
def test_bad_hostnames_are_rejected(value):
    rejects(validators.validate_hostname, value, BAD_HOSTNAMES[value])


@pytest.mark.parametrize("value", ["sendmail", "sm-local", "sm_mx.1", "a" * 40])
def test_syslog_tags_pass(value):
    validators.validate_syslog_tag(value)


@pytest.mark.parametrize("value", ["", "a" * 41, "sm local", "sm:local", "sm[1]", "sm\n", "sm-local\nx", "s/m"])
def test_bad_syslog_tags_are_rejected(value):
    rejects(validators.validate_syslog_tag, value, "syslog_tag")


@pytest.mark.parametrize("value", ["15s", "30m", "1h", "2d", "1w", "999999m"])
def test_queue_intervals_pass(value):
    validators.validate_queue_interval(value)


@pytest.mark.parametrize("value", ["", "0m", "30", "m", "1h30m", "1 h", "30M", "-5m", "1.5h", "30m\n", "1x", "1h;id"])
def test_bad_queue_intervals_are_rejected(value):
    rejects(validators.validate_queue_interval, value, "queue_interval")


@pytest.mark.parametrize("value", ["mta.local", "mta-relay_1", "a" * 60])
def test_celery_queues_pass(value):
    validators.validate_celery_queue(value)


@pytest.mark.parametrize("value", ["", "MTA", "mta local", "mta:local", "a" * 61, "mta\n", "mta/x"])
def test_bad_celery_queues_are_rejected(value):
    rejects(validators.validate_celery_queue, value, "celery_queue")


@pytest.mark.parametrize("value,ok", [(0, False), (1, True), (25, True), (65535, True), (65536, False)])
def test_ports(value, ok):
    if ok:
        validators.validate_port(value)
    else:
        rejects(validators.validate_port, value, "port")
