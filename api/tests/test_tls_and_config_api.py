"""Certificates and configuration through the API: the pages' forms and functions, the token in
the audit log, no private key ever in an answer; and, on the real worker and sendmail, a script's
option change built (202, then the diff) and installed (202) as the configuration page does it."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.exceptions import ValidationError

from api.models import ApiToken
from mailadmin import config
from mailadmin.models import AuditEvent
from testing.api import call, make_token
from testing.hostile_values import hostile_values
from testing.pki import pem
from testing.processes import wait_for
from tlsconfig import generate
from tlsconfig.models import Certificate, TlsJob


def test_certificates_go_in_with_their_key_and_only_their_facts_come_out(administrator, remote):
    token = make_token(administrator, "tls:read", "tls:write", name="cert bot")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = generate.make_ca(ca_key, "API Test CA", 30)
    server_key = ec.generate_private_key(ec.SECP256R1())
    issued = generate.issue(ca, ca_key, server_key.public_key(), "mx.remote.example.org", [], 30, client=False)

    response = call("POST", "/api/v1/servers/remote/certificates/", token, {"kind": "ca", "file": pem(ca).decode()})
    assert response.status_code == 201, response.content
    ca_id = response.json()["id"]
    body = {"kind": "server", "file": pem(issued).decode(), "key_file": pem(server_key).decode(), "ca": ca_id}
    response = call("POST", "/api/v1/servers/remote/certificates/", token, body)
    assert response.status_code == 201, response.content
    stored = response.json()
    assert stored["has_private_key"] and stored["cn_subject"] == "mx.remote.example.org"

    listed = call("GET", "/api/v1/servers/remote/certificates/", token)
    one = call("GET", f"/api/v1/certificates/{stored['id']}/", token)
    for answer in (listed, one):
        assert answer.status_code == 200
        assert b"PRIVATE KEY" not in answer.content
    assert {row["role"] for row in listed.json()} == {"ca", "server"}
    assert Certificate.objects.get(pk=stored["id"]).private_key is not None  # kept, encrypted, in the keystore
    uploads = AuditEvent.objects.filter(server=remote).exclude(outcome=AuditEvent.Outcome.DENIED)
    assert uploads.exists() and all(event.api_token == str(ApiToken.objects.get()) for event in uploads)

    refused = call("POST", "/api/v1/servers/remote/certificates/", token, {"kind": "server", "file": "junk"})
    assert refused.status_code == 400 and refused.json()


def test_generating_answers_202_with_the_job_and_a_hostile_name_is_refused_by_field(administrator, remote):
    token = make_token(administrator, "tls:read", "tls:write")
    hostile = {"kind": "ca", "common_name": "evil\nname`id`", "days": 30, "key_type": "ec256"}
    response = call("POST", "/api/v1/servers/remote/tls/generate/", token, hostile)
    assert response.status_code == 400 and "common_name" in response.json()
    assert not TlsJob.objects.exists()
    response = call("POST", "/api/v1/servers/remote/tls/generate/", token, {**hostile, "common_name": "API CA"})
    assert response.status_code == 202, response.content
    job = call("GET", response.json()["url"], token).json()
    assert job["kind"] == "ca" and job["status"] == "queued"


def test_a_hostile_option_value_gets_the_configuration_pages_refusal(administrator, mta_server, tmp_path):
    token = make_token(administrator, "config:read", "config:build")
    url = f"/api/v1/servers/{mta_server.name}/options/"
    response = call("POST", url, token, {"name": "NoSuchOption", "value": "1"})
    assert response.status_code == 400 and "name" in response.json()
    refused = 0
    for name in ("MaxMessageSize", "SmartHost", "CACertFile"):  # a number, a host name, a path
        for value in hostile_values(str(tmp_path / "canary")):
            try:
                config.clean_option(mta_server, name, value)
            except ValidationError as refusal:
                expected = refusal.messages
            else:
                continue
            response = call("POST", url, token, {"name": name, "value": value})
            assert response.status_code == 400 and response.json() == {"value": expected}, value
            assert not any("Nothing can be checked" in message for message in expected)
            refused += 1
    assert refused > 100
    assert call("GET", url, token).json() == config.options_of(mta_server)
    assert not (tmp_path / "canary").exists()


@pytest.fixture
def managed(instance_files):
    server = instance_files
    config.import_mc(server, Path(server.mc_path).read_text())
    config.import_access(server, Path(server.access_path).read_text())
    return server


def test_a_script_changes_an_option_builds_reads_the_diff_and_installs(worker, managed, administrator):
    server = managed
    token = make_token(administrator, "config:read", "config:build", "config:install", name="deploy pipeline")
    response = call(
        "POST", f"/api/v1/servers/{server.name}/options/", token, {"name": "MaxMessageSize", "value": "7000000"}
    )
    assert response.status_code == 200 and response.json()["MaxMessageSize"] == "7000000"

    response = call("POST", f"/api/v1/servers/{server.name}/builds/", token)
    assert response.status_code == 202, response.content

    def finished(url):
        state = call("GET", url, token).json()
        return state if state["status"] in ("done", "failed") else None

    def wait_until_finished(url, what):
        try:
            return wait_for(lambda: finished(url), 60, what)
        except AssertionError as exc:  # say where it stopped: the row and what the worker printed
            state = call("GET", url, token).json()
            raise AssertionError(f"{exc}: {state}\n--- worker log ---\n{worker.log()[-6000:]}") from None

    build = wait_until_finished(response.json()["url"], "the build")
    assert build["status"] == "done", build
    assert "O MaxMessageSize=7000000" in build["diff"]

    response = call("POST", build["install_url"], token)
    assert response.status_code == 202, response.content
    install = wait_until_finished(response.json()["url"], "the install")
    assert install["status"] == "done", install
    assert "O MaxMessageSize=7000000" in Path(server.cf_path).read_text()
    named = AuditEvent.objects.filter(api_token__startswith="deploy pipeline (")
    assert {"set option", "start build", "cf install requested"} <= set(named.values_list("action", flat=True))
