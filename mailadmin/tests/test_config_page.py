"""The configuration page and a build's page: flag arguments by position, the way back to the row
just changed with the filter kept, a build's diff against the cf live now (not the one live when it
was built), and rows that differ from the live build, reset to it.

Builds and installs run for real on this module's own instance (m4, sendmail's check, the install
and reload), in this process as its agent, the way test_live_controls does it."""

from __future__ import annotations

import re

import pytest

from mailadmin import buildrows, config, tasks
from mailadmin.models import AuditEvent, ConfigBuild, ConfigValue, FeatureSetting, HostSnapshot, InstallJob
from mailadmin.work import WorkStatus


def posted(client, path: str, data: dict) -> str:
    """POST as the browser would; the redirect's target, after checking it carries no error."""
    response = client.post(path, data)
    assert response.status_code == 302, response.content[:500]
    follow = client.get(response["Location"])
    errors = [m.message for m in follow.context["messages"] if m.level_tag == "error"] if follow.context else []
    assert not errors, errors
    return response["Location"]


def built(server, client) -> ConfigBuild:
    posted(client, f"/servers/{server.name}/builds/", {})
    build = ConfigBuild.objects.latest("pk")
    tasks.run_config_build(build.pk)
    build.refresh_from_db()
    assert build.status == WorkStatus.DONE, build.error
    return build


def installed(server, client, build: ConfigBuild) -> ConfigBuild:
    posted(client, f"/builds/{build.pk}/install/", {})
    job = InstallJob.objects.latest("pk")
    tasks.run_install(job.pk)
    job.refresh_from_db()
    assert job.status == WorkStatus.DONE, job.error
    assert config.live_build(server) == build  # the install ends with a snapshot of the new cf
    return build


def set_option(server, client, name: str, value: str) -> None:
    posted(client, f"/servers/{server.name}/config/option/", {"name": name, "value": value})


def diff_text(html: str, card_id: str) -> str:
    """The text of one diff card of a build page, without its markup."""
    start = html.index(f'id="{card_id}"')
    end = html.find("</pre>", start)
    return re.sub(r"<[^>]+>", "\n", html[start:end]).replace("&#x27;", "'")


# ---------------------------------------------------------------------------------------------
# Flags by position, and the way back to the row


def test_ticking_only_terminate_stores_it_as_the_second_argument(private_console):
    server, client = private_console
    location = posted(
        client,
        f"/servers/{server.name}/config/feature/",
        {"name": "ratecontrol", "enabled": "on", "arg-1": "terminate"},
    )
    assert FeatureSetting.objects.get(server=server, name="ratecontrol").args == ["", "terminate"]
    assert location == f"/servers/{server.name}/config/#feature-ratecontrol"

    page = client.get(f"/servers/{server.name}/config/").content.decode()
    row = page[page.index('id="feature-ratecontrol"') : page.index('id="feature-conncontrol"')]
    assert re.search(r'name="arg-1" value="terminate"\s+id="[^"]+"\s*checked', row)
    assert not re.search(r'name="arg-0" value="nodelay"\s+id="[^"]+"\s*checked', row)
    assert "Refuse with 421 and close the connection" in row


def test_unticking_both_flags_leaves_no_arguments(private_console):
    server, client = private_console
    FeatureSetting.objects.update_or_create(server=server, name="conncontrol", defaults={"args": ["", "terminate"]})
    posted(client, f"/servers/{server.name}/config/feature/", {"name": "conncontrol", "enabled": "on"})
    assert FeatureSetting.objects.get(server=server, name="conncontrol").args == []


@pytest.mark.parametrize(
    "word, rule", [("Terminate", "not one of the choices"), ("terminate\nFEATURE(`x')", "line break")]
)
def test_a_word_other_than_the_flag_is_refused_and_nothing_is_stored(private_console, word, rule):
    server, client = private_console
    response = client.post(
        f"/servers/{server.name}/config/feature/",
        {"name": "ratecontrol", "enabled": "on", "arg-1": word},
        follow=True,
    )
    assert any(rule in m.message for m in response.context["messages"])
    assert not FeatureSetting.objects.filter(server=server, name="ratecontrol").exists()


