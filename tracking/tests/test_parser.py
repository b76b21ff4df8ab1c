"""The log parser on lines sendmail wrote: the lab's capture and this project's own daemons."""

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tracking.parser import bare_address, parse_line, year_for

CAPTURE = Path(__file__).resolve().parents[2].parent / "shared" / "lab" / "samples" / "syslog-capture.log"
# The capture tool put its own clock before each datagram: "18:25:35 <22>Nov 24 18:25:35 sendmail[1]: …".
CAPTURE_CLOCK = re.compile(r"^\d\d:\d\d:\d\d ")


def capture_lines() -> list[str]:
    return [CAPTURE_CLOCK.sub("", line) for line in CAPTURE.read_text(errors="replace").splitlines()]


def test_a_from_line_gives_its_size_class_recipients_count_message_id_protocol_daemon_and_relay():
    line = parse_line(
        "Nov 24 18:14:52 mx sendmail[25788]: 6AOIEqMh025788: from=<smtp@client.lab.test>, size=132, class=0, "
        "nrcpts=3, msgid=<202611241814.6AOIEqMh025788@mx.lab.test>, proto=ESMTP, daemon=MTA-lab, "
        "relay=localhost [127.0.0.1]"
    )
    assert (line.kind, line.host, line.tag, line.pid, line.queue_id) == (
        "from",
        "mx",
        "sendmail",
        25788,
        "6AOIEqMh025788",
    )
    assert line.fields == {
        "from": "<smtp@client.lab.test>",
        "size": "132",
        "class": "0",
        "nrcpts": "3",
        "msgid": "<202611241814.6AOIEqMh025788@mx.lab.test>",
        "proto": "ESMTP",
        "daemon": "MTA-lab",
        "relay": "localhost [127.0.0.1]",
    }
    assert line.client_address == "127.0.0.1"
    assert line.timestamp(2026) == datetime(2026, 11, 24, 18, 14, 52, tzinfo=UTC)


def test_a_to_line_names_every_recipient_and_keeps_the_whole_status_text():
    line = parse_line(
        "Dec  4 16:13:26 sm-local[27259]: 6B4F3LB4019768: to=<bob@remote.example>,carol@Remote.Example, "
        "ctladdr=<alice@client.example> (0/0), delay=01:10:05, xdelay=00:00:00, mailer=relay, pri=210041, "
        "relay=[127.0.0.2], dsn=4.4.1, stat=Deferred: Connection refused by [127.0.0.2], see=x, y"
    )
    assert line.kind == "to" and line.host == "" and line.tag == "sm-local"
    assert line.recipients == ["<bob@remote.example>", "carol@Remote.Example"]
    assert [bare_address(r) for r in line.recipients] == ["bob@remote.example", "carol@remote.example"]
    assert line.fields["ctladdr"] == "<alice@client.example> (0/0)"
    assert line.fields["delay"] == "01:10:05" and line.fields["mailer"] == "relay" and line.fields["dsn"] == "4.4.1"
    assert line.fields["stat"] == "Deferred: Connection refused by [127.0.0.2], see=x, y"


def test_a_quarantine_reason_is_the_rest_of_the_line_whatever_a_person_typed():
    line = parse_line("Nov 24 18:19:52 sendmail[25997]: 6AOIEqMi025788: quarantine=virus, stat=found, to=x")
    assert line.kind == "quarantine" and line.fields == {"quarantine": "virus, stat=found, to=x"}
    assert parse_line("Nov 24 18:20:00 sendmail[26074]: 6AOIGq4n025795: unquarantine").kind == "unquarantine"


def test_a_dsn_line_links_the_bounce_to_the_message_it_bounces():
    line = parse_line(
        "Nov 24 18:23:47 sendmail[28725]: 6AOIEqMi025788: 6AOINl9I028725: DSN: Host unknown "
        "(Name server: remote.example.: host not found)"
    )
    assert (line.kind, line.queue_id) == ("dsn", "6AOIEqMi025788")
    assert line.fields == {
        "new_queue_id": "6AOINl9I028725",
        "text": "Host unknown (Name server: remote.example.: host not found)",
    }


def test_a_ruleset_rejection_before_a_queue_id_is_keyed_by_the_client():
    line = parse_line(
        "Dec  4 16:20:01 sm-local[3001]: NOQUEUE: ruleset=check_rcpt, arg1=<x@elsewhere.example>, "
        "relay=client2.mailadmin-test.localdomain [127.0.0.2], reject=550 5.7.1 <x@elsewhere.example>... "
        "Relaying denied, really"
    )
    assert (line.kind, line.queue_id) == ("reject", "")
    assert line.fields["ruleset"] == "check_rcpt" and line.fields["arg1"] == "<x@elsewhere.example>"
    assert line.fields["reject"] == "550 5.7.1 <x@elsewhere.example>... Relaying denied, really"
    assert line.client_address == "127.0.0.2"


