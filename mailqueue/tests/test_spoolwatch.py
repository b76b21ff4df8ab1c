"""The kernel's report of changed control-file names (inotify), on real directories."""

import os

from mailqueue import spoolwatch
from mailqueue.spoolwatch import SpoolWatch


def test_names_created_renamed_written_and_removed_are_reported_once(tmp_path):
    (tmp_path / "qfAAAAAAAA000001").write_bytes(b"V8\n")
    (tmp_path / "qfAAAAAAAA000002").write_bytes(b"V8\n")
    watch = SpoolWatch({"queue": str(tmp_path)})
    assert watch.changes() == {"queue": set()}

    os.rename(tmp_path / "qfAAAAAAAA000001", tmp_path / "hfAAAAAAAA000001")
    (tmp_path / "qfAAAAAAAA000002").unlink()
    (tmp_path / "qfAAAAAAAA000003").write_bytes(b"V8\n")
    (tmp_path / "dfAAAAAAAA000003").write_bytes(b"body")  # data, temporary and transcript files
    (tmp_path / "tfAAAAAAAA000003").write_bytes(b"V8\n")  # are not reported
    (tmp_path / "sub").mkdir()

    assert watch.changes() == {
        "queue": {"qfAAAAAAAA000001", "hfAAAAAAAA000001", "qfAAAAAAAA000002", "qfAAAAAAAA000003"}
    }
    assert watch.changes() == {"queue": set()}
    watch.close()


def test_a_forked_child_gets_nothing_and_takes_nothing_from_its_parent(tmp_path):
    watch = SpoolWatch({"queue": str(tmp_path)})
    (tmp_path / "qfAAAAAAAA000001").write_bytes(b"V8\n")
    pid = os.fork()
    if pid == 0:
        os._exit(0 if watch.changes() is None and not watch.covers(["queue"]) else 1)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0

    assert watch.covers(["queue"]) and not watch.covers(["queue", "other"])
    assert watch.changes() == {"queue": {"qfAAAAAAAA000001"}}
    watch.close()


def test_a_replaced_directory_or_too_many_names_lose_track_for_good(tmp_path, monkeypatch):
    queue = tmp_path / "queue"
    queue.mkdir()
    watch = SpoolWatch({"queue": str(queue)})
    queue.rmdir()
    queue.mkdir()  # same path, another directory
    assert watch.changes() is None
    (queue / "qfAAAAAAAA000001").write_bytes(b"V8\n")
    assert watch.changes() is None
    watch.close()

    monkeypatch.setattr(spoolwatch, "MOST_NAMES", 3)
    watch = SpoolWatch({"queue": str(queue)})
    for number in range(5):
        (queue / f"qfAAAAAAAA00000{number}").write_bytes(b"V8\n")
    assert watch.changes() is None
    watch.close()


def test_arming_on_a_missing_directory_fails_and_leaves_no_descriptor(tmp_path):
    before = len(os.listdir("/proc/self/fd"))
    try:
        SpoolWatch({"queue": str(tmp_path / "missing")})
    except OSError as exc:
        assert exc.errno == 2
    else:
        raise AssertionError("armed on a missing directory")
    assert len(os.listdir("/proc/self/fd")) == before
