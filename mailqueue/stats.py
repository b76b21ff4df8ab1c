"""Queue statistics as the pages show them: the dashboard chart and the alerts of the latest sample.

The samples themselves are taken (and alerts mailed) on the MTA host by its agent:
mailqueue/sampling.py. This module reads rows only, so the web tier can import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.utils import timezone

from mailadmin.models import MailServer
from mailqueue.models import QueueAlertSettings, QueueSample

CHART_HOURS = 24
CHART_WIDTH = 600
CHART_HEIGHT = 140


@dataclass(frozen=True)
class Alert:
    metric: str
    value: int
    limit: int
    text: str


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
