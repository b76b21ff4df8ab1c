"""Helpers for the headless-Chromium tests: logging a user in through the real forms (password,
then the authenticator's current code when the user has one), and where screenshots go."""

from __future__ import annotations

import os
from pathlib import Path

from testing.users import PASSWORD, fresh_totp_code

SCREENSHOTS = Path(os.environ.get("MAILADMIN_SCREENSHOTS", "/tmp/mailadmin-screenshots"))


def log_in(page, live_server, user, password: str = PASSWORD):
    page.goto(f"{live_server.url}/")
    assert "/login/" in page.url
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", password)
    page.click("form [type=submit]")
    page.wait_for_load_state()
    if "/login/code/" in page.url:
        page.fill("input[name=code]", fresh_totp_code(user.username))
        page.click("form[action^='/login/code/'] [type=submit]")
        page.wait_for_load_state()
        assert "/login/code/" not in page.url, page.content()[:2000]
