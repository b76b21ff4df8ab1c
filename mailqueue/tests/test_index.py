"""The index against the real spool: full build, incremental refresh, and what the pages show."""

import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from mailadmin import tasks as mailadmin_tasks
from mailadmin.mta.gateway import Mta
from mailqueue import agentside, index, tasks  # noqa: F401  (agentside: this process answers as the agent)
from mailqueue.models import IndexRefresh, QueueAction, QueueMessage
from mailqueue.parser import parse_queue_file
from testing.processes import wait_for

SAMPLES = Path("/work/shared/lab/samples")


def attempt_delivery(submit, queue_id):
    """A queue run for one job; sendmail skips a job a concurrent queue run holds (exit 0), so retry."""

    def attempted():
        # -v keeps sendmail in the foreground until the job is written back.
        Mta(submit.server).sendmail(f"-qI{queue_id}", "-v", action="queue run")
        return b"\nN0\n" not in submit.path("qf", queue_id).read_bytes()

    wait_for(attempted, 30, f"a delivery attempt of {queue_id}", interval=0.5)


def test_real_submissions_are_indexed_and_only_changes_are_reread(submit):
    ids = submit.send(3, sender="carol@client.example", recipients=("x1@idx.example", "x2@idx.example"))
    first = index.refresh(submit.server)
    assert first.files_read >= 3
    rows = {row.queue_id: row for row in QueueMessage.objects.filter(queue_id__in=ids)}
    assert set(rows) == set(ids)
    row = rows[ids[0]]
    assert row.sender == "carol@client.example" and row.recipient_count == 2
    assert row.first_domain == "idx.example" and row.state == "queued"
    assert row.recipient_list == ["x1@idx.example", "x2@idx.example"]
    assert row.subject == "queued 0" and row.body_size > 0 and row.created is not None

    assert index.refresh(submit.server).files_read == 0

    attempt_delivery(submit, ids[1])
    again = index.refresh(submit.server)
    assert again.files_read >= 1
    row = QueueMessage.objects.get(queue_id=ids[1])
    assert row.state == "failing" and row.attempts == 1 and "Connection refused" in row.status_message

    os.unlink(submit.path("qf", ids[2]))
    os.unlink(submit.path("df", ids[2]))
    assert index.refresh(submit.server).removed == 1
    assert not QueueMessage.objects.filter(queue_id=ids[2]).exists()


def test_fuzz_over_mutated_real_submissions(submit):
    import random

    from testing.spoolfiles import fuzz

    ids = submit.send(
        2,
        recipients=("a@fz.example", "b@fz.example"),
        subject="Ünïcode ✓",
        headers="X-Long: " + "x" * 300 + "\r\n\tcontinued\r\n",
    )
    attempt_delivery(submit, ids[0])
    corpus = [submit.path("qf", queue_id).read_bytes() for queue_id in ids]
    for data in corpus:
        parsed = parse_queue_file(data)
        assert parsed.problems == [], parsed.problems
        assert parsed.subject.startswith("Ünïcode ✓")
    assert fuzz(corpus, 5000, seed=random.randrange(1000)) > 0


@pytest.fixture
def scratch_server(mta_server, tmp_path):
    """A MailServer row whose queue is a scratch directory (lab samples copied in), never run by sendmail."""
    queue = tmp_path / "mqueue"
    queue.mkdir()
    mta_server.pk = None
    mta_server.name = "scratch"
    mta_server.queue_dir = str(queue)
    mta_server.celery_queue = "mta.scratch"
    mta_server.save()
    return mta_server


def two_queue_directories(server, tmp_path) -> Path:
    """queues/q1 and queues/q2, each with qf/ and df/ subdirectories, as the server's `q*` queue."""
    root = tmp_path / "queues"
    for name in ("q1", "q2"):
        (root / name / "qf").mkdir(parents=True)
        (root / name / "df").mkdir()
    server.queue_dir = str(root / "q*")
    server.save()
    return root


