"""A server's listeners: its DAEMON_OPTIONS (sockets the daemon accepts mail on) and CLIENT_OPTIONS
(how it connects out) as Listener rows.

Every field is cleaned by mcfile.clean_listener before it is stored, against the instance's own
macro names as its agent reported them, and a set of rows sendmail could not bind (two daemons on
one socket) is refused. A build renders the rows in row order in place of the imported .mc's own
listener lines (mcfile.render_mc).
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max

from mailadmin import audit, config
from mailadmin.cf import mcfile
from mailadmin.models import Listener, MailServer

# A DAEMON_OPTIONS line the import kept as written (it still opens its socket).
_KEPT_DAEMON_LINE = re.compile(r"^DAEMON_OPTIONS\(", re.MULTILINE)
FIELDS = ("name", "family", "port", "address", "modifiers", "extra")


def spec_of(row: Listener) -> mcfile.ListenerSpec:
    """The row as the typed spec render_mc takes (the fields were cleaned when they were stored)."""
    return mcfile.ListenerSpec(row.kind, **{field: getattr(row, field) for field in FIELDS})


def listeners_of(server: MailServer) -> list[tuple[mcfile.ListenerSpec, str]]:
    """(spec, comment) of each listener row, in the order a build renders them."""
    rows = Listener.objects.filter(server=server).order_by("kind", "position", "id")
    return [(spec_of(row), row.comment) for row in rows]


def clean(server: MailServer, kind: str, fields: dict[str, str]) -> mcfile.ListenerSpec:
    reserved, _ = config.reported_rules(server)
    return mcfile.clean_listener(kind, {f: str(fields.get(f, "")).strip() for f in FIELDS}, reserved=reserved)


def clean_comment(comment: str) -> str:
    comment = str(comment).strip()
    if any(not character.isprintable() for character in comment):
        raise ValidationError("The comment must be one line of printable text.", code="line_break")
    if len(comment) > 200:
        raise ValidationError("The comment may have at most 200 characters.", code="too_long")
    return comment


def _check_set(server: MailServer, specs: list[mcfile.ListenerSpec]) -> None:
    problems = mcfile.listener_problems(specs)
    if problems:
        raise ValidationError(problems)


def add(server: MailServer, kind: str, fields: dict[str, str], comment: str = "", *, request=None) -> Listener:
    spec = clean(server, kind, fields)
    comment = clean_comment(comment)
    with transaction.atomic():
        _check_set(server, [s for s, _ in listeners_of(server)] + [spec])
        last = Listener.objects.filter(server=server, kind=spec.kind).aggregate(last=Max("position"))["last"]
        row = Listener.objects.create(
            server=server,
            kind=spec.kind,
            position=0 if last is None else last + 1,
            comment=comment,
            **{field: getattr(spec, field) for field in FIELDS},
        )
        audit.record("add listener", request=request, server=server, target=spec.macro, detail=spec.value())
    return row


def edit(row: Listener, fields: dict[str, str], comment: str = "", *, request=None) -> Listener:
    server = row.server
    spec = clean(server, row.kind, fields)
    comment = clean_comment(comment)
    with transaction.atomic():
        others = [spec_of(other) for other in Listener.objects.filter(server=server).exclude(pk=row.pk)]
        _check_set(server, [*others, spec])
        before = spec_of(row).value()
        for field in FIELDS:
            setattr(row, field, getattr(spec, field))
        row.comment = comment
        row.save()
        audit.record(
            "edit listener", request=request, server=server, target=spec.macro, detail=f"{before} → {spec.value()}"
        )
    return row


def delete(row: Listener, *, request=None) -> None:
    with transaction.atomic():
        audit.record(
            "delete listener", request=request, server=row.server, target=row.kind, detail=spec_of(row).value()
        )
        row.delete()


def import_from(server: MailServer, document: mcfile.McDocument) -> int:
    """Make the server's listener rows say what the .mc's managed listener lines say (call inside
    the import's transaction; the import audits)."""
    Listener.objects.filter(server=server).delete()
    positions: dict[str, int] = {}
    rows = []
    for spec, comment in document.listeners():
        position = positions.get(spec.kind, 0)
        positions[spec.kind] = position + 1
        rows.append(
            Listener(
                server=server,
                kind=spec.kind,
                position=position,
                comment=comment,
                **{field: getattr(spec, field) for field in FIELDS},
            )
        )
    Listener.objects.bulk_create(rows)
    return len(rows)


def warnings(server: MailServer) -> list[str]:
    """What sendmail adds or assumes beyond these rows (proto.m4's defaults), in plain words."""
    daemons = [spec for spec, _ in listeners_of(server) if spec.kind == "daemon"]
    found: list[str] = []
    if not daemons and not _KEPT_DAEMON_LINE.search(server.mc_template):
        found.append(
            "With no daemon listener sendmail listens on port 25 on every address (proto.m4's default "
            "O DaemonPortOptions=Name=MTA)."
        )
    if "no_default_msa" not in config.features_of(server):
        found.append(
            "Without FEATURE(no_default_msa) sendmail also opens the message submission port 587 on every "
            "address (O DaemonPortOptions=Port=587, Name=MSA, M=E) besides these listeners."
        )
    return found
