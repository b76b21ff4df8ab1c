"""Forked readers: every batch comes back once, a failure reaches the parent, no child is left."""

import os
from functools import partial
from pathlib import Path

import pytest

from mailqueue.fanout import ChildFailed, fanout


def doubled(part, seen: Path | None = None):
    if seen is not None:
        (seen / str(os.getpid())).touch()
    return [(value, value * 2, os.getpid()) for value in part]


def assert_reaped(seen: Path) -> None:
    pids = [int(path.name) for path in seen.iterdir()]
    assert pids
    for pid in pids:
        with pytest.raises(ChildProcessError):  # waited for already: neither running nor a zombie
            os.waitpid(pid, os.WNOHANG)


def test_every_batch_comes_back_once_from_several_children(tmp_path):
    results = [row for batch in fanout(partial(doubled, seen=tmp_path), list(range(2345)), children=3, batch=100)
               for row in batch]  # fmt: skip
    assert sorted(value for value, _, _ in results) == list(range(2345))
    assert all(twice == value * 2 for value, twice, _ in results)
    workers = {pid for _, _, pid in results}
    assert len(workers) == 3 and os.getpid() not in workers
    assert_reaped(tmp_path)


def test_one_child_or_one_batch_runs_in_this_process():
    assert [row[2] for batch in fanout(doubled, [1, 2, 3], children=4) for row in batch] == [os.getpid()] * 3
    assert list(fanout(doubled, [], children=2)) == []


def test_a_child_that_raises_is_reported_and_every_child_is_reaped(tmp_path):
    def failing(part):
        (tmp_path / str(os.getpid())).touch()
        if 500 in part:
            raise ValueError("bad batch")
        return list(part)

    with pytest.raises(ChildFailed, match="ValueError: bad batch"):
        for _ in fanout(failing, list(range(1000)), children=2, batch=100):
            pass
    assert_reaped(tmp_path)


def test_a_consumer_that_stops_early_kills_the_children(tmp_path):
    batches = fanout(partial(doubled, seen=tmp_path), list(range(100000)), children=2, batch=10)
    next(batches)
    batches.close()
    assert_reaped(tmp_path)
