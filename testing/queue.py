"""Real messages in the session's sendmail queue: submitting and cloning jobs, running queue actions the way
the worker does, and holding a queue file's lock like a sendmail queue runner."""

from __future__ import annotations

import os
import random
import smtplib
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from mailadmin.models import MailServer
from mailqueue import tasks
from mailqueue.models import QueueAction
from mailqueue.parser import parse_queue_file

# sendmail's queue-id alphabet: a job's id encodes its time in base 60.
BASE60 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwx"


def spool_names(queue_dir: str) -> set[str]:
    return set(os.listdir(queue_dir))


@dataclass
class Submitter:
    server: MailServer
    ids: list[str] = field(default_factory=list)

    def send(
        self,
        count: int = 1,
        *,
        sender: str = "alice@client.example",
        recipients: tuple[str, ...] = ("bob@remote.example",),
        subject: str = "queued",
        body: str = "body line\r\n",
        headers: str = "",
    ) -> list[str]:
        """Submit `count` messages over SMTP; returns their queue ids in order."""
        made = []
        with smtplib.SMTP(self.server.smtp_address, self.server.smtp_port, timeout=30) as smtp:
            smtp.ehlo("client.example")
            for number in range(count):
                before = spool_names(self.server.queue_dir)
                text = f"Subject: {subject} {number}\r\n{headers}\r\n{body}"
                smtp.sendmail(sender, list(recipients), text.encode("utf-8"))
                new = [n[2:] for n in spool_names(self.server.queue_dir) - before if n.startswith("qf")]
                assert len(new) == 1, new
                made.append(new[0])
        self.ids.extend(made)
        return made

    def clone(self, source_ids: list[str], count: int, rnd: random.Random) -> list[str]:
        """`count` copies of the given real jobs under fresh, valid queue ids (as bench/queue_index.py makes them).

        A thousand SMTP submissions would take far longer; sendmail lists, runs and quarantines
        such clones like the jobs they were copied from.
        """
        queue_dir = Path(self.server.queue_dir)
        taken = {name[2:] for name in spool_names(self.server.queue_dir) if len(name) == 16}
        sources = [(self.path("qf", i).read_bytes(), self.path("df", i).read_bytes()) for i in source_ids]
        made: list[str] = []
        while len(made) < count:
            base = rnd.choice(source_ids)
            new_id = base[:6] + rnd.choice(BASE60) + rnd.choice(BASE60) + f"{rnd.randrange(1000000):06d}"
            if new_id in taken:
                continue
            taken.add(new_id)
            control, data = sources[len(made) % len(sources)]
            for prefix, content in (("df", data), ("qf", control)):  # data first, like sendmail
                fd = os.open(queue_dir / f"{prefix}{new_id}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                try:
                    os.write(fd, content)
                finally:
                    os.close(fd)
            made.append(new_id)
        self.ids.extend(made)
        return made

    def path(self, prefix: str, queue_id: str) -> Path:
        return Path(self.server.queue_dir) / f"{prefix}{queue_id}"

    def kind(self, queue_id: str) -> str | None:
        for prefix in ("qf", "hf", "Qf"):
            if self.path(prefix, queue_id).exists():
                return prefix
        return None

    def reason(self, queue_id: str) -> str | None:
        return parse_queue_file(self.path("hf", queue_id).read_bytes(), kind="hf").quarantine_reason

    def attempts(self, queue_id: str) -> int:
        return parse_queue_file(self.path(self.kind(queue_id), queue_id).read_bytes()).attempts


def run_action(server, verb, **fields) -> QueueAction:
    """Run an action the way the worker does (claim, perform, finish), in this process."""
    action = QueueAction.objects.create(server=server, verb=verb, **fields)
    assert tasks.run_queue_action(action.pk) == "done"
    action.refresh_from_db()
    return action


class LockHolder:
    """Another process holding flock(LOCK_EX) on a file, the way a sendmail queue runner does."""

    def __init__(self, path):
        code = (
            "import fcntl, sys, time\n"
            "f = open(sys.argv[1], 'rb')\n"
            "fcntl.flock(f, fcntl.LOCK_EX)\n"
            "print('locked', flush=True)\n"
            "sys.stdin.read()\n"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout.readline().strip() == "locked"

    def release(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)
