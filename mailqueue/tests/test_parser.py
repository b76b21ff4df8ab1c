"""The qf/hf parser against sendmail's own files: the lab samples, files from the live instance,
and every way a file can be cut short or garbled."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailqueue.parser import QueueFile, decode_text, parse_queue_file, split_file_name
from testing.spoolfiles import SAMPLE_FILES, SAMPLES, fuzz


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def test_a_deferred_multi_recipient_job():
    qf = parse_queue_file(sample("qf-deferred-multircpt.txt"), queue_id="6AOIEqMh025788")
    assert qf.problems == [] and not qf.truncated
    assert qf.version == 8 and qf.created == 1795544092 and qf.last_attempt == 1795544363
    assert qf.attempts == 2 and qf.priority == 270132
    assert qf.status_message == "Deferred: Connection refused by [127.0.0.1]"
    assert qf.sender == "<smtp@client.lab.test>" and qf.sender_address == "smtp@client.lab.test"
    assert [r.address for r in qf.recipients] == [f"<rcpt0-{i}@remote.example>" for i in (2, 1, 0)]
    assert all(r.flags == "PFD" and r.notify == "failure,delay" for r in qf.recipients)
    assert qf.recipients[0].final_recipient == "RFC822; rcpt0-2@remote.example"
    assert qf.recipients[0].domain == "remote.example"
    assert qf.macros == {"_": "localhost [127.0.0.1]", "r": "ESMTP", "s": "client.lab.test", "daemon_flags": ""}
    assert qf.state == "failing"
    assert qf.subject == "smtp test 0"
    received = qf.headers[1]
    assert received.name == "Received" and received.value.count("\n\t") == 2


def test_the_macro_byte_and_eight_bit_headers_are_read_as_bytes():
    qf = parse_queue_file(sample("qf-dsn-8bit.txt"))
    assert qf.headers[0].name == "Return-Path" and qf.headers[0].value == "<$g>"
    assert qf.headers[0].condition == "P"
    assert qf.subject == "dsn 8bit é"
    assert qf.body_type == "8BITMIME" and qf.flags == "8bdns" and qf.envelope_id == "env-123"
    assert [r.original_recipient for r in qf.recipients] == ["rfc822;orig-a@remote.example"] * 2
    assert qf.recipients[0].flags == "PNSFD" and qf.state == "queued"


def test_a_quarantined_job_carries_its_reason():
    qf = parse_queue_file(sample("hf-quarantined.txt"), kind="hf")
    assert qf.quarantine_reason == "spam suspect"
    assert qf.state == "quarantined" and qf.quarantined
    assert qf.auth == "lab@mx.lab.test" and qf.data_inode == "254/0/2195578"


def test_latin1_headers_do_not_break_decoding():
    assert decode_text(b"caf\xe9") == "café"
    assert decode_text(b"\x81{client_addr} x") == "${client_addr} x"
    assert decode_text(b"\xff\xfe") == "þ"


def test_meta_quoted_utf8_comes_back_whole():
    # sendmail stores header bytes 0x80-0x9f behind 0xFF: "Ü" (C3 9C) is C3 FF 9C on disk.
    assert decode_text(b"\xc3\xff\x9cn\xc3\xafcode \xe2\xff\x9c\xff\x93") == "Ünïcode ✓"
    assert decode_text(b"\xff\x81g") == "\x81g"


def test_unknown_lines_are_skipped_and_named():
    data = sample("qf-normal.txt").replace(b"N0\n", b"N0\nXfuture line\n")
    qf = parse_queue_file(data)
    assert qf.recipients and qf.sender
    assert qf.problems == ["unknown line type 'X' (skipped)"]


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=[p.name for p in SAMPLE_FILES])
def test_every_cut_of_a_real_file_is_reported_as_truncated(path):
    data = path.read_bytes()
    assert not parse_queue_file(data).truncated
    for end in range(len(data) - 1):  # the full file minus its last newline onwards
        qf = parse_queue_file(data[:end])
        assert isinstance(qf, QueueFile)
        assert qf.truncated, end


def test_fuzz_over_mutated_lab_samples():
    corpus = [p.read_bytes() for p in SAMPLE_FILES]
    assert fuzz(corpus, 20000, seed=6) > 0


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_any_bytes_parse_without_an_exception(data):
    qf = parse_queue_file(data)
    assert qf.truncated == (b"\n.\n" not in b"\n" + data)


line_letters = st.sampled_from(list("VTKNPMBF$qSAZdIQrRHC!.X\t") + ["R:", "RPFD:", "H?P?", "H??X:"])
qf_lines = st.lists(st.tuples(line_letters, st.binary(max_size=60).filter(lambda b: b"\n" not in b)), max_size=40)


@settings(max_examples=400, deadline=None)
@given(qf_lines, st.booleans())
def test_structured_files_keep_their_recipients_and_headers(lines, ended):
    body = b"".join(letter.encode() + rest + b"\n" for letter, rest in lines if letter != ".")
    data = b"V8\n" + body + (b".\n" if ended else b"")
    qf = parse_queue_file(data)
    assert qf.truncated is not ended
    assert len(qf.recipients) <= sum(1 for letter, _ in lines if letter.startswith("R"))
    assert all(r.address for r in qf.recipients)
    assert all(h.name for h in qf.headers)


def test_file_names():
    assert split_file_name("hf6AOIGq4n025795") == ("hf", "6AOIGq4n025795")
    assert split_file_name("qf6AOIGq4n025795") == ("qf", "6AOIGq4n025795")
    for name in ("df6AOIGq4n025795", "tf6AOIGq4n025795", "qf6AOI", "qf../../etc", "qf6AOIGq4n02579x"):
        assert split_file_name(name) is None
