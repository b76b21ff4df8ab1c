"""The tracking pages: what a viewer finds by sender, recipient domain, Message-ID, client and status."""

from datetime import UTC, datetime

import pytest

from mailadmin.models import MailServer
from testing.users import make_user
from tracking.parser import parse_line
from tracking.traces import store_lines

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)


def server_row(name: str) -> MailServer:
    return MailServer.objects.create(
        name=name, hostname=f"{name}.example", conf_dir="/x", mc_path="/x/m", cf_path="/x/c", access_path="/x/a",
        cert_dir="/x/t", queue_dir="/x/q", pid_file="/x/p", syslog_tag="sm-mta",
    )  # fmt: skip


@pytest.fixture
def relayed(client):
    first, second = server_row("relay1"), server_row("relay2")
    store_lines(first, [parse_line(raw) for raw in [
        "Dec  4 10:00:00 relay1 sm-mta[1]: 6B4A00aa000001: from=<alice@client.example>, size=900, class=0, nrcpts=1, "
        "msgid=<journey@client.example>, proto=ESMTP, daemon=MTA, relay=c [127.0.0.2]",
        "Dec  4 10:00:05 relay1 sm-mta[2]: 6B4A00aa000001: to=<bob@partner.example>, delay=00:00:05, "
        "mailer=relay, pri=30900, relay=relay2.example [127.0.0.1], dsn=2.0.0, stat=Sent (6B4A05bb000002 accepted)",
        "Dec  4 10:01:00 relay1 sm-mta[3]: NOQUEUE: ruleset=check_rcpt, arg1=<x@elsewhere.example>, "
        "relay=bad [127.0.0.3], reject=550 5.7.1 <x@elsewhere.example>... Relaying denied",
    ]], now=NOW, zone=UTC)  # fmt: skip
    store_lines(second, [parse_line(raw) for raw in [
        "Dec  4 10:00:05 relay2 sm-mta[9]: 6B4A05bb000002: from=<alice@client.example>, size=1100, class=0, "
        "nrcpts=1, msgid=<journey@client.example>, proto=ESMTP, daemon=MTA, relay=relay1.example [127.0.0.1]",
        "Dec  4 10:05:00 relay2 sm-mta[10]: 6B4A05bb000002: to=<bob@partner.example>, delay=00:05:00, "
        "xdelay=00:00:01, mailer=esmtp, pri=121100, relay=[127.0.0.3], dsn=4.4.1, "
        "stat=Deferred: Connection refused by [127.0.0.3]",
    ]], now=NOW, zone=UTC)  # fmt: skip
    client.force_login(make_user("reader", "viewer"))
    return first, second


@pytest.mark.parametrize(
    "query, hosts",
    [
        ("sender=alice@client.example", ["relay2", "relay1"]),
        ("recipient=@partner.example", ["relay2", "relay1"]),
        ("q=<journey@client.example>", ["relay2", "relay1"]),
        ("q=6B4A05bb000002", ["relay2"]),
        ("client=127.0.0.3", ["relay1"]),
        ("status=rejected", ["relay1"]),
        ("status=deferred&server=relay2", ["relay2"]),
        ("since=2026-12-04T10:00:30&until=2026-12-04T10:30", ["relay1"]),
    ],
)
def test_a_viewer_finds_messages_by_each_filter(client, relayed, query, hosts):
    page = client.get(f"/tracking/?{query}")
    assert page.status_code == 200
    assert [row.server.name for row in page.context["rows"]] == hosts


def test_the_journey_page_shows_both_hosts_in_order_with_the_deferral_text_and_the_raw_lines(client, relayed):
    first, _ = relayed
    trace = first.traces.get(queue_id="6B4A00aa000001")
    html = client.get(f"/tracking/{trace.pk}/").content.decode()
    assert html.index("relay1") < html.index("6B4A05bb000002") < html.index("Connection refused by [127.0.0.3]")
    assert "stat=Sent (6B4A05bb000002 accepted)" in html  # the raw line on the timeline


def test_a_hostile_search_value_is_refused_with_a_clear_error_and_no_query(client, relayed):
    page = client.get("/tracking/", {"sender": "a@b\nX-Injected: 1", "client": "not an address"})
    assert page.status_code == 200 and page.context["rows"] == []
    html = page.content.decode()
    assert "No control characters" in html and "Enter a valid IPv4 or IPv6 address" in html


@pytest.mark.parametrize("query", ["q=<journey@client.example>", "recipient=@partner.example"])
def test_pages_continue_from_the_last_row_shown(client, relayed, monkeypatch, query):
    from tracking import search

    monkeypatch.setattr(search, "PAGE_SIZE", 1)
    first = client.get(f"/tracking/?{query}")
    assert [row.server.name for row in first.context["rows"]] == ["relay2"]
    second = client.get(f"/tracking/?{query}&after={first.context['following']}")
    assert [row.server.name for row in second.context["rows"]] == ["relay1"] and second.context["following"] == ""


def test_someone_without_a_role_cannot_search(client, relayed):
    client.force_login(make_user("nobody", None))
    assert client.get("/tracking/?sender=alice@client.example").status_code == 403


def test_the_trace_command_prints_the_journey_on_both_hosts(relayed):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("trace", "<journey@client.example>", stdout=out)
    text = out.getvalue()
    assert text.index("relay1 6B4A00aa000001  delivered") < text.index("relay2 6B4A05bb000002  deferred")
    assert "to bob@partner.example  deferred  attempts 1  [127.0.0.3]  4.4.1  Deferred: Connection refused" in text
    assert text.count("relay1 6B4A00aa000001") == 1  # one journey, printed once


def test_the_queued_message_and_its_trace_link_to_each_other(client, relayed):
    from mailqueue.models import QueueMessage

    first, _ = relayed
    trace = first.traces.get(queue_id="6B4A00aa000001")
    QueueMessage.objects.create(
        server=first, queue_id=trace.queue_id, kind="qf", state="queued", directory="/x/q", inode=1, file_size=1,
        mtime_ns=1,
    )  # fmt: skip
    journey_page = client.get(f"/tracking/{trace.pk}/").content.decode()
    assert f'href="/servers/relay1/queue/messages/{trace.queue_id}/"' in journey_page
    message_page = client.get(f"/servers/relay1/queue/messages/{trace.queue_id}/").content.decode()
    assert f'href="/tracking/?q={trace.queue_id}&amp;server=relay1"' in message_page
