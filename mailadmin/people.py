"""People: console users, their roles, their second factor and their login lockouts.

The second factor is django-otp's: a TOTP device (an authenticator app) and a static device whose
tokens are the recovery codes, each usable once. Lockouts are django-axes' AccessAttempt rows.
These functions hold the rules (who must have a second factor, that the console always keeps an
active administrator); the views in people_views.py call them and write the audit rows.
"""

from __future__ import annotations

import base64
import io
import secrets
from dataclasses import dataclass
from datetime import datetime

import qrcode
import qrcode.image.svg
from axes.models import AccessAttempt
from axes.utils import reset as axes_reset
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.db.models import Max, Q, Sum
from django_otp import devices_for_user
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from mailadmin.roles import Role, role_of

AUTHENTICATOR_NAME = "authenticator"
RECOVERY_DEVICE_NAME = "recovery codes"
RECOVERY_CODE_COUNT = 10


class PeopleRefused(Exception):
    """A change to users that the console's rules forbid; the message says why, for the page."""


# --- Who must have a second factor.


def second_factor_required(user) -> bool:
    return settings.MAILADMIN_REQUIRE_2FA_FOR_ADMINISTRATORS and role_of(user) == Role.ADMINISTRATOR


def authenticator(user) -> TOTPDevice | None:
    """The user's confirmed TOTP device (one per user: enrolling a new one replaces the old)."""
    return TOTPDevice.objects.devices_for_user(user, confirmed=True).first()


def has_second_factor(user) -> bool:
    return authenticator(user) is not None


def pending_step(user) -> str | None:
    """What a logged-in user whose session has not passed a second factor must do before anything
    else: "code" (they have an authenticator), "enrol" (an administrator must have one), or None."""
    # otp_device: set by OTPMiddleware (or django_otp.login) once the session passed a code; a user
    # object fresh from the password step has none yet.
    if not user.is_authenticated or getattr(user, "otp_device", None) is not None:
        return None
    if has_second_factor(user):
        return "code"
    if second_factor_required(user):
        return "enrol"
    return None


# --- Enrolment.


def start_enrolment(user) -> TOTPDevice:
    """A fresh unconfirmed authenticator (a new secret); it counts only once a code confirms it."""
    TOTPDevice.objects.devices_for_user(user, confirmed=False).delete()
    return TOTPDevice.objects.create(user=user, name=AUTHENTICATOR_NAME, confirmed=False)


def pending_enrolment(user) -> TOTPDevice | None:
    return TOTPDevice.objects.devices_for_user(user, confirmed=False).order_by("-id").first()


def secret_text(device: TOTPDevice) -> str:
    """The secret as authenticator apps ask for it when typed in: base32, in groups of four."""
    encoded = base64.b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


def qr_code_data_uri(device: TOTPDevice) -> str:
    """The otpauth:// URL as an SVG QR code in a data: URI, for an <img> (no inline markup, no style)."""
    image = qrcode.make(device.config_url, image_factory=qrcode.image.svg.SvgPathImage, box_size=10, border=2)
    buffer = io.BytesIO()
    image.save(buffer)
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode()


def confirm_enrolment(device: TOTPDevice, code: str) -> list[str] | None:
    """Confirm `device` with a code from the authenticator (django-otp verifies it, with its own
    throttling); on success it replaces any earlier authenticator and the recovery codes are new.
    Returns the new recovery codes, or None when the code is wrong."""
    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().get(pk=device.pk)
        if not device.verify_token(normalise_code(code)):
            return None
        TOTPDevice.objects.filter(user=device.user).exclude(pk=device.pk).delete()
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        return regenerate_recovery_codes(device.user)


# --- Recovery codes.


def regenerate_recovery_codes(user) -> list[str]:
    """RECOVERY_CODE_COUNT new single-use codes; the old ones stop working."""
    with transaction.atomic():
        device, _ = StaticDevice.objects.get_or_create(
            user=user, name=RECOVERY_DEVICE_NAME, defaults={"confirmed": True}
        )
        device.token_set.all().delete()
        codes = [StaticToken.random_token() for _ in range(RECOVERY_CODE_COUNT)]
        StaticToken.objects.bulk_create(StaticToken(device=device, token=code) for code in codes)
    return codes


def recovery_codes_left(user) -> int:
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).count()


# --- The code step of a login.


def normalise_code(code: str) -> str:
    # Authenticator apps show "123 456"; recovery codes are handed out in lower case.
    return "".join(code.split()).lower()


@dataclass
class CodeCheck:
    device: Device | None
    recovery_code: bool
    refusal: str = ""


def check_code(user, code: str) -> CodeCheck:
    """Check a code typed at the login's second step: six digits go to the authenticator, anything
    else to the recovery codes (so a recovery code never counts as a wrong authenticator code in
    django-otp's throttling). A used recovery code is consumed."""
    code = normalise_code(code)
    recovery = not (code.isdigit() and len(code) == 6)
    with transaction.atomic():
        if recovery:
            candidates = StaticDevice.objects.devices_for_user(user, confirmed=True).select_for_update()
        else:
            candidates = TOTPDevice.objects.devices_for_user(user, confirmed=True).select_for_update()
        for device in candidates:
            allowed, why = device.verify_is_allowed()
            if not allowed:
                return CodeCheck(None, recovery, refusal=throttle_message(why))
            if device.verify_token(code):
                return CodeCheck(device, recovery)
    return CodeCheck(None, recovery, refusal="That code is not valid.")


