"""Folding log lines into traces: statuses, attempts, bounces, refusals, spread over many batches."""

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailadmin.models import MailServer
from tracking.models import MessageTrace, TraceEvent
from tracking.parser import parse_line
from tracking.traces import MESSAGE_KINDS, journey, search_filter, store_lines

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)
CAPTURE = Path(__file__).resolve().parents[2].parent / "shared" / "lab" / "samples" / "syslog-capture.log"


def server_row(name: str = "mx1") -> MailServer:
    return MailServer.objects.create(
        name=name, hostname=f"{name}.example", conf_dir="/x", mc_path="/x/m", cf_path="/x/c", access_path="/x/a",
        cert_dir="/x/t", queue_dir="/x/q", pid_file="/x/p", syslog_tag="sm-mta",
    )  # fmt: skip


def store(server, *raw_lines: str) -> None:
    store_lines(server, [parse_line(raw) for raw in raw_lines], now=NOW, zone=UTC)


FROM = (
    "Dec  4 10:00:00 mx1 sm-mta[100]: 6B4A00aa000100: from=<Alice@Client.Example>, size=1200, class=0, nrcpts=2, "
    "msgid=<m1@client.example>, proto=ESMTP, daemon=MTA, relay=client2 [127.0.0.2]"
)
QUEUED = "Dec  4 10:00:00 mx1 sm-mta[100]: 6B4A00aa000100: to=<bob@remote.example>,<carol@other.example>, "
QUEUED += "delay=00:00:00, mailer=esmtp, pri=31200, stat=queued"


def test_a_message_accepted_deferred_then_sent_is_delivered_after_two_attempts_across_batches():
    server = server_row()
    store(server, FROM, QUEUED)
    store(
        server,
        "Dec  4 10:05:00 mx1 sm-mta[200]: 6B4A00aa000100: to=<bob@remote.example>,<carol@other.example>, "
        "delay=00:05:00, xdelay=00:00:01, mailer=esmtp, pri=121200, relay=[127.0.0.2], dsn=4.4.1, "
        "stat=Deferred: Connection refused by [127.0.0.2]",
    )
    trace = MessageTrace.objects.get(queue_id="6B4A00aa000100")
    assert (trace.status, trace.sender, trace.size, trace.message_id) == (
        "deferred", "alice@client.example", 1200, "<m1@client.example>"
    )  # fmt: skip
    assert trace.client_address == "127.0.0.2" and trace.received_at == datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
    store(
        server,
        "Dec  4 10:35:00 mx1 sm-mta[300]: 6B4A00aa000100: to=<bob@remote.example>, delay=00:35:00, "
        "xdelay=00:00:01, mailer=esmtp, pri=211200, relay=mx.remote.example [127.0.0.3], dsn=2.0.0, "
        "stat=Sent (6B4A01 Message accepted for delivery)",
    )
    trace.refresh_from_db()
    assert trace.status == "deferred"  # carol is still waiting
    bob, carol = trace.recipients.order_by("address")
    assert (bob.status, bob.attempts, bob.dsn) == ("delivered", 2, "2.0.0")
    assert (carol.status, carol.attempts, carol.domain) == ("deferred", 1, "other.example")
    assert [event.kind for event in trace.events.all()] == ["from", "to", "to", "to"]


def test_a_dsn_links_the_bounce_to_its_message_and_bounces_the_waiting_recipients():
    server = server_row()
    store(
        server, FROM, QUEUED,
        "Dec  9 10:00:00 mx1 sm-mta[400]: 6B4A00aa000100: 6B9A00bb000400: DSN: Cannot send message for 5 days",
        "Dec  9 10:00:00 mx1 sm-mta[400]: 6B9A00bb000400: from=<>, size=3000, class=0, nrcpts=1, "
        "msgid=<b1@mx1.example>, proto=local, daemon=MTA, relay=localhost",
    )  # fmt: skip
    original = MessageTrace.objects.get(queue_id="6B4A00aa000100")
    bounce = MessageTrace.objects.get(queue_id="6B9A00bb000400")
    assert bounce.bounce_of == original and list(original.bounces.all()) == [bounce]
    assert original.status == "bounced" and original.status_text == "DSN: Cannot send message for 5 days"


def test_a_refusal_before_a_queue_id_is_a_rejected_trace_keyed_by_the_client():
    server = server_row()
    store(
        server,
        "Dec  4 11:00:00 mx1 sm-mta[500]: NOQUEUE: ruleset=check_rcpt, arg1=<x@elsewhere.example>, "
        "relay=client2 [127.0.0.2], reject=550 5.7.1 <x@elsewhere.example>... Relaying denied",
    )
    trace = MessageTrace.objects.get(server=server)
    assert (trace.queue_id, trace.status, trace.ruleset, trace.client_address) == (
        "", "rejected", "check_rcpt", "127.0.0.2"
    )  # fmt: skip
    (recipient,) = trace.recipients.all()
    assert (recipient.address, recipient.status, recipient.dsn) == ("x@elsewhere.example", "rejected", "5.7.1")
    assert MessageTrace.objects.filter(search_filter("x@elsewhere.example")).get() == trace


