"""The address tester against a real sendmail: the installed configuration, a staged build, hostile
input, and the page in Chromium.

The instance is this module's own (its aliases are changed here). This test process is the
instance's agent (start_instance made it so), and it answers the AgentRequest rows itself, with
the agent's own code path (answers.perform); mailadmin.mta.addresstest registers the answer. One
test asks the session's instance instead, answered by the session's Celery worker as its agent.
"""

import re
from pathlib import Path

import pytest

from mailadmin import requests, work
from mailadmin.models import AgentRequest, AuditEvent, ConfigBuild
from mailadmin.mta import addresstest, answers, cfbuild
from mailadmin.mta.gateway import Mta
from mailadmin.work import WorkStatus
from testing.browser import SCREENSHOTS, log_in
from testing.instances import instance_row
from testing.processes import wait_for

TEAM = "team: alice@remote.example, bob@partner.example\n"


@pytest.fixture
def server(db, private_instance):
    """The module's instance, with an alias to two addresses in its installed aliases."""
    return with_team_alias(instance_row(private_instance))


def with_team_alias(server):
    aliases = Path(server.conf_dir) / "aliases"
    if TEAM not in aliases.read_text():
        with aliases.open("a") as handle:
            handle.write(TEAM)
        Mta(server).newaliases()
    return server


def answered(server, params: dict, user=None) -> AgentRequest:
    """Ask as a page does, and answer as the host's agent does."""
    row = requests.ask(server, "address test", params, user=user)
    work.execute(AgentRequest, row.pk, answers.perform)
    row.refresh_from_db()
    return row


def done(row: AgentRequest) -> dict:
    assert row.status == WorkStatus.DONE, row.error
    return row.result


def delivered(result: dict) -> dict[str, tuple[str, str, str]]:
    return {
        d["address"]: (d["mailer"], d["host"], d["user"]) for d in result["verify"]["deliveries"] if d["deliverable"]
    }


def test_an_alias_to_two_addresses_shows_both(server):
    result = done(answered(server, {"address": "team"}))
    assert delivered(result) == {
        "alice@remote.example": ("relay", "[127.0.0.2]", "alice@remote.example"),
        "bob@partner.example": ("relay", "[127.0.0.2]", "bob@partner.example"),
    }
    assert result["verify"]["aliases"] == [
        {"address": "team", "targets": ["alice@remote.example", "bob@partner.example"], "name": "team"}
    ]
    assert result["sentence"].startswith("team would go to 2 recipients: ")
    for who in ("alice@remote.example", "bob@partner.example"):
        assert f"{who} by mailer relay to host [127.0.0.2]" in result["sentence"]
    assert "(alias team → alice@remote.example, bob@partner.example)" in result["sentence"]
    assert result["configuration"] == "installed"
    # sendmail itself answered, through the gateway, and the audit log has its exact command.
    ran = AuditEvent.objects.filter(action="address test", server=server, outcome="ok")
    assert {tuple(e.argv[-2:]) for e in ran} >= {("-bv", "team")}
    assert all(e.argv[2] == server.cf_path for e in ran)


def test_a_local_user_goes_to_the_local_mailer(server):
    result = done(answered(server, {"address": "nobody"}))
    assert delivered(result) == {"nobody": ("local", "", "nobody")}
    assert result["sentence"] == "nobody would be delivered by mailer local to user nobody."
    assert result["rulesets"]["triple"] == {"mailer": "local", "host": "", "user": "nobody"}
    assert result["parse"] == {"mailer": "local", "host": "", "user": "nobody"}


def test_a_remote_domain_goes_to_the_relay_mailer(server):
    result = done(answered(server, {"address": "Someone@Remote.Example"}))
    assert result["address"] == "Someone@remote.example"
    assert delivered(result) == {"Someone@remote.example": ("relay", "[127.0.0.2]", "Someone@remote.example")}
    assert result["rulesets"]["triple"]["mailer"] == "relay"
    assert result["rulesets"]["triple"]["host"] == "[127.0.0.2]"
    assert result["parse"] == {"mailer": "relay", "host": "[127.0.0.2]", "user": "Someone@remote.example"}
    assert "by mailer relay to host [127.0.0.2]" in result["sentence"]


