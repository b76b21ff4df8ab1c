"""sendmail's log lines read into plain values: pure, from text, never raising.

A line is syslog's header (a timestamp, maybe a host name, the program's tag and pid) and
sendmail's message, which for a message's life starts with its queue id (`NOQUEUE` before it has
one). The messages a trace is built from are lists of `key=value` pairs joined by ", ":

    from=<a@x>, size=132, class=0, nrcpts=3, msgid=<…>, proto=ESMTP, daemon=MTA, relay=h [1.2.3.4]
    to=<b@y>,<c@y>, ctladdr=<a@x> (0/0), delay=00:00:01, xdelay=…, mailer=esmtp, pri=…, relay=…,
        dsn=4.4.1, stat=Deferred: Connection refused by [127.0.0.2]
    ruleset=check_rcpt, arg1=<b@y>, relay=h [1.2.3.4], reject=550 5.7.1 <b@y>... Relaying denied

A value runs to the next ", key=": a `to=` list keeps its commas, and a relay keeps its spaces.
`stat=`, `reject=` and a `quarantine=` reason are the rest of the line whatever they contain (a
reason is typed by a person). The other shapes (DSN links, STARTTLS, AUTH, Milter, SYSERR,
lost input channel) are recognised by their first words. A line the parser does not understand
is still returned, kind "other" (a sendmail message) or "unparsed" (not syslog at all), with its
text: ingest keeps it raw, never drops it.

Timestamps: traditional syslog ("Nov 24 18:25:35", no year: the caller says which year a file
belongs to) and RFC 3339 ("2026-11-24T18:25:35.123456+00:00", rsyslog's high-precision format).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo

KINDS = frozenset(
    "from to quarantine unquarantine dsn reject starttls auth milter lost_input syserr other unparsed".split()
)
MONTHS = {name: number for number, name in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}

# <PRI> (a raw datagram), then the timestamp, an optional host name, and `tag[pid]:`. The host is
# optional because the console's own sink (mailadmin.mta.logsink) writes none.
HEADER = re.compile(
    r"(?:<\d{1,3}>)?"
    r"(?:(?P<month>[A-Z][a-z]{2}) {1,2}(?P<day>\d{1,2}) (?P<clock>\d\d:\d\d:\d\d)"
    r"|(?P<iso>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:?\d\d)?)) "
    r"(?:(?P<host>[^\s\[\]:]+) (?=[^\s\[\]:]+(?:\[\d+\])?: ))?"
    r"(?P<tag>[^\s\[\]:]+)(?:\[(?P<pid>\d+)\])?: "
)
QUEUE_ID = re.compile(r"([0-9A-Za-z]{8}[0-9]{5,10}|NOQUEUE): ")
# ", key=" where a new field starts; a key is lower case letters, digits, '_' and '-'.
FIELD_START = re.compile(r"(?:^|, )([a-z][a-z0-9_-]{0,30})=")
# Fields whose value is the rest of the line, whatever it holds.
LINE_ENDING_KEYS = ("stat", "reject", "quarantine")
STARTTLS = re.compile(r"STARTTLS=(client|server)(?:, |: |$)")
AUTH = re.compile(r"AUTH=(client|server)(?:, |: |$)")
MILTER = re.compile(r"Milter(?: \(([^)]*)\))?(?: [a-z]+)?: ")
LOST_INPUT = re.compile(r"lost input channel from (?P<relay>.+?) to (?P<daemon>\S+) after (?P<command>\S+)")
SYSERR = re.compile(r"SYSERR\((?P<user>[^)]*)\): ")
DSN_LINK = re.compile(r"(?P<new>[0-9A-Za-z]{8}[0-9]{5,10}): DSN: (?P<text>.*)")
RELAY_ADDRESS = re.compile(r"\[(?:IPv6:)?([0-9A-Fa-f.:]+)\]")


@dataclass(frozen=True)
class LogLine:
    """One line of the mail log. `kind` is what the message is about:

    from, to, quarantine, unquarantine, dsn, reject, starttls, auth, milter, lost_input, syserr,
    other (a line of the program with none of those shapes), unparsed (no syslog header)."""

    kind: str
    raw: str
    tag: str = ""
    pid: int | None = None
    host: str = ""
    queue_id: str = ""
    text: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    month: int = 0
    day: int = 0
    clock: str = ""
    iso: str = ""

    def timestamp(self, year: int, zone: tzinfo = UTC) -> datetime | None:
        """When the line was written; a traditional timestamp needs the year (see year_for)."""
        if self.iso:
            try:
                stamp = datetime.fromisoformat(self.iso.replace("Z", "+00:00"))
            except ValueError:
                return None
            return stamp if stamp.tzinfo else stamp.replace(tzinfo=zone)
        if not self.month:
            return None
        try:
            hour, minute, second = (int(part) for part in self.clock.split(":"))
            return datetime(year, self.month, self.day, hour, minute, second, tzinfo=zone)
        except ValueError:
            return None

    @property
    def recipients(self) -> list[str]:
        """A `to=` line's recipients (one line may name several, joined by commas)."""
        return split_addresses(self.fields.get("to", ""))

    @property
    def client_address(self) -> str:
        """The IP address in the relay= field, if there is one ("host [1.2.3.4] (may be forged)")."""
        found = RELAY_ADDRESS.search(self.fields.get("relay", ""))
        return found.group(1) if found else ""


