"""Console users with one role each, the way the fixtures and the tests make them."""

from __future__ import annotations


def make_user(username: str, role: str | None):
    from django.contrib.auth.models import Group, User

    user = User.objects.create_user(username=username, password="correct horse battery")
    if role:
        # get_or_create: a transactional test before this one flushed the migration's groups.
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user
