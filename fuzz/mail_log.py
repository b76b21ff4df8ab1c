"""Any bytes as lines of the mail log: each comes back as a LogLine with its raw text, never an exception.

The tracker reads logs other programs share, cut-off lines after a crash, and whatever a client made
sendmail log (an address, a HELO name, a quarantine reason a person typed); one bad line must not stop
the ingest of all the others, and a line is never dropped.
"""

from tracking.parser import KINDS, LogLine, bare_address, parse_line


def check(data: bytes) -> None:
    for raw in data.decode("utf-8", "replace").split("\n"):
        line = parse_line(raw)
        assert isinstance(line, LogLine)
        assert line.raw == raw.rstrip("\n") and line.kind in KINDS
        assert line.kind == "unparsed" or line.tag
        line.timestamp(2026)
        for address in line.recipients:
            assert address and isinstance(bare_address(address), str)
        assert isinstance(line.client_address, str)
        for key in ("stat", "reject", "quarantine"):
            assert key not in line.fields or line.fields[key] in line.raw
