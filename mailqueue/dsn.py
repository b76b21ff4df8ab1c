"""Delivery status notifications in the queue: which jobs are bounces, and which message each reports on.

Measured on Debian's sendmail 8.17 (a delay warning and a failure for a job deferred by its
relay): a DSN sendmail makes is queued with the sender `MAILER-DAEMON` and an `r` (response)
among its qf flags; its data file is a multipart/report whose message/rfc822 (or
text/rfc822-headers) part starts with the original's headers, and the first Received header
there is the one this sendmail wrote when it accepted the original: `... with ESMTP id
<queue id>` (or `... id <queue id>;` for a job submitted on the command line). A bounce that
arrived over SMTP from another MTA has the null sender `<>` and reports on a message queued
elsewhere, so it is recognised and linked to nothing. Pure functions over bytes; never raise.
"""

from __future__ import annotations

import re

# What the agent reads of a DSN's data file to find the original's Received header.
BODY_READ_LIMIT = 64 * 1024
NULL_SENDERS = frozenset({"", "<>", "mailer-daemon"})
_ORIGINAL_PART = re.compile(rb"content-type:[ \t]*(?:message/rfc822|text/rfc822-headers)", re.IGNORECASE)
# The first Received header of the enclosed message, continuation lines included.
_RECEIVED = re.compile(rb"^received:((?:[^\n]*)(?:\n[ \t][^\n]*)*)", re.IGNORECASE | re.MULTILINE)
_QUEUE_ID = re.compile(rb"\bid ([0-9A-Za-z]{8}[0-9]{5,10})\b")


def is_dsn(sender: str, flags: str) -> bool:
    """Whether a job is a DSN: sendmail's own (the r flag) or one from elsewhere (a null sender)."""
    bare = sender.strip().lower()
    return "r" in flags or bare in ("<>", "")


def made_here(sender: str, flags: str) -> bool:
    """Whether this sendmail made the DSN (so its original was queued here)."""
    return "r" in flags and sender.strip().lower() in NULL_SENDERS


def original_queue_id(body: bytes) -> str:
    """The queue id of the message a DSN's data file encloses, from its first Received header; "" if none."""
    part = _ORIGINAL_PART.search(body)
    if part is None:
        return ""
    received = _RECEIVED.search(body, part.end())
    if received is None:
        return ""
    found = _QUEUE_ID.search(received.group(1))
    return found.group(1).decode("ascii") if found else ""
