"""An administrator changes an option in Chromium, follows the build, reviews the diff, installs it."""

import re
from pathlib import Path

import pytest

from mailadmin import config
from mailadmin.cf import catalog
from mailadmin.models import ConfigBuild, ConfigValue, FeatureSetting
from mailadmin.mta import daemon
from testing.browser import SCREENSHOTS, log_in

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


@pytest.fixture
def imported(mta_server):
    """The session's instance as rows (nothing here builds or installs, so its files stay as they are)."""
    config.import_mc(mta_server, Path(mta_server.mc_path).read_text())
    config.import_access(mta_server, Path(mta_server.access_path).read_text())
    return mta_server


def comes_into_view(page, selector: str) -> None:
    """Wait until the element's top is just below the sticky filter box, at the top of the viewport
    (the browser also jumps to a URL's fragment itself as the page loads)."""
    page.wait_for_function(
        """(selector) => {
            const box = document.querySelector(selector).getBoundingClientRect();
            const bar = document.getElementById("config-filter").getBoundingClientRect();
            return box.top >= bar.bottom - 1 && box.top < bar.bottom + 20;
        }""",
        arg=selector,
        timeout=5000,
    )


def test_ticking_terminate_saves_it_as_ratecontrols_second_argument(page, live_server, imported, administrator):
    server = imported
    log_in(page, live_server, administrator)
    page.goto(f"{live_server.url}/servers/{server.name}/config/")

    row = page.locator("#feature-ratecontrol")
    row.get_by_label("Refuse with 421 and close the connection (terminate)").check()
    row.get_by_label("use this FEATURE").check()
    row.locator("button", has_text="Save").click()
    page.wait_for_url(re.compile(r"#feature-ratecontrol$"))

    assert FeatureSetting.objects.get(server=server, name="ratecontrol").args == ["", "terminate"]
    row = page.locator("#feature-ratecontrol")
    assert "FEATURE(ratecontrol) on" in row.inner_text()  # the outcome is shown beside the row
    assert row.get_by_label("Refuse with 421 and close the connection (terminate)").is_checked()
    assert not row.get_by_label("Check as the client connects (nodelay)").is_checked()
    comes_into_view(page, "#feature-ratecontrol")
    page.screenshot(path=str(SCREENSHOTS / "config-ratecontrol-terminate.png"))


def test_the_filter_narrows_the_page_and_a_set_option_far_down_comes_back_in_view(
    page, live_server, imported, administrator
):
    server = imported
    log_in(page, live_server, administrator)
    page.goto(f"{live_server.url}/servers/{server.name}/config/")
    everything = page.locator("[data-filter]:visible").count()

    page.fill("#config-filter-input", "TLS")
    visible = page.locator("tr[id^='option-']:visible")
    names = [row.get_attribute("id").removeprefix("option-") for row in visible.all()]
    tls_group = [name for name, spec in catalog.OPTIONS.items() if spec.group == catalog.TLS]
    assert set(tls_group) <= set(names) and "MaxMessageSize" not in names
    for name in names:
        spec = catalog.OPTIONS[name]
        assert "tls" in f"{name} {spec.m4} {spec.group} {spec.help}".lower(), name
    assert "?filter=TLS" in page.url
    page.screenshot(path=str(SCREENSHOTS / "config-filter-tls.png"), full_page=True)

    page.fill("#config-filter-input", "masquerad")
    shown = {row.get_attribute("id") for row in page.locator("[data-filter]:visible").all()}
    assert {"option-MasqueradeAs", "option-MasqueradeDomains", "option-ExposedUsers"} <= shown
    assert {"feature-masquerade_envelope", "feature-masquerade_entire_domain", "feature-allmasquerade"} <= shown
    page.screenshot(path=str(SCREENSHOTS / "config-filter-masquerade.png"), full_page=True)

    page.fill("#config-filter-input", "")
    assert page.locator("[data-filter]:visible").count() == everything
    target = page.locator("tr[id='option-SoftBounce']")  # near the end of the options, thousands of pixels down
    target.scroll_into_view_if_needed()
    target.locator("input[name=value]").fill("True")
    target.locator("button", has_text="Set").click()
    page.wait_for_url(re.compile(r"#option-SoftBounce$"))
    comes_into_view(page, "tr[id='option-SoftBounce']")
    assert page.evaluate("window.scrollY") > 2000
    assert ConfigValue.objects.get(server=server, name="SoftBounce").value == "True"

    # Set with a filter typed: the page comes back filtered the same way, at the same row.
    page.fill("#config-filter-input", "timeout")
    row = page.locator("tr[id='option-Timeout.queuereturn']")
    row.locator("input[name=value]").fill("3d")
    row.locator("button", has_text="Set").click()
    page.wait_for_url(re.compile(r"\?filter=timeout#option-Timeout\.queuereturn$"))
    assert page.input_value("#config-filter-input") == "timeout"
    assert page.locator("tr[id='option-MaxMessageSize']").is_hidden()
    assert "Timeout.queuereturn set to 3d" in page.locator("tr[id='option-Timeout.queuereturn']").inner_text()
    comes_into_view(page, "tr[id='option-Timeout.queuereturn']")
    assert ConfigValue.objects.get(server=server, name="Timeout.queuereturn").value == "3d"


