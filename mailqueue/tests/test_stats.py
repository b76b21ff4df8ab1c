"""Summary, samples, the server-drawn chart and alerts mailed once per crossing."""

from datetime import timedelta
from pathlib import Path

from django.core import mail
from django.test import override_settings
from django.utils import timezone

from mailqueue import index, sampling, stats, summary
from mailqueue.models import IndexRefresh, QueueAlertSettings, QueueMessage, QueueSample, RecipientDomain
from mailqueue.parser import recipient_domains


def make_row(server, queue_id, domain, hours_old, state="queued", sender="s@x.example"):
    """An index row as a refresh writes it, with its recipient domain rows."""
    row = QueueMessage.objects.create(
        server=server,
        queue_id=queue_id,
        kind="hf" if state == "quarantined" else "qf",
        state=state,
        directory="/nonexistent",
        inode=1,
        file_size=1,
        mtime_ns=1,
        sender=sender,
        recipients=f"a@{domain}",
        recipient_count=1,
        first_domain=domain,
        created=timezone.now() - timedelta(hours=hours_old),
    )
    RecipientDomain.objects.bulk_create(
        RecipientDomain(server=server, message=row, domain=name, own=own)
        for name, own in recipient_domains([row.recipients]).items()
    )
    return row


def test_domain_by_age_cells_link_to_the_filtered_list(mta_server, client, viewer):
    server = mta_server
    IndexRefresh.objects.create(server=server, finished=timezone.now())  # as if the beat task had run
    make_row(server, "6AOIGq4n000001", "stuck.example", 0.2)
    make_row(server, "6AOIGq4n000002", "stuck.example", 30)
    make_row(server, "6AOIGq4n000003", "stuck.example", 30, state="quarantined")
    make_row(server, "6AOIGq4n000004", "other.example", 200, sender="spam@run.example")

    rows = {row["domain"]: row for row in summary.by_domain_and_age(server)}
    assert rows["stuck.example"]["cells"] == [("1h", 1), ("1h-1d", 0), ("1d-5d", 2), ("5d+", 0)]
    assert rows["stuck.example"]["quarantined"] == 1 and rows["other.example"]["cells"][3] == ("5d+", 1)
    assert {s["sender"]: s["n"] for s in summary.top_senders(server)} == {"s@x.example": 3, "spam@run.example": 1}

    client.force_login(viewer)
    page = client.get(f"/servers/{server.name}/queue/summary/").content.decode()
    link = f"/servers/{server.name}/queue/?domain=stuck.example&amp;age=1d-5d"
    assert link in page
    listed = client.get(f"/servers/{server.name}/queue/", {"domain": "stuck.example", "age": "1d-5d"})
    assert listed.context["total"] == 2


def test_one_mail_per_crossing(mta_server, administrator):
    administrator.email = "ada@admin.example"
    administrator.save()
    QueueAlertSettings.objects.create(server=mta_server, max_messages=2, max_quarantined=0)
    mail.outbox.clear()

    def sample(messages, quarantined):
        return sampling.check_alerts(
            mta_server,
            QueueSample.objects.create(
                server=mta_server, taken=timezone.now(), messages=messages, quarantined=quarantined
            ),
        )

    assert sample(1, 0) == []
    assert len(sample(3, 0)) == 1
    assert len(mail.outbox) == 1 and "3 messages in the queue" in mail.outbox[0].subject
    assert mail.outbox[0].to == ["ada@admin.example"]
    sample(5, 0)
    sample(4, 0)
    assert len(mail.outbox) == 1, "still over: no second mail"
    sample(1, 0)
    sample(3, 1)
    assert len(mail.outbox) == 3, "crossed again, plus the quarantine threshold"
    assert [a.metric for a in stats.active_alerts(mta_server)] == ["messages", "quarantined"]


def test_the_alert_mail_is_queued_by_the_servers_own_sendmail(submit, administrator):
    submit.send()
    QueueAlertSettings.objects.create(server=submit.server, max_messages=0)
    before = set(Path(submit.server.queue_dir).iterdir())
    with override_settings(EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend"):
        sampling.take_sample(submit.server)
    new = [p for p in set(Path(submit.server.queue_dir).iterdir()) - before if p.name.startswith("qf")]
    assert len(new) == 1
    assert b"[mailadmin]" in new[0].read_bytes() and b"postmaster@" in new[0].read_bytes()


def test_samples_become_an_svg_chart_and_the_banner_shows_on_every_page(mta_server, client, viewer):
    now = timezone.now()
    for hours, messages in ((20, 5), (10, 50), (1, 20)):
        QueueSample.objects.create(
            server=mta_server, taken=now - timedelta(hours=hours), messages=messages, quarantined=messages // 5
        )
    QueueAlertSettings.objects.create(server=mta_server, max_messages=10)
    chart = stats.chart(mta_server)
    assert chart.samples == 3 and chart.peak == 50
    assert len(chart.messages_points.split()) == 3

    client.force_login(viewer)
    panel = client.get(f"/servers/{mta_server.name}/queue/panel/").content.decode()
    assert "<svg" in panel and 'class="line-size"' in panel and chart.messages_points in panel
    assert "20 messages in the queue" in panel
    dashboard = client.get(f"/servers/{mta_server.name}/").content.decode()
    assert f"/servers/{mta_server.name}/queue/panel/" in dashboard
    assert f"/servers/{mta_server.name}/queue/alerts/" in dashboard
    banner = client.get(f"/servers/{mta_server.name}/queue/alerts/").content.decode()
    assert "Queue alert on" in banner and "20 messages" in banner


def test_only_administrators_set_thresholds(mta_server, client, operator, administrator):
    url = f"/servers/{mta_server.name}/queue/alerts/settings/save/"
    client.force_login(operator)
    assert client.post(url, {"max_messages": "5"}).status_code == 403
    client.force_login(administrator)
    assert client.post(url, {"max_messages": "-1"}).status_code == 200
    assert not QueueAlertSettings.objects.exists()
    assert client.post(url, {"max_messages": "5", "max_quarantined": ""}).status_code == 302
    settings = QueueAlertSettings.objects.get()
    assert settings.max_messages == 5 and settings.max_quarantined is None


def test_index_refresh_of_an_unreadable_queue_reports_instead_of_raising(mta_server):
    mta_server.queue_dir = "/nonexistent/mqueue"
    result = index.refresh(mta_server)
    assert result.files_seen == 0 and result.errors