def finished_build(server, extra: str, maps: dict[str, str]) -> ConfigBuild:
    """A real build of the instance's .mc with `extra` lines (m4 and sendmail's check, as the agent
    builds), carrying `maps`."""
    row = ConfigBuild.objects.create(server=server, mc_text="", access_text=Path(server.access_path).read_text())
    mc = Path(server.mc_path).read_text()
    mc = re.sub(r"define\(`confCF_VERSION', `[^']*'\)dnl", f"define(`confCF_VERSION', `{row.build_id}')dnl", mc)
    row.mc_text = mc.replace("MAILER(`local')dnl", extra + "MAILER(`local')dnl")
    row.save()
    work.execute(ConfigBuild, row.pk, lambda r: cfbuild.build(r, Mta(r.server), lambda *_: None))
    row.refresh_from_db()
    assert row.status == WorkStatus.DONE, row.error
    ConfigBuild.objects.filter(pk=row.pk).update(maps=maps)
    row.refresh_from_db()
    return row


def test_a_staged_build_with_a_virtusertable_row_maps_the_address_the_installed_one_does_not(server):
    sales = f"sales@{server.hostname}"
    build = finished_build(
        server, "FEATURE(`virtusertable')dnl\n", {"virtusertable": f"{sales}\tcarol@partner.example\n"}
    )
    live_files = {p: p.read_bytes() for p in Path(server.conf_dir).iterdir() if p.is_file()}

    staged = done(answered(server, {"address": sales, "build": build.pk}))
    assert delivered(staged) == {sales: ("relay", "[127.0.0.2]", "carol@partner.example")}
    assert staged["verify"]["applied"] == [{"map": "virtusertable", "key": sales, "value": "carol@partner.example"}]
    label = build.build_id.removeprefix("mailadmin-")
    assert staged["sentence"].startswith(f"After build {label}, {sales} would be delivered by mailer relay")
    assert f"virtusertable {sales} → carol@partner.example" in staged["sentence"]
    assert staged["configuration"] == build.build_id
    assert any(line.startswith("$ ") and "makemap" in line for line in staged["map_log"])

    installed = done(answered(server, {"address": sales}))
    assert [(d["deliverable"], d["message"]) for d in installed["verify"]["deliveries"]] == [(False, "User unknown")]
    assert installed["verify"]["applied"] == []

    # Nothing live was touched, and the staging directory is gone.
    assert {p: p.read_bytes() for p in Path(server.conf_dir).iterdir() if p.is_file()} == live_files
    assert not list(cfbuild.staging_dir(server).glob("address-test-*"))


def test_a_staged_build_reads_its_own_aliases_and_the_installed_ones_are_left_alone(server):
    aliases = Path(server.conf_dir) / "aliases"
    staged_aliases = aliases.read_text().replace(TEAM, "team: dave@partner.example\n")
    build = finished_build(server, "", {"aliases": staged_aliases})

    staged = done(answered(server, {"address": "team", "build": build.pk}))
    assert delivered(staged) == {"dave@partner.example": ("relay", "[127.0.0.2]", "dave@partner.example")}
    assert staged["verify"]["aliases"] == [{"address": "team", "targets": ["dave@partner.example"], "name": "team"}]
    assert any("-bi" in line for line in staged["map_log"]), staged["map_log"]

    installed = done(answered(server, {"address": "team"}))
    assert set(delivered(installed)) == {"alice@remote.example", "bob@partner.example"}
    assert TEAM in aliases.read_text()


