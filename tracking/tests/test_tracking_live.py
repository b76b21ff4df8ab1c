"""Tracking real mail: two sendmail daemons, A relaying to B, B deferring; the traces come from the
lines the daemons themselves logged, read by the agent's ingest."""

from __future__ import annotations

import smtplib
from pathlib import Path

import pytest

from mailqueue.models import QueueAction
from testing.instances import instance_row, start_instance, stop_instance
from testing.processes import wait_for
from testing.queue import Submitter, run_action
from testing.syslog import sendmail_log
from tracking import agentside
from tracking.models import LogCheckpoint, MessageTrace
from tracking.traces import journey, search_filter

# A's queue runs relay to [127.0.0.2] port 2: B listens there, and relays on to [127.0.0.3], where
# nothing listens. B has a name of its own, or A would refuse it as "mail loops back to me".
B_ADDRESS, B_PORT = "127.0.0.2", 2


@pytest.fixture(scope="module")
def relay_pair(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        b = start_instance(
            address=B_ADDRESS, port=B_PORT, hostname="relay-b.mailadmin-test.localdomain", defer_relay="[127.0.0.3]"
        )
        a = start_instance()
    try:
        with sendmail_log(a["log_file"], b["log_file"]) as collecting:
            if not collecting:
                pytest.skip("a syslog daemon holds /dev/log: sendmail's lines go to its files, not these instances'")
            yield a, b
    finally:
        with django_db_blocker.unblock():
            stop_instance(a)
            stop_instance(b)


@pytest.fixture
def servers(db, relay_pair):
    a, b = (instance_row(fields) for fields in relay_pair)
    return a, b


def logged(server, text: str) -> bool:
    return text in Path(server.log_file).read_text(errors="replace")


def ingest_until(server, condition, what: str) -> None:
    def ready() -> bool:
        agentside.ingest(server)
        return condition()

    wait_for(ready, 20, what)


def test_a_message_relayed_from_a_to_b_is_one_journey_with_b_s_deferral_text(servers):
    a, b = servers
    (queue_id,) = Submitter(a).send(sender="alice@client.example", recipients=("bob@remote.example",))
    run_action(a, QueueAction.Verb.DELIVER, queue_ids=[queue_id])
    ingest_until(a, lambda: MessageTrace.objects.filter(server=a, queue_id=queue_id, status="delivered").exists(),
                 "A's trace delivered to B")  # fmt: skip
    on_a = MessageTrace.objects.get(server=a, queue_id=queue_id)
    assert on_a.sender == "alice@client.example" and on_a.message_id
    (bob,) = on_a.recipients.all()
    assert bob.relay.startswith("[127.0.0.2]") and bob.status_text.startswith("Sent (")

    ingest_until(b, lambda: MessageTrace.objects.filter(server=b, message_id=on_a.message_id).exists(), "B's trace")
    on_b = MessageTrace.objects.get(server=b, message_id=on_a.message_id)
    b_queue_ids = [line for line in Path(b.queue_dir).iterdir() if line.name == f"qf{on_b.queue_id}"]
    assert b_queue_ids, "B still has the message queued"
    run_action(b, QueueAction.Verb.DELIVER, queue_ids=[on_b.queue_id])
    ingest_until(b, lambda: MessageTrace.objects.filter(pk=on_b.pk, status="deferred").exists(), "B's deferral")
    on_b.refresh_from_db()
    assert "Deferred: Connection refused by [127.0.0.3]" in on_b.status_text
    assert on_b.client_address == "127.0.0.1"

    found = MessageTrace.objects.filter(search_filter(on_a.message_id))
    assert {trace.server.name for trace in found} == {a.name, b.name}
    assert [trace.server.name for trace in journey(on_b)] == [a.name, b.name]
    checkpoint = LogCheckpoint.objects.get(server=a)
    assert checkpoint.offset > 0 and checkpoint.lines_kept < checkpoint.lines_read  # B's lines were skipped


def test_a_quarantine_from_the_console_shows_its_quarantine_line(servers):
    a, _ = servers
    (queue_id,) = Submitter(a).send(recipients=("carol@remote.example",))
    action = run_action(a, QueueAction.Verb.QUARANTINE, queue_ids=[queue_id], reason="held for review, by the test")
    assert action.status == "done", action.error
    ingest_until(a, lambda: MessageTrace.objects.filter(server=a, queue_id=queue_id, status="quarantined").exists(),
                 "the quarantine")  # fmt: skip
    trace = MessageTrace.objects.get(server=a, queue_id=queue_id)
    assert trace.quarantine_reason == "held for review, by the test"
    assert any("quarantine=held for review, by the test" in event.raw for event in trace.events.all())


def test_a_recipient_refused_by_a_ruleset_shows_as_rejected_with_its_ruleset(servers):
    a, _ = servers
    with smtplib.SMTP(a.smtp_address, a.smtp_port, source_address=("127.0.0.3", 0), timeout=30) as smtp:
        smtp.ehlo("client3.example")
        smtp.mail("mallory@client.example")
        code, _ = smtp.rcpt("victim@elsewhere.example")
    assert code == 550
    wait_for(lambda: logged(a, "Relaying denied"), 10, "sendmail's refusal in its log")
    ingest_until(a, lambda: MessageTrace.objects.filter(server=a, status="rejected").exists(), "the refusal")
    trace = MessageTrace.objects.filter(server=a, status="rejected").get(recipients__address="victim@elsewhere.example")
    assert trace.ruleset == "check_rcpt" and trace.client_address == "127.0.0.3"
    assert "Relaying denied" in trace.status_text
