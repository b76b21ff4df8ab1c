"""Fixtures for the queue tests: real messages submitted to the session's sendmail instance.

The instance is shared with every other test, so each fixture leaves the queue directory
as it found it: every file that appeared while the test ran is removed afterwards.
"""

from __future__ import annotations

import os
import smtplib
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mailadmin.models import MailServer


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

    def path(self, prefix: str, queue_id: str) -> Path:
        return Path(self.server.queue_dir) / f"{prefix}{queue_id}"

    def kind(self, queue_id: str) -> str | None:
        for prefix in ("qf", "hf", "Qf"):
            if self.path(prefix, queue_id).exists():
                return prefix
        return None


@pytest.fixture
def submit(mta_server):
    """Submit real messages; everything that appears in the spool during the test is removed after it."""
    queue_dir = mta_server.queue_dir
    before = spool_names(queue_dir)
    yield Submitter(mta_server)
    # A queue run may still be rewriting a job (tf → qf): give it a moment, then sweep twice.
    for _ in range(2):
        for name in spool_names(queue_dir) - before:
            try:
                os.unlink(os.path.join(queue_dir, name))
            except (FileNotFoundError, IsADirectoryError):
                pass
        time.sleep(0.1)
