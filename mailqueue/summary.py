"""The queue at a glance: recipient domain × age band (every recipient counts) and the busiest senders."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Case, Count, IntegerField, Value, When
from django.utils import timezone

from mailadmin.models import MailServer
from mailqueue.models import IndexRefresh, QueueMessage, RecipientDomain

BANDS = ["1h", "1h-1d", "1d-5d", "5d+"]
BAND_LABELS = {"1h": "< 1 h", "1h-1d": "1 h – 1 d", "1d-5d": "1 – 5 d", "5d+": "> 5 d"}
DOMAIN_ROWS = 25
SENDER_ROWS = 15


def _band_expression():
    now = timezone.now()
    return Case(
        When(message__created__gt=now - timedelta(hours=1), then=Value(0)),
        When(message__created__gt=now - timedelta(days=1), then=Value(1)),
        When(message__created__gt=now - timedelta(days=5), then=Value(2)),
        default=Value(3),
        output_field=IntegerField(),
    )


def by_domain_and_age(server: MailServer) -> list[dict]:
    """Rows of {domain, total, quarantined, cells: [(band, count)]}, biggest domains first.

    A message counts once under each of its recipients' own domains (not under parent domains),
    so a message to two domains is in two rows and the rows add up to more than the queue.
    """
    own = RecipientDomain.objects.filter(server=server, own=True)
    counts = own.annotate(band=_band_expression()).values("domain", "band").annotate(n=Count("message_id"))
    table: dict[str, dict] = {}
    for row in counts:
        entry = table.setdefault(row["domain"], {"domain": row["domain"], "total": 0, "counts": [0] * 4})
        entry["counts"][row["band"]] += row["n"]
        entry["total"] += row["n"]
    quarantined = dict(
        own.filter(message__state=QueueMessage.State.QUARANTINED).values_list("domain").annotate(n=Count("message_id"))
    )
    rows = sorted(table.values(), key=lambda entry: (-entry["total"], entry["domain"]))[:DOMAIN_ROWS]
    for entry in rows:
        entry["quarantined"] = quarantined.get(entry["domain"], 0)
        entry["cells"] = list(zip(BANDS, entry.pop("counts"), strict=True))
    return rows


def top_senders(server: MailServer) -> list[dict]:
    return list(
        QueueMessage.objects.filter(server=server)
        .values("sender")
        .annotate(n=Count("id"))
        .order_by("-n", "sender")[:SENDER_ROWS]
    )


@dataclass(frozen=True)
class StateCounts:
    queued: int = 0
    failing: int = 0
    quarantined: int = 0
    lost: int = 0

    @property
    def normal(self) -> int:
        """Jobs with a qf file: waiting for their first attempt or deferred after one."""
        return self.queued + self.failing


def state_counts(refreshed: IndexRefresh | None) -> StateCounts:
    """The counts the last refresh stored: a page must not count 100,000 rows at every view."""
    counts = refreshed.state_counts if refreshed else {}
    return StateCounts(**{state: counts.get(state, 0) for state in ("queued", "failing", "quarantined", "lost")})
