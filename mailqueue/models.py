from __future__ import annotations

from django.db import models

from mailadmin.models import MailServer
from mailadmin.work import WorkItem


class QueueMessage(models.Model):
    """One control file on a server's spool, as the last index refresh read it.

    The spool is the truth; this row is a copy for filtering, sorting and paging. `inode`,
    `file_size` and `mtime_ns` are the control file's, so a refresh re-reads only files that
    changed (sendmail rewrites a qf through a temp file and rename, which changes the inode).
    """

    class State(models.TextChoices):
        QUEUED = "queued", "queued"
        FAILING = "failing", "failing (deferred)"
        QUARANTINED = "quarantined", "quarantined"
        LOST = "lost", "lost (Qf)"

    # No index of its own: the unique (server, queue_id) index starts with it and serves every
    # lookup by server, and each index costs time on a first build of 100,000 rows.
    server = models.ForeignKey(MailServer, on_delete=models.CASCADE, related_name="queue_messages", db_index=False)
    queue_id = models.CharField(max_length=20)
    kind = models.CharField(max_length=2, help_text="qf, hf (quarantined) or Qf (lost).")
    state = models.CharField(max_length=12, choices=State.choices)
    directory = models.CharField(max_length=400, help_text="The directory holding the control file.")
    inode = models.BigIntegerField()
    file_size = models.BigIntegerField()
    mtime_ns = models.BigIntegerField()
    sender = models.CharField(max_length=400, blank=True)
    recipients = models.TextField(blank=True, help_text="Recipient addresses, one per line.")
    recipient_count = models.PositiveIntegerField(default=0)
    first_domain = models.CharField(max_length=255, blank=True)
    subject = models.CharField(max_length=400, blank=True, help_text="RFC 2047 encoded words decoded.")
    reason = models.CharField(max_length=400, blank=True)
    status_message = models.CharField(max_length=400, blank=True)
    created = models.DateTimeField(null=True, blank=True)
    last_attempt = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    priority = models.BigIntegerField(null=True, blank=True)
    body_size = models.BigIntegerField(null=True, blank=True, help_text="Size of the df file; None when it is missing.")
    problems = models.TextField(blank=True)
    dsn = models.BooleanField(
        default=False, help_text="A delivery status notification (a bounce or a delay warning) this sendmail made."
    )
    bounce_of = models.CharField(
        max_length=20, blank=True, help_text="The queue id of the message the DSN reports on, as its body names it."
    )
    truncated = models.BooleanField(default=False)

    class Meta:
        ordering = ["created", "queue_id"]
        constraints = [models.UniqueConstraint(fields=["server", "queue_id"], name="one_index_row_per_queue_id")]
        indexes = [
            models.Index(fields=["server", "state", "created"]),
            models.Index(fields=["server", "created"]),
            models.Index(fields=["server", "body_size"]),
            models.Index(fields=["server", "first_domain"]),
            models.Index(fields=["server", "attempts"]),
            models.Index(fields=["server", "priority"]),
            models.Index(fields=["server", "sender"]),
            # A message page lists the DSNs reporting on its message; only DSNs have a row here.
            models.Index(fields=["server", "bounce_of"], condition=models.Q(dsn=True), name="queue_dsn_bounce_of"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}{self.queue_id}"

    @property
    def recipient_list(self) -> list[str]:
        return [line for line in self.recipients.splitlines() if line]


class RecipientDomain(models.Model):
    """One domain a queued message is addressed to: every recipient's, and the parents of each.

    A message to a@mx.alpha.example and b@beta.example has rows for mx.alpha.example,
    alpha.example and beta.example (`own` marks the recipients' own domains; top-level names
    get no row). The domain filter is one equality on the (server, domain) index, subdomains
    included, and the summary counts each message under each of its recipients' own domains.
    Rows are written and deleted with their message by the index refresh (mailqueue/index.py).
    """

    server = models.ForeignKey(MailServer, on_delete=models.CASCADE, related_name="+", db_index=False)
    # No database constraint: the refresh deletes a message's rows itself, in the same transaction,
    # and a server's deletion removes these rows in one statement instead of loading every message.
    message = models.ForeignKey(
        QueueMessage, on_delete=models.DO_NOTHING, db_constraint=False, related_name="domains", db_index=False
    )
    domain = models.CharField(max_length=255)
    own = models.BooleanField(default=True, help_text="A recipient's own domain, not only a parent of one.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["message", "domain"], name="one_row_per_message_and_domain")]
        indexes = [
            # The domain filter and the summary: the messages of one server addressed to a domain.
            models.Index(fields=["server", "domain", "message"]),
        ]

    def __str__(self) -> str:
        return self.domain


class IndexRefresh(models.Model):
    """When a server's index was last brought up to date, and what that took."""

    server = models.OneToOneField(MailServer, on_delete=models.CASCADE, related_name="queue_index")
    finished = models.DateTimeField()
    seconds = models.FloatField(default=0)
    files_seen = models.PositiveIntegerField(default=0)
    files_read = models.PositiveIntegerField(default=0)
    removed = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    state_counts = models.JSONField(default=dict, blank=True, help_text="state → messages, as of this refresh.")
    token = models.BigIntegerField(
        default=0, help_text="Random, new at every refresh: a process's copy of the index with this token is current."
    )
    deep_checked = models.DateTimeField(
        null=True, blank=True, help_text="The last refresh that compared size and mtime of every file."
    )
    analyzed_rows = models.PositiveIntegerField(
        default=0, help_text="Index rows when the database last gathered planner statistics on them."
    )
    listed = models.BooleanField(
        default=True,
        help_text="Whether the refresh listed the queue directories; if not, it looked only at the names "
        "the kernel reported changed (inotify).",
    )

    def __str__(self) -> str:
        return f"index of {self.server} at {self.finished:%Y-%m-%d %H:%M:%S}"


class QueueAction(WorkItem):
    """One queue action, written before it is queued: who, what, on which ids or selector, and how it ended."""

    class Verb(models.TextChoices):
        QUARANTINE = "quarantine", "quarantine"
        RELEASE = "release", "release"
        QUARANTINE_MATCHING = "quarantine_matching", "quarantine by selector"
        PROCESS_QUARANTINED = "process_quarantined", "process quarantined by reason"
        DELIVER = "deliver", "deliver now"
        DELETE = "delete", "delete"
        REFRESH = "refresh", "refresh the index"

    class Selector(models.TextChoices):
        RECIPIENT = "R", "recipient contains"
        SENDER = "S", "sender contains"
        QUEUE_ID = "I", "queue id contains"

    task_name = "mailqueue.tasks.run_queue_action"

    server = models.ForeignKey(MailServer, on_delete=models.CASCADE, related_name="queue_actions")
    verb = models.CharField(max_length=24, choices=Verb.choices)
    queue_ids = models.JSONField(default=list, blank=True)
    selector_kind = models.CharField(max_length=1, choices=Selector.choices, blank=True)
    selector = models.CharField(max_length=200, blank=True)
    negate = models.BooleanField(default=False, help_text="For processing by reason: the reasons NOT containing it.")
    reason = models.CharField(max_length=200, blank=True)
    debug_level = models.CharField(max_length=20, blank=True, help_text="sendmail -d flags; output kept via -D.")
    commands = models.JSONField(default=list, blank=True, help_text="Every argv this action ran.")
    outcomes = models.JSONField(default=dict, blank=True, help_text="queue id → what the spool showed afterwards.")
    output = models.TextField(blank=True)
    debug_log = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"{self.get_verb_display()} on {self.server} ({self.status})"

    def celery_queue(self) -> str:
        return self.server.celery_queue

    @property
    def target_text(self) -> str:
        if self.queue_ids:
            shown = ", ".join(self.queue_ids[:3])
            more = len(self.queue_ids) - 3
            return shown + (f" and {more} more" if more > 0 else "")
        if self.selector_kind:
            return f"{self.get_selector_kind_display()} {self.selector!r}"
        if self.verb == self.Verb.PROCESS_QUARANTINED:
            return f"reason {'not ' if self.negate else ''}containing {self.selector!r}"
        return ""

    def on_failure(self, exc: Exception) -> None:
        """Keep what ran and what sendmail said when the action failed part-way."""
        type(self).objects.filter(pk=self.pk).update(
            commands=self.commands, outcomes=self.outcomes, output=self.output, debug_log=self.debug_log
        )

    def outcome_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for outcome in self.outcomes.values():
            word = outcome.split(":", 1)[0]
            counts[word] = counts.get(word, 0) + 1
        return dict(sorted(counts.items()))


class QueueSample(models.Model):
    """One reading of a server's queue for the charts: size, quarantined count, oldest message age."""

    server = models.ForeignKey(MailServer, on_delete=models.CASCADE, related_name="queue_samples")
    taken = models.DateTimeField(db_index=True)
    messages = models.PositiveIntegerField()
    quarantined = models.PositiveIntegerField()
    oldest_age_seconds = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["taken"]

    def __str__(self) -> str:
        return f"{self.server} at {self.taken:%Y-%m-%d %H:%M}: {self.messages} messages"

    @property
    def oldest_age_text(self) -> str:
        minutes = self.oldest_age_seconds // 60
        if minutes < 120:
            return f"{minutes} min"
        hours = minutes // 60
        return f"{hours} h" if hours < 48 else f"{hours // 24} d {hours % 24} h"


class QueueAlertSettings(models.Model):
    """Alert thresholds for one server (empty = no alert), and which of them are crossed right now."""

    server = models.OneToOneField(MailServer, on_delete=models.CASCADE, related_name="queue_alerts")
    max_messages = models.PositiveIntegerField(null=True, blank=True, help_text="Alert when the queue holds more.")
    max_oldest_hours = models.PositiveIntegerField(
        null=True, blank=True, help_text="Alert when the oldest message is older than this many hours."
    )
    max_quarantined = models.PositiveIntegerField(null=True, blank=True, help_text="Alert when more are quarantined.")
    crossed = models.JSONField(default=dict, blank=True, help_text="metric → when it crossed (one mail each).")
    updated = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"queue alerts for {self.server}"
