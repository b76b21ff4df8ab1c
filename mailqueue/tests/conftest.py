"""Fixtures for the queue tests: real messages submitted to the session's sendmail instance.

The instance is shared with every other test, so each fixture leaves the queue directory
as it found it: every file that appeared while the test ran is removed afterwards.
"""

from __future__ import annotations

import os
import time

import pytest

from testing.queue import Submitter, spool_names


@pytest.fixture
def submit(mta_server):
    """Submit real messages; everything that appears in the spool during the test is removed after it."""
    queue_dir = mta_server.queue_dir
    before = spool_names(queue_dir)
    yield Submitter(mta_server)
    # A queue run may still be rewriting a job (tf → qf): sweep again until a sweep finds nothing.
    deadline = time.monotonic() + 10
    while True:
        left = spool_names(queue_dir) - before
        for name in left:
            try:
                os.unlink(os.path.join(queue_dir, name))
            except (FileNotFoundError, IsADirectoryError):
                pass
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not spool_names(queue_dir) - before, "files keep appearing in the shared spool after the test"
