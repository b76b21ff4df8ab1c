"""Searching traces: the form the page and the API share, and the query it makes.

Every filter is an indexed equality (sender, recipient address or domain, Message-ID, queue id,
client address, status, host) or a time range on received_at; results come newest first in pages
that continue from the last row shown (a cursor), so a page costs the same at ten million lines as
at ten: no OFFSET, no COUNT of everything.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django import forms
from django.db.models import Q, prefetch_related_objects

from mailadmin.models import MailServer
from tracking.models import MessageTrace, TraceRecipient
from tracking.parser import bare_address
from tracking.traces import search_filter

PAGE_SIZE = 50
LOCAL_TIME = {"attrs": {"type": "datetime-local"}, "format": "%Y-%m-%dT%H:%M"}
CONTROL_CHARACTERS = {chr(code) for code in range(32)} | {"\x7f"}


def no_control_characters(value: str) -> str:
    if any(char in CONTROL_CHARACTERS for char in value):
        raise forms.ValidationError("No control characters (a newline, a tab) in a search.")
    return value.strip()


class TraceSearchForm(forms.Form):
    q = forms.CharField(
        required=False, max_length=400, label="Message-ID, queue id or address",
        help_text="<id@host>, a queue id, user@domain or @domain",
    )  # fmt: skip
    sender = forms.CharField(required=False, max_length=400, label="Sender")
    recipient = forms.CharField(required=False, max_length=400, label="Recipient", help_text="user@domain or @domain")
    client = forms.GenericIPAddressField(required=False, label="Client address")
    status = forms.ChoiceField(choices=[("", "any status"), *MessageTrace.Status.choices], required=False)
    server = forms.ModelChoiceField(
        queryset=MailServer.objects.all(), required=False, to_field_name="name", empty_label="any host", label="Host"
    )
    since = forms.DateTimeField(required=False, label="From", widget=forms.DateTimeInput(**LOCAL_TIME))
    until = forms.DateTimeField(required=False, label="To", widget=forms.DateTimeInput(**LOCAL_TIME))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            is_select = isinstance(field.widget, forms.Select)
            field.widget.attrs["class"] = "form-select form-select-sm" if is_select else "form-control form-control-sm"

    def clean_q(self) -> str:
        return no_control_characters(self.cleaned_data["q"])

    def clean_sender(self) -> str:
        return bare_address(no_control_characters(self.cleaned_data["sender"]))

    def clean_recipient(self) -> str:
        return bare_address(no_control_characters(self.cleaned_data["recipient"]))

    def searched(self) -> bool:
        return self.is_valid() and any(value not in (None, "") for value in self.cleaned_data.values())


def prefixed(condition: Q, prefix: str) -> Q:
    """The same condition, seen from a related table (`sender=x` → `trace__sender=x`)."""
    copy = Q()
    copy.connector, copy.negated = condition.connector, condition.negated
    for child in condition.children:
        copy.children.append(prefixed(child, prefix) if isinstance(child, Q) else (prefix + child[0], child[1]))
    return copy


def conditions(data: dict) -> tuple[Q, Q | None]:
    """A TraceSearchForm's cleaned data as (a condition on traces, a condition on recipients or None)."""
    on_trace = Q()
    if data.get("q"):
        on_trace &= search_filter(data["q"])
    if data.get("sender"):
        sender = data["sender"]
        on_trace &= Q(sender__endswith=sender) if sender.startswith("@") else Q(sender=sender)
    if data.get("client"):
        on_trace &= Q(client_address=data["client"])
    if data.get("status"):
        on_trace &= Q(status=data["status"])
    if data.get("server"):
        on_trace &= Q(server=data["server"])
    on_recipient = None
    if data.get("recipient"):
        recipient = data["recipient"]
        on_recipient = Q(domain=recipient[1:]) if recipient.startswith("@") else Q(address=recipient)
    return on_trace, on_recipient


def time_range(data: dict) -> Q:
    window = Q()
    if data.get("since"):
        window &= Q(received_at__gte=data["since"])
    if data.get("until"):
        window &= Q(received_at__lte=data["until"])
    return window


def parse_cursor(value: str) -> tuple[datetime, int] | None:
    """`<microseconds since the epoch>_<id>` of the last row shown (None when missing or not ours)."""
    micros, _, pk = (value or "").partition("_")
    try:
        return datetime.fromtimestamp(int(micros) / 1_000_000, tz=UTC), int(pk)
    except (ValueError, OverflowError, OSError):
        return None


def cursor_of(received_at: datetime, pk: int) -> str:
    return f"{round(received_at.timestamp() * 1_000_000)}_{pk}"


def after(cursor: str, id_field: str) -> Q:
    parsed = parse_cursor(cursor)
    if parsed is None:
        return Q()
    when, pk = parsed
    return Q(received_at__lt=when) | Q(received_at=when, **{f"{id_field}__lt": pk})


def search_page(data: dict, cursor: str = "") -> tuple[list[MessageTrace], str]:
    """One page of matches after the cursor, newest first, and the next page's cursor ("" at the end).

    With a recipient or domain, the page is read from the recipients' (domain, received_at) index
    and each trace shown once; otherwise from the traces' own indexes.
    """
    on_trace, on_recipient = conditions(data)
    window = time_range(data)
    if on_recipient is None:
        traces = MessageTrace.objects.filter(on_trace, window, after(cursor, "id")).distinct()
        rows = list(traces.select_related("server", "bounce_of").order_by("-received_at", "-id")[: PAGE_SIZE + 1])
        more, rows = len(rows) > PAGE_SIZE, rows[:PAGE_SIZE]
        prefetch_related_objects(rows, "recipients")
        last = rows[-1] if more else None
        return rows, cursor_of(last.received_at, last.pk) if last and last.received_at else ""
    recipients = TraceRecipient.objects.filter(
        on_recipient, prefixed(on_trace, "trace__"), window, after(cursor, "trace_id")
    )
    hits = list(
        recipients.select_related("trace__server", "trace__bounce_of").order_by("-received_at", "-trace_id")[
            : PAGE_SIZE + 1
        ]
    )
    more, hits = len(hits) > PAGE_SIZE, hits[:PAGE_SIZE]
    rows = list({hit.trace_id: hit.trace for hit in hits}.values())
    prefetch_related_objects(rows, "recipients")
    last = hits[-1] if more else None
    return rows, cursor_of(last.received_at, last.trace_id) if last and last.received_at else ""
