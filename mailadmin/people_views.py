"""People pages: the login and its second step, a user's own account (password, authenticator,
recovery codes), the administrators' users page, the gate that holds a session at the second
step until it is passed, and the audited CSRF refusal.

The rules live in mailadmin.people; these views check the role, call them and audit every
outcome. A password or a code is never written to the audit log.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import PasswordChangeForm
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_otp import login as otp_login

from mailadmin import audit, people
from mailadmin.models import AuditEvent
from mailadmin.roles import Role, require_role
from mailadmin.views import render_page

# Recovery codes and a generated password are shown once: kept in the session only until the
# page that shows them is opened (never in a message, whose storage may be a cookie).
SHOW_ONCE_CODES = "people_recovery_codes"
SHOW_ONCE_PASSWORD = "people_initial_password"

# What a session still at the second step may open (url names); everything else redirects there.
CODE_STEP_VIEWS = {"login", "logout", "login_verify"}
ENROL_STEP_VIEWS = {"login", "logout", "totp_enrol", "totp_start", "totp_confirm", "recovery_codes"}


class SecondFactorGate:
    """After OTPMiddleware: a logged-in user whose session has not passed the second factor reaches
    only the code step (they have an authenticator) or enrolment (an administrator without one,
    when MAILADMIN_REQUIRE_2FA_FOR_ADMINISTRATORS is on), and logout."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs):
        step = people.pending_step(request.user)
        if step is None:
            return None
        request.second_factor_pending = step  # base.html hides the navigation
        name = request.resolver_match.url_name if request.resolver_match else None
        if name in (CODE_STEP_VIEWS if step == "code" else ENROL_STEP_VIEWS):
            return None
        target = "login_verify" if step == "code" else "totp_enrol"
        return redirect(with_next(target, request.get_full_path() if request.method == "GET" else ""))


def page(request: HttpRequest, template_name: str, context: dict, *, section: str) -> HttpResponse:
    """A console page; while the session is held at the second step, without the navigation's
    server context (whose widgets would only be redirected to this step)."""
    if getattr(request, "second_factor_pending", None):
        return render(request, template_name, context)
    return render_page(request, template_name, context, section=section)


def safe_next(request: HttpRequest, default: str = settings.LOGIN_REDIRECT_URL) -> str:
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    # Never back into the login steps themselves: a verified session would bounce between them.
    if (
        candidate
        and not candidate.startswith(reverse("login"))
        and url_has_allowed_host_and_scheme(
            candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        )
    ):
        return candidate
    return reverse(default)


def with_next(view_name: str, next_url: str) -> str:
    return f"{reverse(view_name)}?{urlencode({'next': next_url})}" if next_url else reverse(view_name)


# --- Login: password (throttled by django-axes), then the second step.


class ConsoleLoginView(auth_views.LoginView):
    """Django's login, audited, that sends the session on to the code step or to enrolment."""

    def form_valid(self, form):
        response = super().form_valid(form)  # django.contrib.auth.login(): the session is the user's
        user = form.get_user()
        step = people.pending_step(self.request.user)
        detail = {
            "code": "password accepted; second factor next",
            "enrol": "password accepted; must enrol an authenticator",
            None: "password accepted",
        }[step]
        audit.record("log in", request=self.request, user=user, target=user.get_username(), detail=detail)
        next_url = self.get_redirect_url()
        if step == "code":
            return redirect(with_next("login_verify", next_url))
        if step == "enrol":
            return redirect(with_next("totp_enrol", next_url))
        return response


class CodeForm(forms.Form):
    code = forms.CharField(
        max_length=32,
        label="Code",
        widget=forms.TextInput(
            attrs={
                "autocomplete": "one-time-code",
                "autocapitalize": "none",
                "class": "form-control",
                "autofocus": True,
            }
        ),
    )


