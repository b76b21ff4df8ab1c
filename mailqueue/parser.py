"""sendmail queue control files (qf, hf, Qf) read into plain values, from bytes, never raising.

The format is the one in the Sendmail Installation and Operation Guide, appendix "Queue File
Formats" (Debian's sendmail-doc, op.txt), version 8 for 8.13 and later: one line per item,
each starting with a code letter, continuation lines starting with a TAB, and a line holding
a single "." at the end. A file without that last line is being written or was cut short;
the parser says so in `truncated` instead of failing. Unknown code letters are kept as
problems and skipped, because newer sendmails add letters.

The files are bytes: sendmail stores macro references as 0x81 followed by the macro name
(`<\\x81g>` is `$g`), quotes header bytes 0x80-0x9f with 0xFF, and keeps other 8-bit bytes
raw, so text is decoded per field, never the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.header import decode_header, make_header

MACRO_BYTE = 0x81
# Bytes 0x80-0x9f are sendmail's internal meta characters; a header byte in that range (the
# second byte of many UTF-8 characters: "Ü" is C3 9C) is stored quoted with 0xFF before it.
META_QUOTE = 0xFF
META_SEQUENCE = re.compile(rb"\xff([\x80-\xff])|\x81(\{[^}\s]{1,64}\}|.)", re.S)
END_LINE = b"."
# sendmail reads a line starting with a TAB or a space as the continuation of the one before
# (fgetfolded); it writes header continuations both ways (commaize folds with spaces).
FOLDING = (b"\t", b" ")
# Recipient flags before the colon of an R line (queue.c): notify on Success/Failure/Delay,
# Never, Primary address, Alias, and the internal ones later versions add.
RECIPIENT_FLAG_LETTERS = frozenset("SFDNPABX")
QUEUE_ID_PATTERN = re.compile(r"[0-9A-Za-z]{8}[0-9]{5,10}")
KINDS = {"qf": "queued", "hf": "quarantined", "Qf": "lost"}


def _unmeta(match: re.Match) -> bytes:
    quoted, macro = match.group(1), match.group(2)
    return quoted if quoted is not None else b"$" + macro


def decode_text(raw: bytes) -> str:
    """Bytes of one field as text: meta quoting undone, macro references as `$x`/`${name}`,
    UTF-8 if valid, else Latin-1."""
    if MACRO_BYTE in raw or META_QUOTE in raw:
        raw = META_SEQUENCE.sub(_unmeta, raw)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


@dataclass
class Recipient:
    address: str
    flags: str = ""
    final_recipient: str = ""
    original_recipient: str = ""
    controlling_user: str = ""

    @property
    def domain(self) -> str:
        return address_domain(self.address)

    @property
    def notify(self) -> str:
        """The DSN notifications this recipient asked for, in RFC 3461 words."""
        if "N" in self.flags and not set("SFD") & set(self.flags):
            return "never"
        words = [word for letter, word in (("S", "success"), ("F", "failure"), ("D", "delay")) if letter in self.flags]
        return ",".join(words)


@dataclass
class Header:
    name: str
    value: str
    condition: str = ""


@dataclass
class QueueFile:
    """What one control file says; times are Unix seconds as sendmail wrote them (None when absent)."""

    queue_id: str = ""
    kind: str = "qf"
    version: int | None = None
    created: int | None = None
    last_attempt: int | None = None
    attempts: int = 0
    priority: int | None = None
    status_message: str = ""
    body_type: str = ""
    flags: str = ""
    macros: dict[str, str] = field(default_factory=dict)
    quarantine_reason: str = ""
    sender: str = ""
    auth: str = ""
    envelope_id: str = ""
    data_dir: str = ""
    data_inode: str = ""
    deliver_by: str = ""
    recipients: list[Recipient] = field(default_factory=list)
    headers: list[Header] = field(default_factory=list)
    truncated: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def quarantined(self) -> bool:
        return self.kind == "hf"

    @property
    def state(self) -> str:
        return state_of(self.kind, self.attempts)

    def header(self, name: str) -> str:
        wanted = name.lower()
        return next((h.value for h in self.headers if h.name.lower() == wanted), "")

    @property
    def subject(self) -> str:
        return self.header("Subject")

    @property
    def sender_address(self) -> str:
        return strip_angles(self.sender)


def state_of(kind: str, attempts: int) -> str:
    """A job's state: its file kind, and for a qf whether a delivery was tried."""
    if kind != "qf":
        return KINDS.get(kind, "lost")
    return "failing" if attempts > 0 else "queued"


