"""People: logins through the real forms with django-axes counting failures and django-otp checking
codes, the audit rows they leave, and the users and account pages.

The login is posted to the real LoginView (Client.login() would skip the request that django-axes
needs); codes are computed from the device's secret as an authenticator app computes them.
"""

import base64
import re
import time

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from mailadmin import people
from mailadmin.models import AuditEvent, MailServer
from mailadmin.roles import Role, role_of
from testing.users import PASSWORD, fresh_totp_code, make_user, totp_code, totp_code_from_secret


def log_in(client: Client, username: str, password: str = PASSWORD):
    return client.post("/login/", {"username": username, "password": password})


def events(action: str):
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


def remote_server() -> MailServer:
    """A server row whose host is elsewhere: the pages read rows and never touch it."""
    return MailServer.objects.create(
        name="remote",
        hostname="mx.example.org",
        conf_dir="/nonexistent/etc/mail",
        mc_path="/nonexistent/etc/mail/sendmail.mc",
        cf_path="/nonexistent/etc/mail/sendmail.cf",
        access_path="/nonexistent/etc/mail/access",
        cert_dir="/nonexistent/certs",
        queue_dir="/nonexistent/mqueue",
        pid_file="/nonexistent/sendmail.pid",
        sendmail_bin="/nonexistent/sendmail",
        smtp_port=9,
        celery_queue="mta.remote",
    )


# --- Throttling and lockout.


def test_failed_logins_are_audited_and_the_sixth_attempt_is_locked_out_even_with_the_right_password(
    operator, administrator
):
    client = Client()
    for attempt in range(1, 5):
        response = log_in(client, "otto", f"wrong guess {attempt}")
        assert response.status_code == 200 and "Please enter a correct username and password" in response.text
    fifth = log_in(client, "otto", "wrong guess 5")
    assert fifth.status_code == 429
    assert "administrator can lift it" in fifth.text

    failed = events("log in failed")
    assert [e.target for e in failed] == ["otto"] * 5
    assert [e.outcome for e in failed] == [AuditEvent.Outcome.FAILED] * 5
    assert "failure 5 of 5" in failed[-1].detail
    assert all(e.user is None and e.remote_addr == "127.0.0.1" for e in failed)
    (lockout,) = events("lockout")
    assert lockout.target == "otto" and lockout.outcome == AuditEvent.Outcome.DENIED
    assert not AuditEvent.objects.filter(detail__contains="wrong guess").exists()
    assert not AuditEvent.objects.filter(target__contains="wrong guess").exists()

    sixth = log_in(client, "otto", PASSWORD)
    assert sixth.status_code == 429
    assert "_auth_user_id" not in client.session
    assert "locked out (the password was not checked)" in events("log in failed")[-1].detail
    assert len(events("lockout")) == 1

    admin = Client()
    admin.force_login(administrator)
    page = admin.get("/users/")
    assert re.search(r'id="user-otto".*?locked out', page.text, re.S)
    assert admin.post("/users/lockouts/lift/", {"username": "otto"}).status_code == 302
    (lifted,) = events("lift lockout")
    assert lifted.username == "ada" and lifted.target == "otto"
    assert "locked out" not in re.search(r'id="user-otto".*?</tr>', admin.get("/users/").text, re.S).group(0)

    assert log_in(client, "otto", PASSWORD)["Location"] == "/"
    assert client.get("/servers/").status_code == 200
    assert events("log in")[-1].target == "otto"


def test_the_lockout_is_per_address_so_a_guesser_elsewhere_does_not_lock_out_the_owner(operator):
    for attempt in range(5):  # a new user agent each time changes nothing: the key is name + address
        log_in(Client(REMOTE_ADDR="192.0.2.7", HTTP_USER_AGENT=f"guesser/{attempt}"), "otto", f"guess {attempt}")
    assert log_in(Client(REMOTE_ADDR="192.0.2.7"), "otto", PASSWORD).status_code == 429
    (lockout,) = people.lockouts()
    assert (lockout.username, lockout.ip_address, lockout.failures) == ("otto", "192.0.2.7", 5)
    assert log_in(Client(), "otto", PASSWORD).status_code == 302


# --- The second factor.


