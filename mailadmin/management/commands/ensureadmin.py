import os
import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

from mailadmin import audit
from mailadmin.roles import Role


class Command(BaseCommand):
    help = (
        "Create the administrator account if it does not exist. The password comes from "
        "MAILADMIN_ADMIN_PASSWORD or is generated and printed once."
    )

    def add_arguments(self, parser):
        parser.add_argument("--username", default=os.environ.get("MAILADMIN_ADMIN_USER", "admin"))

    def handle(self, *args, username, **options):
        users = get_user_model()
        if users.objects.filter(username=username).exists():
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
                    "  This password is shown once; write it down.\n"
                )
            )
