"""Message traces built from each instance's mail log by its host's agent.

One MessageTrace per (server, queue id): what sendmail logged when it accepted the message
(from=), each recipient's fate (to= lines: attempts, relay, dsn, status), quarantine, the bounce
it caused (DSN links). A message relayed between hosts has one trace per host, linked by its
Message-ID. A refusal before a queue id existed (ruleset=check_*, reject=) is a trace of its own
with an empty queue id, keyed by the client's address. Every log line the trace was built from is
a TraceEvent with its raw text; lines the parser could not place are TraceEvents too, without a
trace, so nothing read from the log is dropped.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from mailadmin.models import MailServer


class LogCheckpoint(models.Model):
    """How far the agent has read the instance's mail log (tracking.follower.Checkpoint)."""

    server = models.OneToOneField(MailServer, on_delete=models.CASCADE, related_name="log_checkpoint")
    inode = models.BigIntegerField(default=0)
    fingerprint = models.CharField(max_length=64, blank=True)
    offset = models.BigIntegerField(default=0)
    source = models.CharField(max_length=255, blank=True, help_text="The file last read (mail.log, mail.log.1 …).")
    lines_read = models.BigIntegerField(default=0)
    lines_kept = models.BigIntegerField(default=0, help_text="Lines of this instance's tag, stored as events.")
    problem = models.CharField(max_length=400, blank=True, help_text="Why the last read failed, if it did.")
    updated_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.source or 'log'} at byte {self.offset}"


class MessageTrace(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "queued (no attempt yet)"
        DEFERRED = "deferred", "deferred"
        DELIVERED = "delivered", "delivered"
        BOUNCED = "bounced", "bounced"
        REJECTED = "rejected", "rejected"
        QUARANTINED = "quarantined", "quarantined"

    server = models.ForeignKey(MailServer, on_delete=models.CASCADE, related_name="traces", db_index=False)
    queue_id = models.CharField(max_length=20, blank=True)
    message_id = models.CharField(max_length=400, blank=True)
    sender = models.CharField(max_length=400, blank=True, help_text="The envelope sender, bare and lower case.")
    size = models.BigIntegerField(null=True, blank=True)
    nrcpts = models.PositiveIntegerField(null=True, blank=True)
    protocol = models.CharField(max_length=20, blank=True)
    daemon = models.CharField(max_length=60, blank=True)
    relay = models.CharField(max_length=400, blank=True, help_text="Who handed the message over (from='s relay=).")
    client_address = models.CharField(max_length=64, blank=True)
    received_at = models.DateTimeField(null=True, blank=True)
    last_event_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    status_text = models.CharField(max_length=600, blank=True)
    quarantine_reason = models.CharField(max_length=400, blank=True)
    ruleset = models.CharField(max_length=60, blank=True, help_text="The ruleset that refused it, if one did.")
    bounce_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="bounces", db_index=False
    )

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["server", "queue_id"], condition=~Q(queue_id=""), name="one_trace_per_queue_id"
            )
        ]
        indexes = [
            models.Index(fields=["server", "received_at"]),
            models.Index(fields=["received_at"]),
            models.Index(fields=["message_id"]),
            models.Index(fields=["sender", "received_at"]),
            models.Index(fields=["client_address", "received_at"]),
            models.Index(fields=["status", "received_at"]),
            models.Index(fields=["queue_id"]),
            models.Index(fields=["bounce_of"]),
        ]

    def __str__(self) -> str:
        return f"{self.queue_id or 'NOQUEUE'} on {self.server_id}"


class TraceRecipient(models.Model):
    trace = models.ForeignKey(MessageTrace, on_delete=models.CASCADE, related_name="recipients")
    address = models.CharField(max_length=400, help_text="Bare and lower case.")
    domain = models.CharField(max_length=255)
    status = models.CharField(max_length=12, choices=MessageTrace.Status.choices, default=MessageTrace.Status.QUEUED)
    status_text = models.CharField(max_length=600, blank=True)
    dsn = models.CharField(max_length=12, blank=True)
    mailer = models.CharField(max_length=40, blank=True)
    relay = models.CharField(max_length=400, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    # The trace's received_at, copied: a search by recipient or domain then pages through this
    # table's own (domain, received_at) index instead of sorting every match of a busy domain.
    received_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["trace", "address"], name="one_row_per_trace_recipient")]
        indexes = [models.Index(fields=["address", "received_at"]), models.Index(fields=["domain", "received_at"])]

    def __str__(self) -> str:
        return f"{self.address} ({self.status})"


class TraceEvent(models.Model):
    """One log line, as read: on its trace's timeline, or (trace None) a line of the instance that
    belongs to no message (daemon start, a STARTTLS handshake, a line the parser did not know)."""

    server = models.ForeignKey(MailServer, on_delete=models.CASCADE, related_name="trace_events", db_index=False)
    trace = models.ForeignKey(MessageTrace, null=True, blank=True, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(null=True, blank=True)
    kind = models.CharField(max_length=12)
    raw = models.TextField()

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["server", "at"]), models.Index(fields=["at"])]

    def __str__(self) -> str:
        return f"{self.kind} at {self.at}"