@require_http_methods(["GET", "POST"])
def login_verify(request: HttpRequest) -> HttpResponse:
    """The login's second step: a code from the authenticator, or a recovery code (used up)."""
    user = request.user
    if people.pending_step(user) != "code":
        return redirect(safe_next(request))
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        check = people.check_code(user, form.cleaned_data["code"])
        if check.device is not None:
            otp_login(request, check.device)
            if check.recovery_code:
                left = people.recovery_codes_left(user)
                audit.record(
                    "2fa recovery code used", request=request, target=user.get_username(), detail=f"{left} left"
                )
                messages.warning(
                    request, f"You used a recovery code; {left} left. Regenerate them on your account page."
                )
            else:
                audit.record("2fa verified", request=request, target=user.get_username(), detail="authenticator code")
            return redirect(safe_next(request))
        audit.record(
            "2fa code wrong",
            request=request,
            target=user.get_username(),
            outcome=AuditEvent.Outcome.FAILED,
            detail=("recovery code: " if check.recovery_code else "authenticator code: ") + check.refusal,
        )
        form.add_error("code", check.refusal)
    return render(request, "registration/verify.html", {"form": form, "next": request.GET.get("next", "")})


# --- The user's own account.


def password_form(user, data=None) -> PasswordChangeForm:
    form = PasswordChangeForm(user, data)
    for field in form.fields.values():
        field.widget.attrs["class"] = "form-control form-control-sm"
    return form


def account_context(request: HttpRequest, form: PasswordChangeForm | None = None) -> dict:
    user = request.user
    return {
        "password_form": form or password_form(user),
        "authenticator": people.authenticator(user),
        "recovery_codes_left": people.recovery_codes_left(user),
        "second_factor_required": people.second_factor_required(user),
    }


@require_role(Role.VIEWER)
@require_GET
def account(request: HttpRequest) -> HttpResponse:
    return render_page(request, "mailadmin/people/account.html", account_context(request), section="account")


@require_role(Role.VIEWER)
@require_POST
def password_change(request: HttpRequest) -> HttpResponse:
    form = password_form(request.user, request.POST)
    if not form.is_valid():
        audit.record(
            "change password",
            request=request,
            target=request.user.get_username(),
            outcome=AuditEvent.Outcome.FAILED,
            detail="refused: " + ", ".join(sorted(form.errors)),
        )
        return render_page(request, "mailadmin/people/account.html", account_context(request, form), section="account")
    form.save()
    update_session_auth_hash(request, form.user)  # this session stays logged in (and verified)
    audit.record("change password", request=request, target=request.user.get_username())
    messages.success(request, "Your password was changed.")
    return redirect("account")


@require_role(Role.VIEWER)
@require_GET
def totp_enrol(request: HttpRequest) -> HttpResponse:
    """Enrolment: start (a POST makes the secret), then the QR code and the secret, then a code."""
    device = people.pending_enrolment(request.user)
    context = {
        "device": device,
        "has_authenticator": people.has_second_factor(request.user),
        "required": people.second_factor_required(request.user),
        "form": CodeForm(),
        "next": request.GET.get("next", ""),
    }
    if device is not None:
        context["secret"] = people.secret_text(device)
        context["qr_code"] = people.qr_code_data_uri(device)
    return page(request, "mailadmin/people/enrol.html", context, section="account")


@require_role(Role.VIEWER)
@require_POST
def totp_start(request: HttpRequest) -> HttpResponse:
    people.start_enrolment(request.user)
    audit.record("2fa enrolment started", request=request, target=request.user.get_username())
    return redirect(with_next("totp_enrol", request.POST.get("next", "")))


@require_role(Role.VIEWER)
@require_POST
def totp_confirm(request: HttpRequest) -> HttpResponse:
    device = people.pending_enrolment(request.user)
    if device is None:
        messages.error(request, "Start the set-up first.")
        return redirect("totp_enrol")
    form = CodeForm(request.POST)
    codes = people.confirm_enrolment(device, form.data.get("code", "")) if form.is_valid() else None
    if codes is None:
        audit.record(
            "2fa code wrong",
            request=request,
            target=request.user.get_username(),
            outcome=AuditEvent.Outcome.FAILED,
            detail="enrolment: the code did not match the new authenticator",
        )
        messages.error(request, "That code did not match: check the device's clock and type the newest code.")
        return redirect(with_next("totp_enrol", request.POST.get("next", "")))
    device.refresh_from_db()
    otp_login(request, device)  # this session has just proven the authenticator
    audit.record(
        "2fa enrolled",
        request=request,
        target=request.user.get_username(),
        detail=f"authenticator confirmed; {len(codes)} recovery codes issued",
    )
    request.session[SHOW_ONCE_CODES] = codes
    return redirect(with_next("recovery_codes", request.POST.get("next", "")))


