"""Following a mail log through real logrotate runs: nothing read twice, nothing skipped."""

import subprocess
from pathlib import Path

import pytest

from tracking import follower
from tracking.follower import read_new


def append(log: Path, *lines: str, end: str = "\n") -> None:
    with open(log, "a") as handle:
        handle.write("\n".join(lines) + end)


def read_all(log: Path, checkpoint):
    lines = []
    for batch in read_new(log, checkpoint):
        lines += batch.lines
        checkpoint = batch.checkpoint
    return lines, checkpoint


def logrotate(log: Path, *directives: str) -> None:
    conf = log.parent / "logrotate.conf"
    conf.write_text(f"{log} {{\n  rotate 5\n  missingok\n  " + "\n  ".join(directives) + "\n}\n")
    subprocess.run(
        ["logrotate", "-f", "-s", str(log.parent / "logrotate.state"), str(conf)],
        check=True,
        capture_output=True,
        timeout=30,
    )


def numbered(prefix: str, count: int) -> list[str]:
    return [f"Dec  4 10:00:00 sm-mta[1]: {prefix} line {n}" for n in range(count)]


def test_a_growing_log_is_read_on_from_the_checkpoint_and_a_half_written_line_waits(tmp_path):
    log = tmp_path / "mail.log"
    append(log, *numbered("a", 3))
    lines, checkpoint = read_all(log, None)
    assert lines == numbered("a", 3)
    append(log, "half a li", end="")
    assert read_all(log, checkpoint) == ([], checkpoint)
    append(log, "ne", *numbered("b", 2))
    lines, checkpoint = read_all(log, checkpoint)
    assert lines == ["half a line", *numbered("b", 2)]
    assert checkpoint.offset == log.stat().st_size


@pytest.mark.parametrize(
    "directives",
    [("create",), ("create", "compress"), ("create", "compress", "delaycompress"), ("copytruncate",)],
    ids=["rename", "rename-gzip", "rename-delaycompress", "copytruncate"],
)
def test_lines_written_before_a_rotation_are_finished_from_the_old_file_then_the_new_one(tmp_path, directives):
    log = tmp_path / "mail.log"
    append(log, *numbered("a", 5))
    lines, checkpoint = read_all(log, None)
    append(log, *numbered("b", 4))  # written before the rotation, not yet read
    logrotate(log, *directives)
    append(log, *numbered("c", 3))
    assert read_all(log, checkpoint)[0] == numbered("b", 4) + numbered("c", 3)


def test_two_rotations_while_the_agent_was_down_lose_nothing(tmp_path):
    log = tmp_path / "mail.log"
    append(log, *numbered("a", 2))
    _, checkpoint = read_all(log, None)
    append(log, *numbered("b", 2))
    logrotate(log, "create", "compress")
    append(log, *numbered("c", 2))
    logrotate(log, "create", "compress")
    append(log, *numbered("d", 2))
    assert read_all(log, checkpoint)[0] == numbered("b", 2) + numbered("c", 2) + numbered("d", 2)


def test_the_first_run_imports_the_rotated_files_still_there_oldest_first(tmp_path):
    log = tmp_path / "mail.log"
    for prefix in ("a", "b", "c"):
        append(log, *numbered(prefix, 2))
        logrotate(log, "create", "compress", "delaycompress")
    append(log, *numbered("d", 2))
    assert sorted(p.name for p in tmp_path.glob("mail.log*")) == [
        "mail.log",
        "mail.log.1",
        "mail.log.2.gz",
        "mail.log.3.gz",
    ]
    lines, _ = read_all(log, None)
    assert lines == numbered("a", 2) + numbered("b", 2) + numbered("c", 2) + numbered("d", 2)


def test_a_reader_stopped_after_any_batch_resumes_without_reading_a_line_twice(tmp_path, monkeypatch):
    monkeypatch.setattr(follower, "BATCH_BYTES", 100)  # a batch of about two lines
    log = tmp_path / "mail.log"
    append(log, *numbered("a", 20))
    logrotate(log, "create", "compress")
    append(log, *numbered("b", 20))
    expected = numbered("a", 20) + numbered("b", 20)
    for stop_after in range(1, 20):
        seen, checkpoint = [], None
        for number, batch in enumerate(read_new(log, None)):
            seen += batch.lines
            checkpoint = batch.checkpoint
            if number + 1 == stop_after:
                break
        seen += read_all(log, checkpoint)[0]
        assert seen == expected, stop_after
    assert len(list(read_new(log, None))) > 10