def build_and_install_in_the_browser(page, live_server, server) -> ConfigBuild:
    """Build, review and install through the pages, the session's worker doing the agent's part
    (not this process: the worker, running once any test has started it, would race it)."""
    page.goto(f"{live_server.url}/servers/{server.name}/config/")
    page.click("button:has-text('Build sendmail.cf')")
    page.wait_for_url(re.compile(r"/builds/\d+/$"))
    build = ConfigBuild.objects.latest("pk")
    install = page.locator("#diff-live button[type=submit]")
    install.wait_for(timeout=30000)
    install.click()
    page.wait_for_url(re.compile(r"/installs/\d+/$"))
    page.locator("#work-progress .badge", has_text="done").wait_for(timeout=30000)
    build.refresh_from_db()
    assert config.live_build(server) == build
    return build


def test_rolling_back_shows_what_the_rollback_removes_and_the_rows_reset_to_the_live_build(
    page, live_server, worker, managed, administrator
):
    server = managed
    log_in(page, live_server, administrator)
    config.set_option(server, "MaxMessageSize", "6000000")
    first = build_and_install_in_the_browser(page, live_server, server)
    config.set_option(server, "CipherList", "HIGH")
    second = build_and_install_in_the_browser(page, live_server, server)

    page.goto(f"{live_server.url}/builds/{first.pk}/")
    live_card = page.locator("#diff-live")
    assert f"Compared with the live cf (build {second.build_id})" in live_card.locator(".card-header").inner_text()
    live_card.locator(".diff-del", has_text="O CipherList=HIGH").wait_for()
    assert live_card.locator("button", has_text="Install again (roll back to it)").is_visible()
    stored = page.locator("#diff-at-build")
    assert not stored.locator("pre").is_visible()  # secondary: folded away until asked for
    stored.locator("summary").click()
    stored.locator(".diff-add", has_text="O MaxMessageSize=6000000").wait_for()
    page.screenshot(path=str(SCREENSHOTS / "build-against-live.png"), full_page=True)

    page.goto(f"{live_server.url}/servers/{server.name}/config/")
    row = page.locator("form#opt-maxmessagesize")
    row.locator("input[name=value]").fill("7000000")
    row.locator("button", has_text="Set").click()
    page.wait_for_url(re.compile(r"#option-MaxMessageSize$"))
    page.goto(f"{live_server.url}/servers/{server.name}/config/")
    banner = page.locator("#row-differences")
    assert "differ from what the live build" in banner.inner_text() and "options" in banner.inner_text()
    page.screenshot(path=str(SCREENSHOTS / "config-rows-differ.png"))
    banner.locator("button", has_text=f"Reset the rows to build {second.build_id}").click()
    page.wait_for_load_state()
    assert f"what build {second.build_id} was made from again" in page.inner_text("body")
    assert page.locator("#row-differences").count() == 0
    assert ConfigValue.objects.get(server=server, name="MaxMessageSize").value == "6000000"
