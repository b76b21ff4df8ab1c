"""Queue actions through the real sendmail on the real spool; every outcome checked on disk.

The fault tests (locks, substring collisions, a worker lost mid-action) are in test_faults.py.
"""

from pathlib import Path

import pytest
from django.conf import settings

from mailadmin.models import AuditEvent
from mailadmin.mta.gateway import Mta
from mailqueue import actions, index
from mailqueue.models import QueueAction
from testing.processes import wait_for
from testing.queue import run_action


def listing(server, *args) -> str:
    return Mta(server).sendmail("-bp", *args, action="list").stdout_text


def test_quarantine_then_release_through_sendmail(submit):
    ids = submit.send(3, recipients=("q@qr.example",))
    index.refresh(submit.server)

    action = run_action(submit.server, QueueAction.Verb.QUARANTINE, queue_ids=ids, reason="spam run 42")

    assert action.outcomes == {queue_id: "quarantined" for queue_id in ids}
    assert len(action.commands) == 1, "one sendmail call for all ids"
    assert action.commands[0][-4:] == ["-Qspam run 42", *[f"-qI{i}" for i in ids]]
    for queue_id in ids:
        assert submit.kind(queue_id) == "hf" and submit.path("df", queue_id).exists()
        assert submit.reason(queue_id) == "spam run 42"
    quarantined = listing(submit.server, "-qQ")
    assert all(queue_id in quarantined for queue_id in ids)
    assert quarantined.count("QUARANTINE: spam run 42") >= 3
    assert not any(queue_id in listing(submit.server) for queue_id in ids)

    again = run_action(submit.server, QueueAction.Verb.QUARANTINE, queue_ids=ids, reason="spam run 42")
    assert again.commands == [] and set(again.outcomes.values()) == {"quarantined (already, same reason)"}

    released = run_action(submit.server, QueueAction.Verb.RELEASE, queue_ids=ids)
    assert released.outcomes == {queue_id: "released" for queue_id in ids}
    assert released.commands[0][-5:] == ["-Q", "-qQ", *[f"-qI{i}" for i in ids]]
    assert all(submit.kind(queue_id) == "qf" for queue_id in ids)
    assert all(queue_id in listing(submit.server) for queue_id in ids)
    assert b"\nq" not in submit.path("qf", ids[0]).read_bytes()

    rerun = run_action(submit.server, QueueAction.Verb.RELEASE, queue_ids=ids)
    assert rerun.commands == [] and set(rerun.outcomes.values()) == {"released (already)"}
    events = AuditEvent.objects.filter(server=submit.server, action="queue quarantine", argv__isnull=False)
    assert events.get().argv[-1] == f"-qI{ids[-1]}"


def test_a_new_reason_requarantines(submit):
    (queue_id,) = submit.send()
    run_action(submit.server, QueueAction.Verb.QUARANTINE, queue_ids=[queue_id], reason="first")
    action = run_action(submit.server, QueueAction.Verb.QUARANTINE, queue_ids=[queue_id], reason="second")
    assert "-qQ" in action.commands[0]
    assert action.outcomes == {queue_id: "quarantined"} and submit.reason(queue_id) == "second"


def test_processing_by_reason_touches_exactly_the_matching_jobs(submit):
    alpha = submit.send(2, recipients=("a@proc.example",))
    beta = submit.send(2, recipients=("b@proc.example",))
    run_action(submit.server, QueueAction.Verb.QUARANTINE, queue_ids=alpha, reason="alphaproc suspect")
    run_action(submit.server, QueueAction.Verb.QUARANTINE, queue_ids=beta, reason="betaproc suspect")

    action = run_action(submit.server, QueueAction.Verb.PROCESS_QUARANTINED, selector="alphaproc")

    assert action.commands[0][-2:] == ["-qQalphaproc", "-v"]
    assert [submit.attempts(i) for i in alpha] == [1, 1]
    assert [submit.attempts(i) for i in beta] == [0, 0]
    assert all(submit.kind(i) == "hf" for i in alpha + beta), "a queue run leaves them quarantined"
    assert {i: action.outcomes[i].split(":")[0] for i in alpha} == {i: "attempted" for i in alpha}
    assert not set(beta) & set(action.outcomes)

    negated = run_action(submit.server, QueueAction.Verb.PROCESS_QUARANTINED, selector="alphaproc", negate=True)
    assert negated.commands[0][-2:] == ["-q!Qalphaproc", "-v"]
    assert [submit.attempts(i) for i in alpha] == [1, 1]
    assert [submit.attempts(i) for i in beta] == [1, 1]


def test_quarantine_by_recipient_selector(submit):
    hit = submit.send(2, recipients=("x@selhit.example",))
    miss = submit.send(1, recipients=("x@selmiss.example",))

    action = run_action(
        submit.server,
        QueueAction.Verb.QUARANTINE_MATCHING,
        selector_kind="R",
        selector="selhit.example",
        reason="by rcpt",
    )

    assert action.commands[0][-2:] == ["-Qby rcpt", "-qRselhit.example"]
    assert action.outcomes == {queue_id: "quarantined" for queue_id in hit}
    assert submit.kind(miss[0]) == "qf"


def test_deliver_now_attempts_and_reports_the_deferral_with_a_debug_log(submit):
    (queue_id,) = submit.send()
    action = run_action(submit.server, QueueAction.Verb.DELIVER, queue_ids=[queue_id], debug_level="0.1")
    argv = action.commands[0]
    assert argv.index("-D") < argv.index("-d0.1") < argv.index(f"-qI{queue_id}")
    assert action.outcomes[queue_id] == "attempted: Deferred: Connection refused by [127.0.0.2]"
    assert "Version 8." in action.debug_log
    assert not (Path(settings.VAR_DIR) / "queue-debug" / f"action-{action.pk}.fifo").exists()


