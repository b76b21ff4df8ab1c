import time

from django.core.management.base import BaseCommand, CommandError

from mailadmin import config, tasks, work
from mailadmin.models import ConfigBuild, InstallJob, MailServer


def run_here(model, pk: int, task) -> None:
    """Run the row's task in this process; if a worker claimed it first, wait for the worker."""
    task(pk)
    row = model.objects.get(pk=pk)
    while not row.finished:
        time.sleep(0.2)
        row.refresh_from_db()


class Command(BaseCommand):
    help = "Build sendmail.cf from a server's rows (m4 + sendmail check + value check); --install installs it."

    def add_arguments(self, parser):
        parser.add_argument("--server", default="local")
        parser.add_argument("--install", action="store_true", help="install the build and reload the daemon")

    def handle(self, *args, server, install, **options):
        from mailadmin.mta import agent

        try:
            agent.serve_host_commands(server)
        except agent.AgentConfigError as exc:
            raise CommandError(str(exc)) from None
        try:
            mail_server = MailServer.objects.get(name=server)
        except MailServer.DoesNotExist:
            raise CommandError(f"no server named {server!r}") from None
        try:
            build = config.start_build(mail_server)
        except config.BuildRefused as exc:
            raise CommandError(f"build refused: {exc}") from exc
        run_here(ConfigBuild, build.pk, tasks.run_config_build)
        build.refresh_from_db()
        if build.status != work.WorkStatus.DONE:
            raise CommandError(f"{build.build_id} failed: {build.error}")
        changed = sum(1 for line in build.diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---"))
        self.stdout.write(f"{build.build_id} built: {changed} changed lines against the installed cf")
        if not install:
            return
        job = InstallJob.objects.create(server=mail_server, build=build)
        work.dispatch_on_commit(job)
        run_here(InstallJob, job.pk, tasks.run_install)
        job.refresh_from_db()
        if job.status != work.WorkStatus.DONE:
            raise CommandError(f"install of {build.build_id} failed: {job.error}")
        self.stdout.write(job.output)
