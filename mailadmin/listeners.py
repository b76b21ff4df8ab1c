"""A server's listeners: its DAEMON_OPTIONS (sockets the daemon accepts mail on) and CLIENT_OPTIONS
(how it connects out) as Listener rows.

Every field is cleaned by mcfile.clean_listener before it is stored, against the instance's own
macro names as its agent reported them, and a set of rows sendmail could not bind (two daemons on
one socket) is refused. A build renders the rows in row order in place of the imported .mc's own
listener lines (mcfile.render_mc).
"""

from __future__ import annotations

import re

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import transaction
from django.db.models import Max

from mailadmin import audit, config
from mailadmin.cf import mcfile
from mailadmin.models import Listener, MailServer

# A DAEMON_OPTIONS line (one the import kept as written still opens its socket).
_KEPT_DAEMON_LINE = re.compile(r"^DAEMON_OPTIONS\(", re.MULTILINE)
FIELDS = ("name", "family", "port", "address", "modifiers", "extra")


def spec_of(row: Listener) -> mcfile.ListenerSpec:
    """The row as the typed spec render_mc takes (the fields were cleaned when they were stored)."""
    return mcfile.ListenerSpec(row.kind, **{field: getattr(row, field) for field in FIELDS})


def listeners_of(server: MailServer) -> list[tuple[mcfile.ListenerSpec, str]]:
    """(spec, comment) of each listener row, in the order a build renders them."""
    rows = Listener.objects.filter(server=server).order_by("kind", "position", "id")
    return [(spec_of(row), row.comment) for row in rows]


# mcfile.clean_listener names the key a message is about first ("Port=: …", "Addr=… does not
# belong to …"): the form field it goes back to.
_FIELD_OF_KEY = {"Name": "name", "Family": "family", "Port": "port", "Addr": "address", "M": "modifiers"}


def field_of(message: str, fields: dict[str, str]) -> str:
    """The form field a message of mcfile.clean_listener is about (NON_FIELD_ERRORS if none)."""
    key = message.partition("=")[0]
    if message.endswith("is neither daemon nor client."):
        return "kind"
    if message.startswith("Name= may have at most"):  # one rule for two fields: the one too long
        return "name" if len(fields.get("name", "")) > 40 else "extra"
    if key in _FIELD_OF_KEY:
        return _FIELD_OF_KEY[key]
    if key in mcfile.EXTRA_KEYS or message.startswith(("‘", "The other keys")):
        return "extra"
    return NON_FIELD_ERRORS


def clean(server: MailServer, kind: str, fields: dict[str, str]) -> mcfile.ListenerSpec:
    """The typed spec, or ValidationError by field (name, family, port, address, modifiers, extra,
    kind; NON_FIELD_ERRORS for what is about the whole line)."""
    reserved, _ = config.reported_rules(server)
    typed = {f: str(fields.get(f, "")).strip() for f in FIELDS}
    try:
        spec = mcfile.clean_listener(kind, typed, reserved=reserved)
    except ValidationError as exc:
        raise ValidationError({field_of(message, typed): message for message in exc.messages}) from None
    if ":" in spec.address and not spec.family:
        # sendmail reads Addr= as IPv4 unless Family=inet6 says otherwise, and `sendmail -bt` then
        # refuses the whole cf: `host "::1" unknown` (measured on 8.17.1.9).
        raise ValidationError(
            {
                "family": f"Addr={spec.address} is an IPv6 address: choose Family=inet6 "
                "(sendmail reads Addr= as IPv4 otherwise)."
            }
        )
    return spec


def clean_comment(comment: str) -> str:
    comment = str(comment).strip()
    if any(not character.isprintable() for character in comment):
        raise ValidationError({"comment": "The comment must be one line of printable text."}, code="line_break")
    if len(comment) > 200:
        raise ValidationError({"comment": "The comment may have at most 200 characters."}, code="too_long")
    return comment


def _check_set(server: MailServer, specs: list[mcfile.ListenerSpec]) -> None:
    problems = mcfile.listener_problems(specs)
    if problems:
        raise ValidationError({NON_FIELD_ERRORS: problems})


def _cleaned(server: MailServer, kind: str, fields: dict[str, str], comment: str) -> tuple[mcfile.ListenerSpec, str]:
    """The spec and the comment, or one ValidationError holding what is wrong with either."""
    errors: dict = {}
    spec = None
    try:
        spec = clean(server, kind, fields)
    except ValidationError as exc:
        errors = exc.update_error_dict(errors)
    try:
        comment = clean_comment(comment)
    except ValidationError as exc:
        errors = exc.update_error_dict(errors)
    if errors or spec is None:
        raise ValidationError(errors)
    return spec, comment


def add(server: MailServer, kind: str, fields: dict[str, str], comment: str = "", *, request=None) -> Listener:
    spec, comment = _cleaned(server, kind, fields, comment)
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
    spec, comment = _cleaned(server, row.kind, fields, comment)
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
        spec = spec_of(row)
        audit.record("delete listener", request=request, server=row.server, target=spec.macro, detail=spec.value())
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


def kept_daemon_lines(server: MailServer) -> bool:
    """Whether the imported .mc has DAEMON_OPTIONS lines the console could not make rows of: a build
    keeps those as written, so they still open their sockets. (The lines that became rows are
    replaced by the rows, and leave no line when the rows are deleted.)"""
    if not _KEPT_DAEMON_LINE.search(server.mc_template):
        return False
    try:
        reserved, roots = config.reported_rules(server)
    except ValidationError:
        return False  # unknown until the agent reports its macro names (every change is refused until then)
    document = mcfile.parse_mc(server.mc_template, reserved=reserved, roots=roots)
    return any(
        isinstance(segment, mcfile.Unmanaged) and _KEPT_DAEMON_LINE.search(segment.text)
        for segment in document.segments
    )


def warnings(server: MailServer) -> list[str]:
    """What sendmail adds or assumes beyond these rows (proto.m4's defaults), in plain words."""
    daemons = [spec for spec, _ in listeners_of(server) if spec.kind == "daemon"]
    found: list[str] = []
    kept = kept_daemon_lines(server)
    if kept:
        found.append(
            "The imported .mc also has DAEMON_OPTIONS lines the console keeps as they were written (they are not "
            "rows here): they still open their sockets."
        )
    if not daemons and not kept:
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