def test_quarantine_and_release_show_on_the_trace_and_other_lines_are_kept_as_events():
    server = server_row()
    store(server, FROM, QUEUED, "Dec  4 10:01:00 mx1 sm-mta[600]: 6B4A00aa000100: quarantine=spam, says the filter")
    trace = MessageTrace.objects.get(queue_id="6B4A00aa000100")
    assert (trace.status, trace.quarantine_reason) == ("quarantined", "spam, says the filter")
    store(
        server,
        "Dec  4 10:02:00 mx1 sm-mta[700]: 6B4A00aa000100: unquarantine",
        "Dec  4 10:02:00 mx1 sm-mta[700]: starting daemon (8.17.1.9): SMTP+queueing@00:30:00",
        "this line is not syslog at all",
    )
    trace.refresh_from_db()
    assert (trace.status, trace.quarantine_reason) == ("queued", "")
    loose = TraceEvent.objects.filter(server=server, trace=None).order_by("id")
    assert [(event.kind, event.raw) for event in loose] == [
        ("other", "Dec  4 10:02:00 mx1 sm-mta[700]: starting daemon (8.17.1.9): SMTP+queueing@00:30:00"),
        ("unparsed", "this line is not syslog at all"),
    ]


def test_one_message_relayed_between_two_hosts_is_one_journey_by_message_id():
    first, second = server_row("mx1"), server_row("mx2")
    store(first, FROM, QUEUED)
    store(
        second,
        "Dec  4 10:06:00 mx2 sm-mta[900]: 6B4A06cc000900: from=<alice@client.example>, size=1500, class=0, "
        "nrcpts=1, msgid=<m1@client.example>, proto=ESMTP, daemon=MTA, relay=mx1.example [127.0.0.1]",
    )
    trace = MessageTrace.objects.get(server=second)
    assert [each.server.name for each in journey(trace)] == ["mx1", "mx2"]
    assert MessageTrace.objects.filter(search_filter("<m1@client.example>")).count() == 2


def test_the_whole_lab_capture_folds_into_one_trace_per_queue_id():
    server = server_row()
    lines = [parse_line(re.sub(r"^\d\d:\d\d:\d\d ", "", raw)) for raw in CAPTURE.read_text().splitlines()]
    for start in range(0, len(lines), 2000):
        store_lines(server, lines[start : start + 2000], now=datetime(2026, 11, 30, tzinfo=UTC), zone=UTC)
    messages = {line.queue_id for line in lines if line.queue_id and line.kind in MESSAGE_KINDS}
    messages |= {line.fields["new_queue_id"] for line in lines if line.kind == "dsn"}
    assert MessageTrace.objects.filter(server=server).exclude(queue_id="").count() == len(messages)
    assert TraceEvent.objects.filter(server=server).count() == len(lines)
    received = MessageTrace.objects.filter(server=server).exclude(message_id="")
    assert received.count() == len({line.queue_id for line in lines if line.kind == "from"})
    assert MessageTrace.objects.filter(server=server, bounce_of__isnull=False).count() >= 2


def test_traces_older_than_the_retention_period_are_purged_with_their_lines(settings):
    from datetime import timedelta

    from tracking.retention import purge

    settings.TRACE_RETENTION_DAYS = 30
    server = server_row()
    store(server, FROM, QUEUED, "Dec  4 10:02:00 mx1 sm-mta[700]: starting daemon (8.17.1.9)")
    store_lines(
        server,
        [parse_line("Oct  1 09:00:00 mx1 sm-mta[5]: 6AOA00aa000005: from=<old@client.example>, size=1, nrcpts=1")],
        now=NOW, zone=UTC,
    )  # fmt: skip
    assert purge(now=NOW + timedelta(days=1)) == 1
    assert list(MessageTrace.objects.values_list("queue_id", flat=True)) == ["6B4A00aa000100"]
    assert purge(now=NOW + timedelta(days=40)) == 1
    assert not MessageTrace.objects.exists() and not TraceEvent.objects.exists()


def test_a_session_that_sent_no_message_makes_no_trace_but_its_lines_are_kept():
    server = server_row()
    store(
        server,
        "Dec  4 10:00:00 mx1 sm-mta[7]: 6B4A00aa000007: localhost [127.0.0.1] did not issue MAIL/EXPN/VRFY/ETRN "
        "during connection to MTA",
        FROM,
        "Dec  4 10:00:01 mx1 sm-mta[100]: 6B4A00aa000100: Milter: no active filter",
    )
    assert list(MessageTrace.objects.values_list("queue_id", flat=True)) == ["6B4A00aa000100"]
    assert TraceEvent.objects.get(trace=None).raw.endswith("during connection to MTA")
    assert MessageTrace.objects.get().events.count() == 2
