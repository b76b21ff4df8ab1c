"""Headless Chromium against the console: an administrator's first login goes through enrolment of
a real authenticator, then they create an operator who changes the password they were handed.
No page of the flow may trip the Content Security Policy (no inline script or style)."""

import re

import pytest
from django.contrib.auth.models import User

from mailadmin.models import AuditEvent
from testing.browser import SCREENSHOTS, log_in
from testing.csp import watch_violations
from testing.users import PASSWORD, has_authenticator, make_user, totp_code_from_secret

pytestmark = pytest.mark.browser


def test_a_first_administrator_enrols_an_authenticator_and_logs_in_again_with_a_code(page, live_server):
    make_user("root", "administrator", authenticator=False)
    violations = watch_violations(page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    page.goto(f"{live_server.url}/")
    page.fill("input[name=username]", "root")
    page.fill("input[name=password]", PASSWORD)
    page.click("form [type=submit]")
    assert page.url.startswith(f"{live_server.url}/account/2fa/")
    assert page.locator("nav a", has_text="Servers").count() == 0  # nothing else is reachable yet
    page.goto(f"{live_server.url}/servers/")
    assert "/account/2fa/" in page.url

    page.click("text=Start: show the secret")
    qr = page.locator("img[alt^='QR code']")
    assert qr.is_visible() and qr.evaluate("img => img.naturalWidth") > 0  # the SVG loaded under the CSP
    secret = page.inner_text("#totp-secret")
    page.screenshot(path=str(SCREENSHOTS / "people-enrol.png"), full_page=True)
    page.fill("input[name=code]", totp_code_from_secret(secret))
    page.click("text=Confirm")
    codes = page.locator("#recovery-codes li").all_inner_texts()
    assert len(codes) == 10 and has_authenticator("root")
    page.click("text=Continue")
    page.reload()
    assert page.locator("#recovery-codes").count() == 0  # shown once

    page.click("nav button:has-text('Log out')")
    page.fill("input[name=username]", "root")
    page.fill("input[name=password]", PASSWORD)
    page.click("form [type=submit]")
    assert "/login/code/" in page.url
    page.screenshot(path=str(SCREENSHOTS / "people-code.png"), full_page=True)
    page.click("form[action='/logout/'] button")
    log_in(page, live_server, User.objects.get(username="root"))  # password, then a fresh code
    page.goto(f"{live_server.url}/users/")
    assert page.locator("#user-root .badge.text-bg-success").inner_text() == "on"
    assert AuditEvent.objects.filter(action="2fa verified", username="root").exists()
    assert violations == []


def test_an_administrator_creates_an_operator_who_changes_the_handed_over_password(page, live_server, administrator):
    violations = watch_violations(page)
    log_in(page, live_server, administrator)
    page.goto(f"{live_server.url}/users/")
    page.fill("#id_username", "olga")
    page.select_option("#id_role", "operator")
    page.click("#user-create button[type=submit]")
    password = page.inner_text("#initial-password")
    assert re.search(r"operator", page.locator("#user-olga select[name=role]").input_value())
    page.screenshot(path=str(SCREENSHOTS / "people-users.png"), full_page=True)
    page.click("nav button:has-text('Log out')")

    olga = User.objects.get(username="olga")
    log_in(page, live_server, olga, password)
    assert page.locator("nav a", has_text="Users").count() == 0
    page.click("nav a:has-text('olga')")
    page.screenshot(path=str(SCREENSHOTS / "people-account.png"), full_page=True)
    new = "olga's own long passphrase"
    page.fill("#id_old_password", password)
    page.fill("#id_new_password1", new)
    page.fill("#id_new_password2", new)
    page.click("text=Change password")
    assert "Your password was changed." in page.inner_text("body")
    page.click("nav button:has-text('Log out')")
    log_in(page, live_server, olga, new)
    assert page.locator("nav").inner_text().count("olga") == 1
    assert AuditEvent.objects.filter(action="change password", username="olga", outcome="ok").exists()
    assert violations == []