@require_role(Role.VIEWER)
@require_GET
def recovery_codes(request: HttpRequest) -> HttpResponse:
    """New recovery codes, shown this once; a reload shows only how many are left."""
    codes = request.session.pop(SHOW_ONCE_CODES, None)
    context = {
        "codes": codes,
        "left": people.recovery_codes_left(request.user),
        "next": safe_next(request, "account"),
    }
    return page(request, "mailadmin/people/recovery_codes.html", context, section="account")


@require_role(Role.VIEWER)
@require_POST
def recovery_regenerate(request: HttpRequest) -> HttpResponse:
    if not people.has_second_factor(request.user):
        messages.error(request, "Set up an authenticator first: recovery codes stand in for it.")
        return redirect("account")
    codes = people.regenerate_recovery_codes(request.user)
    audit.record(
        "2fa recovery codes regenerated",
        request=request,
        target=request.user.get_username(),
        detail=f"{len(codes)} new codes; the old ones no longer work",
    )
    request.session[SHOW_ONCE_CODES] = codes
    return redirect("recovery_codes")


@require_role(Role.VIEWER)
@require_POST
def totp_disable(request: HttpRequest) -> HttpResponse:
    """Remove one's own second factor, confirmed by typing the password again. An administrator
    who must have one is sent straight to enrol a new authenticator (the gate allows nothing else)."""
    user = request.user
    if not user.check_password(request.POST.get("password", "")):
        audit.record(
            "2fa disable",
            request=request,
            target=user.get_username(),
            outcome=AuditEvent.Outcome.FAILED,
            detail="refused: wrong password",
        )
        messages.error(request, "Wrong password: your second factor is unchanged.")
        return redirect("account")
    removed = people.remove_second_factor(user)
    audit.record("2fa disable", request=request, target=user.get_username(), detail=f"{removed} devices removed")
    if people.second_factor_required(user):
        messages.warning(request, "Administrators must have a second factor: set up the new authenticator now.")
        return redirect("totp_enrol")
    messages.success(request, "Second factor removed: you log in with your password alone.")
    return redirect("account")


# --- Administrators: the users page.


ROLE_CHOICES = [(role.group_name, role.group_name) for role in Role]


class UserCreateForm(forms.Form):
    username = forms.CharField(max_length=150, validators=[User.username_validator], label="User name")
    email = forms.EmailField(required=False, label="E-mail (optional)")
    role = forms.ChoiceField(choices=ROLE_CHOICES, initial=Role.VIEWER.group_name)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            is_select = isinstance(field.widget, forms.Select)
            field.widget.attrs["class"] = "form-select form-select-sm" if is_select else "form-control form-control-sm"

    def clean_username(self) -> str:
        username = self.cleaned_data["username"]
        if User.objects.filter(username__iexact=username).exists():
            raise forms.ValidationError("A user with that name exists.")
        return username


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=ROLE_CHOICES)


def users_page(request: HttpRequest, create_form: UserCreateForm | None = None) -> HttpResponse:
    context = {
        "rows": people.user_rows(),
        "lockouts": people.lockouts(),
        "create_form": create_form or UserCreateForm(),
        "roles": [role.group_name for role in Role],
        "shown_password": request.session.pop(SHOW_ONCE_PASSWORD, None),
        "failure_limit": settings.AXES_FAILURE_LIMIT,
    }
    return render_page(request, "mailadmin/people/users.html", context, section="users")


@require_role(Role.ADMINISTRATOR)
@require_GET
def user_list(request: HttpRequest) -> HttpResponse:
    return users_page(request)