def test_an_administrator_without_a_device_is_held_at_enrolment_until_they_enrol(db):
    make_user("root2", "administrator", authenticator=False)
    client = Client()
    assert log_in(client, "root2")["Location"] == "/account/2fa/"
    assert events("log in")[-1].detail == "password accepted; must enrol an authenticator"
    for path in ("/", "/servers/", "/audit/", "/users/", "/account/"):
        assert client.get(path)["Location"].startswith("/account/2fa/"), path
    assert client.post("/users/new/", {"username": "x", "role": "viewer"})["Location"] == "/account/2fa/"
    assert not User.objects.filter(username="x").exists()

    start = client.get("/account/2fa/")
    assert "Start: show the secret" in start.text and 'href="/users/"' not in start.text
    client.post("/account/2fa/start/")
    enrol = client.get("/account/2fa/")
    secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', enrol.text).group(1)
    qr = re.search(r'<img src="data:image/svg\+xml;base64,([^"]+)"', enrol.text).group(1)
    svg = base64.b64decode(qr).decode()
    assert "<svg" in svg and "<script" not in svg and "style" not in svg
    assert " style=" not in enrol.text and "<script>" not in enrol.text

    wrong = client.post("/account/2fa/confirm/", {"code": "abcdef"})
    assert wrong["Location"] == "/account/2fa/"
    assert events("2fa code wrong")[-1].outcome == AuditEvent.Outcome.FAILED
    assert not people.has_second_factor(User.objects.get(username="root2"))
    time.sleep(1.1)  # django-otp's throttle after a wrong code: 1 s, then 2, 4 ...

    confirmed = client.post("/account/2fa/confirm/", {"code": totp_code_from_secret(secret)})
    assert confirmed["Location"] == "/account/recovery-codes/"
    assert events("2fa enrolled")[-1].target == "root2"
    codes = re.findall(r"<li>([a-z2-7]{8})</li>", client.get("/account/recovery-codes/").text)
    assert len(codes) == 10
    assert re.findall(r"<li>([a-z2-7]{8})</li>", client.get("/account/recovery-codes/").text) == []
    assert client.get("/servers/").status_code == 200

    client.post("/logout/")
    again = Client()
    assert log_in(again, "root2")["Location"] == "/login/code/"
    assert again.get("/servers/")["Location"].startswith("/login/code/")
    assert again.get("/account/2fa/")["Location"].startswith("/login/code/")
    assert again.post("/login/code/", {"code": codes[0]})["Location"] == "/"
    assert again.get("/servers/").status_code == 200
    assert events("2fa recovery code used")[-1].detail == "9 left"


def test_a_recovery_code_works_once_only(administrator):
    codes = people.regenerate_recovery_codes(administrator)
    first = Client()
    log_in(first, "ada")
    assert first.post("/login/code/", {"code": codes[3].upper()})["Location"] == "/"

    second = Client()
    log_in(second, "ada")
    refused = second.post("/login/code/", {"code": codes[3]})
    assert refused.status_code == 200 and "That code is not valid." in refused.text
    assert second.get("/audit/")["Location"].startswith("/login/code/")
    wrong = events("2fa code wrong")[-1]
    assert wrong.username == "ada" and wrong.outcome == AuditEvent.Outcome.FAILED
    assert codes[3] not in wrong.detail
    # The recovery-code refusal does not count against the authenticator.
    assert second.post("/login/code/", {"code": fresh_totp_code("ada")})["Location"] == "/"
    assert StaticToken.objects.filter(device__user=administrator).count() == 9


def test_a_wrong_code_is_audited_and_django_otp_makes_the_next_try_wait(administrator):
    device = TOTPDevice.objects.get(user=administrator)
    right = fresh_totp_code("ada")
    wrong = "000000" if right != "000000" else "111111"
    client = Client()
    log_in(client, "ada")
    assert "Please enter" not in client.post("/login/code/", {"code": wrong}).text
    event = events("2fa code wrong")[-1]
    assert event.username == "ada" and "authenticator code" in event.detail
    assert "Too many wrong codes" in client.post("/login/code/", {"code": right}).text
    time.sleep(1.1)
    assert client.post("/login/code/", {"code": right})["Location"] == "/"
    device.refresh_from_db()
    assert device.throttling_failure_count == 0
    assert events("2fa verified")[-1].username == "ada"


def test_a_viewer_may_enrol_and_turn_the_second_factor_off_with_the_password(db):
    make_user("vera", "viewer", authenticator=True)
    client = Client()
    log_in(client, "vera")
    client.post("/login/code/", {"code": fresh_totp_code("vera")})
    assert "Turn off" in client.get("/account/").text
    client.post("/account/2fa/disable/", {"password": "not it"})
    assert events("2fa disable")[-1].outcome == AuditEvent.Outcome.FAILED
    assert TOTPDevice.objects.filter(user__username="vera").exists()
    assert client.post("/account/2fa/disable/", {"password": PASSWORD})["Location"] == "/account/"
    assert events("2fa disable")[-1].outcome == AuditEvent.Outcome.OK
    assert not TOTPDevice.objects.filter(user__username="vera").exists()
    assert log_in(Client(), "vera")["Location"] == "/"