def test_setting_an_option_comes_back_to_its_row_with_the_filter_kept(private_console):
    server, client = private_console
    response = client.post(
        f"/servers/{server.name}/config/option/",
        {"name": "MaxMessageSize", "value": "4000000", "filter": "  message   size "},
    )
    assert response["Location"] == f"/servers/{server.name}/config/?filter=message+size#option-MaxMessageSize"
    assert ConfigValue.objects.get(server=server, name="MaxMessageSize").value == "4000000"
    page = client.get(response["Location"]).content.decode()
    assert 'id="config-filter-input" value="message size"' in page
    assert 'id="option-MaxMessageSize"' in page


@pytest.mark.parametrize("hostile", ['"><script>alert(1)</script>', "a\nb#c", "x" * 500, "dnl`'$1", "\x00\x1b[31m"])
def test_a_hostile_filter_text_goes_back_only_as_escaped_query_string_and_text(private_console, hostile):
    server, client = private_console
    response = client.post(
        f"/servers/{server.name}/config/option/", {"name": "MaxMessageSize", "value": "1000", "filter": hostile}
    )
    location = response["Location"]
    assert "\n" not in location and "<" not in location and '"' not in location
    assert location.endswith("#option-MaxMessageSize")
    page = client.get(location).content.decode()
    assert "<script>alert" not in page
    assert re.search(r'id="config-filter-input" value="[^"<>]{0,600}"', page)


def test_an_unknown_name_comes_back_to_the_top_of_the_page(private_console):
    server, client = private_console
    response = client.post(f"/servers/{server.name}/config/option/", {"name": "No#Such", "value": "1"})
    assert response["Location"] == f"/servers/{server.name}/config/"


def test_masquerading_is_set_on_the_page_and_built_into_the_mc_and_the_cf(private_console):
    """MASQUERADE_AS, MASQUERADE_DOMAIN and EXPOSED_USER are catalog rows: they go into the .mc (so
    they survive every rebuild) and m4 turns them into the cf's DM macro and classes M and E."""
    server, client = private_console
    page = client.get(f"/servers/{server.name}/config/").content.decode()
    group = page[page.index(">Masquerading</div>") :]
    group = group[: group.index("</table>")]
    for name in ("MasqueradeAs", "MasqueradeDomains", "ExposedUsers"):
        assert f'id="option-{name}"' in group
    assert 'id="feature-masquerade_envelope"' in page

    for name, value in [
        ("MasqueradeAs", "example.org"),
        ("MasqueradeDomains", "mail1.example.org mail2.example.org"),
        ("ExposedUsers", "root"),
    ]:
        set_option(server, client, name, value)
    posted(client, f"/servers/{server.name}/config/feature/", {"name": "masquerade_envelope", "enabled": "on"})
    page = client.get(f"/servers/{server.name}/config/").content.decode()
    assert 'name="value" value="mail1.example.org mail2.example.org"' in page

    build = built(server, client)
    assert "MASQUERADE_AS(`example.org')dnl" in build.mc_text
    assert "FEATURE(`masquerade_envelope')dnl" in build.mc_text
    cf = build.cf_text.splitlines()
    assert {"DMexample.org", "C{M}mail1.example.org mail2.example.org", "C{E}root"} <= set(cf)


# ---------------------------------------------------------------------------------------------
# A build's diff against what is live now


def test_a_build_page_shows_what_installing_it_changes_against_the_live_build(private_console):
    """b1, b2 (MaxMessageSize), b3 (four TLS options) are installed in turn; rolling back to b2 would
    remove b3's TLS options, which b2's stored diff (made while b1 was live) cannot know."""
    server, client = private_console
    b1 = installed(server, client, built(server, client))
    set_option(server, client, "MaxMessageSize", "3000000")
    b2 = installed(server, client, built(server, client))
    tls = {
        "CipherList": "HIGH",
        "TLSFallbacktoClear": "True",
        "CertFingerprintAlgorithm": "sha256",
        "TLSSrvOptions": "V",
    }
    for name, value in tls.items():
        set_option(server, client, name, value)
    b3 = installed(server, client, built(server, client))

    page = client.get(f"/builds/{b2.pk}/").content.decode()

    assert "Compared with the live cf (build" in page and f"<code>{b3.build_id}</code>" in page
    live_diff = diff_text(page, "diff-live")
    removed = {line for line in live_diff.splitlines() if line.startswith("-O ")}
    assert {f"-O {name}={value}" for name, value in tls.items()} <= removed
    assert "+O MaxMessageSize" not in live_diff  # b3 has it too: installing b2 keeps it
    assert "Install again (roll back to it)" in page
    # The diff stored at build time is still there, second: b1 → b2, the size only.
    stored = diff_text(page, "diff-at-build")
    assert "+O MaxMessageSize=3000000" in stored and "CipherList" not in stored
    assert page.index('id="diff-live"') < page.index('id="diff-at-build"')

    b3_page = client.get(f"/builds/{b3.pk}/").content.decode()
    assert "this build is live" in b3_page and "Install and reload" not in b3_page
    b1_page = client.get(f"/builds/{b1.pk}/").content.decode()
    assert "-O MaxMessageSize=3000000" in diff_text(b1_page, "diff-live")