def test_subdirectories_several_queues_truncated_and_lost_files(scratch_server, tmp_path):
    root = two_queue_directories(scratch_server, tmp_path)
    shutil.copy(SAMPLES / "qf-normal.txt", root / "q1" / "qf" / "qf6AOIJJ5g025905")
    (root / "q1" / "df" / "df6AOIJJ5g025905").write_bytes(b"hello\n")
    shutil.copy(SAMPLES / "hf-quarantined.txt", root / "q2" / "qf" / "hf6AOIGq4n025795")
    data = (SAMPLES / "qf-deferred-multircpt.txt").read_bytes()
    (root / "q2" / "qf" / "qf6AOIEqMh025788").write_bytes(data[: len(data) // 2])
    shutil.copy(SAMPLES / "qf-dsn-8bit.txt", root / "q2" / "qf" / "Qf6AOIKu3H026421")
    (root / "q2" / "qf" / "tf6AOIKu3H026421").write_bytes(b"V8\n")

    result = index.refresh(scratch_server)

    assert result.files_seen == 4 and result.errors == []
    rows = {r.queue_id: r for r in QueueMessage.objects.filter(server=scratch_server)}
    assert rows["6AOIJJ5g025905"].body_size == 6 and rows["6AOIJJ5g025905"].state == "queued"
    assert rows["6AOIGq4n025795"].state == "quarantined" and rows["6AOIGq4n025795"].reason == "spam suspect"
    assert rows["6AOIEqMh025788"].truncated and "cut short" in rows["6AOIEqMh025788"].problems
    assert rows["6AOIKu3H026421"].state == "lost"


def test_the_list_filters_sorts_pages_and_counts(scratch_server, client, viewer):
    queue = Path(scratch_server.queue_dir)
    template = (SAMPLES / "hf-quarantined.txt").read_bytes()
    for number in range(120):
        queue_id = f"6AOIGq4n{number:06d}"
        reason = b"spam run" if number % 3 == 0 else b"virus found"
        prefix = "hf" if number % 2 == 0 else "qf"
        body = template.replace(b"qspam suspect", b"q" + reason if prefix == "hf" else b"")
        body = body.replace(b"T1795544212", b"T%d" % (1795544212 + number))
        (queue / f"{prefix}{queue_id}").write_bytes(body.replace(b"\n\n", b"\n"))
        (queue / f"df{queue_id}").write_bytes(b"x" * number)
    index.refresh(scratch_server)
    client.force_login(viewer)
    url = f"/servers/{scratch_server.name}/queue/"

    page = client.get(url, {"state": "quarantined", "reason": "spam"})
    assert page.context["total"] == 20  # even numbers divisible by 3: 0, 6, …, 114
    assert len(page.context["page"].object_list) == 20

    everything = client.get(url, {"sort": "-size"})
    assert everything.context["total"] == 120
    listed = list(everything.context["page"].object_list)
    assert len(listed) == 50 and listed[0].body_size == 119
    assert client.get(url, {"sort": "-size", "page": 3}).context["page"].object_list[0].body_size == 19

    hostile = client.get(url, {"sender": "x\n\x00y"})
    assert hostile.status_code == 200 and hostile.context["total"] == 0
    assert b"control characters" in hostile.content


def answered(client, page) -> str:
    """The page's question to the host's agent, answered here (this process is the instance's agent, as
    the worker is), and the fragment the page polls for it, once answered."""
    row = page.context["agent_request"]
    assert mailadmin_tasks.run_agent_request(row.pk) == "done", type(row).objects.get(pk=row.pk).error
    fragment = client.get(page.context["progress_url"])
    assert fragment.status_code == 286  # htmx stops polling
    return fragment.content.decode()


def test_the_message_page_reads_the_spool_through_the_agent_and_escapes_everything(submit, client, viewer):
    payload = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    (queue_id,) = submit.send(subject=payload, body=f"{payload}\r\n" + "y" * 40000)
    index.refresh(submit.server)
    client.force_login(viewer)
    page = client.get(f"/servers/{submit.server.name}/queue/messages/{queue_id}/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, "the index's subject, shown at once"
    assert "Asked the agent on" in html and page.context["agent_request"].kind == "message preview"

    spool_view = answered(client, page)
    for text in (html, spool_view):
        assert "<script>alert" not in text and "<img src=x" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in spool_view
    assert "bob@remote.example" in spool_view
    assert re.search(r"first \d+ characters of", spool_view)

    gone = client.get(f"/servers/{submit.server.name}/queue/messages/6AOIAAAA999999/")
    assert gone.status_code == 200 and b"Not in this server's queue index" in gone.content
    assert "This message is not in the queue (any more)" in answered(client, gone)
    assert client.get(f"/servers/{submit.server.name}/queue/messages/not-an-id/").status_code == 404


XSS_PAYLOADS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "<svg/onload=alert(1)>",
    "javascript:alert(1)",
    "<iframe src=//evil.example>",
    "' onmouseover='alert(1)",
    "</textarea><script>x</script>",
    "<a href=javascript:alert(1)>x</a>",
    "{{ 7*7 }}{% debug %}",
    "\u202e<b>rtl</b>",
]


class InjectedNodes(HTMLParser):
    """Counts elements and event-handler attributes the page did not put there itself."""

    def __init__(self):
        super().__init__()
        self.found = []

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "img", "svg", "iframe") and not any(
            n == "src" and "/static/" in (v or "") for n, v in attrs
        ):
            self.found.append(tag)
        self.found += [name for name, _ in attrs if name.startswith("on")]


def test_hostile_headers_render_as_text_on_every_queue_page(submit, client, viewer):
    ids = []
    for payload in XSS_PAYLOADS:
        ids += submit.send(subject=payload, headers=f"X-Payload: {payload}\r\nFrom: {payload}\r\n", body=payload)
    index.refresh(submit.server)
    client.force_login(viewer)
    pages = [client.get(f"/servers/{submit.server.name}/queue/", {"sort": "-created"})]
    message_pages = [client.get(f"/servers/{submit.server.name}/queue/messages/{queue_id}/") for queue_id in ids]
    pages.append(client.get(f"/servers/{submit.server.name}/queue/summary/"))
    texts = [page.content.decode() for page in pages + message_pages]
    texts += [answered(client, page) for page in message_pages]
    for text in texts:
        parser = InjectedNodes()
        parser.feed(text)
        assert parser.found == [], parser.found
    assert all(page.status_code == 200 for page in pages + message_pages)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in texts[-len(ids)]


def test_a_finished_file_edited_in_place_is_seen_by_the_next_deep_refresh(scratch_server, settings):
    """sendmail never rewrites a finished qf in place, so a refresh that lists trusts the inode;
    an edit in place (same inode) shows at the next deep refresh, which compares size and mtime.
    (With a watch, the next refresh reads it: test_a_watch_reports_every_kind_of_change.)"""
    settings.QUEUE_INDEX_WATCH = False  # every refresh lists
    queue = Path(scratch_server.queue_dir)
    path = queue / "qf6AOIJJ5g025905"
    path.write_bytes((SAMPLES / "qf-normal.txt").read_bytes())
    assert index.refresh(scratch_server).deep
    with open(path, "r+b") as handle:  # same inode
        data = handle.read().replace(b"Subject: ", b"Subject: edited ")
        handle.seek(0)
        handle.write(data)

    quick = index.refresh(scratch_server)
    assert not quick.deep and quick.listed and quick.files_read == 0

    settings.QUEUE_INDEX_DEEP_SECONDS = 0
    deep = index.refresh(scratch_server)
    assert deep.deep and deep.files_read == 1
    assert QueueMessage.objects.get(queue_id="6AOIJJ5g025905").subject.startswith("edited ")


def test_a_file_seen_half_written_is_read_again_until_it_is_finished(scratch_server):
    queue = Path(scratch_server.queue_dir)
    data = (SAMPLES / "qf-deferred-multircpt.txt").read_bytes()
    path = queue / "qf6AOIEqMh025788"
    path.write_bytes(data[:100])  # sendmail writes a new job's qf directly, under its lock
    index.refresh(scratch_server)
    assert QueueMessage.objects.get(queue_id="6AOIEqMh025788").truncated
    with open(path, "ab") as handle:
        handle.write(data[100:])

    assert index.refresh(scratch_server).files_read == 1
    row = QueueMessage.objects.get(queue_id="6AOIEqMh025788")
    assert not row.truncated and row.problems == "" and row.recipient_count > 1
    assert index.refresh(scratch_server).files_read == 0


def test_a_refresh_by_another_process_is_not_overlooked(scratch_server):
    """The process keeps the index's stamps between refreshes; a token in the row tells it when
    another process (a worker, the web server) refreshed in between."""
    queue = Path(scratch_server.queue_dir)
    sample = (SAMPLES / "qf-normal.txt").read_bytes()
    (queue / "qf6AOIJJ5g000001").write_bytes(sample)
    index.refresh(scratch_server)
    (queue / "qf6AOIJJ5g000001").unlink()
    (queue / "qf6AOIJJ5g000002").write_bytes(sample)
    # What another process's refresh leaves behind: other rows and another token.
    QueueMessage.objects.filter(server=scratch_server).delete()
    IndexRefresh.objects.filter(server=scratch_server).update(token=12345)

    result = index.refresh(scratch_server)

    assert result.files_read == 1 and result.listed  # the watch knows nothing of the other process's rows
    assert list(QueueMessage.objects.filter(server=scratch_server).values_list("queue_id", flat=True)) == [
        "6AOIJJ5g000002"
    ]


def fill_scratch_queue(queue: Path, count: int) -> list[str]:
    template = (SAMPLES / "qf-normal.txt").read_bytes()
    ids = []
    for number in range(count):
        queue_id = f"6AOIJJ5g{number:06d}"
        (queue / f"qf{queue_id}").write_bytes(template.replace(b"T1795", b"T%d" % (1795 + number % 7)))
        (queue / f"df{queue_id}").write_bytes(b"x" * (number % 100))
        ids.append(queue_id)
    return ids


def index_definitions() -> list[tuple[str, str]]:
    from django.db import connection

    if connection.vendor == "postgresql":
        query = "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s ORDER BY indexname"
    else:
        query = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = %s ORDER BY name"
    with connection.cursor() as cursor:
        cursor.execute(query, [QueueMessage._meta.db_table])
        return cursor.fetchall()


def test_a_first_build_reads_in_forked_children_and_puts_every_index_back(scratch_server):
    queue = Path(scratch_server.queue_dir)
    ids = fill_scratch_queue(queue, index.FANOUT_MIN_FILES + 10)
    QueueMessage.objects.all().delete()
    before = index_definitions()

    result = index.refresh(scratch_server)

    assert result.files_read == len(ids)
    assert index_definitions() == before
    rows = QueueMessage.objects.filter(server=scratch_server)
    assert rows.count() == len(ids)
    row = rows.get(queue_id=ids[57])
    assert row.body_size == 57 and row.state == "queued" and row.problems == ""
    assert index.refresh(scratch_server).files_read == 0


def test_a_reader_that_fails_leaves_no_rows_and_every_index(scratch_server, monkeypatch):
    from mailqueue import fanout

    queue = Path(scratch_server.queue_dir)
    fill_scratch_queue(queue, index.FANOUT_MIN_FILES + 10)
    QueueMessage.objects.all().delete()
    before = index_definitions()

    def exploding_digest(data, **kwargs):
        raise MemoryError("a reader ran out of memory")

    monkeypatch.setattr(index, "digest", exploding_digest)
    with pytest.raises(fanout.ChildFailed, match="ran out of memory"):
        index.refresh(scratch_server)

    assert index_definitions() == before
    assert not QueueMessage.objects.filter(server=scratch_server).exists()
    assert not IndexRefresh.objects.filter(server=scratch_server).exists()


def planner_statistics() -> set[str]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT idx FROM sqlite_stat1 WHERE tbl = %s", [QueueMessage._meta.db_table])
        return {name for (name,) in cursor.fetchall()}


def test_rebuilt_indexes_get_planner_statistics_again(scratch_server):
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("only SQLite drops and rebuilds the indexes for a first build")
    queue = Path(scratch_server.queue_dir)
    fill_scratch_queue(queue, index.FANOUT_MIN_FILES + 10)
    QueueMessage.objects.all().delete()
    index.refresh(scratch_server)
    # A partial index over no row (the DSNs' index, in a spool without bounces) has nothing to learn.
    full_indexes = {name for name, sql in index_definitions() if " WHERE " not in (sql or "").upper()}
    assert planner_statistics() >= full_indexes
    QueueMessage.objects.all().delete()  # the row count the statistics were taken at stays the same

    index.refresh(scratch_server)

    assert planner_statistics() >= full_indexes


def test_a_changed_job_is_updated_in_the_columns_that_changed_only(scratch_server, django_assert_num_queries):
    from django.db import connection

    queue = Path(scratch_server.queue_dir)
    queued = (SAMPLES / "qf-normal.txt").read_bytes()
    (queue / "qf6AOIJJ5g025905").write_bytes(queued)
    (queue / "qf6AOIJJ5g025906").write_bytes(queued)
    index.refresh(scratch_server)
    first = QueueMessage.objects.get(queue_id="6AOIJJ5g025905")

    (queue / "qf6AOIJJ5g025905").unlink()
    (queue / "hf6AOIJJ5g025905").write_bytes(queued.replace(b"\n.\n", b"\nqspam run\n.\n"))
    (queue / "tf6AOIJJ5g025906").write_bytes(queued)  # rewritten as sendmail does: a new inode, the same content
    os.replace(queue / "tf6AOIJJ5g025906", queue / "qf6AOIJJ5g025906")
    with connection.execute_wrapper(lambda execute, sql, *args: statements.append(sql) or execute(sql, *args)):
        statements: list[str] = []
        assert index.refresh(scratch_server).files_read == 2

    updates = [sql for sql in statements if sql.startswith("UPDATE") and "mailqueue_queuemessage" in sql]
    assert len(updates) == 2, updates  # the quarantined job, and the new inode of the other
    quarantined = QueueMessage.objects.get(queue_id="6AOIJJ5g025905")
    assert (quarantined.kind, quarantined.state, quarantined.reason) == ("hf", "quarantined", "spam run")
    unchanged = ("sender", "created", "subject")
    assert [getattr(quarantined, name) for name in unchanged] == [getattr(first, name) for name in unchanged]
    assert "sender" not in " ".join(updates) and "created" not in " ".join(updates)


def test_a_data_directory_with_a_nul_byte_is_no_body_size_and_no_crash(scratch_server):
    queue = Path(scratch_server.queue_dir)
    data = (SAMPLES / "qf-normal.txt").read_bytes().replace(b"\nS", b"\nd/tmp/\x00x\nS", 1)
    (queue / "qf6AOIJJ5g025905").write_bytes(data)
    assert index.refresh(scratch_server).files_read == 1
    assert QueueMessage.objects.get(queue_id="6AOIJJ5g025905").body_size is None


def test_nul_bytes_in_fields_are_indexed_as_replacement_characters(scratch_server):
    """PostgreSQL's text cannot hold U+0000: one such job must not keep the others out of the index."""
    queue = Path(scratch_server.queue_dir)
    data = (SAMPLES / "qf-normal.txt").read_bytes().replace(b"Subject:", b"Subject: a\x00b", 1)
    (queue / "qf6AOIJJ5g025905").write_bytes(data.replace(b"\nSlab", b"\nSx\x00lab", 1))
    (queue / "qf6AOIJJ5g025906").write_bytes((SAMPLES / "qf-normal.txt").read_bytes())
    assert index.refresh(scratch_server).files_read == 2
    row = QueueMessage.objects.get(queue_id="6AOIJJ5g025905")
    assert "\ufffd" in row.subject and "\ufffd" in row.sender, (row.subject, row.sender)


@pytest.mark.parametrize("watch", [True, False], ids=["watched", "listed"])
def test_a_rename_and_a_removal_in_one_refresh(scratch_server, settings, watch):
    settings.QUEUE_INDEX_WATCH = watch
    queue = Path(scratch_server.queue_dir)
    queued = (SAMPLES / "qf-normal.txt").read_bytes()
    for queue_id in ("6AOIJJ5g000001", "6AOIJJ5g000002", "6AOIJJ5g000003"):
        (queue / f"qf{queue_id}").write_bytes(queued)
    index.refresh(scratch_server)
    os.rename(queue / "qf6AOIJJ5g000001", queue / "hf6AOIJJ5g000001")  # quarantined
    (queue / "qf6AOIJJ5g000002").unlink()  # delivered

    result = index.refresh(scratch_server)

    assert result.listed is not watch
    assert (result.files_read, result.removed) == (1, 1)
    rows = dict(QueueMessage.objects.filter(server=scratch_server).values_list("queue_id", "kind"))
    assert rows == {"6AOIJJ5g000001": "hf", "6AOIJJ5g000003": "qf"}
    os.rename(queue / "hf6AOIJJ5g000001", queue / "qf6AOIJJ5g000001")  # released
    assert index.refresh(scratch_server).files_read == 1
    assert QueueMessage.objects.get(queue_id="6AOIJJ5g000001").kind == "qf"


def test_the_worker_builds_a_large_index_with_forked_readers(worker, submit):
    """Celery's pool children are daemonic; fanout forks directly, and its readers work there too.

    The worker is the agent of the session's instance only: the jobs go into that instance's own
    spool (quarantined, so no queue run would touch them; `submit` removes them afterwards)."""
    server = submit.server
    template = (SAMPLES / "hf-quarantined.txt").read_bytes()
    ids = [f"6AOIJJ5g{number:06d}" for number in range(index.FANOUT_MIN_FILES + 10)]
    # The shared instance may hold a job another test left queued: it is read too.
    already = [p for p in Path(server.queue_dir).iterdir() if p.name[:2] in ("qf", "hf", "Qf")]
    # Written beside the queue and renamed in at once: the agent follows its spool (follower.py)
    # and refreshes on its own a moment after the last rename, in one refresh of them all.
    staging = Path(server.queue_dir).parent / "staging-forked-readers"
    staging.mkdir()
    try:
        for queue_id in ids:
            (staging / f"hf{queue_id}").write_bytes(template)
        for queue_id in ids:
            os.rename(staging / f"hf{queue_id}", Path(server.queue_dir) / f"hf{queue_id}")
    finally:
        shutil.rmtree(staging)

    refreshed = wait_for(lambda: IndexRefresh.objects.filter(server=server).first(), 120, "the worker's refresh")
    assert refreshed.files_read == len(ids) + len(already), worker.log()[-3000:]
    assert QueueMessage.objects.filter(server=server, queue_id__in=ids, state="quarantined").count() == len(ids)


def indexed(server) -> dict[str, tuple[str, str]]:
    return {row.queue_id: (row.kind, row.subject) for row in QueueMessage.objects.filter(server=server)}


def test_a_watch_reports_every_kind_of_change(scratch_server, client, viewer):
    """After a refresh that listed, the next one looks only at the names the kernel reported."""
    queue = Path(scratch_server.queue_dir)
    ids = fill_scratch_queue(queue, 40)
    first = index.refresh(scratch_server)
    assert first.listed and first.files_read == 40
    assert index.refresh(scratch_server).files_read == 0

    os.rename(queue / f"qf{ids[0]}", queue / f"hf{ids[0]}")  # quarantined, as sendmail renames
    (queue / f"qf{ids[1]}").unlink()  # delivered
    (queue / f"df{ids[1]}").unlink()
    (queue / f"tf{ids[2]}").write_bytes((queue / f"qf{ids[2]}").read_bytes().replace(b"N0\n", b"N1\n"))
    os.rename(queue / f"tf{ids[2]}", queue / f"qf{ids[2]}")  # a delivery attempt written back
    with open(queue / f"qf{ids[3]}", "r+b") as handle:  # edited in place, same inode
        data = handle.read().replace(b"Subject: ", b"Subject: edited ")
        handle.seek(0)
        handle.write(data)
    (queue / "qf6AOIJJ5g999999").write_bytes((SAMPLES / "qf-normal.txt").read_bytes())  # a new job
    (queue / "xf6AOIJJ5g999999").write_bytes(b"transcript")  # not a control file

    result = index.refresh(scratch_server)

    assert not result.listed
    assert (result.files_read, result.removed, result.files_seen) == (4, 1, 40)
    rows = indexed(scratch_server)
    assert rows[ids[0]][0] == "hf" and ids[1] not in rows and rows[ids[3]][1].startswith("edited ")
    assert QueueMessage.objects.get(queue_id=ids[2]).attempts == 1
    assert "6AOIJJ5g999999" in rows
    client.force_login(viewer)
    page = client.get(f"/servers/{scratch_server.name}/queue/").content.decode()
    assert "4 of 40 files re-read" in page and "only the names the kernel reported changed" in page
    assert index.refresh(scratch_server).files_read == 0


def test_a_watch_that_lost_track_lists_again(scratch_server, tmp_path):
    queue = Path(scratch_server.queue_dir)
    ids = fill_scratch_queue(queue, 5)
    index.refresh(scratch_server)

    # The directory moved away and back: the kernel now watches an inode the path may not name.
    os.rename(queue, tmp_path / "elsewhere")
    os.rename(tmp_path / "elsewhere", queue)
    (queue / f"qf{ids[0]}").unlink()
    moved = index.refresh(scratch_server)
    assert moved.listed and moved.removed == 1

    # The kernel's event queue overflowed: every event since is lost, and the refresh lists.
    assert index.refresh(scratch_server).files_read == 0
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    for number in range(limit // 2 + 10):  # two events each: created, closed after writing
        (queue / f"xf{number}").write_bytes(b"")
    (queue / f"qf{ids[1]}").unlink()
    overflowed = index.refresh(scratch_server)
    assert overflowed.listed and overflowed.removed == 1
    assert not index.refresh(scratch_server).listed


def test_a_new_queue_directory_under_the_pattern_is_listed(scratch_server, tmp_path):
    root = tmp_path / "queues"
    (root / "q1").mkdir(parents=True)
    scratch_server.queue_dir = str(root / "q*")
    scratch_server.save()
    fill_scratch_queue(root / "q1", 3)
    index.refresh(scratch_server)
    (root / "q2").mkdir()
    shutil.copy(SAMPLES / "qf-normal.txt", root / "q2" / "qf6AOIJJ5g025905")

    result = index.refresh(scratch_server)

    assert result.listed and result.files_read == 1
    assert QueueMessage.objects.get(queue_id="6AOIJJ5g025905").directory == str(root / "q2")


def test_a_refresh_that_fails_after_reading_the_events_lists_next_time(scratch_server, monkeypatch):
    queue = Path(scratch_server.queue_dir)
    ids = fill_scratch_queue(queue, 5)
    index.refresh(scratch_server)
    os.rename(queue / f"qf{ids[0]}", queue / f"hf{ids[0]}")
    real_write = index._write

    def failing_write(*args):
        raise OSError("disk full")

    monkeypatch.setattr(index, "_write", failing_write)
    with pytest.raises(OSError):
        index.refresh(scratch_server)
    monkeypatch.setattr(index, "_write", real_write)

    result = index.refresh(scratch_server)

    assert result.listed and result.files_read == 1
    assert QueueMessage.objects.get(queue_id=ids[0]).kind == "hf"


def test_a_watch_over_several_queue_directories_with_qf_subdirectories(scratch_server, tmp_path):
    root = two_queue_directories(scratch_server, tmp_path)
    sample = (SAMPLES / "qf-normal.txt").read_bytes()
    for queue_id in ("6AOIJJ5g000001", "6AOIJJ5g000002"):
        (root / "q1" / "qf" / f"qf{queue_id}").write_bytes(sample)
        (root / "q1" / "df" / f"df{queue_id}").write_bytes(b"body\n")
    assert index.refresh(scratch_server).files_read == 2

    os.rename(root / "q1" / "qf" / "qf6AOIJJ5g000001", root / "q2" / "qf" / "qf6AOIJJ5g000001")  # moved
    os.rename(root / "q1" / "df" / "df6AOIJJ5g000001", root / "q2" / "df" / "df6AOIJJ5g000001")
    os.rename(root / "q1" / "qf" / "qf6AOIJJ5g000002", root / "q1" / "qf" / "hf6AOIJJ5g000002")  # quarantined
    result = index.refresh(scratch_server)

    assert not result.listed and (result.files_read, result.removed) == (2, 0)
    rows = {row.queue_id: row for row in QueueMessage.objects.filter(server=scratch_server)}
    assert rows["6AOIJJ5g000001"].directory == str(root / "q2") and rows["6AOIJJ5g000001"].body_size == 5
    assert rows["6AOIJJ5g000002"].kind == "hf"
    (root / "q2" / "qf" / "qf6AOIJJ5g000001").unlink()
    assert index.refresh(scratch_server).removed == 1


def inotify_instances() -> int:
    fds = Path("/proc/self/fd")
    return sum(1 for fd in fds.iterdir() if os.path.exists(fd) and os.readlink(fd) == "anon_inode:inotify")


def test_a_process_keeps_a_bounded_number_of_watches(scratch_server, tmp_path):
    """A user gets 128 inotify instances: the process keeps those of its last KNOWN_SERVERS servers."""
    index._known_by_server.clear()
    before = inotify_instances()
    for number in range(index.KNOWN_SERVERS + 4):
        queue = tmp_path / f"queue{number}"
        queue.mkdir()
        scratch_server.pk = None
        scratch_server.name = f"scratch{number}"
        scratch_server.queue_dir = str(queue)
        scratch_server.save()
        index.refresh(scratch_server)
    assert inotify_instances() - before == index.KNOWN_SERVERS == len(index._known_by_server)


def test_a_first_visit_asks_the_agent_for_the_index_once_and_the_page_fills_in(submit, client, viewer):
    ids = submit.send(2, subject="first visit")
    client.force_login(viewer)
    url = f"/servers/{submit.server.name}/queue/"

    waiting = client.get(url).content.decode()
    again = client.get(url).content.decode()  # the page polls: no second request while one is pending

    assert "Not indexed yet" in waiting and "asked" in again
    assert 'hx-trigger="every 3s"' in waiting and 'hx-select="#queue-page"' in waiting
    assert not IndexRefresh.objects.filter(server=submit.server).exists()
    build = QueueAction.objects.get(server=submit.server, verb=QueueAction.Verb.REFRESH)
    assert build.status == "queued" and build.created_by == viewer

    assert tasks.run_queue_action(build.pk) == "done"  # what the host's agent does with it
    ready = client.get(url).content.decode()
    assert "Not indexed yet" not in ready and "hx-trigger" not in ready.split('id="queue-page"')[1][:80]
    assert all(queue_id in ready for queue_id in ids)
    assert QueueAction.objects.filter(verb=QueueAction.Verb.REFRESH).count() == 1
