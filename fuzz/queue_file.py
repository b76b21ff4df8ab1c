"""Any bytes as a queue control file: a QueueFile comes back, and what the index reads from it, never an exception.

What the pages derive from it never raises either: encoded words decoded (RFC 2047) into text without
control characters, the recipients' domains, and a DSN's original queue id read from the same bytes as a body.

The index's quick digest (mailqueue/digest.py) must say exactly what the full parser says.

Control files are read while sendmail still writes them, after a crash cut them short, and as whatever
else lands in the spool; one bad file must not stop the index of all the others.
"""

from mailqueue import dsn
from mailqueue.digest import INDEXED_HEADERS, digest, digest_of
from mailqueue.parser import KINDS, QueueFile, decode_encoded_words, parse_queue_file, recipient_domains

STATES = {"queued", "failing", *KINDS.values()}
# The index keeps only the headers it shows (only_headers); the detail page and the actions keep them all.
HEADER_CHOICES = (None, frozenset({b"subject"}))


def check(data: bytes) -> None:
    ended = b"\n.\n" in b"\n" + data
    for kind, only_headers in zip(("qf", "hf"), HEADER_CHOICES, strict=True):
        queue_file = parse_queue_file(data, kind=kind, only_headers=only_headers)
        assert isinstance(queue_file, QueueFile)
        assert queue_file.truncated is not ended
        assert queue_file.state in STATES
        assert isinstance(queue_file.subject, str) and isinstance(queue_file.sender_address, str)
        assert all(recipient.address for recipient in queue_file.recipients)
        assert all(isinstance(recipient.domain + recipient.notify, str) for recipient in queue_file.recipients)
        assert all(header.name for header in queue_file.headers)
        assert digest(data, kind=kind) == digest_of(parse_queue_file(data, kind=kind, only_headers=INDEXED_HEADERS))
        for header in queue_file.headers:
            decoded = decode_encoded_words(header.value)
            assert decoded == header.value or all(ch.isprintable() for ch in decoded)
        domains = recipient_domains(recipient.address for recipient in queue_file.recipients)
        assert all(domain and len(domain) <= 255 for domain in domains)
        assert isinstance(dsn.is_dsn(queue_file.sender_address, queue_file.flags), bool)
    original = dsn.original_queue_id(data)
    assert original == "" or 13 <= len(original) <= 18
