"""Processes the tests start and wait on: free ports, polling, a throw-away Redis, a real Celery worker.

Also the constants those share with the tests: the short work lease the test worker runs with, and the
session's fault seed (MAILADMIN_FAULT_SEED=<seed> draws the same kill offsets and Atheris inputs again).
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

ROOT = Path(__file__).resolve().parent.parent  # the repository root
TEST_LEASE_SECONDS = 4


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Fault tests draw kill offsets, and the short Atheris runs their first inputs, at random; one
# seed per session, printed in pytest's header, and MAILADMIN_FAULT_SEED=<seed> draws the same again.
FAULT_SEED = int(os.environ.get("MAILADMIN_FAULT_SEED") or random.SystemRandom().randrange(2**32))


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
    """redis-server with a password, as in production; the password reaches it on stdin, never in argv."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.password = secrets.token_hex(16)
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = [
            shutil.which("redis-server") or "/usr/bin/redis-server",
            "-",  # a configuration file on stdin: the password
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
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.proc.stdin.write(f"requirepass {self.password}\n".encode())
        self.proc.stdin.close()
        wait_for(self.answers, 10, f"redis on port {self.port}")

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(f"AUTH {self.password}\r\nPING\r\n".encode())
                reply = b""
                while reply.count(b"\r\n") < 2 and (more := sock.recv(64)):
                    reply += more
                return reply == b"+OK\r\n+PONG\r\n"
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
        # The agent configuration of the host whose queue it consumes (MAILADMIN_AGENT_CONFIG):
        # with it the worker is that host's agent; without it, a central worker that runs no MTA command.
        self.agent_config: str | None = None
        # Run as this user (setpriv), as production runs the central worker: the unprivileged `mailadmin`.
        self.user: str | None = None
        # Extra environment (the secrets a user other than root cannot read from var/console/).
        self.env: dict[str, str] = {}

    def start(self) -> None:
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        self.logfile = self.logdir / f"worker-{self.starts}.log"
        env = dict(
            os.environ,
            DJANGO_SETTINGS_MODULE="mailadmin.settings_test",
            MAILADMIN_BROKER_URL=self.broker_url,
            # The test database: a file on SQLite, a database name on PostgreSQL (MAILADMIN_DATABASE_URL).
            MAILADMIN_DB_PATH=self.db_path,
            MAILADMIN_DB_NAME=self.db_path,
            MAILADMIN_WORK_LEASE_SECONDS=str(TEST_LEASE_SECONDS),
        )
        env.update(self.env)
        if self.agent_config:
            env["MAILADMIN_AGENT_CONFIG"] = self.agent_config
        as_user = (
            ["setpriv", f"--reuid={self.user}", f"--regid={self.user}", "--init-groups", "--"] if self.user else []
        )
        argv = [
            *as_user,
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

    @staticmethod
    def settle(timeout: float = 15.0) -> None:
        """On PostgreSQL, wait until no other session on the test database is inside a transaction.

        A test's flush truncates every table in one statement; a worker still committing a row
        holds some of those tables and wants others, and PostgreSQL ends one of the two as a
        deadlock (SQLite makes the flush wait instead). After `timeout` the flush goes ahead.
        """
        from django.db import connection

        if connection.vendor != "postgresql":
            return

        def quiet() -> bool:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND backend_type = 'client backend' AND xact_start IS NOT NULL"
                )
                return cursor.fetchone()[0] == 0

        try:
            wait_for(quiet, timeout, "the worker's transactions to end", interval=0.05)
        except AssertionError:
            pass
