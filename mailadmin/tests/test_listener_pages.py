"""The listeners page through Django's test client: what it shows to each role, the rows and the
audit after each POST, refusals that come back at their field with what was typed, and hostile
values that change nothing.

The server is the session's real instance, its .mc imported into rows (so its own DAEMON_OPTIONS
line is the first row), and its macro names as its agent reported them: every value is judged
against those. Nothing here builds or installs, so the instance's files stay as they are.
"""

import html
import re
from pathlib import Path

import pytest
from django.test import Client

from mailadmin import config, listeners, tasks
from mailadmin.models import AuditEvent, ConfigBuild, InstallJob, Listener
from testing.browser import SCREENSHOTS, log_in
from testing.csp import watch_violations
from testing.hostile_values import hostile_values

FIELDS = ("name", "address", "port", "modifiers", "extra")


@pytest.fixture
def server(mta_server):
    config.import_mc(mta_server, Path(mta_server.mc_path).read_text())
    return mta_server


@pytest.fixture
def as_operator(client, operator):
    client.force_login(operator)
    return client


def url(server, *tail) -> str:
    return "/".join([f"/servers/{server.name}/listeners", *map(str, tail)]) + "/"


def new_listener(**fields) -> dict:
    return {"kind": "daemon", "name": "MTA-2", "address": "127.0.0.1", "port": "2600", **fields}


