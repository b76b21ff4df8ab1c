"""An administrator changes an option in Chromium, follows the build, reviews the diff, installs it."""

import re
from pathlib import Path

import pytest

from mailadmin import config
from mailadmin.mta import daemon
from testing.browser import log_in

pytestmark = pytest.mark.browser


@pytest.fixture
def managed(instance_files):
    server = instance_files
    config.import_mc(server, Path(server.mc_path).read_text())
    config.import_access(server, Path(server.access_path).read_text())
    return server


def test_change_build_review_install(page, live_server, worker, managed, administrator):
    server = managed
    log_in(page, live_server, administrator)
    page.goto(f"{live_server.url}/servers/{server.name}/config/")

    row = page.locator("form#opt-maxmessagesize")
    row.locator("input[name=value]").fill("5000000")
    row.locator("button[type=submit]", has_text="Set").click()
    page.wait_for_load_state()
    assert "MaxMessageSize set to 5000000" in page.inner_text("body")

    page.click("button:has-text('Build sendmail.cf')")
    page.wait_for_url(re.compile(r"/builds/\d+/$"))
    page.locator(".diff-add", has_text="O MaxMessageSize=5000000").wait_for(timeout=30000)
    page.click("button:has-text('Install and reload')")
    page.wait_for_url(re.compile(r"/installs/\d+/$"))
    page.locator("#work-progress .badge", has_text="done").wait_for(timeout=30000)

    page.goto(f"{live_server.url}/servers/{server.name}/config/installed/")
    assert "5000000" in page.locator("table", has_text="MaxMessageSize").inner_text()
    assert "O MaxMessageSize=5000000" in Path(server.cf_path).read_text()
    assert re.search(r"/mailadmin-b\d+;", daemon.status(server).banner)