def test_a_debug_run_that_writes_more_than_256_kib_keeps_the_first_256_kib_and_nothing_on_disk(submit):
    queue_ids = submit.send(count=12)
    # Rewriting (21.12) and name resolution (8.99) traces: about 40 KB a message.
    action = run_action(submit.server, QueueAction.Verb.DELIVER, queue_ids=queue_ids, debug_level="0-99.1,21.12,8.99")
    assert action.status == "done", action.error
    kept, _, note = action.debug_log.rpartition("\n[… cut at 256 KiB of ")
    assert note.endswith(" bytes]") and int(note.removesuffix(" bytes]").replace(",", "")) > actions.DEBUG_LOG_LIMIT
    assert len(kept.encode()) <= actions.DEBUG_LOG_LIMIT
    assert "Version 8." in kept
    assert list((Path(settings.VAR_DIR) / "queue-debug").iterdir()) == []


def test_the_debug_capture_reads_a_writer_to_the_end_and_keeps_only_the_limit(tmp_path):
    capture = actions.DebugCapture(tmp_path / "debug.fifo")
    with open(capture.path, "ab") as writer:  # as sendmail's -D opens it: append
        for _ in range(40):
            writer.write(b"x" * 65536)
    text = capture.finish()
    assert text.startswith("x" * actions.DEBUG_LOG_LIMIT)
    assert text.endswith(f"[… cut at 256 KiB of {40 * 65536:,} bytes]")
    assert not capture.path.exists()


HOSTILE_REASONS = [
    "",
    ".",
    "-bd",
    "--help",
    "spam\nO QueueDirectory=/tmp",
    "spam\r",
    "tab\there",
    "nul\x00",
    "$(touch /tmp/pwned)",
    "`id`",
    "a; rm -rf /",
    "x | y",
    "esyscmd(`id')",
    "changequote([,])",
    "dnl'",
    "<script>",
    " leading",
    "trailing ",
    "x" * 201,
    "x" * 10240,
    "\u202eevil",
]


@pytest.mark.parametrize("reason", HOSTILE_REASONS)
def test_hostile_reasons_never_reach_argv(reason, mta_server, operator, client):
    from mailqueue.models import QueueMessage

    QueueMessage.objects.create(
        server=mta_server,
        queue_id="6AOIGq4n025795",
        kind="qf",
        state="queued",
        directory="/x",
        inode=1,
        file_size=1,
        mtime_ns=1,
    )
    client.force_login(operator)
    url = f"/servers/{mta_server.name}/queue/"
    response = client.post(
        url + "act/", {"verb": "quarantine", "scope": "selected", "id": "6AOIGq4n025795", "reason": reason}
    )
    selector = client.post(
        url + "select/",
        {"verb": "quarantine_matching", "selector_kind": "R", "selector": reason, "reason": "ok reason"},
    )
    process = client.post(url + "select/", {"verb": "process_quarantined", "selector": reason})
    assert response.status_code == selector.status_code == process.status_code == 302
    assert QueueAction.objects.count() == 0
    assert not AuditEvent.objects.filter(action__startswith="queue", argv__isnull=False).exists()
    page = client.get(url)
    assert page.status_code == 200
    assert any(m.level_tag == "error" for m in page.context["messages"])


@pytest.mark.parametrize(
    "queue_id",
    ["6AOIGq4n02579", "../../etc/passwd", "-qQ", "6AOIGq4n025795\n-bd", "6AOIGq4n025795 -X/tmp/x", "x" * 10000],
)
def test_hostile_ids_never_reach_argv(queue_id, mta_server, operator, client):
    client.force_login(operator)
    client.post(f"/servers/{mta_server.name}/queue/act/", {"verb": "release", "scope": "selected", "id": queue_id})
    assert QueueAction.objects.count() == 0


def test_the_domain_functions_validate_on_their_own(submit):
    action = QueueAction.objects.create(
        server=submit.server, verb="quarantine", queue_ids=["6AOIGq4n025795"], reason="."
    )
    with pytest.raises(Exception, match="releases"):
        actions.perform(action, Mta(submit.server), lambda pct, note: None)
    action = QueueAction.objects.create(server=submit.server, verb="deliver", queue_ids=["-bd"])
    with pytest.raises(Exception, match="not a sendmail queue id"):
        actions.perform(action, Mta(submit.server), lambda pct, note: None)
    assert not AuditEvent.objects.filter(action__startswith="queue", argv__isnull=False).exists()


def test_an_operator_quarantines_on_the_real_worker(worker, submit, operator, client):
    ids = submit.send(2, recipients=("w@worker.example",))
    index.refresh(submit.server)
    client.force_login(operator)
    response = client.post(
        f"/servers/{submit.server.name}/queue/act/",
        {"verb": "quarantine", "scope": "matching", "filter-recipient": "worker.example", "reason": "worker test"},
    )
    assert response.status_code == 302
    action = QueueAction.objects.get()
    wait_for(lambda: QueueAction.objects.get(pk=action.pk).finished, 60, "the queue action to finish")
    action.refresh_from_db()
    assert action.status == "done", (action.error, worker.log()[-3000:])
    assert sorted(action.queue_ids) == sorted(ids)
    assert action.outcomes == {queue_id: "quarantined" for queue_id in ids}
    assert all(submit.kind(queue_id) == "hf" for queue_id in ids)
    page = client.get(response["Location"])
    assert b"2 quarantined" in page.content
    listed = client.get(
        f"/servers/{submit.server.name}/queue/", {"state": "quarantined", "recipient": "worker.example"}
    )
    assert listed.context["total"] == 2
