"""Hostile input through the configuration pages: a clear error naming the field, nothing stored,
nothing handed to m4 or makemap, and no payload ever run.

test_m4safe.py puts the whole corpus through every typed field's validator; here a slice of it
goes through the real views for each kind of value, to prove the pages use those validators.
"""

import re

import pytest
from django.contrib.messages import get_messages

from mailadmin.cf import catalog
from mailadmin.models import AccessEntry, AuditEvent, ConfigValue, FeatureSetting, MailServer
from mailadmin.tests.hostile_values import hostile_values

# One option per kind of value; every validator gets a slice of the corpus through a real POST.
FIELDS_BY_TYPE: dict[str, str] = {}
for option_name, spec in catalog.OPTIONS.items():
    FIELDS_BY_TYPE.setdefault(type(spec.type).__name__, option_name)


@pytest.fixture
def server(db):
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