def invalid_field(page: str, name: str) -> str:
    """The messages shown under the input or select `name` marked invalid (empty if it is not)."""
    element = rf'<(?:(?P<select>select)|input) class="[^"]*is-invalid"[^>]* name="{name}"[^>]*>(?(select).*?</select>)'
    found = re.search(element + r'\s*((?:<div class="invalid-feedback">.*?</div>)+)', page, re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", found.group(2))) if found else ""


def test_a_viewer_sees_the_imported_daemon_line_the_defaults_and_no_form(server, client, viewer):
    client.force_login(viewer)
    page = client.get(url(server)).content.decode()
    (row,) = Listener.objects.filter(server=server)
    assert row.kind == "daemon" and row.name == f"MTA-{server.name}" and row.port == str(server.smtp_port)
    assert "DAEMON_OPTIONS" in page and f"MTA-{server.name}" in page and "accepts mail" in page
    assert 'class="nav-link active" href="/servers/' + server.name + '/listeners/"' in page
    for warning in listeners.warnings(server):
        assert html.escape(warning) in page
    assert "Add a listener" not in page and 'name="port"' not in page


def test_an_operator_adds_a_listener_and_the_page_says_to_build(server, as_operator, operator):
    response = as_operator.post(url(server, "add"), new_listener(comment="the second port"))
    assert response.status_code == 302 and response["Location"] == url(server)
    row = Listener.objects.get(server=server, name="MTA-2")
    assert (row.kind, row.address, row.port, row.position, row.comment) == (
        "daemon",
        "127.0.0.1",
        "2600",
        1,
        "the second port",
    )
    event = AuditEvent.objects.get(action="add listener", server=server)
    assert event.user == operator and event.target == "DAEMON_OPTIONS"
    assert event.detail == "Name=MTA-2,Port=2600,Addr=127.0.0.1"
    page = as_operator.get(url(server)).content.decode()
    assert "DAEMON_OPTIONS(`Name=MTA-2,Port=2600,Addr=127.0.0.1&#x27;) added. Build and install to apply it." in page
    assert 'id="listener-pending"' in page and "an administrator builds and installs it" in page


def test_without_a_live_build_of_the_console_the_page_says_a_build_must_be_installed(server, client, administrator):
    client.force_login(administrator)
    page = client.get(url(server)).content.decode()
    hint = page[page.index('id="listener-pending"') : page.index('id="listener-rows"')]
    assert "once a build made by this console is installed" in hint
    assert f'href="/servers/{server.name}/config/"' in hint


def test_a_listener_changed_after_an_install_asks_for_a_build_with_the_button_beside_it(private_console):
    """A real build and install on the module's own instance (in this process, as its agent)."""
    server, client = private_console
    assert client.post(f"/servers/{server.name}/builds/").status_code == 302
    build = ConfigBuild.objects.latest("pk")
    tasks.run_config_build(build.pk)
    assert client.post(f"/builds/{build.pk}/install/").status_code == 302
    tasks.run_install(InstallJob.objects.latest("pk").pk)
    assert config.live_build(server) == build
    assert 'id="listener-pending"' not in client.get(url(server)).content.decode()

    assert client.post(url(server, "add"), new_listener(port="2699")).status_code == 302
    page = client.get(url(server)).content.decode()
    hint = page[page.index('id="listener-pending"') : page.index('id="listener-rows"')]
    assert "differ from what the live build" in hint and build.build_id in hint
    assert f'action="/servers/{server.name}/builds/"' in hint and "Build sendmail.cf" in hint


def test_a_client_line_takes_only_client_modifiers_and_keys(server, as_operator):
    response = as_operator.post(
        url(server, "add"), {"kind": "client", "family": "inet", "modifiers": "h", "extra": "SendBufSize=65536"}
    )
    assert response.status_code == 302
    row = Listener.objects.get(server=server, kind="client")
    assert listeners.spec_of(row).mc_line() == "CLIENT_OPTIONS(`Family=inet,M=h,SendBufSize=65536')"

    refused = as_operator.post(url(server, "add"), {"kind": "client", "modifiers": "E", "extra": "Listen=5"})
    assert refused.status_code == 400
    page = refused.content.decode()
    assert "only the letters hAS" in invalid_field(page, "modifiers")
    assert Listener.objects.filter(server=server, kind="client").count() == 1


def test_a_refused_add_says_why_at_the_field_and_keeps_what_was_typed(server, as_operator):
    typed = new_listener(name="MTA-typed", port="70000", extra="children=20", comment="kept as typed")
    response = as_operator.post(url(server, "add"), typed)
    assert response.status_code == 400
    page = response.content.decode()
    assert "Nothing was saved." in page
    assert "Port=" in invalid_field(page, "port")
    assert invalid_field(page, "name") == "" and invalid_field(page, "address") == ""
    add_form = page[page.index('id="listener-add"') :]
    for value in ("MTA-typed", "70000", "children=20", "kept as typed", "127.0.0.1"):
        assert f'value="{value}"' in add_form
    assert not Listener.objects.filter(server=server, name="MTA-typed").exists()
    assert not AuditEvent.objects.filter(action="add listener").exists()


def test_every_field_of_a_refused_add_is_marked_not_only_the_first(server, as_operator):
    response = as_operator.post(url(server, "add"), new_listener(port="abc", comment="two\nlines"))
    page = response.content.decode()
    assert response.status_code == 400
    assert invalid_field(page, "port") and "one line of printable text" in invalid_field(page, "comment")


def test_a_second_daemon_on_the_same_socket_is_refused_for_the_whole_line(server, as_operator):
    mine = Listener.objects.get(server=server)
    response = as_operator.post(url(server, "add"), new_listener(address=mine.address, port=mine.port))
    assert response.status_code == 400
    page = response.content.decode()
    assert f"Two daemons listen on {mine.address} port {mine.port}" in page
    assert Listener.objects.filter(server=server).count() == 1


def test_an_empty_daemon_line_is_refused_with_what_it_needs(server, as_operator):
    response = as_operator.post(url(server, "add"), {"kind": "daemon"})
    assert response.status_code == 400
    assert "Give at least a port, an address or a name." in response.content.decode()


def test_editing_a_row_saves_it_and_the_audit_has_before_and_after(server, as_operator, operator):
    row = Listener.objects.get(server=server)
    before = listeners.spec_of(row).value()
    fields = {f: getattr(row, f) for f in (*FIELDS, "family")}
    response = as_operator.post(url(server, row.pk), {**fields, "modifiers": "E", "comment": "no ETRN"})
    assert response.status_code == 302
    row.refresh_from_db()
    assert (row.modifiers, row.comment) == ("E", "no ETRN")
    event = AuditEvent.objects.get(action="edit listener")
    assert event.user == operator and event.detail == f"{before} → {before},M=E"


def test_a_refused_edit_is_shown_at_that_rows_field_and_the_row_is_unchanged(server, as_operator):
    row = Listener.objects.get(server=server)
    stored = listeners.spec_of(row)
    response = as_operator.post(url(server, row.pk), {"name": row.name, "port": row.port, "address": "::1x"})
    assert response.status_code == 400
    page = response.content.decode()
    line = page[page.index(f'id="listener-row-{row.pk}"') :]
    line = line[: line.index("</tr>")]
    assert "Addr=" in invalid_field(line, "address") and 'value="::1x"' in line
    row.refresh_from_db()
    assert listeners.spec_of(row) == stored
    assert not AuditEvent.objects.filter(action="edit listener").exists()


def test_deleting_a_row_removes_it_and_audits_the_line(server, as_operator, operator):
    row = Listener.objects.get(server=server)
    value = listeners.spec_of(row).value()
    response = as_operator.post(url(server, row.pk, "delete"))
    assert response.status_code == 302
    assert not Listener.objects.filter(server=server).exists()
    event = AuditEvent.objects.get(action="delete listener")
    assert (event.user, event.target, event.detail) == (operator, "DAEMON_OPTIONS", value)
    page = as_operator.get(url(server)).content.decode()
    assert "No listener rows" in page and "port 25 on every address" in page


def test_a_viewer_may_change_nothing_and_the_refusal_is_audited(server, client, viewer):
    client.force_login(viewer)
    row = Listener.objects.get(server=server)
    for path in (url(server, "add"), url(server, row.pk), url(server, row.pk, "delete")):
        assert client.post(path, new_listener()).status_code == 403
    assert Listener.objects.filter(server=server).count() == 1
    assert AuditEvent.objects.filter(action="permission denied", user=viewer).count() == 3


def test_changes_are_posts_with_a_csrf_token(server, operator):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(operator)
    row = Listener.objects.get(server=server)
    assert browser.get(url(server, "add")).status_code == 405
    assert browser.post(url(server, "add"), new_listener()).status_code == 403
    assert browser.post(url(server, row.pk, "delete")).status_code == 403
    assert Listener.objects.filter(server=server).count() == 1


def test_a_row_is_reached_only_through_its_own_server(server, as_operator):
    row = Listener.objects.get(server=server)
    assert as_operator.post(f"/servers/no-such-server/listeners/{row.pk}/delete/").status_code == 404
    assert Listener.objects.filter(pk=row.pk).exists()


def test_hostile_values_in_every_field_are_refused_and_shown_back_only_escaped(server, as_operator, tmp_path):
    canary = tmp_path / "canary"
    values = hostile_values(str(canary))
    sample = values[::9] + [v for v in values if "<" in v or "\n" in v]
    for field in FIELDS:
        for raw in sample:
            if not raw.strip():
                continue
            response = as_operator.post(
                url(server, "add"), new_listener(**{field: raw, "name": "MTA-h"} if field != "name" else {field: raw})
            )
            assert response.status_code == 400, (field, raw)
            page = response.content.decode()
            assert invalid_field(page, field) or "Nothing was saved." in page, (field, raw)
            if "<" in raw:
                assert raw not in page, (field, raw)
    assert Listener.objects.filter(server=server).count() == 1
    assert not AuditEvent.objects.filter(action="add listener").exists()
    assert not canary.exists()


def test_the_service_refuses_every_hostile_value_in_every_field(server, tmp_path):
    canary = tmp_path / "canary"
    stored = []
    for field in FIELDS:
        for raw in hostile_values(str(canary)):
            try:
                row = listeners.add(server, "daemon", {"port": "2601", "address": "127.0.0.1", field: raw})
            except Exception as exc:
                assert hasattr(exc, "error_dict"), (field, raw, exc)
                continue
            stored.append((field, raw, getattr(row, field)))
            row.delete()
    # Only what strip() leaves of a value may be kept (a trailing newline is gone, not stored).
    assert all(value == raw.strip() and value.isprintable() for _, raw, value in stored), stored
    assert not canary.exists()


def test_a_hostile_comment_is_kept_as_inert_text(server, as_operator):
    comment = "x')dnl esyscmd(`id') <b>bold</b>"
    assert as_operator.post(url(server, "add"), new_listener(comment=comment)).status_code == 302
    assert Listener.objects.get(server=server, name="MTA-2").comment == comment
    page = as_operator.get(url(server)).content.decode()
    assert "<b>bold</b>" not in page and html.escape(comment) in page


@pytest.mark.browser
def test_the_listeners_page_in_chromium(page, live_server, server, operator):
    """An operator mistypes a port, reads why beside the box, corrects it and adds the listener;
    nothing on the page breaks the Content Security Policy."""
    violations = watch_violations(page)
    log_in(page, live_server, operator)
    page.goto(f"{live_server.url}{url(server)}")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "listeners.png"), full_page=True)

    form = page.locator("#listener-add")
    form.get_by_label("Name").fill("MTA-2")
    form.get_by_label("Address").fill("127.0.0.1")
    form.get_by_label("Port").fill("99999")
    form.get_by_label("Comment (kept in the .mc)").fill("the second port")
    form.locator("button", has_text="Add listener").click()
    page.wait_for_load_state()
    assert "Nothing was saved." in page.locator("#listener-refused").inner_text()
    port = form.get_by_label("Port")
    assert port.evaluate("box => box.classList.contains('is-invalid')") and port.input_value() == "99999"
    assert form.locator(".invalid-feedback:visible").inner_text().startswith("Port=")
    assert form.get_by_label("Comment (kept in the .mc)").input_value() == "the second port"
    page.screenshot(path=str(SCREENSHOTS / "listeners-refused.png"), full_page=True)

    port.fill("2600")
    form.locator("button", has_text="Add listener").click()
    page.wait_for_load_state()
    assert "added. Build and install to apply it." in page.inner_text("main")
    assert Listener.objects.filter(server=server, name="MTA-2", port="2600").exists()
    assert page.locator("#listener-rows input[name=name][value='MTA-2']").count() == 1
    page.screenshot(path=str(SCREENSHOTS / "listeners-added.png"), full_page=True)
    assert violations == []


def test_an_ipv6_address_without_family_inet6_is_refused_at_the_family(server, as_operator):
    """sendmail would read ::1 as an IPv4 host name and refuse the whole cf (host "::1" unknown)."""
    response = as_operator.post(url(server, "add"), new_listener(address="::1"))
    assert response.status_code == 400
    assert "choose Family=inet6" in invalid_field(response.content.decode(), "family")
    assert as_operator.post(url(server, "add"), new_listener(address="::1", family="inet6")).status_code == 302
    row = Listener.objects.get(server=server, name="MTA-2")
    assert listeners.spec_of(row).value() == "Name=MTA-2,Family=inet6,Port=2600,Addr=::1"
