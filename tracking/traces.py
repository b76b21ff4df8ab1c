"""Folding parsed log lines into trace rows: one batch of lines, one set of bulk queries.

The agent calls store_lines() with the lines of one read (tracking.follower.Batch), already
limited to its instance's syslog tag, inside the transaction that also moves the checkpoint.
Lines of one message are spread over many batches (accepted now, deferred for days), so each
batch loads the traces and recipients it touches, applies its lines in order, and writes back.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, tzinfo

from django.db import connection, models
from django.db.models import Q

from tracking.models import MessageTrace, TraceEvent, TraceRecipient
from tracking.parser import LogLine, bare_address, split_addresses, year_for

Status = MessageTrace.Status
# SQLite allows 32766 variables in a statement (older builds 999): stay well under either.
IN_CHUNK = 500
PENDING = (Status.QUEUED, Status.DEFERRED)
# The kinds of line that are about a message (and so start its trace when they are the first seen).
MESSAGE_KINDS = frozenset({"from", "to", "quarantine", "unquarantine", "dsn", "reject"})
TRACE_FIELDS = [
    "message_id", "sender", "size", "nrcpts", "protocol", "daemon", "relay", "client_address",
    "received_at", "last_event_at", "status", "status_text", "quarantine_reason", "ruleset", "bounce_of",
]  # fmt: skip
RECIPIENT_FIELDS = ["status", "status_text", "dsn", "mailer", "relay", "attempts", "last_attempt_at"]


def status_of_delivery(stat: str, dsn: str) -> str:
    """What a to= line's stat= and dsn= say about that recipient."""
    if stat.startswith("Sent"):
        return Status.DELIVERED
    if stat.lower().startswith("queued"):
        return Status.QUEUED
    if dsn.startswith("5"):
        return Status.BOUNCED
    if dsn.startswith("2"):
        return Status.DELIVERED
    return Status.DEFERRED


def overall_status(trace: MessageTrace, recipients: Iterable[TraceRecipient]) -> str:
    """A message's status from its recipients': pending if any is, then bounced if any did."""
    if trace.quarantine_reason:
        return Status.QUARANTINED
    statuses = {recipient.status for recipient in recipients}
    if not statuses:
        return Status.REJECTED if trace.ruleset else Status.QUEUED
    for status in (Status.DEFERRED, Status.QUEUED, Status.BOUNCED):
        if status in statuses:
            return status
    if statuses == {Status.REJECTED}:
        return Status.REJECTED
    return Status.DELIVERED


def domain_of(address: str) -> str:
    return address.rpartition("@")[2] if "@" in address else ""


# Rows are written with prepared statements of our own: at millions of log lines, Django's
# bulk_create and bulk_update (a model compiled to SQL value by value, a CASE per field) cost more
# than the database itself does.


def _value_readers(model, names: list[str]):
    """For each field name, its column and a function from a model instance to the database value."""
    readers = []
    for name in names:
        field = model._meta.get_field(name)
        if isinstance(field, models.DateTimeField):
            attname = field.attname
            readers.append(
                (field.column, lambda row, a=attname: connection.ops.adapt_datetimefield_value(getattr(row, a)))
            )
        else:
            readers.append((field.column, lambda row, a=field.attname: getattr(row, a)))
    return readers