def test_an_administrator_who_removes_their_authenticator_must_enrol_a_new_one_at_once(administrator):
    client = Client()
    client.force_login(administrator)
    assert "Replace authenticator" in client.get("/account/").text
    assert client.post("/account/2fa/disable/", {"password": PASSWORD})["Location"] == "/account/2fa/"
    assert client.get("/servers/")["Location"].startswith("/account/2fa/")


def test_an_administrator_resets_another_users_second_factor(administrator):
    make_user("bert", "administrator")
    client = Client()
    client.force_login(administrator)
    bert = User.objects.get(username="bert")
    client.post(f"/users/{bert.pk}/2fa-reset/")
    assert not people.has_second_factor(bert)
    assert events("2fa reset")[-1].target == "bert"
    assert log_in(Client(), "bert")["Location"] == "/account/2fa/"


@override_settings(MAILADMIN_REQUIRE_2FA_FOR_ADMINISTRATORS=False)
def test_with_the_setting_off_an_administrator_without_a_device_logs_in_with_the_password(db):
    make_user("root2", "administrator", authenticator=False)
    client = Client()
    assert log_in(client, "root2")["Location"] == "/"
    assert client.get("/users/").status_code == 200


def test_six_digits_go_to_the_authenticator_and_anything_else_to_the_recovery_codes(administrator):
    device = TOTPDevice.objects.get(user=administrator)
    (code,) = people.regenerate_recovery_codes(administrator)[:1]
    assert people.check_code(administrator, f" {code.upper()} ").recovery_code
    assert not people.check_code(administrator, code).device  # used up
    check = people.check_code(administrator, totp_code(device.key)[:3] + " " + totp_code(device.key)[3:])
    assert check.device == device and not check.recovery_code


# --- CSRF.


def test_a_post_without_a_csrf_token_is_refused_with_403_and_audited(administrator):
    client = Client(enforce_csrf_checks=True)
    client.force_login(administrator)
    response = client.post("/users/new/", {"username": "mallory", "role": "administrator"})
    assert response.status_code == 403 and "the form could not be verified" in response.text
    (event,) = events("csrf refusal")
    assert event.username == "ada" and event.target == "POST /users/new/"
    assert event.outcome == AuditEvent.Outcome.DENIED and "CSRF" in event.detail
    assert not User.objects.filter(username="mallory").exists()


def test_a_login_without_a_csrf_token_is_refused_and_names_the_attempted_user(operator):
    response = Client(enforce_csrf_checks=True).post("/login/", {"username": "otto", "password": PASSWORD})
    assert response.status_code == 403
    (event,) = events("csrf refusal")
    assert event.user is None and "attempted user name otto" in event.detail and PASSWORD not in event.detail


# --- Users and roles.


def test_an_administrator_creates_an_operator_who_can_act_on_the_queue_but_not_the_config(administrator):
    from mailqueue.models import QueueAction, QueueMessage

    server = remote_server()
    QueueMessage.objects.create(
        server=server,
        queue_id="6AOIGq4n025795",
        kind="qf",
        state="queued",
        directory="/x",
        inode=1,
        file_size=1,
        mtime_ns=1,
    )
    admin = Client()
    admin.force_login(administrator)
    assert admin.post("/users/new/", {"username": "olga", "email": "", "role": "operator"})["Location"] == "/users/"
    page = admin.get("/users/").text
    password = re.search(r'id="initial-password">([^<]+)<', page).group(1)
    assert 'id="initial-password"' not in admin.get("/users/").text  # shown once
    (created,) = events("create user")
    assert created.target == "olga" and created.detail == "role operator" and password not in created.detail
    assert role_of(User.objects.get(username="olga")) == Role.OPERATOR

    olga = Client()
    assert log_in(olga, "olga", password)["Location"] == "/"
    acted = olga.post(
        "/servers/remote/queue/act/",
        {"verb": "quarantine", "scope": "selected", "id": "6AOIGq4n025795", "reason": "olga looks"},
    )
    assert acted.status_code == 302
    assert QueueAction.objects.get().created_by.username == "olga"
    refused = olga.post("/servers/remote/config/option/", {"name": "MaxMessageSize", "value": "1000"})
    assert refused.status_code == 403
    assert AuditEvent.objects.filter(username="olga", outcome=AuditEvent.Outcome.DENIED).exists()


