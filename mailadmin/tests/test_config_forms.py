"""Hostile input through the configuration pages: a clear error naming the field, nothing stored,
nothing handed to m4 or makemap, and no payload ever run.

test_m4safe.py puts the whole corpus through every typed field's validator; here a slice of it
goes through the real views for each kind of value, to prove the pages use those validators.
"""

import re

import pytest
from django.contrib.messages import get_messages
from django.core.exceptions import ValidationError

from mailadmin import config
from mailadmin.cf import catalog
from mailadmin.models import AccessEntry, AuditEvent, ConfigBuild, ConfigValue, FeatureSetting, MailServer
from testing.hostile_values import hostile_values
from testing.instances import make_instance_root, reserved_words

# What the host's agent reports for its cf tree (computed once for the module, as an agent would).
RESERVED_WORDS = sorted(reserved_words())

# One option per kind of value; every validator gets a slice of the corpus through a real POST.
FIELDS_BY_TYPE: dict[str, str] = {}
for option_name, spec in catalog.OPTIONS.items():
    FIELDS_BY_TYPE.setdefault(type(spec.type).__name__, option_name)


@pytest.fixture
def instance_root(tmp_path):
    """The one directory the agent declares for the instance, with a link inside it pointing out."""
    return make_instance_root(tmp_path)


@pytest.fixture
def server(db, instance_root):
    return MailServer.objects.create(
        name="edge",
        hostname="mx.example.org",
        conf_dir="/nonexistent/etc/mail",
        mc_path="/nonexistent/etc/mail/sendmail.mc",
        cf_path="/nonexistent/etc/mail/sendmail.cf",
        access_path="/nonexistent/etc/mail/access",
        cert_dir="/nonexistent/certs",
        queue_dir="/nonexistent/mqueue",
        pid_file="/nonexistent/sendmail.pid",
        celery_queue="mta.edge",
        roots=[instance_root],
        reserved_words=RESERVED_WORDS,
    )


def errors_after(client, path, data) -> list[str]:
    response = client.post(path, data)
    assert response.status_code == 302
    return [m.message for m in get_messages(response.wsgi_request) if m.level_tag == "error"]


@pytest.fixture
def corpus(tmp_path):
    canary = tmp_path / "canary"
    values = hostile_values(str(canary))
    yield values
    assert not canary.exists(), "a payload ran"


MTA_COMMANDS = ["m4", "makemap", "check cf", "sendmail"]


@pytest.fixture
def mta_untouched(db):
    """Compare with the start of the test: session fixtures run real commands before it."""
    before = AuditEvent.objects.filter(action__in=MTA_COMMANDS).count()
    return lambda: AuditEvent.objects.filter(action__in=MTA_COMMANDS).count() == before


@pytest.mark.parametrize("kind,option", sorted(FIELDS_BY_TYPE.items()))
def test_every_hostile_value_is_refused_with_an_error_naming_the_option(
    kind, option, server, administrator, client, corpus, mta_untouched
):
    client.force_login(administrator)
    accepted = []
    for value in corpus[::5]:
        errors = errors_after(client, f"/servers/{server.name}/config/option/", {"name": option, "value": value})
        if not errors:
            accepted.append(value)
        else:
            assert errors[0].startswith(f"{option}: ") and len(errors[0]) > len(option) + 5
    assert accepted == []
    assert not ConfigValue.objects.exists()
    assert mta_untouched()


def test_hostile_feature_arguments_are_refused(server, administrator, client, corpus, mta_untouched):
    client.force_login(administrator)
    for value in corpus[::3]:
        errors = errors_after(
            client,
            f"/servers/{server.name}/config/feature/",
            {"name": "access_db", "enabled": "on", "args": ["hash", value]},
        )
        assert errors and errors[0].startswith("FEATURE(access_db)")
    assert not FeatureSetting.objects.exists()
    assert mta_untouched()


# What can break an access map row: a newline adds a row, whitespace splits key from value.
MAKEMAP_DANGER = re.compile(r"[\s\x00-\x1f\x7f\"'`$#,;<>\\]|[^\x00-\x7f]")
PLAIN_TOKEN = re.compile(r"^[A-Za-z0-9.:@_+-]*$")


@pytest.mark.parametrize("field", ["key", "value"])
def test_access_rows_that_could_add_a_map_row_never_reach_makemap(
    field, server, administrator, client, corpus, mta_untouched
):
    client.force_login(administrator)
    dangerous = [value for value in corpus if MAKEMAP_DANGER.search(value)]
    assert len(dangerous) > 250
    for value in dangerous[::2]:
        row = {"tag": "GreetPause", "key": "192.0.2.1", "value": "5000", field: value}
        errors = errors_after(client, f"/servers/{server.name}/access/add/", row)
        assert errors and errors[0].startswith("Access entry: "), value
    assert not AccessEntry.objects.exists()
    assert mta_untouched()


