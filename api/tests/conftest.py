"""The API tests' fixtures: a host row with no MTA behind it, and real messages in the session's spool."""

from __future__ import annotations

import pytest

from testing.api import remote_server


@pytest.fixture
def remote(db):
    return remote_server("remote")


@pytest.fixture
def submit(mta_server):
    """Real messages in the session's spool; every file that appeared during the test is removed after it
    (as mailqueue/tests/conftest.py does for the queue tests)."""
    import os
    import time

    from testing.queue import Submitter, spool_names

    queue_dir = mta_server.queue_dir
    before = spool_names(queue_dir)
    yield Submitter(mta_server)
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
