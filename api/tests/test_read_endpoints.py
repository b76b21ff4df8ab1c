"""Reading through the API: the queue list pages by cursor with the list page's filters and counts,
traces with their journey, the audit log with the page's filters; a host-limited token sees its hosts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from mailqueue.models import IndexRefresh, QueueMessage
from testing.api import call, make_token, remote_server
from tracking.models import MessageTrace


def indexed(server, count: int, sender: str) -> list[str]:
    now = timezone.now()
    ids = [f"6AOIGq4n{number:06d}" for number in range(count)]
    QueueMessage.objects.bulk_create(
        QueueMessage(
            server=server, queue_id=queue_id, kind="qf", state="queued", directory="/q", inode=number,
            file_size=100, mtime_ns=0, sender=sender, recipients="bob@remote.example\n", recipient_count=1,
            created=now - timedelta(minutes=number),
        )
        for number, queue_id in enumerate(ids)
    )  # fmt: skip
    return ids


def test_the_queue_pages_by_cursor_with_the_list_filters_and_counts(viewer, remote):
    ids = indexed(remote, 60, "bulk@sender.example")
    IndexRefresh.objects.create(server=remote, finished=timezone.now(), state_counts={"queued": 60})
    token = make_token(viewer, "queue:read")
    first = call("GET", "/api/v1/servers/remote/queue/", token, query={"sender": "bulk@", "sort": "created"}).json()
    assert first["total"] == 60 and first["counts"]["queued"] == 60 and len(first["results"]) == 50
    assert first["results"][0]["queue_id"] == ids[-1], "oldest first"
    second = call("GET", first["next"], token).json()
    seen = [m["queue_id"] for m in first["results"] + second["results"]]
    assert sorted(seen) == sorted(ids) and second["next"] is None
    assert call("GET", "/api/v1/servers/remote/queue/", token, query={"sender": "nobody@"}).json()["total"] == 0
    one = call("GET", f"/api/v1/servers/remote/queue/{ids[0]}/", token).json()
    assert one["sender"] == "bulk@sender.example" and one["recipients"] == ["bob@remote.example"]


def test_traces_come_with_their_journey_and_a_limited_token_sees_only_its_hosts(viewer, remote):
    other = remote_server("relay2")
    when = timezone.now()
    MessageTrace.objects.create(server=remote, queue_id="6B4A00aa000001", message_id="<m1@x>", received_at=when)
    hop = MessageTrace.objects.create(server=other, queue_id="6B4A00aa000002", message_id="<m1@x>",
                                      received_at=when + timedelta(seconds=1))  # fmt: skip
    everywhere = make_token(viewer, "trace:read")
    listed = call("GET", "/api/v1/traces/", everywhere, query={"q": "<m1@x>"}).json()["results"]
    assert {trace["server"] for trace in listed} == {"remote", "relay2"}
    journey = call("GET", f"/api/v1/traces/{hop.pk}/", everywhere).json()["journey"]
    assert [trace["server"] for trace in journey] == ["remote", "relay2"]
    limited = make_token(viewer, "trace:read", servers=[remote])
    assert [t["server"] for t in call("GET", "/api/v1/traces/", limited).json()["results"]] == ["remote"]
    assert call("GET", f"/api/v1/traces/{hop.pk}/", limited).status_code == 404


def test_the_audit_log_filters_as_the_page_does_and_names_tokens(operator, remote):
    token = make_token(operator, "queue:write", "audit:read", name="auditor")
    call("GET", "/api/v1/servers/remote/queue/", token)  # refused: queue:read missing, and audited
    events = call("GET", "/api/v1/audit/", token, query={"outcome": "denied"}).json()
    assert events["results"] and all(event["outcome"] == "denied" for event in events["results"])
    assert events["results"][0]["api_token"].startswith("auditor (")
    refused = call("GET", "/api/v1/audit/", token, query={"outcome": "bogus"})
    assert refused.status_code == 400 and list(refused.json()) == ["outcome"]


@pytest.mark.parametrize("sort", ["created", "-created", "sender", "-size", "id"])
def test_paging_by_cursor_neither_skips_nor_repeats_rows_with_equal_or_missing_values(sort, viewer, remote):
    ids = indexed(remote, 130, "same@sender.example")  # every row ties on the sender
    QueueMessage.objects.filter(queue_id__in=ids[::2]).update(created=None, body_size=None)
    token = make_token(viewer, "queue:read")
    page = call("GET", "/api/v1/servers/remote/queue/", token, query={"sort": sort}).json()
    seen = [message["queue_id"] for message in page["results"]]
    while page["next"]:
        page = call("GET", page["next"], token).json()
        seen += [message["queue_id"] for message in page["results"]]
    assert len(seen) == len(set(seen)) == 130


def test_a_cursor_not_given_out_by_the_api_is_refused_by_name(viewer, remote):
    token = make_token(viewer, "queue:read", "audit:read")
    for path in ("/api/v1/servers/remote/queue/", "/api/v1/audit/"):
        response = call("GET", path, token, query={"cursor": "bm90IGEgY3Vyc29y"})
        assert response.status_code == 400 and list(response.json()) == ["cursor"]
