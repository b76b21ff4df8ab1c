"""Create the first administrator (`make run` calls this), and the shell's way back in for an
administrator who lost both their authenticator and their recovery codes."""

import os
import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError

from mailadmin import audit, people
from mailadmin.roles import Role


class Command(BaseCommand):
    help = (
        "Create the administrator account if it does not exist. The password comes from "
        "MAILADMIN_ADMIN_PASSWORD or is generated and printed once. Its first login sets up an "
        "authenticator app (administrators must have a second factor)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--username", default=os.environ.get("MAILADMIN_ADMIN_USER", "admin"))
        parser.add_argument(
            "--reset-second-factor",
            action="store_true",
            help="Remove the existing account's authenticator and recovery codes: its next login enrols a new one.",
        )

    def handle(self, *args, username, reset_second_factor=False, **options):
        users = get_user_model()
        existing = users.objects.filter(username=username).first()
        if reset_second_factor:
            if existing is None:
                raise CommandError(f"there is no account '{username}'")
            removed = people.remove_second_factor(existing)
            audit.record("2fa reset", target=username, detail=f"{removed} devices removed by ensureadmin")
            self.stdout.write(f"second factor of '{username}' removed: the next login sets up a new authenticator")
            return
        if existing is not None:
            self.stdout.write(f"administrator account '{username}' exists (password unchanged)")
            return
        password = os.environ.get("MAILADMIN_ADMIN_PASSWORD") or secrets.token_urlsafe(15)
        user = users.objects.create_user(username=username, password=password)
        user.groups.add(Group.objects.get(name=Role.ADMINISTRATOR.group_name))
        audit.record("create administrator", target=username, detail="created by ensureadmin")
        if os.environ.get("MAILADMIN_ADMIN_PASSWORD"):
            self.stdout.write(f"administrator account '{username}' created with MAILADMIN_ADMIN_PASSWORD")
        else:
            self.stdout.write(
                self.style.WARNING(
                    f"\n  Administrator account created.\n    user:     {username}\n    password: {password}\n"
                    "  This password is shown once; write it down. The first login sets up an\n"
                    "  authenticator app (TOTP) for the second factor.\n"
                )
            )
