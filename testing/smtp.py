"""Helpers for the tests that prove behaviour on the wire: an SMTP client that asks the daemon about a
recipient from a chosen loopback source address (127.0.0.1 is a relay client of the embedded
instance's access map; another 127.0.0.x is a stranger), what a port greets with, and the
console's build → install → rollback driven the way a postmaster drives it (its pages, the real
worker), with the instance's conf directory put back afterwards."""

from __future__ import annotations

import smtplib
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mailadmin.mta.files import write_atomically

STRANGER = "127.0.0.3"


def rcpt_reply(
    server, recipient: str, *, source: str = STRANGER, sender: str = "alice@client.example"
) -> tuple[int, str]:
    """(code, text) of the daemon's reply to RCPT TO:<recipient> from `source`; nothing is sent."""
    with smtplib.SMTP(server.smtp_address, server.smtp_port, timeout=30, source_address=(source, 0)) as smtp:
        smtp.ehlo("client.example")
        code, text = smtp.mail(sender)
        assert code == 250, (code, text)
        code, text = smtp.rcpt(recipient)
        smtp.rset()
    return code, text.decode(errors="replace")


def greeting(address: str, port: int, timeout: float = 10) -> str | None:
    """The first line a port greets with, or None when nothing listens there."""
    try:
        with socket.create_connection((address, port), timeout=timeout) as conn:
            return conn.makefile("rb").readline().decode(errors="replace").rstrip("\r\n")
    except ConnectionRefusedError:
        return None


# --- the console's transaction, as a postmaster drives it -----------------------------------------


def _posted(client, path: str):
    response = client.post(path, {})
    assert response.status_code == 302, response.content[:500]
    follow = client.get(response["Location"])
    errors = [m.message for m in follow.context["messages"] if m.level_tag == "error"] if follow.context else []
    assert not errors, errors
    return response


def _finished(row, worker, what: str, timeout: float = 90):
    from mailadmin.work import WorkStatus
    from testing.work import wait_terminal

    try:
        wait_terminal(row, timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- worker log ---\n{worker.log()[-6000:]}") from None
    assert row.status == WorkStatus.DONE, f"{what} {row}: {row.error}"
    return row


def build_through_console(client, server, worker):
    """Press Build on the server's configuration page and wait for the worker to build it."""
    from mailadmin.models import ConfigBuild

    latest = ConfigBuild.objects.filter(server=server).order_by("-pk").values_list("pk", flat=True).first() or 0
    _posted(client, f"/servers/{server.name}/builds/")
    build = ConfigBuild.objects.filter(server=server, pk__gt=latest).get()
    return _finished(build, worker, "the build")


def install_through_console(client, build, worker):
    """Press Install on the build's page (a rollback when a later build is live) and wait for the worker."""
    from mailadmin.models import InstallJob

    latest = InstallJob.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    _posted(client, f"/builds/{build.pk}/install/")
    job = InstallJob.objects.filter(build=build, pk__gt=latest).get()
    return _finished(job, worker, "the install")


@contextmanager
def kept_conf_dir(server) -> Iterator[None]:
    """Put every file of the instance's conf directory back as it was (the .mc, the maps and their
    .db files an install replaced; the ones it added removed)."""
    conf = Path(server.conf_dir)
    saved = {p: (p.read_bytes(), p.stat().st_mode & 0o777) for p in conf.iterdir() if p.is_file()}
    try:
        yield
    finally:
        for path in conf.iterdir():
            if path.is_file() and path not in saved:
                path.unlink()
        for path, (data, mode) in saved.items():
            write_atomically(path, data, mode)
