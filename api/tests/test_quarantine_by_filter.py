"""End to end: a script quarantines every message from one sender through the API with a bearer
token; the real worker runs the QueueAction the API queued, and the spool agrees (hf files with
the reason); the audit log names the token."""

from __future__ import annotations

import io

from django.core.management import call_command

from mailadmin.models import AuditEvent
from mailqueue import index
from mailqueue.models import QueueAction
from testing.api import call
from testing.processes import wait_for


def test_a_script_quarantines_by_filter_through_the_api_and_the_spool_agrees(worker, submit, operator):
    server = submit.server
    spam = submit.send(3, sender="spammer@bad.example", subject="cheap")
    (kept,) = submit.send(sender="friend@good.example", subject="hello")
    index.refresh(server)
    out = io.StringIO()
    call_command("apitoken", "--user", operator.username, "--scope", "queue:read", "--scope", "queue:write",
                 "--name", "quarantine script", stdout=out)  # fmt: skip
    token = out.getvalue().strip()

    listed = call("GET", f"/api/v1/servers/{server.name}/queue/?sender=spammer@bad.example", token).json()
    assert listed["total"] == 3 and sorted(m["queue_id"] for m in listed["results"]) == sorted(spam)

    body = {"verb": "quarantine", "filter": {"sender": "spammer@bad.example"}, "reason": "spam run 42",
            "confirmed_count": 3}  # fmt: skip
    response = call("POST", f"/api/v1/servers/{server.name}/queue/", token, body)
    assert response.status_code == 202, response.content
    status_url = response.json()["url"]
    assert response["Location"] == status_url

    def finished():
        state = call("GET", status_url, token).json()
        return state if state["status"] in ("done", "failed") else None

    state = wait_for(finished, 60, "the worker to run the API's queue action")
    assert state["status"] == "done", (state, worker.log()[-3000:])
    assert sorted(state["queue_ids"]) == sorted(spam)
    for queue_id in spam:
        assert submit.kind(queue_id) == "hf"
        assert submit.reason(queue_id) == "spam run 42"
    assert submit.kind(kept) == "qf"

    action = QueueAction.objects.get(pk=response.json()["id"])
    assert action.created_by == operator
    queued = AuditEvent.objects.get(action="queue quarantine", outcome=AuditEvent.Outcome.QUEUED)
    assert queued.api_token.startswith("quarantine script (") and queued.username == operator.username
    assert "spam run 42" in queued.detail

    # The rows the worker wrote later, the sendmail command included, name the token too.
    assert action.api_token == queued.api_token
    worker_rows = AuditEvent.objects.exclude(pk=queued.pk).filter(server=server, created__gte=queued.created)
    assert worker_rows.filter(argv__isnull=False).exists()
    assert {event.api_token for event in worker_rows} == {queued.api_token}, [
        (event.action, event.api_token) for event in worker_rows
    ]
