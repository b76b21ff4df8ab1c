"""The queue list as a new user finds it: current within seconds, filters that say what they match,
actions that name their count, decoded subjects and recognisable bounces, on the real daemon and agent."""

from __future__ import annotations

import os
import re
import subprocess
import time

from django.utils import timezone
from django.utils.html import escape

from mailadmin.mta.gateway import Mta
from mailqueue import agentside, index, summary
from mailqueue.models import IndexRefresh, QueueAction, QueueMessage, RecipientDomain
from testing.processes import wait_for

FRESH_WITHIN = 5.0


def list_page(client, server, **filters):
    return client.get(f"/servers/{server.name}/queue/", filters)


def listed_ids(response) -> set[str]:
    return {message.queue_id for message in response.context["page"]}


def shell_sendmail(server, *args: str) -> None:
    """sendmail run by root from a shell on the MTA host, as a postmaster would (not through the console)."""
    argv = Mta(server).sendmail_argv(*args)
    subprocess.run(argv, check=True, timeout=60, capture_output=True)


def test_a_message_the_daemon_accepts_shows_on_the_queue_page_within_5_seconds(worker, submit, client, viewer):
    server = submit.server
    index.refresh(server)
    client.force_login(viewer)
    seen_token = list_page(client, server).context["token"]

    (queue_id,) = submit.send(subject="fresh arrival", recipients=("fresh@follow.example",))
    accepted = time.monotonic()

    wait_for(lambda: queue_id in listed_ids(list_page(client, server)), FRESH_WITHIN, "the new message in the list")
    assert time.monotonic() - accepted < FRESH_WITHIN
    page = list_page(client, server)
    html = page.content.decode()
    assert "Index as of" in html and " s ago)" in html, "the header gives the index's age to the second"
    polled = client.get(f"/servers/{server.name}/queue/freshness/", {"seen": seen_token})
    assert polled["HX-Trigger"] == "queue-changed", "an open page is told to fetch its list again"
    current = client.get(f"/servers/{server.name}/queue/freshness/", {"seen": page.context["token"]})
    assert "HX-Trigger" not in current
    assert 'hx-trigger="queue-changed from:body"' in html


def test_a_quarantine_done_from_a_shell_shows_on_the_queue_page_within_5_seconds(worker, submit, client, viewer):
    server = submit.server
    (queue_id,) = submit.send(subject="held from a shell")
    index.refresh(server)
    client.force_login(viewer)

    shell_sendmail(server, "-Qheld by hand in a shell", f"-qI{queue_id}")
    done = time.monotonic()

    def quarantined():
        return queue_id in listed_ids(list_page(client, server, state="quarantined", reason="by hand"))

    wait_for(quarantined, FRESH_WITHIN, "the shell's quarantine in the list")
    assert time.monotonic() - done < FRESH_WITHIN
    assert QueueMessage.objects.get(server=server, queue_id=queue_id).reason == "held by hand in a shell"


def test_the_domain_filter_matches_every_recipient_and_subdomains_and_says_so(submit, client, viewer):
    server = submit.server
    (both,) = submit.send(recipients=("a@first.example", "b@alpha.example"))
    (below,) = submit.send(recipients=("c@mx.alpha.example",))
    (other,) = submit.send(recipients=("d@beta.example",))
    index.refresh(server)
    client.force_login(viewer)

    page = list_page(client, server, domain="alpha.example")
    typed = list_page(client, server, domain="@Alpha.Example.")
    exact_below = list_page(client, server, domain="mx.alpha.example")

    assert listed_ids(page) == listed_ids(typed) == {both, below}
    assert page.context["total"] == 2
    assert listed_ids(exact_below) == {below}
    assert listed_ids(list_page(client, server, domain="first.example")) == {both}
    assert "Recipient domain (any recipient, subdomains too)" in page.content.decode()
    assert other not in listed_ids(page)


def test_the_domain_summary_counts_a_message_under_each_of_its_recipients_domains(submit):
    server = submit.server
    submit.send(recipients=("a@first.example", "b@alpha.example", "c@alpha.example"))
    submit.send(recipients=("d@alpha.example",))
    index.refresh(server)

    rows = {row["domain"]: row["total"] for row in summary.by_domain_and_age(server)}

    assert rows["alpha.example"] == 2, "one message with two recipients there counts once"
    assert rows["first.example"] == 1


def test_the_subject_filter_finds_decoded_subjects_and_the_page_shows_them_escaped(submit, client, viewer):
    server = submit.server
    (encoded,) = submit.send(subject="=?utf-8?q?Gr=C3=BC=C3=9Fe_<b>aus</b>_K=C3=B6ln?=")
    (plain,) = submit.send(subject="nothing encoded")
    index.refresh(server)
    client.force_login(viewer)

    page = list_page(client, server, subject="grüße")

    assert listed_ids(page) == {encoded}
    row = QueueMessage.objects.get(server=server, queue_id=encoded)
    assert row.subject == "Grüße <b>aus</b> Köln 0"
    html = page.content.decode()
    assert escape("Grüße <b>aus</b> Köln 0") in html and "<b>aus</b>" not in html
    assert listed_ids(list_page(client, server, subject="NOTHING enc")) == {plain}


