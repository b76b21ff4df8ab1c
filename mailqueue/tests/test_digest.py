"""The index's quick digest against the full parser: the same facts for every input.

`digest` takes a shortcut for files sendmail finished writing and falls back to the full
parser for anything else; these tests feed both real files, every cut of them, mutations and
generated line soups, and compare.
"""

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailqueue.digest import _FINISHED_FILE, INDEXED_HEADERS, digest, digest_of
from mailqueue.parser import parse_queue_file
from testing.spoolfiles import SAMPLE_FILES, mutate

# sendmail folds a long To: with eight spaces, not a TAB (commaize), and writes it that way.
FOLDED_BY_SENDMAIL = (
    b"V8\nT1795557198\nK0\nN0\nP150215\nFbs\n$_root@localhost\nSsender9@lab.test\n"
    b"rRFC822; a@dom29.example\nRPFD:a@dom29.example\nRPFD:<b@dom29.example>\n"
    b"H?P?Return-Path: <\x81g>\n"
    b"H??Received: (from root@localhost)\n\tby vm.localdomain id 6AOLrIWE025230;\n\tTue, 24 Nov 2026 21:53:18 GMT\n"
    b"H??To: a@dom29.example, b@dom29.example,\n        c@dom29.example\n"
    b"H??Subject: fill 329\n"
    b".\n"
)


def full(data: bytes):
    return digest_of(parse_queue_file(data, only_headers=INDEXED_HEADERS))


def test_a_file_folded_by_sendmail_takes_the_shortcut_and_has_no_problems():
    assert _FINISHED_FILE.fullmatch(FOLDED_BY_SENDMAIL.decode("latin-1"))
    quick = digest(FOLDED_BY_SENDMAIL)
    assert quick == full(FOLDED_BY_SENDMAIL)
    assert quick.problems == () and not quick.truncated
    assert quick.recipients == ("a@dom29.example", "b@dom29.example")
    assert quick.sender == "sender9@lab.test" and quick.subject == "fill 329"
    to = parse_queue_file(FOLDED_BY_SENDMAIL).header("To")
    assert to.endswith("c@dom29.example"), to


def test_the_lab_samples_take_the_shortcut_or_agree():
    for path in SAMPLE_FILES:
        data = path.read_bytes()
        assert digest(data) == full(data), path.name


def test_every_cut_of_every_sample_agrees():
    for path in SAMPLE_FILES:
        data = path.read_bytes()
        for end in range(len(data) + 1):
            assert digest(data[:end]) == full(data[:end]), (path.name, end)


def test_first_subject_wins_even_when_empty_and_numbers_keep_their_sign():
    data = b"V8\nT-5\nK0\nN-1\nP7\nSx@y\nHSubject:\nH??subject : second\n.\n"
    assert digest(data) == full(data)
    assert digest(data).subject == "" and digest(data).created == -5 and digest(data).attempts == -1


def test_mutated_samples_agree():
    rnd = random.Random(11)
    corpus = [FOLDED_BY_SENDMAIL, *(path.read_bytes() for path in SAMPLE_FILES)]
    shortcut = 0
    for _ in range(20000):
        data = mutate(rnd.choice(corpus), rnd)
        assert digest(data) == full(data), data
        shortcut += bool(_FINISHED_FILE.fullmatch(data.decode("latin-1")))
    assert shortcut > 1000, "the mutations should leave many files in sendmail's own shape"


line_starts = st.sampled_from(
    [
        "T", "K", "N", "P", "M", "B", "F", "$", "q", "S", "A", "Z", "d", "I", "Q", "r", "C", "!", "X", "V", ".",
        "R", "R:", "RPFD:", "RZ:", "H", "H?P?", "H??", "H?x", "HSubject:", "H??Subject:", "H?M?SUBJECT :",
        "H ", "\t", " ", "",
    ]
)  # fmt: skip
line_rest = st.one_of(
    st.binary(max_size=30).filter(lambda b: b"\n" not in b),
    st.sampled_from([b"", b"0", b"-3", b"17", b" 4", b"<a@b>", b"a@b", b":", b"?", b"\x81g", b"\xff\x9c", b"x: y"]),
)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(line_starts, line_rest), max_size=30), st.booleans())
def test_generated_line_soups_agree(lines, ended):
    data = b"V8\n" + b"".join(start.encode() + rest + b"\n" for start, rest in lines) + (b".\n" if ended else b"")
    assert digest(data) == full(data)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_any_bytes_agree(data):
    assert digest(data) == full(data)


def test_ascii_files_and_the_same_files_with_other_bytes_agree_at_the_edges_of_fields():
    # The shortcut works on text: str.strip() would take \x1c-\x1f where bytes.strip() keeps them.
    for edge in (b"\x1c", b"\x1f", b"\x0b", b"\x0c", b"\r", b" ", b"\x00", b"\x7f"):
        data = (
            b"V8\nT1\nK0\nN0\nP1\nS<" + edge + b"a@b>" + edge + b"\nRPFD:" + edge + b"<c@d>\n"
            b"H??Subject: " + edge + b"hi" + edge + b"\nqwhy" + edge + b"\n.\n"
        )
        for variant in (data, data.replace(b"\nqwhy", b"\nM\xe9t\xe9\nqwhy")):
            assert digest(variant) == full(variant), variant


ascii_rest = st.text(st.characters(max_codepoint=127, blacklist_characters="\n"), max_size=30).map(str.encode)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(line_starts, st.one_of(ascii_rest, line_rest)), max_size=30))
def test_generated_ascii_soups_agree(lines):
    data = b"V8\n" + b"".join(start.encode() + rest + b"\n" for start, rest in lines) + b".\n"
    assert digest(data) == full(data)


def test_a_file_cut_after_an_h_dot_line_is_not_taken_for_finished():
    """Python before 3.11.5 (Debian 12's 3.11.2) mismatched possessive groups (gh-106052) and took
    this file for a finished one; the digest must agree with the full parser on every Python."""
    data = b"V8\nT1795544092\nK1795544363\nN2\nMDeferred: Connection refused\nH??From: a@b.example\nH.\n"
    assert digest(data) == full(data)
    assert digest(data).truncated