def strip_angles(address: str) -> str:
    address = address.strip()
    if address.startswith("<") and address.endswith(">"):
        return address[1:-1]
    return address


def address_domain(address: str) -> str:
    bare = strip_angles(address)
    return bare.rpartition("@")[2].lower() if "@" in bare else ""


# Longest domain name a DNS name can be; a longer "domain" in a control file is damage, not an address.
DOMAIN_MAX = 255


def recipient_domains(addresses) -> dict[str, bool]:
    """The domains a message is addressed to: each recipient's own (True) and their parents (False).

    Parents make `alpha.example` find mail to `mx.alpha.example` with one equality; a top-level
    name alone ("example") is no parent worth a row, nor is anything in an address literal.
    """
    found: dict[str, bool] = {}
    for address in addresses:
        domain = address_domain(address).rstrip(".")
        if domain and len(domain) <= DOMAIN_MAX:
            found[domain] = True
    for domain in [name for name in found if not name.startswith("[")]:
        labels = domain.split(".")
        for start in range(1, len(labels) - 1):
            found.setdefault(".".join(labels[start:]), False)
    return found


def decode_encoded_words(text: str) -> str:
    """A header value with its RFC 2047 encoded words (=?charset?B|Q?...?=) decoded, for display.

    Never raises: a malformed word, an unknown charset or bytes that are no text leave the
    value as it was. Control characters a decoded word may carry become spaces.
    """
    if "=?" not in text:
        return text
    try:
        decoded = str(make_header(decode_header(text)))
    except Exception:  # the email package raises many kinds (HeaderParseError, LookupError, UnicodeError, ...)
        return text
    return "".join(ch if ch.isprintable() else " " for ch in decoded)


def _number(raw: bytes, letter: str, problems: list[str]) -> int | None:
    text = raw.strip()
    if text.isdigit() or (text[:1] == b"-" and text[1:].isdigit()):
        return int(text)
    problems.append(f"{letter} line is not a number: {decode_text(text)[:40]!r}")
    return None


def _logical_lines(data: bytes) -> tuple[list[bytes], bool]:
    """Join TAB continuation lines to their item; say whether the final "." line was there."""
    physical = data.split(b"\n")
    # A trailing newline leaves one empty element; a missing one means the last line was cut.
    cut_mid_line = physical[-1] != b""
    if not cut_mid_line:
        physical.pop()
    items: list[bytes] = []
    ended = False
    for index, line in enumerate(physical):
        if line == END_LINE and not (cut_mid_line and index == len(physical) - 1):
            ended = True
            break
        if line[:1] in FOLDING and items:
            items[-1] += b"\n" + line
        else:
            items.append(line)
    return items, ended


def _parse_recipient(raw: bytes, pending: Recipient, qf: QueueFile) -> None:
    flags, colon, address = raw.partition(b":")
    if colon and set(flags.decode("latin-1")) <= RECIPIENT_FLAG_LETTERS:
        pending.flags = flags.decode("latin-1")
        pending.address = decode_text(address)
    else:
        # Version 0 files have no flag list; an address may itself contain a colon.
        pending.address = decode_text(raw)
    if not pending.address:
        qf.problems.append("R line without an address")
        return
    qf.recipients.append(pending)


