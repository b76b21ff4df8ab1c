"""What an administrator may type about a MailServer: a hostile corpus against every rule."""

import os

import pytest
from django.core.exceptions import ValidationError

from mailadmin import validators
from mailadmin.forms import PATH_FIELDS, MailServerForm
from mailadmin.models import MailServer


@pytest.fixture
def roots(tmp_path, settings):
    """Two allowed roots in tmp_path and a directory outside them."""
    etc = tmp_path / "etc-mail"
    spool = tmp_path / "spool"
    outside = tmp_path / "outside"
    for directory in (etc, spool, outside):
        directory.mkdir()
    settings.MAILADMIN_ALLOWED_ROOTS = [str(etc), str(spool)]
    return etc, spool, outside


def rejects(validator, value, code=None):
    with pytest.raises(ValidationError) as caught:
        validator(value)
    if code:
        assert caught.value.code == code, caught.value.messages
    return caught.value.messages[0]


PATH = validators.ServerPathValidator()
QUEUE = validators.ServerPathValidator(allow_queue_glob=True)


def test_paths_inside_a_root_pass(roots):
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
    etc, _, outside = roots
    template, code = HOSTILE_PATHS[case]
    value = template.replace("ETC", str(etc)).replace("OUTSIDE", str(outside))
    rejects(PATH, value, code)
    rejects(QUEUE, value, code)


def test_the_queue_glob_is_allowed_only_on_the_queue_directory(roots):
    _, spool, _ = roots
    message = rejects(PATH, f"{spool}/mqueue/q*", "forbidden_character")
    assert "queue directory only" in message
    for bad in ("*", "q*/x", "q**", "q*x", "q?", "q*;id"):
        rejects(QUEUE, f"{spool}/mqueue/{bad}")
    rejects(QUEUE, f"{spool}/../q*", "dotdot")


def test_a_symlink_escaping_a_root_is_rejected(roots):
    etc, _, outside = roots
    (etc / "certs").symlink_to(outside)
    message = rejects(PATH, f"{etc}/certs/server.key", "outside_roots")
    assert str(outside) in message
    rejects(QUEUE, f"{etc}/certs/q*", "outside_roots")


def test_a_symlink_into_a_root_is_followed(roots, tmp_path):
    etc, _, _ = roots
    (tmp_path / "link-to-etc").symlink_to(etc)
    PATH(f"{tmp_path}/link-to-etc/sendmail.cf")


def test_the_message_names_the_allowed_roots(roots):
    _, _, outside = roots
    message = rejects(PATH, f"{outside}/x")
    assert "outside the allowed roots" in message
    assert "MAILADMIN_EXTRA_ROOTS" in message


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


def form_data(etc, spool, **overrides):
    data = {
        "name": "relay1",
        "description": "Relay in rack 4",
        "hostname": "relay1.example.org",
        "smtp_address": "127.0.0.1",
        "smtp_port": "25",
        "syslog_tag": "sendmail",
        "queue_interval": "30m",
        "celery_queue": "mta.relay1",
        "conf_dir": str(etc),
        "mc_path": f"{etc}/sendmail.mc",
        "cf_path": f"{etc}/sendmail.cf",
        "access_path": f"{etc}/access",
        "cert_dir": f"{etc}/tls",
        "queue_dir": f"{spool}/mqueue/q*",
        "pid_file": f"{spool}/sendmail.pid",
        "log_file": f"{spool}/mail.log",
        "sendmail_bin": f"{etc}/bin/sendmail",
        "m4_bin": f"{etc}/bin/m4",
        "makemap_bin": f"{etc}/bin/makemap",
        "cf_tree": f"{etc}/cf",
    }
    return {**data, **overrides}


@pytest.mark.django_db
def test_the_form_creates_a_managed_server(roots):
    etc, spool, _ = roots
    form = MailServerForm(form_data(etc, spool))
    assert form.is_valid(), form.errors
    server = form.save()
    assert server.embedded is False
    assert server.queue_dir == f"{spool}/mqueue/q*"


@pytest.mark.django_db
@pytest.mark.parametrize("field", PATH_FIELDS)
def test_every_path_field_is_guarded(field, roots):
    etc, spool, outside = roots
    for hostile in (f"{etc}/../outside", f"{outside}/x", f"{etc}/x;id", f"{etc}/x\ny", "relative/x"):
        form = MailServerForm(form_data(etc, spool, **{field: hostile}))
        assert not form.is_valid()
        assert field in form.errors, (field, hostile)
    assert MailServer.objects.count() == 0


@pytest.mark.django_db
def test_the_form_refuses_embedded_and_reserved_names(roots):
    etc, spool, _ = roots
    form = MailServerForm(form_data(etc, spool, embedded="on"))
    assert form.is_valid()
    assert form.save().embedded is False
    for name in ("add", "create"):
        form = MailServerForm(form_data(etc, spool, name=name))
        assert "name" in form.errors


@pytest.mark.django_db
@pytest.mark.parametrize(
    "field,value",
    [
        ("hostname", "relay1"),
        ("syslog_tag", "send mail"),
        ("queue_interval", "soon"),
        ("celery_queue", "MTA Relay"),
        ("smtp_port", "0"),
        ("smtp_port", "70000"),
        ("smtp_address", "relay1.example.org"),
        ("description", "two\nlines"),
        ("name", "../x"),
    ],
)
def test_the_form_applies_every_rule(field, value, roots):
    etc, spool, _ = roots
    form = MailServerForm(form_data(etc, spool, **{field: value}))
    assert not form.is_valid()
    assert list(form.errors) == [field]


def test_the_default_roots_cover_debians_paths():
    for value in ("/etc/mail/sendmail.cf", "/var/spool/mqueue", "/usr/sbin/sendmail", "/usr/share/sendmail/cf"):
        real = os.path.realpath(value)
        assert validators.inside_allowed_roots(value), real
