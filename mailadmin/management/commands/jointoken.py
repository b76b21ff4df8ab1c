from django.core.management.base import BaseCommand, CommandError

from mailadmin import hosts
from mailadmin.mta.agent import _NAME


class Command(BaseCommand):
    help = "Print a one-time token with which the agent of a new MTA host may ask to join (shown once)."

    def add_arguments(self, parser):
        parser.add_argument("host", help="the host's name as its agent configuration gives it (host = ...)")
        parser.add_argument("--hours", type=int, default=hosts.JOIN_TOKEN_HOURS)

    def handle(self, *args, host, hours, **options):
        if not _NAME.fullmatch(host):
            raise CommandError("a host name is 1-39 lower-case letters, digits and '-'")
        if not 1 <= hours <= 24 * 30:
            raise CommandError("--hours: between 1 and 720")
        token = hosts.issue_join_token(host, hours=hours)
        self.stdout.write(token)
        self.stderr.write(
            f'Put `join_token = "{token}"` and `host = "{host}"` in the agent configuration of {host} '
            f"(/etc/mailadmin/agent.toml), start its agent, then approve it under Servers. Valid {hours} h, once."
        )