def test_the_message_view_decodes_encoded_names_and_keeps_what_was_stored(submit):
    server = submit.server
    (queue_id,) = submit.send(
        subject="=?iso-8859-1?q?caf=E9?=",
        headers="X-Sender-Name: =?utf-8?b?SsO8cmdlbiA8c2NyaXB0Pg==?= <j@client.example>\r\n",
    )

    seen = agentside.preview(server, queue_id)["message"]

    decoded = {header["name"]: header["decoded"] for header in seen["headers"]}
    assert decoded["Subject"] == "café 0"
    assert decoded["X-Sender-Name"] == "Jürgen <script> <j@client.example>"
    assert {header["name"] for header in seen["encoded_headers"]} == {"Subject", "X-Sender-Name"}


def test_garbage_encoded_words_are_shown_as_they_were(submit):
    server = submit.server
    (queue_id,) = submit.send(subject="=?no-such-charset?q?x?= =?utf-8?b?@@@?= =?utf-8?q?a=0Db?=")
    index.refresh(server)

    subject = QueueMessage.objects.get(server=server, queue_id=queue_id).subject

    assert "\r" not in subject and subject.endswith("0")


def test_a_bounce_sendmail_makes_is_marked_and_linked_to_the_message_it_reports_on(submit, client, viewer):
    server = submit.server
    (original,) = submit.send(subject="will be late", recipients=("late@remote.example",))
    before = {message.queue_id for message in QueueMessage.objects.filter(server=server)}
    time.sleep(1.1)  # older than the warning time below
    shell_sendmail(server, "-O", "Timeout.queuewarn=1s", f"-qI{original}")
    client.force_login(viewer)

    def warning_indexed():
        # The warning's own delivery attempt goes on in the background after the queue run returns.
        index.refresh(server)
        return QueueMessage.objects.filter(server=server, dsn=True, bounce_of=original).exclude(queue_id__in=before)

    (warning,) = wait_for(warning_indexed, FRESH_WITHIN, "the delay warning in the index", interval=0.2)
    assert warning.sender == "MAILER-DAEMON"
    listed = list_page(client, server, dsn="only")
    assert listed_ids(listed) == {warning.queue_id}
    html = listed.content.decode()
    assert "bounce (DSN)" in html
    assert f'href="/servers/{server.name}/queue/messages/{original}/"' in html, "linked to the original"
    assert original in listed_ids(list_page(client, server, dsn="none"))
    detail = client.get(f"/servers/{server.name}/queue/messages/{original}/").content.decode()
    assert f'href="/servers/{server.name}/queue/messages/{warning.queue_id}/"' in detail
    dsn_page = client.get(f"/servers/{server.name}/queue/messages/{warning.queue_id}/").content.decode()
    assert "which is still in the queue" in dsn_page


def test_process_quarantined_takes_the_reason_typed_into_the_reason_box(mta_server, operator, client):
    client.force_login(operator)
    url = f"/servers/{mta_server.name}/queue/select/"

    response = client.post(url, {"verb": "process_quarantined", "reason": "held for review"})
    empty = client.post(url, {"verb": "process_quarantined", "reason": ""}, follow=True)

    assert response.status_code == 302
    action = QueueAction.objects.get(verb="process_quarantined")
    assert (action.selector, action.reason) == ("held for review", "")
    assert "reason text is empty" in empty.content.decode()


def test_an_action_on_all_matching_runs_only_on_the_count_that_was_confirmed(submit, operator, client):
    server = submit.server
    submit.send(3, recipients=("n@confirm.example",))
    index.refresh(server)
    client.force_login(operator)
    url = f"/servers/{server.name}/queue/act/"
    form = {"verb": "delete", "scope": "matching", "filter-domain": "confirm.example"}

    page = list_page(client, server, domain="confirm.example").content.decode()
    stale = client.post(url, {**form, "confirmed_count": "2"}, follow=True)
    assert QueueAction.objects.count() == 0
    assert "now matches 3 message(s), not the 2 you confirmed" in stale.content.decode()
    client.post(url, {**form, "confirmed_count": "3"})

    assert len(QueueAction.objects.get().queue_ids) == 3
    assert 'name="confirmed_count" value="3"' in page
    assert "data-always-confirm" in page and 'id="select-page"' in page
    assert "all 3 matching" in page


def test_the_header_shows_the_refresh_time_to_the_second(submit, client, viewer):
    index.refresh(submit.server)
    refreshed = IndexRefresh.objects.get(server=submit.server)
    client.force_login(viewer)

    html = list_page(client, submit.server).content.decode()

    assert f">{timezone.localtime(refreshed.finished):%H:%M:%S}</time>" in html
    assert re.search(r"\((\d|[1-5]\d) s ago\)", html), "its age in seconds, not '0 minutes'"


def test_the_domain_rows_follow_a_message_readdressed_and_gone(submit):
    server = submit.server
    (queue_id,) = submit.send(recipients=("a@before.example",))
    index.refresh(server)
    control = submit.path("qf", queue_id)

    def domains() -> set[str]:
        return set(RecipientDomain.objects.filter(server=server).values_list("domain", flat=True))

    assert {"before.example"} <= domains()
    rewritten = control.with_name("tf" + queue_id)
    rewritten.write_bytes(control.read_bytes().replace(b"a@before.example", b"b@after.example"))
    os.rename(rewritten, control)  # as sendmail rewrites a control file
    index.refresh(server)
    assert "after.example" in domains() and "before.example" not in domains()

    control.unlink()
    submit.path("df", queue_id).unlink()
    index.refresh(server)
    assert "after.example" not in domains()
