"""Configuration work the page and the API both ask for, in one place: installing (or rolling back
to) a finished build."""

from __future__ import annotations

from django.db import transaction

from mailadmin import audit, work
from mailadmin.models import ConfigBuild, InstallJob


class InstallRefused(ValueError):
    """The build cannot be installed; nothing was queued."""


def request_install(build: ConfigBuild, *, request) -> InstallJob:
    """Queue the install of a built cf on its host's agent: a rollback when a later build is live."""
    if build.status != work.WorkStatus.DONE:
        raise InstallRefused(f"{build.build_id} did not build successfully; there is nothing to install.")
    rollback = build.server.builds.filter(pk__gt=build.pk, installed_at__isnull=False).exists()
    with transaction.atomic():
        job = InstallJob.objects.create(server=build.server, build=build, rollback=rollback, created_by=request.user)
        audit.record(
            "cf rollback requested" if rollback else "cf install requested",
            request=request,
            server=build.server,
            target=build.build_id,
            outcome="queued",
        )
        work.dispatch_on_commit(job)
    return job
