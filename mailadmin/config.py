"""A server's configuration as rows: editing them, importing a .mc into them, and starting a build.

Every value is cleaned by its catalog type before it is stored, so what a build renders has
already passed the rules that keep m4 from rewriting it; the build's oracle checks it again.
The rules are the instance's own: the macro names of its cf tree and the directories its paths
must lie under, both as its host's agent reported them (`MailServer.reserved_words`, `.roots`).
This module never runs m4 to find them.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from mailadmin import audit, buildrows, listeners, maps, work
from mailadmin.cf import accessmap, catalog, m4safe, mcfile
from mailadmin.models import AccessEntry, ConfigBuild, ConfigValue, FeatureSetting, HostSnapshot, MailServer


class BuildRefused(Exception):
    """The rows describe a configuration m4 would reject or mangle; nothing was started."""


def options_of(server: MailServer) -> dict[str, str]:
    return dict(server.config_values.values_list("name", "value"))


def features_of(server: MailServer) -> dict[str, tuple[str, ...]]:
    return {f.name: tuple(f.args) for f in server.features.all()}


def access_text(server: MailServer) -> str:
    rows = server.access_entries.values_list("tag", "key", "value")
    return accessmap.render(rows) + server.access_unmanaged


def reported_rules(server: MailServer) -> tuple[frozenset[str], tuple[str, ...]]:
    """The instance's macro names and roots, as its agent reported them; ValidationError if it has not."""
    reserved = frozenset(server.reserved_words or ())
    if not reserved:
        raise ValidationError(f"Nothing can be checked for {server.name}: {m4safe.NOT_REPORTED}.", code="not_reported")
    return reserved, tuple(server.roots or ())


def clean_option(server: MailServer, name: str, raw: str) -> str:
    spec = catalog.OPTIONS.get(name)
    if spec is None:
        raise ValidationError(f"{name!r} is not an option this console knows")
    reserved, roots = reported_rules(server)
    return spec.type.clean(raw, reserved=reserved, roots=roots)


def set_option(server: MailServer, name: str, raw: str, *, request=None) -> ConfigValue:
    value = clean_option(server, name, raw)
    with transaction.atomic():
        row, _ = ConfigValue.objects.update_or_create(server=server, name=name, defaults={"value": value})
        audit.record("set option", request=request, server=server, target=name, detail=value)
    return row


def unset_option(server: MailServer, name: str, *, request=None) -> None:
    with transaction.atomic():
        ConfigValue.objects.filter(server=server, name=name).delete()
        audit.record("unset option", request=request, server=server, target=name)


def clean_feature_args(server: MailServer, name: str, raw_args: list[str]) -> tuple[str, ...]:
    spec = catalog.FEATURES.get(name)
    if spec is None:
        raise ValidationError(f"{name!r} is not a FEATURE this console knows")
    reserved, roots = reported_rules(server)
    cleaned: list[str] = []
    errors: list[str] = []
    for arg_spec, raw in zip(spec.args, [*raw_args, *[""] * len(spec.args)], strict=False):
        if raw == "":
            if arg_spec.required:
                errors.append(f"{arg_spec.name} is required")
            cleaned.append("")
            continue
        try:
            cleaned.append(arg_spec.type.clean(raw, reserved=reserved, roots=roots))
        except ValidationError as exc:
            errors.extend(f"{arg_spec.name}: {message}" for message in exc.messages)
    if len([a for a in raw_args if a]) > len(spec.args):
        errors.append(f"FEATURE({name}) takes at most {len(spec.args)} arguments")
    if errors:
        raise ValidationError(errors)
    while cleaned and cleaned[-1] == "":
        cleaned.pop()
    return tuple(cleaned)


def set_feature(server: MailServer, name: str, raw_args: list[str], enabled: bool, *, request=None) -> None:
    """Turn a FEATURE on (with its arguments) or off, refusing a combination m4 would reject."""
    selected = features_of(server)
    if enabled:
        selected[name] = clean_feature_args(server, name, raw_args)
    else:
        selected.pop(name, None)
    reserved, roots = reported_rules(server)
    problems = catalog.check_features(selected, reserved=reserved, roots=roots)
    if problems:
        raise ValidationError(problems)
    with transaction.atomic():
        if enabled:
            FeatureSetting.objects.update_or_create(server=server, name=name, defaults={"args": list(selected[name])})
        else:
            FeatureSetting.objects.filter(server=server, name=name).delete()
        audit.record(
            "enable feature" if enabled else "disable feature",
            request=request,
            server=server,
            target=name,
            detail=", ".join(selected.get(name, ())),
        )


def feature_problems(server: MailServer) -> list[str]:
    """What m4 would reject in the server's FEATURE rows (or why they cannot be checked yet)."""
    try:
        reserved, roots = reported_rules(server)
    except ValidationError as exc:
        return list(exc.messages)
    return catalog.check_features(features_of(server), reserved=reserved, roots=roots)


