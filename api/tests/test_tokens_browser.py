"""In Chromium: a user makes a token on their Account page, sees it once, a script uses it, the user
revokes it and the script is refused; the API docs page renders Swagger UI under the console's CSP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from api.models import ApiToken
from mailadmin.models import AuditEvent
from testing.api import remote_server
from testing.browser import SCREENSHOTS, log_in
from testing.csp import watch_violations
from testing.users import make_user


def api_get(live_server, path: str, token: str) -> tuple[int, dict]:
    request = urllib.request.Request(f"{live_server.url}{path}", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_user_makes_a_token_once_a_script_uses_it_and_revoking_it_locks_the_script_out(page, live_server):
    remote_server("relay1")
    violations = watch_violations(page)
    user = make_user("scripter", "operator")
    log_in(page, live_server, user)
    page.goto(f"{live_server.url}/account/")
    page.click("a:has-text('Manage API tokens')")
    # An operator is offered what an operator may do, and nothing an administrator's role needs.
    offered = page.locator("input[name=scopes]").evaluate_all("boxes => boxes.map(box => box.value)")
    assert "queue:write" in offered and "config:install" not in offered
    page.fill("input[name=name]", "queue age check")
    page.check("input[name=scopes][value='queue:read']")
    page.check("input[name=scopes][value='config:read']")
    page.fill("input[name=days]", "30")
    page.click("form button:has-text('Create token')")
    token = page.locator("#new-token code").first.inner_text().strip()
    assert token.startswith("mta_")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "api-token-created.png"), full_page=True)

    status, servers = api_get(live_server, "/api/v1/servers/", token)
    assert status == 200 and [server["name"] for server in servers] == ["relay1"]
    status, _ = api_get(live_server, "/api/v1/audit/", token)
    assert status == 403  # audit:read was not ticked

    page.reload()  # shown once: a second look shows the prefix alone
    assert token not in page.content()
    row = page.locator("#token-list tbody tr", has_text="queue age check")
    assert "never" not in row.inner_text(), "last use is shown"
    row.locator("button:has-text('Revoke')").click()
    assert "revoked" in page.locator("#token-list tbody tr", has_text="queue age check").inner_text()
    status, body = api_get(live_server, "/api/v1/servers/", token)
    assert status == 401 and "revoked" in body["detail"]
    assert ApiToken.objects.get().revoked_at is not None
    assert AuditEvent.objects.filter(action="revoke API token", username="scripter").exists()
    assert not violations, violations


def test_the_api_docs_render_from_vendored_files_with_no_csp_violation(page, live_server):
    violations = watch_violations(page)
    outside: list[str] = []
    page.on("request", lambda request: outside.append(request.url) if live_server.url not in request.url else None)
    log_in(page, live_server, make_user("reader", "viewer"))
    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector(".swagger-ui .opblock", timeout=20000)
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/api/v1/servers/{server}/queue/" in path.replace("\u200b", "") for path in paths), paths
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "api-docs.png"), full_page=True)
    assert not violations, violations
    assert not [url for url in outside if not url.startswith(("data:", "blob:"))], outside
