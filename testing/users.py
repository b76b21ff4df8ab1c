"""Console users with one role each, the way the fixtures and the tests make them, and their
second factor: an administrator gets a real, confirmed TOTP device (administrators must have one),
and the helpers that log in type its current code the way an authenticator app would show it."""

from __future__ import annotations

import time

from django.contrib.auth.signals import user_logged_in

PASSWORD = "correct horse battery"


def _persist_verified_device(sender, request, user, **kwargs):
    """django-otp's own user_logged_in receiver persists `user.otp_device` only through
    request.user, which the fake request of Client.force_login() does not have: give it the user
    and let django_otp.login() write the session key, as after a code was accepted."""
    import django_otp

    device = getattr(user, "otp_device", None)
    if device is not None and getattr(request, "user", None) is None:
        request.user = user
        django_otp.login(request, device)


user_logged_in.connect(_persist_verified_device, dispatch_uid="testing.users.verified-device", weak=False)


def make_user(username: str, role: str | None, *, authenticator: bool | None = None):
    """A user with `role`. Administrators (and anyone asked for with authenticator=True) get a
    confirmed TOTP device; the returned object carries it as `otp_device` (as django-otp's
    OTP-aware login forms leave it once a code is accepted), so Client.force_login(user) marks the
    session verified through django_otp.login() (see _persist_verified_device). Browser logins
    type the device's current code instead (fresh_totp_code)."""
    from django.contrib.auth.models import Group, User
    from django_otp.plugins.otp_totp.models import TOTPDevice

    user = User.objects.create_user(username=username, password=PASSWORD)
    if role:
        # get_or_create: a transactional test before this one flushed the migration's groups.
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    if authenticator if authenticator is not None else role == "administrator":
        user.otp_device = TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True)
    return user


def totp_code(key_hex: str, *, at: float | None = None, step: int = 30) -> str:
    """The code an authenticator app with this secret shows (at `at`, default now), six digits."""
    from binascii import unhexlify

    from django_otp.oath import TOTP

    totp = TOTP(unhexlify(key_hex), step=step)
    if at is not None:
        totp.time = at
    return f"{totp.token():06d}"


def totp_code_from_secret(secret_text: str) -> str:
    """The current code for a secret as the enrolment page shows it (base32 in groups of four)."""
    import base64

    compact = "".join(secret_text.split()).upper()
    padded = compact + "=" * (-len(compact) % 8)
    return totp_code(base64.b32decode(padded).hex())


def fresh_totp_code(username: str) -> str:
    """The current code of the user's authenticator, one django-otp will still accept: a code is
    good once (django-otp remembers the last time step it took), so after a login in the same 30 s
    step this waits for the next one, as a person would."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.get(user__username=username, confirmed=True)
    while int(time.time()) // device.step <= device.last_t:
        time.sleep(0.5)
    return totp_code(device.key, step=device.step)


def has_authenticator(username: str) -> bool:
    from django_otp.plugins.otp_totp.models import TOTPDevice

    return TOTPDevice.objects.filter(user__username=username, confirmed=True).exists()
