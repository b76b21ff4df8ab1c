"""Bearer tokens: shown once and stored hashed; refused when expired, revoked, wrong or their user is
deactivated; never wider than the user's role now; limited to their hosts; named in the audit log."""

from __future__ import annotations

import hashlib
import io
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from api import tokens
from api.models import ApiToken
from mailadmin.models import AuditEvent
from testing.api import call, make_token, remote_server


def test_a_token_is_stored_only_as_the_hash_of_its_secret(viewer):
    text = make_token(viewer, "queue:read")
    row = ApiToken.objects.get()
    secret = text.split("_", 2)[2]
    assert len(secret) >= 43  # 32 random bytes, base64
    assert row.secret_sha256 == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(ApiToken.objects.values().get())
    assert call("GET", "/api/v1/servers/", text).status_code == 403  # config:read missing, but authenticated


@pytest.mark.parametrize(
    "spoil,message",
    [
        (lambda row: ApiToken.objects.filter(pk=row.pk).update(expires_at=timezone.now()), "expired"),
        (lambda row: tokens.revoke(row), "revoked"),
        (lambda row: type(row.user).objects.filter(pk=row.user.pk).update(is_active=False), "deactivated"),
    ],
    ids=["expired", "revoked", "inactive user"],
)
def test_an_unusable_token_gets_401_saying_why(spoil, message, viewer, remote):
    text = make_token(viewer, "config:read")
    assert call("GET", "/api/v1/servers/", text).status_code == 200
    spoil(ApiToken.objects.get())
    response = call("GET", "/api/v1/servers/", text)
    assert response.status_code == 401
    assert message in response.json()["detail"]
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_wrong_secret_or_a_made_up_token_gets_401(viewer, remote):
    text = make_token(viewer, "config:read")
    for wrong in (text[:-1] + ("A" if text[-1] != "A" else "B"), "mta_000000000000_x", "nonsense", text + "x"):
        response = call("GET", "/api/v1/servers/", wrong)
        assert response.status_code == 401, wrong
        assert response.json()["detail"]
    assert call("GET", "/api/v1/servers/").status_code == 401


def test_a_demoted_users_tokens_shrink_with_the_role(operator, remote):
    text = make_token(operator, "queue:write", "queue:read")
    ids = {"verb": "deliver", "ids": ["6AOIGq4n025795"]}
    # As an operator the scope works (the id is unknown to the index, so the refusal names it).
    response = call("POST", "/api/v1/servers/remote/queue/", text, ids)
    assert response.status_code == 400 and "ids" in response.json()
    operator.groups.set([Group.objects.get_or_create(name="viewer")[0]])
    response = call("POST", "/api/v1/servers/remote/queue/", text, ids)
    assert response.status_code == 403
    assert "operator" in response.json()["detail"]
    assert call("GET", "/api/v1/servers/remote/queue/", text).status_code == 200
    denied = AuditEvent.objects.get(outcome=AuditEvent.Outcome.DENIED)
    assert denied.api_token == str(ApiToken.objects.get()) and denied.username == operator.username


def test_a_token_limited_to_a_host_does_not_see_the_others(viewer, remote):
    other = remote_server("other")
    text = make_token(viewer, "config:read", "queue:read", servers=[remote])
    listed = call("GET", "/api/v1/servers/", text).json()
    assert [server["name"] for server in listed] == ["remote"]
    assert call("GET", "/api/v1/servers/remote/queue/", text).status_code == 200
    assert call("GET", f"/api/v1/servers/{other.name}/queue/", text).status_code == 404
    assert call("GET", f"/api/v1/servers/{other.name}/", text).status_code == 404
    everywhere = make_token(viewer, "config:read")
    assert len(call("GET", "/api/v1/servers/", everywhere).json()) == 2


def test_last_use_is_noted_at_most_once_a_minute(viewer, remote):
    text = make_token(viewer, "config:read")
    call("GET", "/api/v1/servers/", text)
    first = ApiToken.objects.get().last_used_at
    assert first is not None
    call("GET", "/api/v1/servers/", text)
    assert ApiToken.objects.get().last_used_at == first
    ApiToken.objects.update(last_used_at=first - timedelta(minutes=2))
    call("GET", "/api/v1/servers/", text)
    assert ApiToken.objects.get().last_used_at > first


def test_a_session_call_goes_by_role_and_needs_csrf_to_change(operator, remote):
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    assert client.get("/api/v1/servers/remote/queue/").status_code == 200
    response = call("POST", "/api/v1/servers/remote/queue/", body={"verb": "deliver", "ids": ["x"]}, client=client)
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    client.get("/account/")
    csrf = client.cookies["csrftoken"].value
    response = client.post(
        "/api/v1/servers/remote/queue/",
        '{"verb": "deliver", "ids": ["6AOIGq4n025795"]}',
        content_type="application/json",
        HTTP_X_CSRFTOKEN=csrf,
    )
    assert response.status_code == 400 and "ids" in response.json()


def test_the_command_prints_a_token_once_that_works(viewer, remote):
    out = io.StringIO()
    call_command("apitoken", "--user", viewer.username, "--scope", "config:read", "--host", "remote", stdout=out)
    text = out.getvalue().strip()
    assert text.startswith("mta_")
    row = ApiToken.objects.get()
    assert row.scopes == ["config:read"] and [s.name for s in row.servers.all()] == ["remote"]
    assert [s["name"] for s in call("GET", "/api/v1/servers/", text).json()] == ["remote"]
    assert AuditEvent.objects.filter(action="create API token", username=viewer.username).exists()


def test_a_token_cannot_hold_an_unknown_scope_or_live_past_the_limit(viewer):
    with pytest.raises(ValueError):
        make_token(viewer, "queue:everything")
    with pytest.raises(ValueError):
        make_token(viewer, "queue:read", days=tokens.max_days() + 1)
