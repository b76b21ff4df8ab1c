"""The maps & classes page through Django's test client: what it shows to each role, the rows and
the audit after each POST, refusals at their field with what was typed kept, and the import from
the host, asked through an AgentRequest and answered by the agent's own code path
(answers.perform, mailadmin.mta.mapsource) reading the instance's real files.
"""

import html
import re
from pathlib import Path

import pytest

from mailadmin import maps, work
from mailadmin.cf import maps as mapfiles
from mailadmin.models import AgentRequest, AuditEvent, MapEntry
from mailadmin.mta import answers, mapbuild, mapsource  # noqa: F401  (mapsource registers its answer)
from mailadmin.work import WorkStatus
from testing.browser import SCREENSHOTS, log_in
from testing.map_samples import CONTINUED_ALIASES


@pytest.fixture
def server(mta_server):
    return mta_server


def url(server, *tail) -> str:
    return "/".join([f"/servers/{server.name}/maps", *map(str, tail)]) + "/"


def invalid_field(page: str, name: str) -> str:
    """The messages shown under the input `name` marked invalid (empty if it is not)."""
    element = rf'<input class="[^"]*is-invalid"[^>]* name="{name}"[^>]*>'
    found = re.search(element + r'\s*((?:<div class="invalid-feedback">.*?</div>)+)', page, re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", found.group(1))) if found else ""


def text_of(page: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def test_a_viewer_sees_the_eight_files_and_the_aliases_rows_but_no_form(server, client, viewer):
    maps.add(server, "aliases", "webmaster", "root", "the web team", user=None)
    client.force_login(viewer)
    page = client.get(url(server)).content.decode()
    for spec in mapfiles.SPECS.values():
        assert f'id="map-file-{spec.name}"' in page and html.escape(spec.title) in page
    text = text_of(page)
    assert "webmaster" in text and "the web team" in text and "1 row" in text
    assert "managed" in text and "not managed" in text
    assert 'id="map-add"' not in page and "Import from the host" not in page and 'name="key"' not in page
    assert 'class="nav-link active" href="/servers/' + server.name + '/maps/"' in page


def test_an_unknown_file_is_not_found(server, client, viewer):
    client.force_login(viewer)
    assert client.get(url(server) + "?map=passwd").status_code == 404


def test_an_operator_adds_a_row_and_the_page_lists_it_with_a_build_hint(server, client, operator):
    client.force_login(operator)
    response = client.post(
        url(server, "add", "virtusertable"), {"key": "info@example.org", "value": "alice", "comment": "sales"}
    )
    assert response.status_code == 302 and response["Location"].endswith("?map=virtusertable")
    (row,) = MapEntry.objects.filter(server=server, map="virtusertable")
    assert (row.key, row.value, row.comment) == ("info@example.org", "alice", "sales")
    event = AuditEvent.objects.get(action="add virtusertable row", server=server)
    assert event.user == operator and event.target == "info@example.org"
    page = client.get(response["Location"]).content.decode()
    assert "info@example.org added to virtusertable. Build and install to apply it." in text_of(page)
    assert 'id="map-pending"' in page
    assert "# sales\ninfo@example.org\talice\n" in html.unescape(page) or "info@example.org" in page


def test_a_refused_row_comes_back_at_its_field_with_what_was_typed(server, client, operator):
    client.force_login(operator)
    response = client.post(
        url(server, "add", "mailertable"),
        {"key": "partner.example", "value": "nosuch:[mx.partner.example]", "comment": "keep me"},
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert invalid_field(page, "value")
    assert (
        'value="partner.example"' in page
        and 'value="keep me"' in page
        and 'value="nosuch:[mx.partner.example]"' in page
    )
    assert not MapEntry.objects.filter(server=server, map="mailertable").exists()
    assert 'id="mailer-note"' in page and "<code>esmtp</code>" in page


def test_a_duplicate_key_is_refused_at_the_key(server, client, operator):
    maps.add(server, "aliases", "postmaster", "root", user=None)
    client.force_login(operator)
    response = client.post(url(server, "add", "aliases"), {"key": "postmaster", "value": "alice"})
    assert response.status_code == 400
    assert "already has a row" in invalid_field(response.content.decode(), "key")
    assert MapEntry.objects.filter(server=server, map="aliases").count() == 1


def test_an_operator_may_not_add_a_program_target_and_the_page_says_so(server, client, operator, administrator):
    client.force_login(operator)
    page = client.get(url(server)).content.decode()
    assert "targets are for administrators only" in text_of(page)
    response = client.post(url(server, "add", "aliases"), {"key": "vacation", "value": "|vacation alice"})
    assert response.status_code == 400
    assert "administrators only" in invalid_field(response.content.decode(), "value")
    assert not MapEntry.objects.filter(server=server, map="aliases").exists()


def test_editing_a_row_keeps_its_place_and_a_refused_edit_keeps_the_typing(server, client, operator):
    first = maps.add(server, "local-host-names", "one.example", user=None)
    maps.add(server, "local-host-names", "two.example", user=None)
    client.force_login(operator)
    response = client.post(url(server, "rows", first.pk), {"key": "uno.example", "comment": "renamed"})
    assert response.status_code == 302
    assert [r.key for r in maps.entries(server, "local-host-names")] == ["uno.example", "two.example"]
    assert AuditEvent.objects.filter(action="edit local-host-names row", target="uno.example").exists()
    response = client.post(url(server, "rows", first.pk), {"key": "bad host!", "comment": "x"})
    assert response.status_code == 400
    page = response.content.decode()
    assert invalid_field(page, "key") and 'value="bad host!"' in page
    first.refresh_from_db()
    assert first.key == "uno.example"


def test_deleting_a_row_and_a_kept_block(server, client, operator):
    maps.import_text(server, "relay-domains", "# partners\n\nrelay.example\n", user=None)
    client.force_login(operator)
    page = client.get(url(server) + "?map=relay-domains").content.decode()
    assert "kept as imported" in page
    kept = MapEntry.objects.get(server=server, map="relay-domains", key="", verbatim__startswith="#")
    typed = MapEntry.objects.get(server=server, map="relay-domains", key="relay.example")
    assert client.post(url(server, "rows", typed.pk, "delete")).status_code == 302
    assert client.post(url(server, "rows", kept.pk, "delete")).status_code == 302
    assert not MapEntry.objects.filter(server=server, map="relay-domains").exists()
    server.refresh_from_db()
    assert maps.is_managed(server, "relay-domains") and maps.rendered(server, "relay-domains") == ""
    assert AuditEvent.objects.filter(action="delete relay-domains row").count() == 2


def test_a_viewer_cannot_change_anything(server, client, viewer):
    row = maps.add(server, "aliases", "abuse", "root", user=None)
    client.force_login(viewer)
    assert client.post(url(server, "add", "aliases"), {"key": "x", "value": "root"}).status_code == 403
    assert client.post(url(server, "rows", row.pk), {"key": "y", "value": "root"}).status_code == 403
    assert client.post(url(server, "rows", row.pk, "delete")).status_code == 403
    assert client.post(url(server, "sources")).status_code == 403
    assert list(maps.entries(server, "aliases").values_list("key", flat=True)) == ["abuse"]


def test_the_preview_shows_the_file_as_a_build_writes_it(server, client, viewer):
    maps.add(server, "aliases", "webmaster", "alice, bob@example.org", "web", user=None)
    client.force_login(viewer)
    page = client.get(url(server) + "?preview=1").content.decode()
    assert html.escape(maps.rendered(server, "aliases")) in page
    assert 'id="map-preview" open' in page


def answer(row: AgentRequest) -> AgentRequest:
    """Answer as the host's agent does."""
    work.execute(AgentRequest, row.pk, answers.perform)
    row.refresh_from_db()
    return row


def test_importing_from_the_host_reads_the_files_through_the_agent_and_imports_them_byte_for_byte(
    server, client, operator
):
    client.force_login(operator)
    response = client.post(url(server, "sources"), {"map": "aliases"})
    assert response.status_code == 302
    row = AgentRequest.objects.get(server=server, kind="map sources")
    assert f"sources={row.pk}" in response["Location"]
    waiting = client.get(response["Location"]).content.decode()
    assert f'id="agent-request-{row.pk}"' in waiting and "hx-get" in waiting
    assert answer(row).status == WorkStatus.DONE, row.error
    live, _ = mapbuild.live_sources(server)
    assert "aliases" in live  # the instance has an aliases file
    files = {f["name"]: f for f in row.result["files"]}
    assert set(files) == set(mapfiles.MAP_NAMES)
    assert files["aliases"]["text"] == live["aliases"]
    page = client.get(response["Location"]).content.decode()
    assert 'id="map-source-aliases"' in page and "Import all files found" in page
    # The text imported is the agent's, whatever the browser sends along.
    response = client.post(url(server, "sources", row.pk, "import"), {"name": "aliases", "text": "evil: |/bin/sh\n"})
    assert response.status_code == 302
    assert maps.rendered(server, "aliases") == live["aliases"]
    server.refresh_from_db()
    assert maps.is_managed(server, "aliases")
    assert AuditEvent.objects.filter(action="import aliases", server=server, user=operator).exists()
    for name in set(mapfiles.MAP_NAMES) - set(live):
        assert not files[name]["exists"]


def test_import_all_imports_every_file_found_and_nothing_else(server, client, operator):
    client.force_login(operator)
    client.post(url(server, "sources"), {"map": "aliases"})
    row = answer(AgentRequest.objects.get(server=server, kind="map sources"))
    live, not_text = mapbuild.live_sources(server)
    response = client.post(url(server, "sources", row.pk, "import"), {"name": "all"})
    assert response.status_code == 302
    server.refresh_from_db()
    for name in mapfiles.MAP_NAMES:
        if name in live and name not in not_text:
            assert maps.rendered(server, name) == live[name]
        else:
            assert not maps.is_managed(server, name)


def test_an_unanswered_request_imports_nothing(server, client, operator):
    client.force_login(operator)
    client.post(url(server, "sources"), {"map": "aliases"})
    row = AgentRequest.objects.get(server=server, kind="map sources")
    response = client.post(url(server, "sources", row.pk, "import"), {"name": "aliases"}, follow=True)
    assert "has not answered" in text_of(response.content.decode())
    assert not MapEntry.objects.filter(server=server).exists()


def test_a_file_that_is_not_utf8_is_not_imported(server, client, operator):
    client.force_login(operator)
    row = AgentRequest.objects.create(
        server=server,
        kind="map sources",
        status=WorkStatus.DONE,
        result={"conf_dir": "/x", "files": [mapsource.summary("aliases", "caf\ufffd: root\n", True)]},
    )
    page = client.get(url(server) + f"?sources={row.pk}").content.decode()
    assert "not UTF-8" in page
    response = client.post(url(server, "sources", row.pk, "import"), {"name": "aliases"}, follow=True)
    assert "not UTF-8" in text_of(response.content.decode())
    assert not MapEntry.objects.filter(server=server).exists()


@pytest.mark.browser
def test_the_page_in_chromium(page, live_server, mta_server, administrator):
    server = mta_server
    maps.import_text(server, "aliases", Path(mapbuild.source_path(server, "aliases")).read_text(), user=None)
    maps.add(server, "aliases", "webmaster", "alice, bob@example.org", "the web team", user=None)
    maps.add(server, "mailertable", "partner.example", "esmtp:[mx.partner.example]", "partner", user=None)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    log_in(page, live_server, administrator)
    page.goto(f"{live_server.url}/servers/{server.name}/maps/")
    assert page.locator("#map-rows").is_visible()
    page.screenshot(path=str(SCREENSHOTS / "maps-aliases.png"), full_page=True)
    page.fill("#new-key", "Bad Name!")
    page.fill("#new-value", "root")
    page.click("#map-add button[type=submit]")
    page.wait_for_load_state()
    assert page.locator("#map-add .invalid-feedback").first.is_visible()
    page.screenshot(path=str(SCREENSHOTS / "maps-refused.png"), full_page=True)
    page.goto(f"{live_server.url}/servers/{server.name}/maps/?map=mailertable&preview=1")
    page.screenshot(path=str(SCREENSHOTS / "maps-mailertable.png"), full_page=True)
    page.click("#map-read-host")
    page.wait_for_load_state()
    row = AgentRequest.objects.get(server=server, kind="map sources")
    answer(row)
    page.wait_for_selector("#map-import-all")
    page.screenshot(path=str(SCREENSHOTS / "maps-import.png"), full_page=True)
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#map-source-aliases button[type=submit]")
    page.wait_for_load_state()
    assert "Imported aliases" in page.content()
    page.screenshot(path=str(SCREENSHOTS / "maps-imported.png"), full_page=True)
    maps.import_text(server, "aliases", CONTINUED_ALIASES, user=None)
    page.goto(f"{live_server.url}/servers/{server.name}/maps/?map=aliases&preview=1")
    assert page.locator(".map-verbatim").first.is_visible()
    page.screenshot(path=str(SCREENSHOTS / "maps-kept.png"), full_page=True)
