"""Shared fixtures: the real parts every test suite runs against.

- a throw-away sendmail instance (own directory under var/test-instances, own port, never
  /etc/mail, never port 25), built with Debian's cf tree and running as a real daemon;
- a throw-away Redis on its own port and directory;
- a real Celery worker process consuming that Redis and the test database.

Test helpers may start processes; product code may not (only mailadmin.mta.gateway does).
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import time
from pathlib import Path

import pytest

from testing.instances import agent_config_path, instance_row, start_instance, stop_instance
from testing.processes import FAULT_SEED, RedisProcess, WorkerProcess
from testing.queue import Submitter, spool_names
from testing.users import make_user

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop


def pytest_report_header(config):
    return f"fault tests and Atheris runs: MAILADMIN_FAULT_SEED={FAULT_SEED}"


@pytest.fixture
def fault_random(request) -> random.Random:
    """The random source of one test, derived from the session seed and the test's id."""
    return random.Random(f"{FAULT_SEED}:{request.node.nodeid}")


@pytest.fixture(scope="session")
def test_run_dir():
    from django.conf import settings

    path = Path(settings.VAR_DIR) / "test-run" / secrets.token_hex(4)
    path.mkdir(parents=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def mta_instance(django_db_setup, django_db_blocker):
    """A real sendmail daemon shared by the whole session."""
    with django_db_blocker.unblock():
        fields = start_instance()
    yield fields
    with django_db_blocker.unblock():
        stop_instance(fields)


@pytest.fixture(scope="module")
def private_instance(django_db_setup, django_db_blocker):
    """A sendmail daemon of the test module's own: its limits and certificates reach no other module."""
    with django_db_blocker.unblock():
        fields = start_instance()
    yield fields
    with django_db_blocker.unblock():
        stop_instance(fields)


@pytest.fixture
def private_console(db, private_instance, administrator, client):
    """The module's own instance imported into rows, and an administrator's logged-in client."""
    from mailadmin import config

    server = instance_row(private_instance)
    config.import_mc(server, Path(server.mc_path).read_text())
    config.import_access(server, Path(server.access_path).read_text())
    client.force_login(administrator)
    return server, client


@pytest.fixture
def mta_server(db, mta_instance):
    """The session's instance as a MailServer row, with its daemon answering.

    Asking for `db` here (not lazily) is what makes pytest-django create the test database
    for tests that only use this fixture; without it they would write to the dev database.
    """
    return instance_row(mta_instance)


@pytest.fixture
def instance_files(mta_server):
    """The shared instance, left as we found it: cf, access map, and a daemon running on them."""
    from mailadmin.mta import cfbuild, daemon
    from mailadmin.mta.files import write_atomically
    from mailadmin.mta.gateway import Mta

    paths = [Path(mta_server.cf_path), Path(mta_server.access_path), Path(mta_server.access_path + ".db")]
    saved = {p: p.read_bytes() for p in paths}
    yield mta_server
    for path, data in saved.items():
        write_atomically(path, data, mode=0o640 if path.suffix == ".db" else 0o644)
    for leftover in cfbuild.previous_paths(mta_server):
        leftover.unlink(missing_ok=True)
    mta = Mta(mta_server)
    daemon.stop(mta_server, mta)
    daemon.start(mta_server, mta)


@pytest.fixture(scope="session")
def redis_server(test_run_dir):
    from mailadmin.celery import app

    redis = RedisProcess(test_run_dir / "redis")
    redis.start()
    app.conf.broker_url = redis.url
    # A test that published before this fixture ran (a page queueing work with no broker yet) left
    # connection pools bound to the default URL: drop them, or this process keeps publishing there.
    app.close()
    app.amqp._producer_pool = None
    yield redis
    redis.stop()


@pytest.fixture(scope="session")
def celery_worker(redis_server, mta_instance, test_run_dir):
    from django.conf import settings

    worker = WorkerProcess(
        redis_server.url,
        settings.DATABASES["default"]["NAME"],
        [settings.CELERY_TASK_DEFAULT_QUEUE, mta_instance["celery_queue"]],
        test_run_dir / "worker",
    )
    # The session's worker is also the agent of the session's instance (root, like a host's agent).
    worker.agent_config = str(agent_config_path(mta_instance["name"]))
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def worker(celery_worker, redis_server, transactional_db):
    """The session worker, running and connected at the start of the test (restarted if a test killed it)."""
    if not redis_server.answers():
        redis_server.start()
    if celery_worker.proc is None or celery_worker.proc.poll() is not None:
        celery_worker.start()
    yield celery_worker
    celery_worker.settle()  # before the test's flush


@pytest.fixture
def viewer(db):
    return make_user("vera", "viewer")


@pytest.fixture
def operator(db):
    return make_user("otto", "operator")


@pytest.fixture
def administrator(db):
    return make_user("ada", "administrator")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Debian's Chromium; Playwright's own browser download cannot work offline."""
    return {
        **browser_type_launch_args,
        "executable_path": "/usr/bin/chromium",
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
    }


@pytest.fixture
def submit(mta_server):
    """Submit real messages to the session's instance (shared with every test): everything that appears
    in the spool during the test is removed after it."""
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