def test_a_build_page_says_it_cannot_know_without_a_snapshot(private_console):
    server, client = private_console
    build = built(server, client)
    HostSnapshot.objects.filter(server=server).delete()

    page = client.get(f"/builds/{build.pk}/").content.decode()

    assert "Compared with the live cf: unknown (no snapshot from the host&#x27;s agent yet)" in page
    assert 'id="diff-at-build"' not in page  # the stored diff is shown once, in its place


# ---------------------------------------------------------------------------------------------
# Rows that differ from the live build


def test_the_page_names_rows_changed_since_the_live_build_and_reset_brings_them_back(private_console):
    server, client = private_console
    build = installed(server, client, built(server, client))
    page = client.get(f"/servers/{server.name}/config/").content.decode()
    assert 'id="row-differences"' not in page

    set_option(server, client, "MaxRecipientsPerMessage", "25")
    page = client.get(f"/servers/{server.name}/config/").content.decode()
    assert 'id="row-differences"' in page
    assert re.search(r"was made from:</strong>\s*options\.", page)
    assert f"Reset the rows to build {build.build_id}" in page

    location = posted(client, f"/builds/{build.pk}/reset-rows/", {})
    assert location == f"/servers/{server.name}/config/"
    assert not ConfigValue.objects.filter(server=server, name="MaxRecipientsPerMessage").exists()
    assert buildrows.differences(server, build) == []
    assert AuditEvent.objects.filter(action="restore rows", target=build.build_id, username="ada").exists()
    assert 'id="row-differences"' not in client.get(f"/servers/{server.name}/config/").content.decode()


def test_the_live_builds_own_page_says_the_rows_moved_on_and_offers_them_back(private_console):
    server, client = private_console
    build = installed(server, client, built(server, client))
    page = client.get(f"/builds/{build.pk}/").content.decode()
    assert 'id="build-row-differences"' not in page
    assert 'id="build-log"' in page and 'id="build-maps"' in page

    set_option(server, client, "MaxRecipientsPerMessage", "26")
    page = client.get(f"/builds/{build.pk}/").content.decode()
    banner = page[page.index('id="build-row-differences"') : page.index('id="diff-live"')]
    assert "the rows have changed since it was made:</strong> options." in banner
    assert f'action="/builds/{build.pk}/reset-rows/"' in banner
    posted(client, f"/builds/{build.pk}/reset-rows/", {})
    assert not ConfigValue.objects.filter(server=server, name="MaxRecipientsPerMessage").exists()
    assert 'id="build-row-differences"' not in client.get(f"/builds/{build.pk}/").content.decode()


def test_resetting_to_a_build_that_is_no_longer_live_changes_nothing(private_console):
    server, client = private_console
    old = installed(server, client, built(server, client))
    set_option(server, client, "MaxRecipientsPerMessage", "30")
    installed(server, client, built(server, client))
    set_option(server, client, "MaxRecipientsPerMessage", "31")

    response = client.post(f"/builds/{old.pk}/reset-rows/", follow=True)

    assert any("not the live build" in m.message for m in response.context["messages"])
    assert ConfigValue.objects.get(server=server, name="MaxRecipientsPerMessage").value == "31"


def test_only_an_administrator_may_reset_the_rows_and_only_by_post(private_console, viewer):
    server, client = private_console
    build = installed(server, client, built(server, client))
    set_option(server, client, "MaxRecipientsPerMessage", "40")
    assert client.get(f"/builds/{build.pk}/reset-rows/").status_code == 405
    client.force_login(viewer)
    page = client.get(f"/servers/{server.name}/config/").content.decode()
    assert 'id="row-differences"' in page and "Reset the rows" not in page
    assert client.post(f"/builds/{build.pk}/reset-rows/").status_code == 403
    assert ConfigValue.objects.get(server=server, name="MaxRecipientsPerMessage").value == "40"
