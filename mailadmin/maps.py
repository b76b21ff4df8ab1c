"""A server's map and class files (aliases, virtusertable, mailertable, genericstable, domaintable,
local-host-names, relay-domains, trusted-users) as MapEntry rows: the service the pages, the API and
the import call. Each change is cleaned by mailadmin.cf.maps first and audited.

A file is *managed* once it has been imported or given a row (MailServer.managed_maps): every build
then renders it from its rows and installs it with the cf, empty or not, so deleting the last row
empties the file on the host rather than leaving the old one behind. A file never managed is never
written: the host's own stays as it is.

Who may write what: program, file and :include: alias targets only administrators (the agent
checks them again against its own roots and smrsh before it compiles); mailertable's mailers are
those the installed cf defines (from the agent's last snapshot).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max

from mailadmin import audit
from mailadmin.cf import maps as mapfiles
from mailadmin.models import HostSnapshot, MailServer, MapEntry
from mailadmin.roles import Role, has_role

# When the agent has not yet shown the installed cf: the mailers every Debian cf built from the
# stock .mc defines (MAILER(local), MAILER(smtp)).
STOCK_MAILERS = ("local", "prog", "smtp", "esmtp", "smtp8", "dsmtp", "relay")


def spec(map_name: str) -> mapfiles.MapSpec:
    return mapfiles.spec_of(map_name)


def entries(server: MailServer, map_name: str):
    return MapEntry.objects.filter(server=server, map=spec(map_name).name).order_by("position", "id")


def as_line(row: MapEntry) -> mapfiles.Line:
    if row.verbatim:
        return mapfiles.Verbatim(row.verbatim)
    return mapfiles.Row(row.key, row.value, row.comment)


def rendered(server: MailServer, map_name: str) -> str:
    """The file's text as a build writes it."""
    return mapfiles.render(map_name, [as_line(row) for row in entries(server, map_name)])


def is_managed(server: MailServer, map_name: str) -> bool:
    return spec(map_name).name in (server.managed_maps or [])


def rendered_maps(server: MailServer) -> dict[str, str]:
    """Name → text of every managed file, in the fixed order of the catalog (what a build carries)."""
    managed = set(server.managed_maps or [])
    return {name: rendered(server, name) for name in mapfiles.MAP_NAMES if name in managed}


def mailers(server: MailServer) -> tuple[list[str], bool]:
    """(mailers a mailertable row may name, whether they were read from the installed cf)."""
    cf_text = HostSnapshot.objects.filter(server=server).values_list("cf_text", flat=True).first() or ""
    found = mapfiles.mailers_in_cf(cf_text)
    return (found, True) if found else (list(STOCK_MAILERS), False)


def clean(server: MailServer, map_name: str, key: str, value: str, comment: str, *, user) -> mapfiles.Row:
    """The row as it will be stored, or ValidationError by field ({"key": …, "value": …, "comment": …})."""
    roots = tuple(server.roots or ())
    return mapfiles.clean_row(
        map_name,
        str(key).strip(),
        str(value).strip(),
        str(comment),
        privileged=user is not None and has_role(user, Role.ADMINISTRATOR),
        roots=roots,
        mailers=mailers(server)[0],
    )


def _manage(server: MailServer, map_name: str) -> None:
    server.refresh_from_db(fields=["managed_maps"])
    if map_name not in server.managed_maps:
        server.managed_maps = [name for name in mapfiles.MAP_NAMES if name in {*server.managed_maps, map_name}]
        server.save(update_fields=["managed_maps"])


def _taken(server: MailServer, map_name: str, key: str, exclude: int | None = None) -> bool:
    same = entries(server, map_name).filter(verbatim="", key=key)
    return (same.exclude(pk=exclude) if exclude else same).exists()


def _describe(row: mapfiles.Row) -> str:
    return f"{row.key} {row.value}".strip() + (f"  # {row.comment}" if row.comment else "")


