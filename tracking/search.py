"""Searching traces: the form the page and the API share, and the query it makes.

Every filter is an indexed equality (sender, recipient address or domain, Message-ID, queue id,
client address, status, host) or a time range on received_at; results come newest first in pages
that continue from the last row shown (a cursor), so a page costs the same at ten million lines as
at ten: no OFFSET, no COUNT of everything.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django import forms
from django.db.models import Exists, OuterRef, Q, QuerySet

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


def matching(data: dict) -> QuerySet[MessageTrace]:
    """Traces matching a TraceSearchForm's cleaned data, newest first."""
    traces = MessageTrace.objects.select_related("server", "bounce_of")
    if data.get("q"):
        traces = traces.filter(search_filter(data["q"]))
    if data.get("sender"):
        sender = data["sender"]
        traces = traces.filter(sender__endswith=sender) if sender.startswith("@") else traces.filter(sender=sender)
    if data.get("recipient"):
        recipient = data["recipient"]
        condition = Q(domain=recipient[1:]) if recipient.startswith("@") else Q(address=recipient)
        traces = traces.filter(Exists(TraceRecipient.objects.filter(condition, trace=OuterRef("pk"))))
    if data.get("client"):
        traces = traces.filter(client_address=data["client"])
    if data.get("status"):
        traces = traces.filter(status=data["status"])
    if data.get("server"):
        traces = traces.filter(server=data["server"])
    if data.get("since"):
        traces = traces.filter(received_at__gte=data["since"])
    if data.get("until"):
        traces = traces.filter(received_at__lte=data["until"])
    return traces.distinct().order_by("-received_at", "-id")


def parse_cursor(value: str) -> tuple[datetime, int] | None:
    """`<microseconds since the epoch>_<id>` of the last row shown (None when missing or not ours)."""
    micros, _, pk = (value or "").partition("_")
    try:
        return datetime.fromtimestamp(int(micros) / 1_000_000, tz=UTC), int(pk)
    except (ValueError, OverflowError, OSError):
        return None


def cursor_of(trace: MessageTrace) -> str:
    return f"{round(trace.received_at.timestamp() * 1_000_000)}_{trace.pk}"


def page_after(traces: QuerySet[MessageTrace], cursor: str = "") -> tuple[list[MessageTrace], str]:
    """One page of `traces` after the cursor, and the cursor of the next page ("" at the end)."""
    after = parse_cursor(cursor)
    if after:
        when, pk = after
        traces = traces.filter(Q(received_at__lt=when) | Q(received_at=when, id__lt=pk))
    rows = list(traces[: PAGE_SIZE + 1])
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    last = rows[-1] if rows else None
    following = cursor_of(last) if more and last and last.received_at else ""
    return rows, following
