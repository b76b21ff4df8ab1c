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
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop

ROOT = Path(__file__).resolve().parent
TEST_LEASE_SECONDS = 4


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Fault tests draw kill offsets, and the short Atheris runs their first inputs, at random; one
# seed per session, printed in pytest's header, and MAILADMIN_FAULT_SEED=<seed> draws the same again.
FAULT_SEED = int(os.environ.get("MAILADMIN_FAULT_SEED") or random.SystemRandom().randrange(2**32))


def pytest_report_header(config):
    return f"fault tests and Atheris runs: MAILADMIN_FAULT_SEED={FAULT_SEED}"


@pytest.fixture
def fault_random(request) -> random.Random:
    """The random source of one test, derived from the session seed and the test's id."""
    return random.Random(f"{FAULT_SEED}:{request.node.nodeid}")


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


class RedisProcess:
    def __init__(self, workdir: Path):
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = [
            shutil.which("redis-server") or "/usr/bin/redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.workdir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
            "--maxmemory-policy",
            "noeviction",
            "--daemonize",
            "no",
            "--logfile",
            "redis.log",
        ]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self.answers, 10, f"redis on port {self.port}")

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=15)
        self.proc = None


class WorkerProcess:
    """`celery -A mailadmin worker` in its own process group, killable like a real one."""

    def __init__(self, broker_url: str, db_path: str, queues: list[str], logdir: Path):
        self.broker_url, self.db_path, self.queues = broker_url, db_path, queues
        self.logdir = logdir
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        self.logfile = self.logdir / f"worker-{self.starts}.log"
        env = dict(
            os.environ,
            DJANGO_SETTINGS_MODULE="mailadmin.settings_test",
            MAILADMIN_BROKER_URL=self.broker_url,
            MAILADMIN_DB_PATH=self.db_path,
            MAILADMIN_WORK_LEASE_SECONDS=str(TEST_LEASE_SECONDS),
        )
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "mailadmin",
            "worker",
            "-Q",
            ",".join(self.queues),
            "-c",
            "1",
            "-P",
            "prefork",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "info",
            "-n",
            f"test{self.starts}@%h",
        ]
        with open(self.logfile, "wb") as log:
            self.proc = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_for(
            lambda: b" ready." in self.logfile.read_bytes() or self.proc.poll() is not None,
            60,
            "the celery worker to be ready",
        )
        if self.proc.poll() is not None:
            raise AssertionError("celery worker exited:\n" + self.logfile.read_text(errors="replace"))

    def kill_all(self) -> None:
        """SIGKILL the main process and its pool children at once, like a crashed host."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=15)
        self.proc = None

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)
        self.proc = None

    def log(self) -> str:
        return self.logfile.read_text(errors="replace")


@pytest.fixture(scope="session")
def test_run_dir():
    from django.conf import settings

    path = Path(settings.VAR_DIR) / "test-run" / secrets.token_hex(4)
    path.mkdir(parents=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def start_instance() -> dict:
    """Create, build and start a throw-away embedded instance; returns its MailServer field values.

    The row itself is deleted again, so tests that do not ask for an instance see an empty
    server table; `instance_row` puts it back for those that do. Needs the test database.
    """
    from django.conf import settings
    from django.db import connection

    from mailadmin.models import MailServer
    from mailadmin.mta import daemon, instance
    from mailadmin.mta.gateway import Mta

    test_db = settings.DATABASES["default"]["TEST"]["NAME"]
    assert connection.settings_dict["NAME"] == test_db, "the test database is not set up; refusing to use the dev one"
    name = "t" + secrets.token_hex(3)
    root = Path(settings.MAILADMIN_INSTANCES_DIR) / name
    fields = instance.embedded_defaults(name, root, free_port())
    fields["log_file"] = str(root / "syslog")
    server = MailServer.objects.create(name=name, **fields)
    instance.prepare(server, Mta(server))
    daemon.start(server, Mta(server))
    server.delete()
    return {"name": name, **fields}


def stop_instance(fields: dict) -> None:
    from mailadmin.models import MailServer
    from mailadmin.mta import daemon

    pid = daemon.live_pid(MailServer(**fields))
    if pid:
        os.kill(pid, signal.SIGCONT)
        os.kill(pid, signal.SIGTERM)
        daemon.wait_until_gone(pid)
    shutil.rmtree(Path(fields["conf_dir"]).parent.parent, ignore_errors=True)


def instance_row(fields: dict):
    """The instance as a MailServer row again, with its daemon answering."""
    from mailadmin.models import MailServer
    from mailadmin.mta import daemon
    from mailadmin.mta.gateway import Mta

    values = dict(fields)
    server, _ = MailServer.objects.update_or_create(name=values.pop("name"), defaults=values)
    pid = daemon.live_pid(server)
    if pid:
        os.kill(pid, signal.SIGCONT)
    if not daemon.status(server).answering:
        daemon.start(server, Mta(server))
    return server


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
    from mailadmin.mta.gateway import Mta

    paths = [Path(mta_server.cf_path), Path(mta_server.access_path), Path(mta_server.access_path + ".db")]
    saved = {p: p.read_bytes() for p in paths}
    yield mta_server
    for path, data in saved.items():
        cfbuild.write_atomically(path, data, mode=0o640 if path.suffix == ".db" else 0o644)
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
    return celery_worker


def make_user(username: str, role: str | None):
    from django.contrib.auth.models import Group, User

    user = User.objects.create_user(username=username, password="correct horse battery")
    if role:
        # get_or_create: a transactional test before this one flushed the migration's groups.
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


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