def year_for(month: int, reference: datetime) -> int:
    """The year of a traditional timestamp's month, for a line written no later than `reference`
    (a file's modification time): a December line read in January belongs to the year before."""
    return reference.year - 1 if month > reference.month else reference.year


def split_addresses(value: str) -> list[str]:
    """`<a@x>,<b@y>` or `a@x,b@y` → the addresses, commas inside quotes or <> kept."""
    addresses, depth, quoted, start = [], 0, False, 0
    for position, char in enumerate(value):
        if char == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif char == "<":
            depth += 1
        elif char == ">":
            depth = max(depth - 1, 0)
        elif char == "," and depth == 0:
            addresses.append(value[start:position].strip())
            start = position + 1
    addresses.append(value[start:].strip())
    return [address for address in addresses if address]


def bare_address(address: str) -> str:
    """`<Bob@Example.ORG>` → `bob@example.org`: what searches compare."""
    address = address.strip()
    if "<" in address and ">" in address:
        address = address[address.index("<") + 1 : address.rindex(">")]
    return address.strip().lower()


def parse_fields(text: str) -> dict[str, str]:
    """`key=value, key=value` → a dict; a LINE_ENDING_KEYS value takes the rest of the line."""
    fields: dict[str, str] = {}
    starts = list(FIELD_START.finditer(text))
    for number, start in enumerate(starts):
        key = start.group(1)
        if key in LINE_ENDING_KEYS:
            fields.setdefault(key, text[start.end() :])
            break
        end = starts[number + 1].start() if number + 1 < len(starts) else len(text)
        fields.setdefault(key, text[start.end() : end])
    return fields


def parse_line(raw: str) -> LogLine:
    line = raw.rstrip("\n")
    header = HEADER.match(line)
    if header is None:
        return LogLine(kind="unparsed", raw=line, text=line)
    when = {
        "month": MONTHS.get(header["month"] or "", 0),
        "day": int(header["day"] or 0),
        "clock": header["clock"] or "",
        "iso": header["iso"] or "",
    }
    base = {"raw": line, "tag": header["tag"], "pid": int(header["pid"]) if header["pid"] else None}
    base["host"] = header["host"] or ""
    message = line[header.end() :]
    queue = QUEUE_ID.match(message)
    queue_id = ""
    if queue:
        queue_id = "" if queue.group(1) == "NOQUEUE" else queue.group(1)
        message = message[queue.end() :]
    kind, fields = classify(message)
    return LogLine(kind=kind, queue_id=queue_id, text=message, fields=fields, **base, **when)


def classify(message: str) -> tuple[str, dict[str, str]]:
    """What a message (after its queue id) is about, and its fields."""
    head = message[:12]
    if head.startswith("from="):
        return "from", parse_fields(message)
    if head.startswith("to="):
        return "to", parse_fields(message)
    if head.startswith("quarantine="):
        return "quarantine", {"quarantine": message[len("quarantine=") :]}
    if message == "unquarantine" or head.startswith("unquarantine"):
        return "unquarantine", {}
    if head.startswith(("ruleset=", "arg1=", "milter=")) or ", reject=" in message:
        fields = parse_fields(message)
        if "reject" in fields:
            return "reject", fields
    if head.startswith("STARTTLS"):
        found = STARTTLS.match(message)
        if found:
            fields = parse_fields(message[found.end() :]) if message[found.end() - 2 : found.end()] == ", " else {}
            fields["side"] = found.group(1)
            if message[found.end() - 2 : found.end()] == ": ":
                fields["error"] = message[found.end() :]
            return "starttls", fields
        return "starttls", {"error": message.partition(": ")[2]}
    if head.startswith("AUTH"):
        found = AUTH.match(message)
        if found:
            fields = parse_fields(message[found.end() :])
            fields["side"] = found.group(1)
            return "auth", fields
        return "auth", {}
    if head.startswith("Milter"):
        found = MILTER.match(message)
        return "milter", {"milter": found.group(1) or ""} if found else {}
    if head.startswith("lost input"):
        found = LOST_INPUT.match(message)
        return "lost_input", found.groupdict() if found else {}
    if head.startswith("SYSERR"):
        found = SYSERR.match(message)
        return "syserr", {"user": found["user"], "error": message[found.end() :]} if found else {}
    dsn = DSN_LINK.match(message)
    if dsn:
        return "dsn", {"new_queue_id": dsn["new"], "text": dsn["text"]}
    return "other", {}