def _parse_header(raw: bytes, qf: QueueFile, wanted: frozenset[bytes] | None) -> None:
    condition = ""
    if raw.startswith(b"?"):
        end = raw.find(b"?", 1)
        if end == -1:
            qf.problems.append("H line with an unterminated ?condition?")
            return
        condition = decode_text(raw[1:end])
        raw = raw[end + 1 :]
    name, colon, value = raw.partition(b":")
    if not colon or not name.strip():
        qf.problems.append(f"H line without a header name: {decode_text(raw)[:40]!r}")
        return
    if wanted is not None and name.strip().lower() not in wanted:
        return
    qf.headers.append(Header(name=decode_text(name.strip()), value=decode_text(value.strip()), condition=condition))


def parse_queue_file(
    data: bytes, *, queue_id: str = "", kind: str = "qf", only_headers: frozenset[bytes] | None = None
) -> QueueFile:
    """Read a control file's bytes. Anything odd lands in `problems`; nothing raises for any input.

    `only_headers` (lower-case names) keeps just those headers: the index needs the Subject
    only, and decoding the others is most of the parsing time.
    """
    qf = QueueFile(queue_id=queue_id, kind=kind)
    items, ended = _logical_lines(data)
    qf.truncated = not ended
    if qf.truncated:
        qf.problems.append("the file ends without its final '.' line (cut short or still being written)")
    pending = Recipient(address="")
    for number, item in enumerate(items, start=1):
        if not item:
            qf.problems.append(f"line {number} is empty")
            continue
        letter, rest = chr(item[0]), item[1:]
        if letter == "V":
            qf.version = _number(rest, letter, qf.problems)
            if number != 1:
                qf.problems.append("V line is not the first line")
        elif letter == "T":
            qf.created = _number(rest, letter, qf.problems)
        elif letter == "K":
            qf.last_attempt = _number(rest, letter, qf.problems) or None
        elif letter == "N":
            qf.attempts = _number(rest, letter, qf.problems) or 0
        elif letter == "P":
            qf.priority = _number(rest, letter, qf.problems)
        elif letter == "M":
            qf.status_message = decode_text(rest)
        elif letter == "B":
            qf.body_type = decode_text(rest)
        elif letter == "F":
            qf.flags = decode_text(rest)
        elif letter == "$":
            name, value = _macro(rest)
            qf.macros[name] = value
        elif letter == "q":
            qf.quarantine_reason = decode_text(rest)
        elif letter == "S":
            qf.sender = decode_text(rest)
        elif letter == "A":
            qf.auth = decode_text(rest)
        elif letter == "Z":
            qf.envelope_id = decode_text(rest)
        elif letter == "d":
            qf.data_dir = decode_text(rest)
        elif letter == "I":
            qf.data_inode = decode_text(rest)
        elif letter == "!":
            qf.deliver_by = decode_text(rest)
        elif letter == "Q":
            pending.original_recipient = decode_text(rest)
        elif letter == "r":
            pending.final_recipient = decode_text(rest)
        elif letter == "C":
            pending.controlling_user = decode_text(rest)
        elif letter == "R":
            _parse_recipient(rest, pending, qf)
            pending = Recipient(address="", controlling_user=pending.controlling_user)
        elif letter == "H":
            _parse_header(rest, qf, only_headers)
        else:
            qf.problems.append(f"unknown line type {letter!r} (skipped)")
    if qf.version is None and items:
        qf.problems.append("no V (version) line")
    if not qf.sender and not qf.truncated:
        qf.problems.append("no S (sender) line")
    return qf


def _macro(rest: bytes) -> tuple[str, str]:
    if rest.startswith(b"{"):
        end = rest.find(b"}")
        if end != -1:
            return decode_text(rest[1:end]), decode_text(rest[end + 1 :])
    return decode_text(rest[:1]), decode_text(rest[1:])


def is_job_file(name: str) -> bool:
    """Whether sendmail would give a job's control file this name: qf, hf or Qf and a queue id."""
    return name[:2] in KINDS and QUEUE_ID_PATTERN.fullmatch(name, 2) is not None


def split_file_name(name: str) -> tuple[str, str] | None:
    """('qf', id) for a control file name sendmail would use; None for anything else."""
    return (name[:2], name[2:]) if is_job_file(name) else None