def test_a_viewer_cannot_reach_the_users_page_and_the_refusal_is_audited(viewer):
    client = Client()
    client.force_login(viewer)
    response = client.get("/users/")
    assert response.status_code == 403
    event = AuditEvent.objects.get(outcome=AuditEvent.Outcome.DENIED)
    assert event.username == "vera" and event.target == "GET /users/"
    assert 'href="/users/"' not in client.get("/account/").text


def test_a_user_changes_their_own_password(viewer):
    client = Client()
    client.force_login(viewer)
    new = "a much longer passphrase 42"
    refused = client.post("/account/password/", {"old_password": "nope", "new_password1": new, "new_password2": new})
    assert refused.status_code == 200 and "Your old password was entered incorrectly" in refused.text
    assert events("change password")[-1].outcome == AuditEvent.Outcome.FAILED
    too_short = client.post(
        "/account/password/", {"old_password": PASSWORD, "new_password1": "short", "new_password2": "short"}
    )
    assert "too short" in too_short.text
    changed = client.post("/account/password/", {"old_password": PASSWORD, "new_password1": new, "new_password2": new})
    assert changed["Location"] == "/account/"
    assert client.get("/account/").status_code == 200  # this session stays logged in
    assert events("change password")[-1].outcome == AuditEvent.Outcome.OK
    assert not AuditEvent.objects.filter(detail__contains=new).exists()
    assert log_in(Client(), "vera", PASSWORD).status_code == 200
    assert log_in(Client(), "vera", new)["Location"] == "/"


def test_the_last_administrator_cannot_demote_or_deactivate_themselves(administrator):
    client = Client()
    client.force_login(administrator)
    refused = client.post(f"/users/{administrator.pk}/role/", {"role": "operator"}, follow=True)
    assert "ada is the last active administrator" in refused.text
    client.post(f"/users/{administrator.pk}/active/", {"active": "0"})
    administrator.refresh_from_db()
    administrator.__dict__.pop("_mailadmin_role", None)
    assert role_of(administrator) == Role.ADMINISTRATOR and administrator.is_active
    refusals = AuditEvent.objects.filter(outcome=AuditEvent.Outcome.DENIED, target="ada")
    assert {e.action for e in refusals} == {"change role", "deactivate user"}

    make_user("bert", "administrator")
    client.post(f"/users/{administrator.pk}/role/", {"role": "operator"})
    administrator.__dict__.pop("_mailadmin_role", None)
    assert role_of(administrator) == Role.OPERATOR
    assert events("change role")[-1].detail == "administrator → operator"


def test_a_deactivated_user_can_no_longer_log_in_and_is_reactivated(administrator, operator):
    client = Client()
    client.force_login(administrator)
    session = Client()
    session.force_login(operator)
    client.post(f"/users/{operator.pk}/active/", {"active": "0"})
    assert session.get("/servers/")["Location"].startswith("/login/")
    assert log_in(Client(), "otto").status_code == 200
    client.post(f"/users/{operator.pk}/active/", {"active": "1"})
    assert log_in(Client(), "otto")["Location"] == "/"
    assert [e.action for e in AuditEvent.objects.filter(target="otto", action__endswith="activate user")] == [
        "reactivate user",
        "deactivate user",
    ]


@pytest.mark.parametrize("username", ["", "has space", "x" * 151, "ada"])
def test_a_user_name_that_is_not_valid_or_taken_creates_nobody(administrator, username):
    client = Client()
    client.force_login(administrator)
    before = User.objects.count()
    response = client.post("/users/new/", {"username": username, "role": "viewer"})
    assert response.status_code == 200 and User.objects.count() == before
    assert events("create user")[-1].outcome == AuditEvent.Outcome.FAILED


def test_ensureadmin_removes_a_lost_second_factor_so_the_next_login_enrols_again(administrator):
    from django.core.management import call_command

    call_command("ensureadmin", "--username", "ada", "--reset-second-factor")
    assert not people.has_second_factor(administrator)
    assert events("2fa reset")[-1].target == "ada"
    assert log_in(Client(), "ada")["Location"] == "/account/2fa/"


def test_the_page_asked_for_is_where_the_code_step_leads(administrator):
    client = Client()
    assert client.get("/audit/")["Location"] == "/login/?next=/audit/"
    after_password = client.post("/login/", {"username": "ada", "password": PASSWORD, "next": "/audit/"})
    assert after_password["Location"] == "/login/code/?next=%2Faudit%2F"
    verified = client.post("/login/code/?next=/audit/", {"code": fresh_totp_code("ada"), "next": "/audit/"})
    assert verified["Location"] == "/audit/"
    assert client.get("/login/code/?next=/login/code/")["Location"] == "/"  # no loop once verified