def add_access_entry(server: MailServer, tag: str, key: str, value: str, comment: str = "", *, request=None):
    tag, key, value = accessmap.clean_entry(tag, key, value)
    with transaction.atomic():
        row, _ = AccessEntry.objects.update_or_create(
            server=server, tag=tag, key=key, defaults={"value": value, "comment": comment[:200]}
        )
        audit.record("set access entry", request=request, server=server, target=f"{tag}:{key}", detail=value)
    return row


def delete_access_entry(entry: AccessEntry, *, request=None) -> None:
    with transaction.atomic():
        audit.record("delete access entry", request=request, server=entry.server, target=f"{entry.tag}:{entry.key}")
        entry.delete()


def start_build(server: MailServer, *, user=None, request=None) -> ConfigBuild:
    """Render the .mc from the rows, record a ConfigBuild and hand it to the server's worker."""
    options, features = options_of(server), features_of(server)
    try:
        reserved, roots = reported_rules(server)
    except ValidationError as exc:
        raise BuildRefused(" ".join(exc.messages)) from None
    problems = catalog.check_features(features, reserved=reserved, roots=roots)
    if problems:
        raise BuildRefused("; ".join(problems))
    document = mcfile.parse_mc(server.mc_template, reserved=reserved, roots=roots)
    if request is not None:
        user = request.user
    try:
        with transaction.atomic():
            row = ConfigBuild.objects.create(
                server=server,
                created_by=user,
                mc_text="",
                access_text=access_text(server),
                expected_options=options,
                rows=buildrows.snapshot(server),
                maps=maps.rendered_maps(server),
            )
            row.mc_text = mcfile.render_mc(
                document,
                options,
                features,
                row.build_id,
                reserved=reserved,
                roots=roots,
                listeners=listeners.listeners_of(server),
                cf_tree=server.cf_tree,
            )
            outside = mcfile.paths_outside(row.mc_text, options, roots)
            if outside:
                raise BuildRefused(
                    f"these paths lie outside {server.name}'s directories ({', '.join(roots) or 'none declared'}): "
                    + ", ".join(outside)
                )
            row.save(update_fields=["mc_text"])
            audit.record("start build", user=user, request=request, server=server, target=row.build_id)
            work.dispatch_on_commit(row)
    except mcfile.UnsafeValue as exc:
        raise BuildRefused(str(exc)) from None
    return row


def import_mc(server: MailServer, text: str, *, user=None) -> list[str]:
    """Make the rows say what a .mc says; lines the catalog does not model stay in the template.

    Options, masquerading and FEATUREs become their rows, DAEMON_OPTIONS and CLIENT_OPTIONS lines
    listener rows. A value this instance's rules refuse (a path outside its roots …) stays verbatim
    in the template too, with a note saying why; the agent still checks the paths in it before it
    builds or installs.
    """
    reserved, roots = reported_rules(server)
    document = mcfile.parse_mc(text, reserved=reserved, roots=roots)
    options, features = document.options(), document.features()
    with transaction.atomic():
        server.mc_template = text
        server.save(update_fields=["mc_template"])
        server.config_values.all().delete()
        ConfigValue.objects.bulk_create(ConfigValue(server=server, name=n, value=v) for n, v in options.items())
        server.features.all().delete()
        FeatureSetting.objects.bulk_create(
            FeatureSetting(server=server, name=n, args=list(a)) for n, a in features.items()
        )
        listener_count = listeners.import_from(server, document)
        audit.record(
            "import mc",
            user=user,
            server=server,
            detail=f"{len(options)} options, {len(features)} features, {listener_count} listeners",
        )
    return list(document.notes)


def import_access(server: MailServer, text: str, *, user=None) -> int:
    """Rows for the tags the console manages; every other line is kept verbatim."""
    managed: list[tuple[str, str, str]] = []
    unmanaged: list[str] = []
    for line in text.splitlines():
        left, _, value = line.partition("\t") if "\t" in line else line.partition(" ")
        tag, colon, key = left.partition(":")
        try:
            if not colon:
                raise ValidationError("not a tagged row")
            managed.append(accessmap.clean_entry(tag, key, value.strip()))
        except ValidationError:
            unmanaged.append(line)
    with transaction.atomic():
        server.access_entries.all().delete()
        AccessEntry.objects.bulk_create(AccessEntry(server=server, tag=t, key=k, value=v) for t, k, v in managed)
        server.access_unmanaged = "".join(line + "\n" for line in unmanaged)
        server.save(update_fields=["access_unmanaged"])
        audit.record("import access map", user=user, server=server, detail=f"{len(managed)} rows")
    return len(managed)


def live_build(server: MailServer) -> ConfigBuild | None:
    """The build whose cf is installed, by content: the sha256 of the cf the agent last saw on disk
    (its HostSnapshot) against each build's. None: no snapshot yet, or a cf not built here."""
    cf = HostSnapshot.objects.filter(server=server).values_list("cf", flat=True).first() or {}
    return build_with_cf(server, cf.get("sha256") if cf.get("exists") else "")


def build_with_cf(server: MailServer, digest: str) -> ConfigBuild | None:
    """The newest of the server's builds whose cf has this sha256 (None for an empty digest)."""
    return server.builds.filter(cf_sha256=digest).order_by("-pk").first() if digest else None
