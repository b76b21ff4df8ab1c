"""Helpers for the headless-Chromium tests: logging a user in through the real form, and where screenshots go."""

from __future__ import annotations

import os
from pathlib import Path

SCREENSHOTS = Path(os.environ.get("MAILADMIN_SCREENSHOTS", "/tmp/mailadmin-screenshots"))


def log_in(page, live_server, user):
    page.goto(f"{live_server.url}/")
    assert "/login/" in page.url
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", "correct horse battery")
    page.click("form [type=submit]")
    page.wait_for_load_state()
