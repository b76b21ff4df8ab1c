"""Queue statistics samples, taken on the MTA host by its agent, and alerts mailed once per threshold crossing.

An alert mails the administrators when a metric goes over its threshold, and not again until
it has come back under it: a queue that stays big for a day sends one mail, not 288. The mail
goes through the server's own sendmail (it queues it; nothing is sent from the web host).

Agent side: only mailqueue/tasks.py imports this module (it refreshes the index from the spool).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.core.mail import get_connection, send_mail
from django.db.models import Min
from django.utils import timezone

from mailadmin.models import MailServer
from mailadmin.mta import agent
from mailqueue import index
from mailqueue.models import QueueAlertSettings, QueueMessage, QueueSample
from mailqueue.stats import Alert, administrator_addresses, alerts_for

log = logging.getLogger(__name__)

KEEP_DAYS = 30


def take_sample(server: MailServer) -> QueueSample:
    """Refresh the index from the spool, record a sample of it and check the alert thresholds."""
    server = agent.bind(server)
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