def update_rows(model, rows: list, names: list[str]) -> None:
    """UPDATE each row's `names` by primary key, one executemany."""
    if not rows:
        return
    readers, quote = _value_readers(model, names), connection.ops.quote_name
    assignments = ", ".join(f"{quote(column)} = %s" for column, _ in readers)
    sql = f"UPDATE {quote(model._meta.db_table)} SET {assignments} WHERE {quote(model._meta.pk.column)} = %s"
    params = [[read(row) for _, read in readers] + [row.pk] for row in rows]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def insert_rows(model, rows: list, names: list[str], *, returning_ids: bool = False) -> None:
    """INSERT the rows; with returning_ids, fill in each row's primary key (multi-row VALUES with
    RETURNING, which keeps the order of the rows on SQLite and PostgreSQL, as Django relies on)."""
    if not rows:
        return
    readers, quote = _value_readers(model, names), connection.ops.quote_name
    columns = ", ".join(quote(column) for column, _ in readers)
    table, one = quote(model._meta.db_table), "(" + ", ".join(["%s"] * len(readers)) + ")"
    with connection.cursor() as cursor:
        if not returning_ids:
            cursor.executemany(
                f"INSERT INTO {table} ({columns}) VALUES {one}", [[r(row) for _, r in readers] for row in rows]
            )
            return
        per_statement = max(1, min(500, 30000 // len(readers)))
        pk_column = quote(model._meta.pk.column)
        for chunk in _chunks(rows, per_statement):
            values = [read(row) for row in chunk for _, read in readers]
            placeholders = ", ".join([one] * len(chunk))
            cursor.execute(f"INSERT INTO {table} ({columns}) VALUES {placeholders} RETURNING {pk_column}", values)
            for row, (pk,) in zip(chunk, cursor.fetchall(), strict=True):
                row.pk = pk
                row._state.adding = False


def insert_events(server, events: list[tuple[MessageTrace | None, datetime | None, str, str]]) -> None:
    """TraceEvent rows from plain tuples (a model instance per line costs more than the row)."""
    if not events:
        return
    meta, quote = TraceEvent._meta, connection.ops.quote_name
    columns = ", ".join(quote(meta.get_field(name).column) for name in ("server", "trace", "at", "kind", "raw"))
    sql = f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES (%s, %s, %s, %s, %s)"
    adapt = connection.ops.adapt_datetimefield_value
    rows = [
        (server.pk, trace.pk if trace is not None else None, adapt(at), kind, raw) for trace, at, kind, raw in events
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def _chunks(values: list, size: int = IN_CHUNK):
    for start in range(0, len(values), size):
        yield values[start : start + size]


class Fold:
    """The traces, recipients and events one batch touches, applied in order and written at the end."""

    def __init__(self, server, now: datetime, zone: tzinfo):
        self.server, self.now, self.zone = server, now, zone
        self.traces: dict[str, MessageTrace] = {}
        self.new_traces: list[MessageTrace] = []
        self.rejections: list[MessageTrace] = []
        self.recipients: dict[tuple[str, str], TraceRecipient] = {}
        # (trace or None, time, kind, raw): written with one prepared INSERT, not a model each.
        self.events: list[tuple[MessageTrace | None, datetime | None, str, str]] = []
        # A bounce and the message it bounces may both be new in this batch: linked after both are saved.
        self.bounce_links: list[tuple[MessageTrace, MessageTrace]] = []

    def when(self, line: LogLine) -> datetime | None:
        return line.timestamp(year_for(line.month, self.now) if line.month else self.now.year, self.zone)

    def load(self, lines: list[LogLine]) -> None:
        queue_ids = {line.queue_id for line in lines if line.queue_id}
        queue_ids |= {line.fields["new_queue_id"] for line in lines if line.kind == "dsn"}
        for chunk in _chunks(sorted(queue_ids)):
            for trace in MessageTrace.objects.filter(server=self.server, queue_id__in=chunk):
                self.traces[trace.queue_id] = trace
        # Only a line about a message makes a trace: a session that never sent one ("did not issue
        # MAIL", the agent's own EHLO every 30 s) has a queue id too, and its lines stay loose events.
        of_messages = {line.queue_id for line in lines if line.queue_id and line.kind in MESSAGE_KINDS}
        of_messages |= {line.fields["new_queue_id"] for line in lines if line.kind == "dsn"}
        missing = [queue_id for queue_id in sorted(of_messages) if queue_id not in self.traces]
        for queue_id in missing:
            trace = MessageTrace(server=self.server, queue_id=queue_id)
            self.traces[queue_id] = trace
            self.new_traces.append(trace)
        by_pk = {trace.pk: trace for trace in self.traces.values() if trace.pk}
        for chunk in _chunks(list(by_pk)):
            for recipient in TraceRecipient.objects.filter(trace_id__in=chunk):
                recipient.trace = by_pk[recipient.trace_id]  # the very object this batch changes
                self.recipients[(recipient.trace.queue_id, recipient.address)] = recipient

    def recipient(self, trace: MessageTrace, address: str) -> TraceRecipient:
        key = (trace.queue_id, address)
        if key not in self.recipients:
            self.recipients[key] = TraceRecipient(trace=trace, address=address[:400], domain=domain_of(address)[:255])
        return self.recipients[key]

    def apply(self, line: LogLine) -> None:
        at = self.when(line)
        trace = self.traces.get(line.queue_id) if line.queue_id else None
        if trace is None and line.kind == "reject":
            trace = self.rejection(line, at)
        self.events.append((trace, at, line.kind, line.raw))
        if trace is None:
            return
        if at and (trace.last_event_at is None or at > trace.last_event_at):
            trace.last_event_at = at
        trace.received_at = trace.received_at or at
        fields = line.fields
        if line.kind == "from":
            trace.sender = bare_address(fields.get("from", ""))[:400]
            trace.size = _integer(fields.get("size"))
            trace.nrcpts = _integer(fields.get("nrcpts"))
            trace.message_id = fields.get("msgid", "")[:400]
            trace.protocol = fields.get("proto", "")[:20]
            trace.daemon = fields.get("daemon", "")[:60]
            trace.relay = fields.get("relay", "")[:400]
            trace.client_address = line.client_address[:64]
        elif line.kind == "to":
            stat, dsn = fields.get("stat", ""), fields.get("dsn", "")
            status = status_of_delivery(stat, dsn)
            for address in line.recipients:
                recipient = self.recipient(trace, bare_address(address))
                recipient.status, recipient.status_text, recipient.dsn = status, stat[:600], dsn[:12]
                recipient.mailer, recipient.relay = fields.get("mailer", "")[:40], fields.get("relay", "")[:400]
                if status != Status.QUEUED:
                    recipient.attempts += 1
                    recipient.last_attempt_at = at
            trace.status_text = stat[:600]
        elif line.kind == "quarantine":
            trace.quarantine_reason = fields["quarantine"][:400] or "(no reason)"
        elif line.kind == "unquarantine":
            trace.quarantine_reason = ""
        elif line.kind == "dsn":
            self.bounce_links.append((self.traces[fields["new_queue_id"]], trace))
            if not fields["text"].startswith("Warning"):
                trace.status_text = f"DSN: {fields['text']}"[:600]
                for (queue_id, _), recipient in self.recipients.items():
                    if queue_id == trace.queue_id and recipient.status in PENDING:
                        recipient.status = Status.BOUNCED
        elif line.kind == "reject":
            self.refuse(trace, line)

    def rejection(self, line: LogLine, at: datetime | None) -> MessageTrace:
        """A refusal before the message had a queue id: a trace of its own, keyed by the client."""
        trace = MessageTrace(server=self.server, queue_id="", received_at=at, last_event_at=at)
        trace.client_address = line.client_address[:64]
        trace.relay = line.fields.get("relay", "")[:400]
        self.rejections.append(trace)
        return trace

    def refuse(self, trace: MessageTrace, line: LogLine) -> None:
        fields = line.fields
        # After MAIL the session has a queue id, but no from= line yet says who the client is.
        trace.client_address = trace.client_address or line.client_address[:64]
        trace.relay = trace.relay or fields.get("relay", "")[:400]
        trace.ruleset = fields.get("ruleset", "")[:60]
        trace.status_text = fields["reject"][:600]
        argument = bare_address(fields.get("arg1", ""))
        if trace.ruleset == "check_rcpt" and argument:
            recipient = self.recipient(trace, argument)
            recipient.status, recipient.status_text = Status.REJECTED, fields["reject"][:600]
            recipient.dsn = fields["reject"].split(" ", 2)[1][:12] if fields["reject"].count(" ") >= 2 else ""
        elif trace.ruleset == "check_mail" and argument and not trace.sender:
            trace.sender = argument[:400]

    def save(self) -> None:
        by_trace: dict[int, list[TraceRecipient]] = {}
        for recipient in self.recipients.values():
            by_trace.setdefault(id(recipient.trace), []).append(recipient)
        for trace in [*self.traces.values(), *self.rejections]:
            trace.status = overall_status(trace, by_trace.get(id(trace), []))
        # New rows are inserted whole; rows read from the database are updated (their recipients
        # and events point at them by the primary key bulk_create fills in).
        insert_rows(
            MessageTrace, self.new_traces + self.rejections, ["server", "queue_id", *TRACE_FIELDS], returning_ids=True
        )
        created = {id(trace) for trace in self.new_traces}
        loaded = [trace for trace in self.traces.values() if id(trace) not in created]
        for bounce, original in self.bounce_links:
            bounce.bounce_of = original
        if self.bounce_links:
            loaded += [bounce for bounce, _ in self.bounce_links if id(bounce) in created]
        update_rows(MessageTrace, loaded, TRACE_FIELDS)
        new = [recipient for recipient in self.recipients.values() if recipient.pk is None]
        old = [recipient for recipient in self.recipients.values() if recipient.pk is not None]
        for recipient in new:
            trace = recipient.trace
            recipient.trace = trace  # again: its trace may have been saved (given its id) since
            recipient.received_at = trace.received_at
        insert_rows(TraceRecipient, new, ["trace", "address", "domain", "received_at", *RECIPIENT_FIELDS])
        update_rows(TraceRecipient, old, RECIPIENT_FIELDS)
        insert_events(self.server, self.events)


def _integer(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def store_lines(server, lines: list[LogLine], *, now: datetime, zone: tzinfo) -> int:
    """Apply `lines` (one instance's, in log order) to its traces; returns how many were stored."""
    fold = Fold(server, now, zone)
    fold.load(lines)
    for line in lines:
        fold.apply(line)
    fold.save()
    return len(lines)


def journey(trace: MessageTrace) -> list[MessageTrace]:
    """The traces of one message on every host, in the order it passed them (by Message-ID)."""
    if not trace.message_id:
        return [trace]
    related = MessageTrace.objects.filter(message_id=trace.message_id).select_related("server")
    return sorted(related, key=lambda each: (each.received_at is None, each.received_at, each.pk))


def search_filter(query: str) -> Q:
    """A message-id, a queue id or an address as one condition (the CLI's and the search box's)."""
    query = query.strip()
    if query.startswith("<") and query.endswith(">") and "@" in query:
        return Q(message_id=query)
    addresses = [bare_address(each) for each in split_addresses(query)]
    if len(addresses) == 1 and "@" in addresses[0]:
        address = addresses[0]
        if address.startswith("@"):
            return Q(sender__endswith=address) | Q(recipients__domain=address[1:])
        return Q(sender=address) | Q(recipients__address=address)
    return Q(queue_id=query) | Q(message_id=f"<{query}>")
