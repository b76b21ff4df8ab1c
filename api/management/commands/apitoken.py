"""`manage.py apitoken --user NAME --scope S [--scope S …] [--days N] [--host NAME …]`: a new token,
printed once (the database keeps only its hash)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from api import tokens
from mailadmin import audit
from mailadmin.models import MailServer


class Command(BaseCommand):
    help = "Create an API token for a user and print it once."

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True)
        parser.add_argument("--scope", action="append", required=True, choices=list(tokens.SCOPES))
        parser.add_argument("--days", type=int, default=90)
        parser.add_argument("--host", action="append", default=[], help="Limit the token to this host (repeatable).")
        parser.add_argument("--name", default="", help="What the token is for (default: cli).")

    def handle(self, *args, **options):
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"No user {options['user']!r}.")
        servers = list(MailServer.objects.filter(name__in=options["host"]))
        missing = set(options["host"]) - {server.name for server in servers}
        if missing:
            raise CommandError(f"No host {', '.join(sorted(missing))}.")
        try:
            made = tokens.create(
                user, name=options["name"] or "cli", scopes=options["scope"], days=options["days"], servers=servers
            )
        except ValueError as refusal:
            raise CommandError(str(refusal)) from None
        audit.record(
            "create API token",
            user=user,
            target=str(made.row),
            detail=f"by manage.py apitoken; scopes: {' '.join(made.row.scopes)}; "
            f"hosts: {' '.join(options['host']) or 'all'}",
        )
        self.stdout.write(made.text)