def test_a_build_without_maps_is_tried_on_the_live_maps():
    cf = "Kvirtuser hash /c/virtusertable\nFw/c/local-host-names %[^\\#]\nFR-o /c/relay-domains %[^\\#]\n"
    cf += "Kaccess hash -T<TMPF> /c/access\nO AliasFile=/c/aliases,nis:mail.aliases\nKmailertable hash /elsewhere/m\n"
    live = {n: Path("/c") / n for n in ("virtusertable", "local-host-names", "relay-domains", "aliases", "mailertable")}
    staged = {n: Path("/s") / n for n in live}
    assert addresstest.staged_cf_text(cf, {}, {}) == cf
    assert addresstest.staged_cf_text(cf, staged, live) == (
        "Kvirtuser hash /s/virtusertable\nFw/s/local-host-names %[^\\#]\nFR-o /s/relay-domains %[^\\#]\n"
        "Kaccess hash -T<TMPF> /c/access\nO AliasFile=/s/aliases,nis:mail.aliases\n"
        # A cf that reads the map from elsewhere would not see the installed file either.
        "Kmailertable hash /elsewhere/m\n"
    )


HOSTILE_ADDRESSES = ["root\n/map aliases root", "-C/tmp/evil.cf", "a b", "$(touch /tmp/x)", "a%b@example.org", "|id"]


@pytest.mark.parametrize("address", HOSTILE_ADDRESSES)
def test_a_hostile_address_is_refused_by_the_page_before_anything_is_asked(server, client, viewer, address):
    client.force_login(viewer)
    response = client.post(f"/servers/{server.name}/address-test/ask/", {"address": address}, follow=True)
    assert "Address:" in response.content.decode()
    assert not AgentRequest.objects.exists()


def test_a_configuration_that_is_not_a_finished_build_of_the_server_is_refused_by_the_page(server, client, viewer):
    client.force_login(viewer)
    failed = ConfigBuild.objects.create(server=server, mc_text="x", status=WorkStatus.FAILED)
    for configuration in ["abc", str(failed.pk), str(failed.pk + 1000), "-1"]:
        response = client.post(
            f"/servers/{server.name}/address-test/ask/",
            {"address": "root", "configuration": configuration},
            follow=True,
        )
        assert "choose the installed one or a finished build" in response.content.decode()
    assert not AgentRequest.objects.exists()


def test_someone_not_logged_in_asks_nothing(server, client):
    response = client.post(f"/servers/{server.name}/address-test/ask/", {"address": "root"})
    assert response.status_code == 302 and "/login/" in response["Location"]
    assert not AgentRequest.objects.exists()


@pytest.mark.parametrize("address", HOSTILE_ADDRESSES)
def test_a_hostile_address_is_refused_by_the_agent_before_sendmail_runs(server, address):
    row = answered(server, {"address": address})
    assert row.status == WorkStatus.FAILED and "the address is refused" in row.error
    assert not AuditEvent.objects.filter(action="address test").exists()


def test_a_build_of_another_server_or_not_finished_is_refused_by_the_agent(server):
    other = ConfigBuild.objects.create(server=server, mc_text="x", status=WorkStatus.FAILED)
    for build, why in [(other.pk, "has no finished cf"), (other.pk + 1000, "is not a build of"), ("1", "number")]:
        row = answered(server, {"address": "root", "build": build})
        assert row.status == WorkStatus.FAILED and why in row.error
    assert not AuditEvent.objects.filter(action="address test").exists()


def test_the_page_asks_as_a_viewer_and_names_the_row_it_follows(server, client, viewer):
    client.force_login(viewer)
    response = client.post(f"/servers/{server.name}/address-test/ask/", {"address": "team"})
    row = AgentRequest.objects.get(server=server, kind="address test")
    assert row.params == {"address": "team"} and row.created_by == viewer
    assert response["Location"] == f"/servers/{server.name}/address-test/?test={row.pk}"
    assert AuditEvent.objects.filter(action="ask address test", user=viewer, server=server).exists()
    page = client.get(response["Location"]).content.decode()
    assert 'hx-get="/agent-requests/' in page and "_address_result.html" in page

    work.execute(AgentRequest, row.pk, answers.perform)
    fragment = client.get(f"/agent-requests/{row.pk}/progress/?result=mailadmin/_address_result.html")
    assert fragment.status_code == 286
    text = fragment.content.decode()
    assert "team would go to 2 recipients" in text and "bob@partner.example" in text
    assert client.get(f"/servers/{server.name}/address-test/ask/").status_code == 405