@require_role(Role.ADMINISTRATOR)
@require_POST
def user_create(request: HttpRequest) -> HttpResponse:
    form = UserCreateForm(request.POST)
    if not form.is_valid():
        audit.record(
            "create user",
            request=request,
            target=request.POST.get("username", ""),
            outcome=AuditEvent.Outcome.FAILED,
            detail="; ".join(f"{field}: {' '.join(errors)}" for field, errors in form.errors.items()),
        )
        return users_page(request, form)
    role = Role[form.cleaned_data["role"].upper()]
    user, password = people.create_user(form.cleaned_data["username"], form.cleaned_data["email"], role)
    audit.record("create user", request=request, target=user.username, detail=f"role {role.group_name}")
    request.session[SHOW_ONCE_PASSWORD] = {"username": user.username, "password": password}
    return redirect("user_list")


def refused(request: HttpRequest, action: str, target: User, exc: people.PeopleRefused) -> HttpResponse:
    audit.record(action, request=request, target=target.username, outcome=AuditEvent.Outcome.DENIED, detail=str(exc))
    messages.error(request, str(exc))
    return redirect("user_list")


@require_role(Role.ADMINISTRATOR)
@require_POST
def user_role(request: HttpRequest, pk: int) -> HttpResponse:
    target = get_object_or_404(User, pk=pk)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose one of the roles.")
        return redirect("user_list")
    role = Role[form.cleaned_data["role"].upper()]
    try:
        before = people.set_role(target, role)
    except people.PeopleRefused as exc:
        return refused(request, "change role", target, exc)
    audit.record(
        "change role",
        request=request,
        target=target.username,
        detail=f"{before.group_name if before else 'no role'} → {role.group_name}",
    )
    messages.success(request, f"{target.username} is now {role.group_name}.")
    return redirect("user_list")


@require_role(Role.ADMINISTRATOR)
@require_POST
def user_active(request: HttpRequest, pk: int) -> HttpResponse:
    target = get_object_or_404(User, pk=pk)
    active = request.POST.get("active") == "1"
    action = "reactivate user" if active else "deactivate user"
    try:
        people.set_active(target, active)
    except people.PeopleRefused as exc:
        return refused(request, action, target, exc)
    audit.record(action, request=request, target=target.username)
    messages.success(request, f"{target.username} {'can log in again' if active else 'can no longer log in'}.")
    return redirect("user_list")


@require_role(Role.ADMINISTRATOR)
@require_POST
def user_reset_2fa(request: HttpRequest, pk: int) -> HttpResponse:
    target = get_object_or_404(User, pk=pk)
    removed = people.remove_second_factor(target)
    audit.record("2fa reset", request=request, target=target.username, detail=f"{removed} devices removed")
    then = (
        "they must enrol a new authenticator at their next login"
        if people.second_factor_required(target)
        else "they log in with their password alone until they enrol again"
    )
    messages.success(request, f"Second factor of {target.username} removed: {then}.")
    return redirect("user_list")


@require_role(Role.ADMINISTRATOR)
@require_POST
def user_password_reset(request: HttpRequest, pk: int) -> HttpResponse:
    target = get_object_or_404(User, pk=pk)
    password = people.reset_password(target)
    audit.record("reset password", request=request, target=target.username, detail="new password generated")
    request.session[SHOW_ONCE_PASSWORD] = {"username": target.username, "password": password}
    return redirect("user_list")


@require_role(Role.ADMINISTRATOR)
@require_POST
def lockout_lift(request: HttpRequest) -> HttpResponse:
    username = request.POST.get("username", "")
    count = people.lift_lockout(username)
    audit.record("lift lockout", request=request, target=username, detail=f"{count} failed-attempt records removed")
    messages.success(request, f"Lockout of {username} lifted." if count else f"{username} was not locked out.")
    return redirect("user_list")


# --- Refusals that never reach a view.


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: a POST without a valid token is refused and audited (nothing changed)."""
    detail = f"reason: {reason}"
    if request.path == reverse("login") and request.POST.get("username"):
        detail += f"; attempted user name {request.POST['username']}"
    audit.record(
        "csrf refusal",
        request=request,
        target=f"{request.method} {request.path}",
        outcome=AuditEvent.Outcome.DENIED,
        detail=detail,
    )
    return render(request, "403_csrf.html", {"reason": reason}, status=403)
