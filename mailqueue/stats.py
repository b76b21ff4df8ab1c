"""Queue statistics: samples for the dashboard chart, and alerts mailed once per threshold crossing.

An alert mails the administrators when a metric goes over its threshold, and not again until
it has come back under it: a queue that stays big for a day sends one mail, not 288.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.core.mail import get_connection, send_mail
from django.db.models import Min
from django.utils import timezone

from mailadmin.models import MailServer
from mailqueue import index
from mailqueue.models import QueueAlertSettings, QueueMessage, QueueSample

log = logging.getLogger(__name__)

CHART_HOURS = 24
CHART_WIDTH = 600
CHART_HEIGHT = 140
KEEP_DAYS = 30


@dataclass(frozen=True)
class Alert:
    metric: str
    value: int
    limit: int
    text: str


def take_sample(server: MailServer) -> QueueSample:
    index.refresh(server)
    rows = QueueMessage.objects.filter(server=server)
    oldest = rows.aggregate(oldest=Min("created"))["oldest"]
    now = timezone.now()
    sample = QueueSample.objects.create(
        server=server,
        taken=now,
        messages=rows.count(),
        quarantined=rows.filter(state=QueueMessage.State.QUARANTINED).count(),
        oldest_age_seconds=max(0, int((now - oldest).total_seconds())) if oldest else 0,
    )
    QueueSample.objects.filter(server=server, taken__lt=now - timedelta(days=KEEP_DAYS)).delete()
    check_alerts(server, sample)
    return sample


def alerts_for(settings: QueueAlertSettings | None, sample: QueueSample | None) -> list[Alert]:
    if settings is None or sample is None:
        return []
    found = []
    if settings.max_messages is not None and sample.messages > settings.max_messages:
        found.append(
            Alert("messages", sample.messages, settings.max_messages, f"{sample.messages} messages in the queue")
        )
    hours = sample.oldest_age_seconds // 3600
    if settings.max_oldest_hours is not None and hours > settings.max_oldest_hours:
        found.append(Alert("oldest", hours, settings.max_oldest_hours, f"the oldest message is {hours} hours old"))
    if settings.max_quarantined is not None and sample.quarantined > settings.max_quarantined:
        found.append(
            Alert("quarantined", sample.quarantined, settings.max_quarantined, f"{sample.quarantined} quarantined")
        )
    return found


def administrator_addresses(server: MailServer) -> list[str]:
    admins = User.objects.filter(is_active=True).filter(groups__name="administrator") | User.objects.filter(
        is_active=True, is_superuser=True
    )
    addresses = sorted({user.email for user in admins if user.email})
    return addresses or [f"postmaster@{server.hostname}"]


def mail_alert(server: MailServer, alert: Alert) -> None:
    """One mail through the server's own sendmail (it queues it; nothing is sent from the web host)."""
    connection = get_connection(host=server.smtp_address, port=server.smtp_port, timeout=10, fail_silently=False)
    send_mail(
        subject=f"[mailadmin] {server.name}: {alert.text}",
        message=(
            f"The queue of {server.name} ({server.hostname}) crossed an alert threshold:\n\n"
            f"  {alert.text} (threshold {alert.limit}).\n\n"
            "You get this mail once per crossing; the console shows the alert until it clears.\n"
        ),
        from_email=f"mailadmin@{server.hostname}",
        recipient_list=administrator_addresses(server),
        connection=connection,
    )


def check_alerts(server: MailServer, sample: QueueSample) -> list[Alert]:
    settings = QueueAlertSettings.objects.filter(server=server).first()
    if settings is None:
        return []
    current = alerts_for(settings, sample)
    crossed = dict(settings.crossed)
    for alert in current:
        if alert.metric not in crossed:
            try:
                mail_alert(server, alert)
            except OSError as exc:  # the alert still shows on every page; the mail is retried at the next crossing
                log.warning("could not mail the %s alert for %s: %s", alert.metric, server, exc)
            crossed[alert.metric] = sample.taken.isoformat()
    still = {alert.metric for alert in current}
    crossed = {metric: when for metric, when in crossed.items() if metric in still}
    if crossed != settings.crossed:
        QueueAlertSettings.objects.filter(pk=settings.pk).update(crossed=crossed)
    return current


def active_alerts(server: MailServer) -> list[Alert]:
    settings = QueueAlertSettings.objects.filter(server=server).first()
    latest = QueueSample.objects.filter(server=server).order_by("-taken").first()
    return alerts_for(settings, latest)


@dataclass(frozen=True)
class Chart:
    """An SVG line chart's geometry, computed here so the template only places numbers."""

    width: int
    height: int
    messages_points: str
    quarantined_points: str
    peak: int
    samples: int
    start: datetime
    end: datetime


def chart(server: MailServer, hours: int = CHART_HOURS) -> Chart:
    end = timezone.now()
    start = end - timedelta(hours=hours)
    samples = list(
        QueueSample.objects.filter(server=server, taken__gte=start).values_list("taken", "messages", "quarantined")
    )
    peak = max([messages for _, messages, _ in samples] + [1])
    span = (end - start).total_seconds()

    def points(column: int) -> str:
        coords = []
        for row in samples:
            x = (row[0] - start).total_seconds() / span * CHART_WIDTH
            y = CHART_HEIGHT - row[column] / peak * (CHART_HEIGHT - 10)
            coords.append(f"{x:.1f},{y:.1f}")
        return " ".join(coords)

    return Chart(CHART_WIDTH, CHART_HEIGHT, points(1), points(2), peak, len(samples), start, end)
