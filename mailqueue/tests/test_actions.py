"""Queue actions through the real sendmail on the real spool; every outcome checked on disk."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.test import override_settings

from conftest import wait_for
from mailadmin.gateway import Mta
from mailadmin.models import AuditEvent
from mailqueue import actions, index, tasks
from mailqueue.models import QueueAction
from mailqueue.parser import parse_queue_file


def run(server, verb, **fields) -> QueueAction:
    """Run an action the way the worker does (claim, perform, finish), in this process."""
    action = QueueAction.objects.create(server=server, verb=verb, **fields)
    assert tasks.run_queue_action(action.pk) == "done"
    action.refresh_from_db()
    return action


def reason_on_disk(submit, queue_id) -> str:
    return parse_queue_file(submit.path("hf", queue_id).read_bytes(), kind="hf").quarantine_reason


def listing(server, *args) -> str:
    return Mta(server).sendmail("-bp", *args, action="list").stdout_text


def attempts(submit, queue_id) -> int:
    kind = submit.kind(queue_id)
    return parse_queue_file(submit.path(kind, queue_id).read_bytes()).attempts


class LockHolder:
    """Another process holding flock(LOCK_EX) on a file, the way a sendmail queue runner does."""

    def __init__(self, path):
        code = (
            "import fcntl, sys, time\n"
            "f = open(sys.argv[1], 'rb')\n"
            "fcntl.flock(f, fcntl.LOCK_EX)\n"
            "print('locked', flush=True)\n"
            "sys.stdin.read()\n"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout.readline().strip() == "locked"

    def release(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def test_quarantine_then_release_through_sendmail(submit):
    ids = submit.send(3, recipients=("q@qr.example",))
    index.refresh(submit.server)

    action = run(submit.server, QueueAction.Verb.QUARANTINE, queue_ids=ids, reason="spam run 42")

    assert action.outcomes == {queue_id: "quarantined" for queue_id in ids}
    assert len(action.commands) == 1, "one sendmail call for all ids"
    assert action.commands[0][-4:] == ["-Qspam run 42", *[f"-qI{i}" for i in ids]]
    for queue_id in ids:
        assert submit.kind(queue_id) == "hf" and submit.path("df", queue_id).exists()
        assert reason_on_disk(submit, queue_id) == "spam run 42"
    quarantined = listing(submit.server, "-qQ")
    assert all(queue_id in quarantined for queue_id in ids)
    assert quarantined.count("QUARANTINE: spam run 42") >= 3
    assert not any(queue_id in listing(submit.server) for queue_id in ids)

    again = run(submit.server, QueueAction.Verb.QUARANTINE, queue_ids=ids, reason="spam run 42")
    assert again.commands == [] and set(again.outcomes.values()) == {"quarantined (already, same reason)"}

    released = run(submit.server, QueueAction.Verb.RELEASE, queue_ids=ids)
    assert released.outcomes == {queue_id: "released" for queue_id in ids}
    assert released.commands[0][-5:] == ["-Q", "-qQ", *[f"-qI{i}" for i in ids]]
    assert all(submit.kind(queue_id) == "qf" for queue_id in ids)
    assert all(queue_id in listing(submit.server) for queue_id in ids)
    assert b"\nq" not in submit.path("qf", ids[0]).read_bytes()

    rerun = run(submit.server, QueueAction.Verb.RELEASE, queue_ids=ids)
    assert rerun.commands == [] and set(rerun.outcomes.values()) == {"released (already)"}
    events = AuditEvent.objects.filter(server=submit.server, action="queue quarantine", argv__isnull=False)
    assert events.get().argv[-1] == f"-qI{ids[-1]}"


def test_a_new_reason_requarantines(submit):
    (queue_id,) = submit.send()
    run(submit.server, QueueAction.Verb.QUARANTINE, queue_ids=[queue_id], reason="first")
    action = run(submit.server, QueueAction.Verb.QUARANTINE, queue_ids=[queue_id], reason="second")
    assert "-qQ" in action.commands[0]
    assert action.outcomes == {queue_id: "quarantined"} and reason_on_disk(submit, queue_id) == "second"


def test_processing_by_reason_touches_exactly_the_matching_jobs(submit):
    alpha = submit.send(2, recipients=("a@proc.example",))
    beta = submit.send(2, recipients=("b@proc.example",))
    run(submit.server, QueueAction.Verb.QUARANTINE, queue_ids=alpha, reason="alphaproc suspect")
    run(submit.server, QueueAction.Verb.QUARANTINE, queue_ids=beta, reason="betaproc suspect")

    action = run(submit.server, QueueAction.Verb.PROCESS_QUARANTINED, selector="alphaproc")

    assert action.commands[0][-2:] == ["-qQalphaproc", "-v"]
    assert [attempts(submit, i) for i in alpha] == [1, 1]
    assert [attempts(submit, i) for i in beta] == [0, 0]
    assert all(submit.kind(i) == "hf" for i in alpha + beta), "a queue run leaves them quarantined"
    assert {i: action.outcomes[i].split(":")[0] for i in alpha} == {i: "attempted" for i in alpha}
    assert not set(beta) & set(action.outcomes)

    negated = run(submit.server, QueueAction.Verb.PROCESS_QUARANTINED, selector="alphaproc", negate=True)
    assert negated.commands[0][-2:] == ["-q!Qalphaproc", "-v"]
    assert [attempts(submit, i) for i in alpha] == [1, 1]
    assert [attempts(submit, i) for i in beta] == [1, 1]


def test_quarantine_by_recipient_selector(submit):
    hit = submit.send(2, recipients=("x@selhit.example",))
    miss = submit.send(1, recipients=("x@selmiss.example",))

    action = run(
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
    action = run(submit.server, QueueAction.Verb.DELIVER, queue_ids=[queue_id], debug_level="0.1")
    argv = action.commands[0]
    assert argv.index("-D") < argv.index("-d0.1") < argv.index(f"-qI{queue_id}")
    assert action.outcomes[queue_id] == "attempted: Deferred: Connection refused by [127.0.0.2]"
    assert "Version 8." in action.debug_log
    assert not (Path(settings.VAR_DIR) / "queue-debug" / f"action-{action.pk}.log").exists()


def test_delete_waits_for_a_real_lock_holder_and_never_half_deletes(submit):
    (queue_id,) = submit.send()
    holder = LockHolder(submit.path("qf", queue_id))
    try:
        action = run(submit.server, QueueAction.Verb.DELETE, queue_ids=[queue_id])
        assert action.outcomes[queue_id].startswith("busy")
        assert submit.path("qf", queue_id).exists() and submit.path("df", queue_id).exists()
        # Our lock and sendmail's are the same kind: sendmail skips the job we (or the holder) hold.
        result = Mta(submit.server).sendmail(f"-qI{queue_id}", "-v", action="queue run")
        assert "locked" in result.stdout_text + result.stderr_text
        assert attempts(submit, queue_id) == 0
    finally:
        holder.release()

    action = run(submit.server, QueueAction.Verb.DELETE, queue_ids=[queue_id])
    assert action.outcomes[queue_id] == "deleted"
    assert not submit.path("qf", queue_id).exists() and not submit.path("df", queue_id).exists()
    assert run(submit.server, QueueAction.Verb.DELETE, queue_ids=[queue_id]).outcomes[queue_id].startswith("deleted")


def test_a_locked_job_is_reported_busy_and_run_again_from_the_page(submit, client, operator):
    (queue_id,) = submit.send()
    holder = LockHolder(submit.path("qf", queue_id))
    try:
        action = run(submit.server, QueueAction.Verb.QUARANTINE, queue_ids=[queue_id], reason="held")
    finally:
        holder.release()
    assert action.outcomes[queue_id].startswith("busy")
    assert submit.kind(queue_id) == "qf"

    client.force_login(operator)
    response = client.post(f"/queue/actions/{action.pk}/retry/")
    again = QueueAction.objects.exclude(pk=action.pk).get()
    assert response["Location"] == f"/queue/actions/{again.pk}/"
    assert (again.verb, again.queue_ids, again.reason) == ("quarantine", [queue_id], "held")
    assert tasks.run_queue_action(again.pk) == "done"
    again.refresh_from_db()
    assert again.outcomes[queue_id] == "quarantined" and submit.kind(queue_id) == "hf"


def test_an_id_inside_another_id_is_refused(submit):
    (queue_id,) = submit.send()
    shorter = queue_id[:-1]
    shutil.copy(submit.path("qf", queue_id), submit.path("qf", shorter))
    shutil.copy(submit.path("df", queue_id), submit.path("df", shorter))

    action = run(submit.server, QueueAction.Verb.QUARANTINE, queue_ids=[shorter], reason="collide")

    assert action.outcomes[shorter].startswith("refused") and action.commands == []
    assert submit.kind(queue_id) == "qf" and submit.kind(shorter) == "qf"


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


def test_a_worker_lost_after_sendmail_ran_causes_no_second_effect(submit):
    """F11: the spool changed, the row did not; the rerun finds the target state and runs nothing."""
    from datetime import timedelta

    from django.utils import timezone

    from mailadmin import work

    ids = submit.send(2)
    action = QueueAction.objects.create(
        server=submit.server, verb=QueueAction.Verb.QUARANTINE, queue_ids=ids, reason="lost worker"
    )
    claimed = work.claim(QueueAction, action.pk)
    actions.perform(claimed, Mta(submit.server), lambda pct, note: None)
    QueueAction.objects.filter(pk=action.pk).update(lease_until=timezone.now() - timedelta(seconds=1))

    assert tasks.run_queue_action(action.pk) == "done"

    action.refresh_from_db()
    assert action.attempt == 2 and action.commands == []
    assert set(action.outcomes.values()) == {"quarantined (already, same reason)"}
    calls = AuditEvent.objects.filter(action="queue quarantine", argv__isnull=False)
    assert calls.count() == 1


@pytest.mark.faults
def test_killing_the_pool_child_mid_action_loses_nothing(worker, submit):
    """F1: sendmail hangs on a relay that accepts and never greets; the pool child dies mid-task."""
    import os
    import signal
    import socket

    from mailadmin import work

    ids = submit.send(3, recipients=("t@tarpit.example",))
    tarpit = socket.socket()
    tarpit.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tarpit.bind(("127.0.0.2", 2))  # the instance's relay target: connections now wait for a greeting
    tarpit.listen(16)
    try:
        action = QueueAction.objects.create(server=submit.server, verb=QueueAction.Verb.DELIVER, queue_ids=ids)
        assert work.publish(action)
        wait_for(
            lambda: QueueAction.objects.get(pk=action.pk).status == "running" and tarpit_has_a_caller(tarpit),
            30,
            "sendmail to reach the tarpit",
        )
        os.kill(QueueAction.objects.get(pk=action.pk).worker_pid, signal.SIGKILL)
    finally:
        tarpit.close()  # pending connections are reset: the orphaned sendmail defers and exits

    def finished():
        with override_settings(WORK_REDISPATCH_SECONDS=1):
            work.sweep()
        return QueueAction.objects.get(pk=action.pk).finished

    wait_for(finished, 90, "the action to finish after the worker child died", interval=1)
    action.refresh_from_db()
    assert action.status == "done", (action.error, worker.log()[-3000:])
    assert action.attempt == 2
    assert sorted(action.outcomes) == sorted(ids), "one outcome per id, none missing"
    assert all(outcome.split(":")[0] in ("attempted", "busy") for outcome in action.outcomes.values())
    assert all(submit.kind(queue_id) == "qf" and submit.path("df", queue_id).exists() for queue_id in ids)
    done = AuditEvent.objects.filter(action="queue deliver", argv__isnull=True, outcome="ok")
    assert done.count() == 1


def tarpit_has_a_caller(tarpit) -> bool:
    import select

    return bool(select.select([tarpit], [], [], 0)[0])
