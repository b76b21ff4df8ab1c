"""What the queue index keeps of a control file: a few facts, read fast from a finished file.

A first index build reads every control file on the spool, and 100,000 of them is an
ordinary morning on a busy relay. The full parser builds an object for every line; that
is right for the message page and too slow for the index. A file sendmail has finished
writing has a narrow shape, so `digest` checks that shape with one regular expression over
the whole file and picks out the indexed lines with a second. Any file outside that shape
(cut short, unknown letters, odd numbers or headers, continuation lines where sendmail
writes none) goes through `parse_queue_file`, so both paths give the same digest for every
input; the property tests in tests/test_digest.py hold them to it.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from mailqueue.parser import QueueFile, decode_text, parse_queue_file, strip_angles

INDEXED_HEADERS = frozenset({b"subject"})

# The lines of a finished file that the full parser reads without noting a problem. Only a
# header line may be followed by continuation lines (starting with a TAB or a space); a header name is printable ASCII
# without spaces or colons, and does not start with "?" (that would be a condition).
_FINISHED_FILE = re.compile(  # possessive: a line that does not fit never needs a second try
    rb"V[0-9]++\n"
    rb"(?:H(?:\?[^?\n]*+\?)?[ \t]*+[!-9;->@-~][!-9;-~]*+[ \t]*+:[^\n]*+\n(?:[\t ][^\n]*+\n)*+"
    rb"|R[SFDNPABX]*+:[^\n]++\n"
    rb"|[MBF$qAZdI!QrC][^\n]*+\n"
    rb"|[TKNP]-?[0-9]++\n"
    rb"|S[^\n]++\n"
    rb")*+"
    rb"\.\n"
)
# Groups: 1-2 a one-letter item and its value, 3 a recipient address, 4 a Subject value. The
# leading newline (the V line comes first and is not needed) lets the engine skip from line
# to line instead of trying every byte.
_INDEXED_LINE = re.compile(
    rb"\n(?:([TKNPMqSd])([^\n]*)"
    rb"|R[SFDNPABX]*:([^\n]*)"
    rb"|H(?:\?[^?\n]*\?)?[ \t]*(?i:subject)[ \t]*:([^\n]*(?:\n[\t ][^\n]*)*))(?=\n)"
)


class Digest(NamedTuple):
    """The indexed facts of one control file; times are Unix seconds, addresses without <>."""

    sender: str
    recipients: tuple[str, ...]
    subject: str
    reason: str
    status_message: str
    created: int | None
    last_attempt: int | None
    attempts: int
    priority: int | None
    data_dir: str
    problems: tuple[str, ...]
    truncated: bool


def unreadable(problem: str) -> Digest:
    """The digest of a control file that could not be read, saying why."""
    return Digest("", (), "", "", "", None, None, 0, None, "", (problem,), False)


def digest_of(parsed: QueueFile) -> Digest:
    return Digest(
        sender=parsed.sender_address,
        recipients=tuple(strip_angles(recipient.address) for recipient in parsed.recipients),
        subject=parsed.subject,
        reason=parsed.quarantine_reason,
        status_message=parsed.status_message,
        created=parsed.created,
        last_attempt=parsed.last_attempt,
        attempts=parsed.attempts,
        priority=parsed.priority,
        data_dir=parsed.data_dir,
        problems=tuple(parsed.problems),
        truncated=parsed.truncated,
    )


def digest(data: bytes, *, queue_id: str = "", kind: str = "qf") -> Digest:
    """The digest of a control file's bytes; never raises, whatever the bytes."""
    if _FINISHED_FILE.fullmatch(data):
        quick = _digest_finished(data)
        if quick is not None:
            return quick
    return digest_of(parse_queue_file(data, queue_id=queue_id, kind=kind, only_headers=INDEXED_HEADERS))


def _digest_finished(data: bytes) -> Digest | None:
    values: dict[bytes, bytes] = {}  # letter → value of its last line, as the full parser keeps
    recipients = []
    subject = None
    # findall, not finditer: tuples cost half of what match objects do, and this runs per file.
    for letter, value, address, header_value in _INDEXED_LINE.findall(data):
        if letter:
            values[letter] = value
        elif address:  # never empty in a finished file
            recipients.append(strip_angles(decode_text(address)))
        elif subject is None:
            subject = header_value
    sender = values.get(b"S")
    if sender is None:
        return None  # "no S line" is a problem only the full parser words
    created, last_attempt, attempts, priority = (values.get(letter) for letter in (b"T", b"K", b"N", b"P"))
    return Digest(
        sender=strip_angles(decode_text(sender)),
        recipients=tuple(recipients),
        subject=decode_text(subject.strip()) if subject else "",
        reason=decode_text(values.get(b"q", b"")),
        status_message=decode_text(values.get(b"M", b"")),
        created=None if created is None else int(created),
        last_attempt=int(last_attempt) or None if last_attempt is not None else None,
        attempts=int(attempts) if attempts is not None else 0,
        priority=None if priority is None else int(priority),
        data_dir=decode_text(values.get(b"d", b"")),
        problems=(),
        truncated=False,
    )