def throttle_message(why: dict | None) -> str:
    until: datetime | None = (why or {}).get("locked_until")
    if until is None:
        return "Too many wrong codes: wait a little and try again."
    return f"Too many wrong codes: try again after {until:%H:%M:%S} UTC."


def remove_second_factor(user) -> int:
    """Delete the user's authenticator and recovery codes (django-otp's other devices too)."""
    removed = 0
    for device in list(devices_for_user(user, confirmed=None)):
        device.delete()
        removed += 1
    return removed


# --- Lockouts (django-axes).


@dataclass
class Lockout:
    username: str
    ip_address: str
    failures: int
    last_attempt: datetime


def lockouts() -> list[Lockout]:
    """Every user name + address that has reached the failure limit, newest first. django-axes
    keeps a row per user agent and adds them up for the name + address the lockout is keyed on."""
    totals = (
        AccessAttempt.objects.values("username", "ip_address")
        .annotate(failures=Sum("failures_since_start"), last_attempt=Max("attempt_time"))
        .filter(failures__gte=settings.AXES_FAILURE_LIMIT)
        .order_by("-last_attempt")
    )
    return [
        Lockout(row["username"] or "", row["ip_address"] or "", row["failures"], row["last_attempt"]) for row in totals
    ]


def locked_out_usernames() -> set[str]:
    return {lockout.username for lockout in lockouts()}


def lift_lockout(username: str) -> int:
    """Forget every failed attempt for `username` (from any address); returns how many rows went."""
    return axes_reset(username=username)


# --- Users and roles.


def active_administrators():
    return User.objects.filter(is_active=True).filter(
        Q(is_superuser=True) | Q(groups__name=Role.ADMINISTRATOR.group_name)
    )


def _keep_an_administrator(changed: User, *, becomes_administrator: bool) -> None:
    """Refuse a change that would leave no active administrator (checked under a row lock, so two
    administrators demoting each other at once cannot both succeed)."""
    if becomes_administrator:
        return
    # of=("self",): PostgreSQL cannot lock the nullable side of the groups join.
    others = list(
        active_administrators().exclude(pk=changed.pk).select_for_update(of=("self",)).values_list("pk", flat=True)
    )
    if not others:
        raise PeopleRefused(f"{changed.username} is the last active administrator: make another administrator first.")


def generate_password() -> str:
    # 20 characters from the URL-safe alphabet: far above the validators' 12, easy to hand over.
    return secrets.token_urlsafe(15)


def create_user(username: str, email: str, role: Role) -> tuple[User, str]:
    """A new user with `role` and a generated initial password (returned once, to be handed over)."""
    password = generate_password()
    with transaction.atomic():
        user = User.objects.create_user(username=username, email=email, password=password)
        user.groups.add(Group.objects.get_or_create(name=role.group_name)[0])
    return user, password


def assigned_role(user: User) -> Role | None:
    """The role a user holds, active or not (role_of() answers None for a deactivated user)."""
    if user.is_superuser:
        return Role.ADMINISTRATOR
    names = {group.name for group in user.groups.all()}
    return max((r for r in Role if r.group_name in names), default=None)


def set_role(user: User, role: Role) -> Role | None:
    """Give `user` exactly `role`; returns the role they had."""
    if user.is_superuser:
        raise PeopleRefused(
            f"{user.username} is a superuser and so always an administrator: change that with manage.py."
        )
    before = assigned_role(user)
    with transaction.atomic():
        if before == Role.ADMINISTRATOR and user.is_active:
            _keep_an_administrator(user, becomes_administrator=role == Role.ADMINISTRATOR)
        user.groups.remove(*Group.objects.filter(name__in=[r.group_name for r in Role]))
        user.groups.add(Group.objects.get_or_create(name=role.group_name)[0])
    user.__dict__.pop("_mailadmin_role", None)
    return before


def set_active(user: User, active: bool) -> None:
    """Deactivate (the user can no longer log in; their sessions end) or reactivate."""
    with transaction.atomic():
        if not active and user.is_active and assigned_role(user) == Role.ADMINISTRATOR:
            _keep_an_administrator(user, becomes_administrator=False)
        user.is_active = active
        user.save(update_fields=["is_active"])


def reset_password(user: User) -> str:
    password = generate_password()
    user.set_password(password)
    user.save(update_fields=["password"])
    return password


@dataclass
class UserRow:
    user: User
    role: Role | None
    second_factor: bool
    recovery_codes: int
    locked_out: bool


def user_rows() -> list[UserRow]:
    """Every user with what the users page shows about them."""
    locked = locked_out_usernames()
    with_device = set(TOTPDevice.objects.filter(confirmed=True).values_list("user_id", flat=True))
    codes: dict[int, int] = {}
    for user_id in StaticToken.objects.filter(device__confirmed=True).values_list("device__user_id", flat=True):
        codes[user_id] = codes.get(user_id, 0) + 1
    users = User.objects.order_by("username").prefetch_related("groups")
    rows = []
    for user in users:
        role = assigned_role(user)
        rows.append(UserRow(user, role, user.pk in with_device, codes.get(user.pk, 0), user.username in locked))
    return rows
