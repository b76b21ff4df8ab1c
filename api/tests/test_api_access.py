"""Generated from the URLconf, so a new API view without a declared scope fails here.

For every API route and method it declares: no credentials → 401; a token without the scope → 403;
a token with the scope whose user's role is below the scope's → 403; the right scope and role →
not refused (and never a 500); an undeclared method → refused. Changes refused change nothing.
"""

from __future__ import annotations

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from api import tokens
from mailadmin.models import AuditEvent
from mailadmin.roles import Role
from mailqueue.models import QueueAction
from testing.api import call, make_token, remote_server
from testing.users import make_user
from tracking.models import MessageTrace


def walk(patterns, prefix=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from walk(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry


API_ROUTES = sorted(
    (route, pattern)
    for route, pattern in walk(get_resolver().url_patterns)
    if route.startswith("api/v1/") and pattern.name != "not_found"
)
CASES = [
    (route, method, scope)
    for route, pattern in API_ROUTES
    for method, scope in pattern.callback.view_class.scopes.items()
]
ROLE_USERS = {Role.VIEWER: "viewer", Role.OPERATOR: "operator", Role.ADMINISTRATOR: "administrator"}


def test_every_api_route_declares_a_known_scope_for_each_of_its_methods():
    assert len(API_ROUTES) >= 8
    for route, pattern in API_ROUTES:
        view = pattern.callback.view_class
        handled = {name.upper() for name in ("get", "post", "put", "patch", "delete") if hasattr(view, name)}
        assert handled == set(view.scopes), route
        assert set(view.scopes.values()) <= set(tokens.SCOPES), route


@pytest.fixture
def scene(db):
    server = remote_server("remote")
    action = QueueAction.objects.create(server=server, verb=QueueAction.Verb.REFRESH)
    MessageTrace.objects.create(pk=action.pk, server=server, queue_id="6B4A00aa000001")
    return server, action


def concrete(route: str, server, action) -> str:
    path = "/" + route.replace("<slug:server>", server.name).replace("<int:pk>", str(action.pk))
    path = path.replace("<str:queue_id>", "6AOIGq4n025795").replace("<str:map_name>", "aliases")
    assert "<" not in path, f"add the converter of {route} to this test"
    return path


BODIES = {"POST": {"verb": "deliver", "ids": ["6AOIGq4n025795"]}}


@pytest.mark.parametrize("route,method,scope", CASES, ids=[f"{m} {r} {s}" for r, m, s in CASES])
def test_scope_and_role_guard_every_api_call(route, method, scope, scene):
    path = concrete(route, *scene)
    body = BODIES.get(method)
    needed = tokens.SCOPES[scope]
    others = [other for other in tokens.SCOPES if other != scope]
    administrator = make_user("ada", "administrator")
    queued_before = QueueAction.objects.count()

    assert call(method, path, body=body).status_code == 401

    response = call(method, path, make_token(administrator, *others), body)
    assert response.status_code == 403, "a token without the scope"
    assert scope in response.json()["detail"]

    for below in [role for role in Role if role < needed]:
        user = make_user(f"below-{below.group_name}", ROLE_USERS[below])
        response = call(method, path, make_token(user, scope), body)
        assert response.status_code == 403, f"{below.group_name} holding {scope}"
    nobody = make_user("nobody", None)
    assert call(method, path, make_token(nobody, scope), body).status_code == 403

    assert QueueAction.objects.count() == queued_before, "a refused call changed something"
    assert AuditEvent.objects.filter(outcome=AuditEvent.Outcome.DENIED).exists()

    user = make_user(f"holder-{needed.group_name}", ROLE_USERS[needed])
    response = call(method, path, make_token(user, scope), body)
    assert response.status_code not in (401, 403, 405) and response.status_code < 500, response.content[:500]


@pytest.mark.parametrize("route,pattern", API_ROUTES, ids=[r for r, _ in API_ROUTES])
def test_an_undeclared_method_is_refused(route, pattern, scene):
    path = concrete(route, *scene)
    administrator = make_user("ada", "administrator")
    text = make_token(administrator, *tokens.SCOPES)
    for method in ("PUT", "PATCH", "DELETE", "POST"):
        if method in pattern.callback.view_class.scopes:
            continue
        assert call(method, path, text, {}).status_code in (403, 405), (method, path)