def add(server: MailServer, map_name: str, key: str, value: str = "", comment: str = "", *, user, request=None):
    """Append a row (the file is managed from now on)."""
    row = clean(server, map_name, key, value, comment, user=user)
    with transaction.atomic():
        if _taken(server, map_name, row.key):
            raise ValidationError({"key": f"{row.key} already has a row in {map_name}: edit that one"})
        last = entries(server, map_name).aggregate(last=Max("position"))["last"]
        try:
            with transaction.atomic():
                entry = MapEntry.objects.create(
                    server=server,
                    map=map_name,
                    position=0 if last is None else last + 1,
                    key=row.key,
                    value=row.value,
                    comment=row.comment,
                )
        except IntegrityError:  # a concurrent add of the same key
            raise ValidationError({"key": f"{row.key} already has a row in {map_name}"}) from None
        _manage(server, map_name)
        audit.record(
            f"add {map_name} row", user=user, request=request, server=server, target=row.key, detail=_describe(row)
        )
    return entry


def edit(entry: MapEntry, key: str, value: str = "", comment: str = "", *, user, request=None) -> MapEntry:
    """Change a typed row in place (its position in the file stays)."""
    if entry.verbatim:
        raise ValidationError("This is text the console keeps as it was imported; it cannot be edited as a row.")
    server, map_name = entry.server, entry.map
    row = clean(server, map_name, key, value, comment, user=user)
    before = _describe(mapfiles.Row(entry.key, entry.value, entry.comment))
    with transaction.atomic():
        if _taken(server, map_name, row.key, exclude=entry.pk):
            raise ValidationError({"key": f"{row.key} already has a row in {map_name}"})
        entry.key, entry.value, entry.comment = row.key, row.value, row.comment
        entry.save()
        audit.record(
            f"edit {map_name} row",
            user=user,
            request=request,
            server=server,
            target=row.key,
            detail=f"{before} → {_describe(row)}",
        )
    return entry


def delete(entry: MapEntry, *, user, request=None) -> None:
    """Remove a row, or a block of imported text; the file stays managed (an empty file is written)."""
    what = entry.verbatim.splitlines()[0][:80] if entry.verbatim else entry.key
    with transaction.atomic():
        audit.record(
            f"delete {entry.map} row",
            user=user,
            request=request,
            server=entry.server,
            target=what,
            detail=_describe(mapfiles.Row(entry.key, entry.value, entry.comment))
            if not entry.verbatim
            else f"{len(entry.verbatim.splitlines())} kept lines",
        )
        entry.delete()


def import_text(server: MailServer, map_name: str, text: str, *, user=None, request=None) -> tuple[int, int]:
    """Replace the file's rows with what `text` says, losslessly: rendering them gives `text` back
    byte for byte. Returns (typed rows, kept lines). The file is managed from now on."""
    lines = mapfiles.parse(map_name, text)
    if mapfiles.render(map_name, lines) != text:  # parse promises this; never store a lossy import
        raise ValidationError(f"{map_name} cannot be imported without changing it; nothing was imported.")
    rows = []
    for position, line in enumerate(lines):
        if isinstance(line, mapfiles.Verbatim):
            rows.append(MapEntry(server=server, map=map_name, position=position, verbatim=line.text))
        else:
            rows.append(
                MapEntry(
                    server=server, map=map_name, position=position, key=line.key, value=line.value, comment=line.comment
                )
            )
    # Two typed rows with one key (a file with a duplicate alias): the second stays as text.
    seen: set[str] = set()
    for entry in rows:
        if not entry.verbatim:
            key = entry.key
            if key in seen:
                rendered_line = mapfiles.render(map_name, [mapfiles.Row(entry.key, entry.value, entry.comment)])
                entry.verbatim, entry.key, entry.value, entry.comment = rendered_line, "", "", ""
            seen.add(key)
    with transaction.atomic():
        MapEntry.objects.filter(server=server, map=map_name).delete()
        MapEntry.objects.bulk_create(rows)
        _manage(server, map_name)
        typed, kept = mapfiles.counts(lines)
        audit.record(
            f"import {map_name}",
            user=user,
            request=request,
            server=server,
            target=map_name,
            detail=f"{typed} rows, {kept} lines kept as they were",
        )
    return typed, kept


def stop_managing(server: MailServer, map_name: str, *, user, request=None) -> None:
    """Forget the file's rows; builds no longer write it (the host's file stays as it is)."""
    with transaction.atomic():
        MapEntry.objects.filter(server=server, map=spec(map_name).name).delete()
        server.refresh_from_db(fields=["managed_maps"])
        server.managed_maps = [name for name in server.managed_maps if name != map_name]
        server.save(update_fields=["managed_maps"])
        audit.record(f"stop managing {map_name}", user=user, request=request, server=server, target=map_name)