def test_the_session_worker_as_the_hosts_agent_answers_the_question_the_page_asked(worker, mta_server, client, viewer):
    """The whole way: the page writes the row, Celery carries it to the host's agent (a separate
    process, which registers the answer through mailadmin.tasks), sendmail answers."""
    client.force_login(viewer)
    response = client.post(f"/servers/{mta_server.name}/address-test/ask/", {"address": "postmaster"})
    row = AgentRequest.objects.get(server=mta_server, kind="address test")
    assert response["Location"].endswith(f"?test={row.pk}")
    wait_for(lambda: AgentRequest.objects.get(pk=row.pk).finished, 30, "the agent's answer")
    result = done(AgentRequest.objects.get(pk=row.pk))
    assert result["configuration"] == "installed" and result["sentence"].startswith("postmaster would be delivered")
    assert any(output["command"].endswith("-bv postmaster") for output in result["outputs"])
    fragment = client.get(f"/agent-requests/{row.pk}/progress/?result=mailadmin/_address_result.html")
    assert fragment.status_code == 286 and "postmaster would be delivered" in fragment.content.decode()


@pytest.mark.browser
def test_the_address_page_in_chromium(page, live_server, transactional_db, redis_server, private_instance, viewer):
    server = with_team_alias(instance_row(private_instance))
    log_in(page, live_server, viewer)
    page.goto(f"{live_server.url}/servers/{server.name}/address-test/")
    page.fill("input[name=address]", "team")
    page.click("#address-test-form button[type=submit]")
    page.wait_for_url(re.compile(r"/address-test/\?test=\d+$"))
    row = wait_for(lambda: AgentRequest.objects.filter(kind="address test").first(), 10, "the question's row")
    assert "waiting for it to answer" in page.inner_text("body")
    work.execute(AgentRequest, row.pk, answers.perform)  # as the host's agent
    sentence = page.locator(".address-sentence")
    sentence.wait_for(timeout=15000)
    assert sentence.inner_text().startswith("team would go to 2 recipients")
    table = page.locator(".address-deliveries").inner_text()
    assert "alice@remote.example" in table and "bob@partner.example" in table
    assert page.locator("input[name=address]").input_value() == "team"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "address-test.png"), full_page=True)

    # The same question about a build that is not installed: chosen in the list, staged by the agent.
    sales = f"sales@{server.hostname}"
    build = finished_build(server, "FEATURE(`virtusertable')dnl\n", {"virtusertable": f"{sales}\tteam\n"})
    page.goto(f"{live_server.url}/servers/{server.name}/address-test/")
    page.fill("input[name=address]", sales)
    page.select_option("select[name=configuration]", str(build.pk))
    page.click("#address-test-form button[type=submit]")
    page.wait_for_url(re.compile(r"/address-test/\?test=\d+$"))
    row = AgentRequest.objects.filter(kind="address test").order_by("-pk").first()
    assert row.params == {"address": sales, "build": build.pk}
    work.execute(AgentRequest, row.pk, answers.perform)
    page.locator(".address-sentence").wait_for(timeout=15000)
    label = build.build_id.removeprefix("mailadmin-")
    assert page.locator(".address-sentence").inner_text().startswith(f"After build {label}, {sales} would go to 2")
    applied = page.locator(".address-applied").inner_text()
    assert f"virtusertable {sales} → team" in applied and f"alias team (for {sales})" in applied
    assert page.locator("select[name=configuration]").input_value() == str(build.pk)
    page.screenshot(path=str(SCREENSHOTS / "address-test-build.png"), full_page=True)
