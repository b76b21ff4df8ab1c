"""Generated over every URL the project has, so a new view without the right guard fails here.

For each pattern: anonymous users are sent to the login page; a change (a POST-only view)
refuses GET with 405, refuses a POST without a CSRF token with 403, and refuses a user below
its role with 403 while changing nothing; read pages open for viewers and for nobody without
a role.
"""

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from mailadmin.models import (
    AccessEntry,
    AgentRequest,
    AuditEvent,
    ConfigBuild,
    HostSnapshot,
    InstallJob,
    MailServer,
    ServiceAction,
)
from mailadmin.roles import Role
from tlsconfig.models import Certificate, Deployment, TlsJob
from tracking.models import MessageTrace

PUBLIC = {"login"}
SESSION = {"logout", "login_verify"}  # the login's second step: any logged-in user, no role
REDIRECTS = {"home"}  # read views that only send the user on to another page


def walk(patterns, prefix=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from walk(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry


ALL_PATTERNS = sorted(walk(get_resolver().url_patterns), key=lambda item: item[0])
# The REST API answers 401/403 in JSON, not a login redirect; api/tests/test_api_access.py is its
# generated matrix. Its console pages (api/docs/, api/tokens/…) stay in this one.
ALL_PATTERNS = [(r, p) for r, p in ALL_PATTERNS if not r.startswith(("api/v1/", "api/^v1/", "api/schema/"))]
GUARDED = [(route, p) for route, p in ALL_PATTERNS if p.name not in PUBLIC | SESSION]


def concrete(route: str, server: MailServer, action: ServiceAction) -> str:
    if route.startswith("queue/actions/"):
        from mailqueue.models import QueueAction

        QueueAction.objects.get_or_create(pk=action.pk, defaults={"server": server, "verb": "refresh"})
    path = "/" + route.replace("<slug:server>", server.name).replace("<int:pk>", str(action.pk))
    path = path.replace("<slug:queue_id>", "6AOIGq4n025795").replace("<str:map_name>", "aliases")
    assert "<" not in path, f"add the converter of {route} to this test"
    return path


@pytest.fixture
def scene(db):
    server = MailServer.objects.create(
        name="remote",
        hostname="mx.example.org",
        conf_dir="/nonexistent/etc/mail",
        mc_path="/nonexistent/etc/mail/sendmail.mc",
        cf_path="/nonexistent/etc/mail/sendmail.cf",
        access_path="/nonexistent/etc/mail/access",
        cert_dir="/nonexistent/certs",
        queue_dir="/nonexistent/mqueue",
        pid_file="/nonexistent/sendmail.pid",
        sendmail_bin="/nonexistent/sendmail",
        smtp_port=9,
        celery_queue="mta.remote",
    )
    action = ServiceAction.objects.create(server=server, verb=ServiceAction.Verb.START)
    # Every <int:pk> route finds its object under the same pk.
    build = ConfigBuild.objects.create(pk=action.pk, server=server, mc_text="dnl\n")
    InstallJob.objects.create(pk=action.pk, server=server, build=build)
    AccessEntry.objects.create(pk=action.pk, server=server, tag="Connect", key="192.0.2", value="REJECT")
    AgentRequest.objects.create(pk=action.pk, server=server, kind="map lookup", params={"map": "access", "key": "x"})
    # What the host's agent last saw: every page reads this row, none touches the MTA.
    HostSnapshot.objects.create(
        server=server,
        taken_at=timezone.now(),
        daemon={"pid": None, "process_alive": False, "banner": "", "banner_error": "Connection refused"},
        cf={"path": server.cf_path, "exists": False, "error": "No such file or directory"},
    )
    certificate = Certificate.objects.create(
        pk=action.pk,
        server=server,
        role=Certificate.Role.CA,
        pem="-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
        subject="CN=Scene CA",
        issuer="CN=Scene CA",
        serial="1",
        sha256="0" * 64,
        not_before=timezone.now(),
        not_after=timezone.now(),
        key_type="ECDSA",
        key_bits=256,
        public_sha256="0" * 64,
        origin="uploaded",
    )
    TlsJob.objects.create(pk=action.pk, server=server, kind=TlsJob.Kind.CA)
    Deployment.objects.create(pk=action.pk, server=server, ca=certificate, server_certificate=certificate)
    MessageTrace.objects.create(pk=action.pk, server=server, queue_id="6B4A00aa000001")
    return server, action


def snapshot():
    return (
        list(MailServer.objects.values()),
        list(ServiceAction.objects.values()),
        list(ConfigBuild.objects.values()),
        list(InstallJob.objects.values()),
        list(AccessEntry.objects.values()),
        list(AgentRequest.objects.values()),
        list(Certificate.objects.values()),
        list(TlsJob.objects.values()),
        list(Deployment.objects.values()),
        list(User.objects.values("id", "username", "password", "is_active")),
        AuditEvent.objects.exclude(outcome=AuditEvent.Outcome.DENIED).count(),
    )


def required_role(pattern) -> Role:
    role = getattr(pattern.callback, "required_role", None)
    assert role is not None, f"{pattern.name} has no require_role guard"
    return role


def is_change(pattern, client, path) -> bool:
    return client.get(path).status_code == 405


def test_every_view_declares_its_role():
    assert GUARDED, "no URL patterns found"
    for _, pattern in GUARDED:
        required_role(pattern)


@pytest.mark.parametrize("route,pattern", ALL_PATTERNS, ids=[r for r, _ in ALL_PATTERNS])
def test_anonymous_users_are_sent_to_login(route, pattern, scene, client):
    path = concrete(route, *scene)
    if pattern.name in PUBLIC:
        return
    before = snapshot()
    for method in (client.get, client.post):
        response = method(path)
        if pattern.name in SESSION and method == client.get:
            assert response.status_code in (302, 405)
            continue
        assert response.status_code == 302, (method, path)
        assert response["Location"].startswith("/login/")
    assert snapshot() == before


@pytest.mark.parametrize("route,pattern", GUARDED, ids=[r for r, _ in GUARDED])
def test_roles_methods_and_csrf(route, pattern, scene, viewer, operator, administrator):
    path = concrete(route, *scene)
    role = required_role(pattern)
    users = {Role.VIEWER: viewer, Role.OPERATOR: operator, Role.ADMINISTRATOR: administrator}
    nobody = User.objects.create_user("nobody", password="correct horse battery")
    client = Client()
    client.force_login(administrator)
    change = is_change(pattern, client, path)

    if change:
        for below in [r for r in Role if r < role]:
            client.force_login(users[below])
            before = snapshot()
            assert client.post(path, {"verb": "stop"}).status_code == 403, (below, path)
            assert snapshot() == before
        strict = Client(enforce_csrf_checks=True)
        strict.force_login(users[role])
        before = snapshot()
        assert strict.post(path, {"verb": "stop"}).status_code == 403
        assert snapshot() == before
        client.force_login(users[role])
        before = snapshot()
        assert client.get(path).status_code == 405
        assert client.head(path).status_code == 405
        assert snapshot() == before
    else:
        client.force_login(users[role])
        assert client.get(path).status_code == (302 if pattern.name in REDIRECTS else 200), path
        for below in [r for r in Role if r < role]:
            client.force_login(users[below])
            assert client.get(path).status_code == 403
        client.force_login(nobody)
        assert client.get(path).status_code == 403
        client.force_login(administrator)
        before = snapshot()
        assert client.post(path).status_code == 405, f"{path} must not accept POST"
        assert snapshot() == before


def test_a_refusal_is_audited(scene, viewer, client):
    server, _ = scene
    client.force_login(viewer)
    client.post(f"/servers/{server.name}/service/", {"verb": "stop"})
    event = AuditEvent.objects.get(outcome=AuditEvent.Outcome.DENIED)
    assert event.username == viewer.username
    assert "administrator" in event.detail
