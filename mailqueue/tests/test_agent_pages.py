"""The queue's pages never touch a spool: the host's agent answers for them, and stays inside its queue directories."""

from __future__ import annotations

import json
import os
from pathlib import Path

from django.utils.html import escape

from mailadmin.models import AgentRequest, MailServer
from mailqueue import agentside, spool
from mailqueue.models import QueueAction
from testing.imports import modules_loaded_by
from testing.processes import wait_for
from testing.queue import run_action

# What the web tier's queue modules must not load, directly or through anything they import.
SPOOL_READERS = ("mailqueue.index", "mailqueue.spool", "mailqueue.spoolwatch", "mailqueue.fanout", "mailqueue.actions")
WEB_MODULES = ("mailqueue.views", "mailqueue.forms", "mailqueue.summary", "mailqueue.stats", "mailqueue.urls")


def test_the_queue_pages_import_no_spool_reader_and_nothing_of_the_mta():
    assert modules_loaded_by(WEB_MODULES, [*SPOOL_READERS, "mailadmin.mta"]) == {}


def test_the_message_page_of_a_real_queued_message_shows_its_body_preview_answered_by_the_worker(
    worker, submit, client, viewer
):
    body = "Dear postmaster,\r\nthe <b>preview</b> & its second line.\r\n"
    (queue_id,) = submit.send(subject="preview by the agent", body=body, recipients=("carol@agent.example",))
    client.force_login(viewer)

    page = client.get(f"/servers/{submit.server.name}/queue/messages/{queue_id}/")

    assert page.status_code == 200
    asked = page.context["agent_request"]
    assert (asked.kind, asked.params, asked.server) == ("message preview", {"queue_id": queue_id}, submit.server)
    html = page.content.decode()
    assert "the &lt;b&gt;preview&lt;/b&gt;" not in html, "the web process read no spool file itself"
    assert page.context["progress_url"] in html, "the page polls for the answer"

    def fragment():
        polled = client.get(page.context["progress_url"])
        return polled.content.decode() if polled.status_code == 286 else None

    spool_view = wait_for(fragment, 60, "the worker to answer the message preview", interval=0.3)
    assert escape("the <b>preview</b> & its second line.") in spool_view
    assert "<b>preview</b>" not in spool_view
    assert f"qf{queue_id}" in spool_view and "carol@agent.example" in spool_view
    assert "Subject: preview by the agent 0" in spool_view
    answered = AgentRequest.objects.get(pk=asked.pk)
    assert answered.status == "done" and answered.worker_pid != os.getpid()
    assert answered.result["body"]["text"].startswith("Dear postmaster,")


def point_the_data_directory_outside(path: Path, outside: str) -> None:
    """Give a real qf a `d` line (sendmail writes one when a job's data file is in another queue directory)."""
    data = path.read_bytes()
    path.write_bytes(data.replace(b"\nS", f"\nd{outside}\nS".encode(), 1))


def test_a_qf_whose_d_line_points_outside_the_queue_is_neither_previewed_nor_deleted_outside_it(submit, tmp_path):
    server = submit.server
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    relative = tmp_path / "relative"
    relative.mkdir()
    ids = submit.send(2, subject="bogus data directory")
    named = {ids[0]: str(elsewhere), ids[1]: os.path.relpath(relative, server.queue_dir)}  # absolute, relative
    for queue_id, outside in named.items():
        point_the_data_directory_outside(submit.path("qf", queue_id), outside)
    for directory in (elsewhere, relative):
        for queue_id in ids:
            (directory / f"df{queue_id}").write_text("the secret that is not in the queue\n")

    for queue_id in ids:
        seen = agentside.preview(server, queue_id)
        assert seen["found"] and seen["message"]["data_dir"] == named[queue_id]
        assert seen["body"]["text"] == "" and "not one of the queue directories" in seen["body"]["error"]
        assert "secret" not in json.dumps(seen)

    action = run_action(server, QueueAction.Verb.DELETE, queue_ids=ids)

    for queue_id in ids:
        assert action.outcomes[queue_id].startswith("deleted: only files inside the queue directories were removed")
        assert submit.kind(queue_id) is None and not submit.path("df", queue_id).exists()
        for directory in (elsewhere, relative):
            assert (directory / f"df{queue_id}").read_text() == "the secret that is not in the queue\n"


def test_a_d_line_naming_another_of_the_queue_directories_is_followed_and_nothing_else_is(tmp_path):
    root = tmp_path / "queues"
    for name in ("q1", "q2"):
        (root / name / "df").mkdir(parents=True)
    (tmp_path / "q3").mkdir()
    setting = str(root / "q*")
    q1, q2 = str(root / "q1"), str(root / "q2")

    assert spool.named_queue_directory(setting, "q2") == q2  # as sendmail writes it: relative to the base
    assert spool.named_queue_directory(setting, q2) == q2
    assert spool.named_queue_directory(setting, "q2/../q1") == q1
    for bogus in ("../q3", str(tmp_path / "q3"), "/etc", "", "q2\0", "q", "q2/df"):
        assert spool.named_queue_directory(setting, bogus) is None, bogus

    class Parsed:
        data_dir = "q2"

    assert spool.data_file_path(setting, q1, "6AOIJJ5g000001", Parsed()) == str(root / "q2" / "df" / "df6AOIJJ5g000001")
    (root / "q1" / "df").rmdir()
    (root / "q1" / "df").symlink_to(tmp_path / "q3")  # a data subdirectory that leads out of the queue
    try:
        spool.data_file_path(setting, q1, "6AOIJJ5g000001")
    except spool.OutsideQueue as exc:
        assert "outside the queue directories" in str(exc)
    else:
        raise AssertionError("a df/ link out of the queue was followed")


def test_a_control_or_data_file_that_is_a_symbolic_link_is_not_read(submit, tmp_path):
    (queue_id,) = submit.send(subject="linked")
    secret = tmp_path / "secret"
    secret.write_text("V8\nSroot\nHSubject: secret\n.\n")
    data = submit.path("df", queue_id)
    data.unlink()
    data.symlink_to(secret)

    seen = agentside.preview(submit.server, queue_id)

    assert seen["body"]["text"] == "" and "symbolic link" in seen["body"]["error"]
    control = submit.path("qf", queue_id)
    control.unlink()
    control.symlink_to(secret)
    seen = agentside.preview(submit.server, queue_id)
    assert "secret" not in json.dumps(seen["message"]["headers"]) and "symbolic link" in seen["message"]["problems"][0]


def test_with_several_servers_the_message_page_offers_the_other_servers_queue(mta_server, client, viewer):
    other = MailServer.objects.get(pk=mta_server.pk)
    other.pk, other.name, other.celery_queue = None, "other", "mta.other"
    other.save()
    client.force_login(viewer)

    page = client.get(f"/servers/{mta_server.name}/queue/messages/6AOIJJ5g000001/")

    assert page.status_code == 200
    assert 'href="/servers/other/queue/"' in page.content.decode()