def test_an_access_key_is_stored_only_as_a_plain_token(server, corpus):
    from django.core.exceptions import ValidationError

    from mailadmin.cf import accessmap

    for value in corpus:
        try:
            _, key, _ = accessmap.clean_entry("GreetPause", value, "5000")
        except ValidationError:
            continue
        assert PLAIN_TOKEN.match(key), key


# ---------------------------------------------------------------------------------------------
# Paths lie under the roots the instance's agent declared


def last_error(client, path, data) -> list[str]:
    """The error this POST added, if it added one (messages of earlier POSTs are still queued before it)."""
    response = client.post(path, data)
    assert response.status_code == 302
    *_, last = get_messages(response.wsgi_request)
    return [last.message] if last.level_tag == "error" else []


def option_errors(client, server, name, value) -> list[str]:
    return last_error(client, f"/servers/{server.name}/config/option/", {"name": name, "value": value})


def test_a_pidfile_outside_the_instances_roots_is_refused_when_set(
    server, instance_root, administrator, client, mta_untouched
):
    client.force_login(administrator)
    for name, value in [
        ("PidFile", "/etc/shadow"),
        ("DeadLetterDrop", "/root/.ssh/authorized_keys"),
        ("ControlSocketName", f"{instance_root}-evil/control"),
        ("SafeFileEnvironment", f"{instance_root}/escape"),
        ("ServerKeyFile", f"{instance_root}/escape/shadow"),
        ("DHParameters", "/etc/ssl/dh.pem"),
    ]:
        errors = option_errors(client, server, name, value)
        assert errors and errors[0].startswith(f"{name}: "), (name, value)
        assert "outside this instance's directories" in errors[0] and instance_root in errors[0], errors
    errors = option_errors(client, server, "PidFile", f"{instance_root}/run/../../../etc/shadow")
    assert errors and "“..”" in errors[0]
    assert not ConfigValue.objects.exists()
    assert mta_untouched()


def test_a_path_under_the_roots_is_accepted(server, instance_root, administrator, client):
    client.force_login(administrator)
    assert option_errors(client, server, "PidFile", f"{instance_root}/run/sendmail.pid") == []
    assert option_errors(client, server, "DHParameters", "none") == []
    assert config.options_of(server) == {"PidFile": f"{instance_root}/run/sendmail.pid", "DHParameters": "none"}


def test_a_map_file_outside_the_roots_is_refused(server, instance_root, administrator, client):
    client.force_login(administrator)
    for path in ("/etc/shadow", f"{instance_root}/escape/aliases"):
        errors = last_error(
            client,
            f"/servers/{server.name}/config/feature/",
            {"name": "access_db", "enabled": "on", "args": ["hash", path]},
        )
        assert errors and errors[0].startswith("FEATURE(access_db)")
        assert "outside this instance's directories" in errors[0] and instance_root in errors[0]
    assert not FeatureSetting.objects.exists()
    config.set_feature(server, "access_db", ["hash", f"{instance_root}/access"], True)
    assert config.features_of(server) == {"access_db": ("hash", f"{instance_root}/access")}


def test_nothing_is_accepted_before_the_agent_has_reported(server, instance_root, administrator, client):
    client.force_login(administrator)
    MailServer.objects.filter(pk=server.pk).update(reserved_words=[])
    for name, value in (("LogLevel", "9"), ("PidFile", f"{instance_root}/run/sendmail.pid")):
        errors = option_errors(client, server, name, value)
        assert errors and "the host's agent has not reported its cf tree's macro names yet" in errors[0]
    MailServer.objects.filter(pk=server.pk).update(reserved_words=RESERVED_WORDS, roots=[])
    errors = option_errors(client, server, "PidFile", f"{instance_root}/run/sendmail.pid")
    assert errors and "the host's agent has not declared its directories" in errors[0]
    assert not ConfigValue.objects.exists()
    server.refresh_from_db()
    ConfigValue.objects.create(server=server, name="PidFile", value=f"{instance_root}/run/x.pid")
    with pytest.raises(config.BuildRefused, match="has not declared its directories"):
        config.start_build(server)
    server.reserved_words = []
    with pytest.raises(config.BuildRefused, match="has not reported its cf tree's macro names yet"):
        config.start_build(server)
    with pytest.raises(ValidationError, match="has not reported"):
        config.import_mc(server, "define(`confLOG_LEVEL', `9')dnl\n")
    assert not ConfigBuild.objects.exists()


def test_a_path_that_bypassed_the_form_is_refused_when_the_build_starts(server, instance_root):
    ConfigValue.objects.create(server=server, name="PidFile", value="/etc/shadow")
    with pytest.raises(config.BuildRefused, match="PidFile"):
        config.start_build(server)
    ConfigValue.objects.all().delete()
    server.mc_template = "define(`confDEAD_LETTER_DROP', `/root/.ssh/authorized_keys')dnl\n"
    server.save()
    with pytest.raises(config.BuildRefused, match="DeadLetterDrop=/root/.ssh/authorized_keys"):
        config.start_build(server)
    assert not ConfigBuild.objects.exists()
