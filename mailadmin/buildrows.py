"""The rows a build was made from, kept on the build, and put back when it is installed again.

A rollback installs an earlier build's cf and files; if the rows (options, FEATUREs, access, map
and listener rows) kept their newer values, the next build would silently bring the rolled-back
change back. So every build records its rows (`ConfigBuild.rows`), and a successful rollback
makes the rows say again what that build said.
"""

from __future__ import annotations

from django.db import transaction

from mailadmin import audit
from mailadmin.models import AccessEntry, ConfigBuild, ConfigValue, FeatureSetting, Listener, MailServer, MapEntry

MAP_FIELDS = ("map", "position", "key", "value", "comment", "verbatim")
LISTENER_FIELDS = ("kind", "position", "name", "address", "port", "family", "modifiers", "extra", "comment")


def snapshot(server: MailServer) -> dict:
    """The server's rows as JSON, in a stable order."""
    return {
        "mc_template": server.mc_template,
        "access_unmanaged": server.access_unmanaged,
        "managed_maps": list(server.managed_maps or []),
        "options": dict(server.config_values.order_by("name").values_list("name", "value")),
        "features": {f.name: list(f.args) for f in server.features.order_by("name")},
        "access": [
            list(row)
            for row in server.access_entries.order_by("tag", "key").values_list("tag", "key", "value", "comment")
        ],
        "maps": [
            list(row)
            for row in MapEntry.objects.filter(server=server).order_by("map", "position", "id").values_list(*MAP_FIELDS)
        ],
        "listeners": [
            list(row)
            for row in Listener.objects.filter(server=server)
            .order_by("kind", "position", "id")
            .values_list(*LISTENER_FIELDS)
        ],
    }


def differences(server: MailServer, build: ConfigBuild) -> list[str]:
    """Which kinds of rows differ from what `build` was made from (empty: none, or it kept no rows)."""
    if not build.rows:
        return []
    now = snapshot(server)
    labels = {
        "options": "options",
        "features": "FEATUREs",
        "access": "access map rows",
        "access_unmanaged": "access map rows",
        "maps": "map and class rows",
        "managed_maps": "map and class rows",
        "listeners": "listeners",
        "mc_template": "the imported .mc",
    }
    return sorted({labels[key] for key in labels if key in build.rows and build.rows[key] != now.get(key)})


def restore(server: MailServer, build: ConfigBuild, *, user=None) -> bool:
    """Make the server's rows what `build` was made from; False if the build kept no rows."""
    rows = build.rows
    if not rows:
        return False
    with transaction.atomic():
        server.mc_template = rows.get("mc_template", server.mc_template)
        server.access_unmanaged = rows.get("access_unmanaged", server.access_unmanaged)
        server.managed_maps = rows.get("managed_maps", server.managed_maps)
        server.save(update_fields=["mc_template", "access_unmanaged", "managed_maps"])
        server.config_values.all().delete()
        ConfigValue.objects.bulk_create(ConfigValue(server=server, name=n, value=v) for n, v in rows["options"].items())
        server.features.all().delete()
        FeatureSetting.objects.bulk_create(
            FeatureSetting(server=server, name=n, args=list(a)) for n, a in rows["features"].items()
        )
        server.access_entries.all().delete()
        AccessEntry.objects.bulk_create(
            AccessEntry(server=server, tag=t, key=k, value=v, comment=c) for t, k, v, c in rows["access"]
        )
        if "maps" in rows:
            MapEntry.objects.filter(server=server).delete()
            MapEntry.objects.bulk_create(
                MapEntry(server=server, **dict(zip(MAP_FIELDS, row, strict=True))) for row in rows["maps"]
            )
        if "listeners" in rows:
            Listener.objects.filter(server=server).delete()
            Listener.objects.bulk_create(
                Listener(server=server, **dict(zip(LISTENER_FIELDS, row, strict=True))) for row in rows["listeners"]
            )
        audit.record(
            "restore rows", user=user, server=server, target=build.build_id, detail="the rows this build was made from"
        )
    return True
