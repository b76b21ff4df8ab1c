"""The queue's work in the host's agent: the performer of queue actions, and the answers to
questions only the MTA host can answer (see mailadmin/mta/answers.py).

"message preview": one job read from the spool itself (not the index): its envelope, headers
and the start of its body, as a JSON-able dict the message page renders (escaped, like any text).
Imported by mailqueue/tasks.py, so only workers (the host's agent) register and run it.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime

from mailadmin import audit, work
from mailadmin.mta import gateway
from mailadmin.mta.answers import answer, json_safe
from mailqueue import actions, dsn, spool
from mailqueue.models import QueueAction
from mailqueue.parser import QUEUE_ID_PATTERN, QueueFile, decode_encoded_words

# A control file may hold thousands of recipients or headers; the page shows this many of each.
RECIPIENTS_SHOWN = 1000
HEADERS_SHOWN = 500


def _time_text(seconds: int | None) -> str:
    if not seconds:
        return ""
    try:
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return str(seconds)


def message_facts(parsed: QueueFile) -> dict:
    """What the control file says, with the derived facts the page shows."""
    headers = [
        {**asdict(header), "decoded": decode_encoded_words(header.value)} for header in parsed.headers[:HEADERS_SHOWN]
    ]
    return {
        "state": parsed.state,
        "quarantined": parsed.quarantined,
        "quarantine_reason": parsed.quarantine_reason,
        "sender": parsed.sender,
        "auth": parsed.auth,
        "envelope_id": parsed.envelope_id,
        "created": _time_text(parsed.created),
        "last_attempt": _time_text(parsed.last_attempt),
        "attempts": parsed.attempts,
        "priority": parsed.priority,
        "status_message": parsed.status_message,
        "body_type": parsed.body_type,
        "flags": parsed.flags,
        "data_dir": parsed.data_dir,
        "macros": parsed.macros,
        "recipients": [
            {"address": r.address, "notify": r.notify, "original_recipient": r.original_recipient}
            for r in parsed.recipients[:RECIPIENTS_SHOWN]
        ],
        "recipient_count": len(parsed.recipients),
        # Encoded words (RFC 2047) decoded for reading; the stored values of those that had any.
        "headers": headers,
        "encoded_headers": [header for header in headers if header["decoded"] != header["value"]],
        "dsn": dsn.is_dsn(parsed.sender_address, parsed.flags),
        "header_count": len(parsed.headers),
        "truncated": parsed.truncated,
        "problems": parsed.problems,
    }


def preview(server, queue_id: str) -> dict:
    """One job as the message page shows it; `server` is bound to this host's configuration."""
    if not QUEUE_ID_PATTERN.fullmatch(queue_id):
        raise ValueError(f"{queue_id!r} is not a queue id")
    control = spool.find_control(server.queue_dir, queue_id)
    if control is not None and not spool.inside_queue(server.queue_dir, control.path):
        return {"queue_id": queue_id, "found": True, "file": control.kind + queue_id, "refused": True}
    parsed = spool.read_control(control.path, control.kind, queue_id) if control else None
    if parsed is None:
        return {"queue_id": queue_id, "found": False}
    try:
        body = asdict(spool.body_preview(spool.data_file_path(server.queue_dir, control.queue_dir, queue_id, parsed)))
    except spool.OutsideQueue as exc:
        body = {"text": "", "size": 0, "truncated": False, "error": f"Not read: {exc}."}
    return json_safe(
        {
            "queue_id": queue_id,
            "found": True,
            "file": control.kind + queue_id,
            "directory": control.queue_dir,
            "message": message_facts(parsed),
            "body": body,
        }
    )


@answer("message preview")
def answer_message_preview(server, params: dict, mta) -> dict:
    return preview(server, str(params.get("queue_id", "")))


def perform_queue_action(action: QueueAction) -> None:
    mta = gateway.mta_for(action)

    def perform() -> tuple[str, dict]:
        actions.perform(action, mta, lambda pct, note: work.report_progress(action, pct, note))
        counts = ", ".join(f"{count} {word}" for word, count in action.outcome_counts().items())
        fields = {name: getattr(action, name) for name in ("commands", "outcomes", "output", "debug_log")}
        return counts, fields

    audit.run_work(action, f"queue {action.verb}", f"queue action {action.pk}: {action.target_text}", perform)