def test_starttls_auth_milter_lost_input_and_syserr_lines_are_recognised():
    tls = parse_line(
        "Nov 24 18:25:35 sendmail[16309]: STARTTLS=server, relay=localhost [127.0.0.1], version=TLSv1.3, "
        "verify=NOT, cipher=TLS_AES_256_GCM_SHA384, bits=256/256"
    )
    assert tls.kind == "starttls" and tls.fields["side"] == "server"
    assert (tls.fields["verify"], tls.fields["cipher"], tls.fields["bits"]) == (
        "NOT",
        "TLS_AES_256_GCM_SHA384",
        "256/256",
    )
    error = parse_line(
        "Nov 24 18:25:39 sendmail[16407]: STARTTLS=server: error:0A000126:SSL routines::unexpected eof while reading"
    )
    assert error.kind == "starttls" and error.fields["error"].startswith("error:0A000126")
    auth = parse_line(
        "Dec  4 10:00:00 mx sm-mta[1]: 6B4A00aa000001: AUTH=server, relay=c [127.0.0.2], authid=alice, "
        "mech=PLAIN, bits=0"
    )
    assert auth.kind == "auth" and auth.fields["authid"] == "alice" and auth.fields["mech"] == "PLAIN"
    milter = parse_line("Nov 24 18:14:52 sendmail[25788]: 6AOIEqMh025788: Milter: no active filter")
    assert milter.kind == "milter" and milter.queue_id == "6AOIEqMh025788"
    lost = parse_line(
        "Dec  4 10:00:00 mx sm-mta[1]: 6B4A00aa000001: lost input channel from c [127.0.0.2] to MTA after rcpt"
    )
    assert lost.kind == "lost_input" and lost.fields == {"relay": "c [127.0.0.2]", "daemon": "MTA", "command": "rcpt"}
    syserr = parse_line(
        "Nov 24 18:00:24 sendmail[25463]: NOQUEUE: SYSERR(root): Cannot create database for alias file /x/aliases"
    )
    assert syserr.kind == "syserr" and syserr.fields == {
        "user": "root",
        "error": "Cannot create database for alias file /x/aliases",
    }


def test_rsyslog_high_precision_timestamps_and_raw_datagrams_parse_too():
    line = parse_line("2026-12-04T17:16:38.123456+01:00 relay1 sm-mta[812]: 6B4GGcAa000812: to=<a@b>, stat=Sent (ok)")
    assert (line.kind, line.host, line.tag) == ("to", "relay1", "sm-mta")
    assert line.timestamp(1999) == datetime.fromisoformat("2026-12-04T17:16:38.123456+01:00")
    datagram = parse_line("<22>Nov 24 18:25:33 sendmail[16300]: STARTTLS=server, init=1")
    assert datagram.kind == "starttls" and datagram.fields["init"] == "1"


def test_a_traditional_timestamp_takes_the_year_of_the_file_it_was_read_from():
    assert year_for(12, datetime(2027, 1, 2, tzinfo=UTC)) == 2026
    assert year_for(1, datetime(2027, 1, 2, tzinfo=UTC)) == 2027


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "garbage",
        "Nov 24 18:25:33",
        "Nov 24 18:25:33 sendmail[x]: ",
        "\x00\xff<999>Foo 99 99:99:99 a: b",
        "Feb 30 25:61:61 sendmail[1]: 6AOIEqMh025788: from=",
        "Nov 24 18:25:33 sendmail[1]: to=, stat=",
    ],
)
def test_lines_the_parser_does_not_understand_come_back_with_their_text_never_an_exception(raw):
    line = parse_line(raw)
    assert line.raw == raw
    assert line.kind in {"unparsed", "other", "from", "to"}
    line.timestamp(2026)


def test_every_line_of_the_lab_capture_parses_and_the_message_lines_are_all_recognised():
    lines = [parse_line(raw) for raw in capture_lines()]
    kinds = {}
    for line in lines:
        kinds[line.kind] = kinds.get(line.kind, 0) + 1
    assert kinds.get("unparsed", 0) == 0
    assert kinds["from"] == sum(": from=" in raw for raw in capture_lines())
    assert kinds["to"] == sum(": to=" in raw for raw in capture_lines())
    assert kinds["quarantine"] > 4000 and kinds["unquarantine"] > 4000 and kinds["dsn"] >= 2
    assert kinds["starttls"] >= 10 and kinds["syserr"] >= 3 and kinds["milter"] >= 10
    for line in lines:
        if line.kind == "from":
            assert line.queue_id and line.fields["msgid"].startswith("<") and int(line.fields["size"]) > 0
        if line.kind == "to":
            assert line.recipients and "stat" in line.fields, line.raw
            assert line.timestamp(2026).month == 11
