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

# The patterns run on the file decoded as Latin-1, one character per byte, which is one C
# call per file instead of one decode per field; re.ASCII keeps them byte patterns in all
# but type (no Unicode case folding or classes).
#
# The lines of a finished file that the full parser reads without noting a problem. Only a
# header line may be followed by continuation lines (starting with a TAB or a space); a header
# name is printable ASCII without spaces or colons, and does not start with "?" (that would be
# a condition).
# Possessive only on single character classes: Python before 3.11.5 (Debian 12 ships 3.11.2)
# mismatches a possessive group whose body can backtrack (gh-106052), and accepted a file cut
# after an "H." line as finished. Lines start with distinct letters, so the groups rarely backtrack.
_FINISHED_FILE = re.compile(
    r"V[0-9]++\n"
    r"(?:H(?:\?[^?\n]*+\?)?[ \t]*+[!-9;->@-~][!-9;-~]*+[ \t]*+:[^\n]*+\n(?:[\t ][^\n]*+\n)*"
    r"|R[SFDNPABX]*+:[^\n]++\n"
    r"|[MBF$qAZdI!QrC][^\n]*+\n"
    r"|[TKNP]-?[0-9]++\n"
    r"|S[^\n]++\n"
    r")*"
    r"\.\n",
    re.ASCII,
)
# Groups: 1-2 a one-letter item (the ones Digest keeps) and its value, 3 a recipient address, 4 a Subject value. The
# leading newline (the V line comes first and is not needed) lets the engine skip from line
# to line instead of trying every byte.
_INDEXED_LINE = re.compile(
    r"\n(?:([TKNPMqSdF])([^\n]*)"
    r"|R[SFDNPABX]*:([^\n]*)"
    r"|H(?:\?[^?\n]*\?)?[ \t]*(?i:subject)[ \t]*:([^\n]*(?:\n[\t ][^\n]*)*))(?=\n)",
    re.ASCII,
)
# What bytes.strip() strips; str.strip() would also take \x1c-\x1f.
_BLANK = " \t\n\r\x0b\x0c"


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
    flags: str  # the F line: "r" marks a DSN sendmail made (mailqueue/dsn.py)
    problems: tuple[str, ...]
    truncated: bool


def unreadable(problem: str) -> Digest:
    """The digest of a control file that could not be read, saying why."""
    return Digest("", (), "", "", "", None, None, 0, None, "", "", (problem,), False)


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
        flags=parsed.flags,
        problems=tuple(parsed.problems),
        truncated=parsed.truncated,
    )


def digest(data: bytes, *, queue_id: str = "", kind: str = "qf") -> Digest:
    """The digest of a control file's bytes; never raises, whatever the bytes."""
    text = data.decode("latin-1")
    if _FINISHED_FILE.fullmatch(text):
        quick = _digest_finished(_INDEXED_LINE.findall(text))
        if quick is not None:
            return quick
    return digest_of(parse_queue_file(data, queue_id=queue_id, kind=kind, only_headers=INDEXED_HEADERS))


def _field(value: str) -> str:
    """A field of the Latin-1 text as the full parser decodes its bytes (decode_text)."""
    return value if value.isascii() else decode_text(value.encode("latin-1"))


def _digest_finished(lines: list[tuple[str, str, str, str]]) -> Digest | None:
    # findall, not finditer: tuples cost half of what match objects do, and this runs per file.
    values = {}  # letter → value of its last line, as the full parser keeps
    recipients = []
    subject = None
    for letter, value, address, header_value in lines:
        if letter:
            values[letter] = value
        elif address:  # never empty in a finished file
            recipients.append(strip_angles(_field(address)))
        elif subject is None:
            subject = header_value
    sender = values.get("S")
    if sender is None:
        return None  # "no S line" is a problem only the full parser words
    created, last_attempt, attempts, priority = (values.get(letter) for letter in "TKNP")
    return Digest(
        sender=strip_angles(_field(sender)),
        recipients=tuple(recipients),
        subject=_field(subject.strip(_BLANK)) if subject else "",
        reason=_field(values.get("q", "")),
        status_message=_field(values.get("M", "")),
        created=None if created is None else int(created),
        last_attempt=int(last_attempt) or None if last_attempt is not None else None,
        attempts=int(attempts) if attempts is not None else 0,
        priority=None if priority is None else int(priority),
        data_dir=_field(values.get("d", "")),
        flags=_field(values.get("F", "")),
        problems=(),
        truncated=False,
    )
