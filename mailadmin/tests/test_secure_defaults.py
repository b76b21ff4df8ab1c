"""Secure defaults, proven on real processes: Django's deployment checks pass under the production
settings; what the console writes is private to its owner (umask 077, var/ closed to other
accounts, the database and its -wal/-shm 0600); behind HTTPS the console redirects plain HTTP,
sends HSTS and marks its cookies Secure, while `make run`'s plain HTTP on loopback keeps working;
and Redis answers no client without the password."""

from __future__ import annotations

import http.client
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import urllib.parse
from http.cookies import SimpleCookie
from pathlib import Path

import pytest
from django.conf import settings

from testing.processes import ROOT, free_port, wait_for
from testing.web import WEB_USER, Browser, WebProcess, as_web_user, web_user_can_read

pytestmark = pytest.mark.timeout(300)

PASSWORD = "correct horse battery"
CONSOLE_HOST = "console.example.org"


def environment(**extra: str) -> dict[str, str]:
    """This process's environment without the test run's settings module or any MAILADMIN_* value."""
    test_only = ("DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE")  # conftest.py's, for Playwright
    kept = {k: v for k, v in os.environ.items() if not k.startswith("MAILADMIN_") and k not in test_only}
    return {**kept, **extra}


def check_deploy(**env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(ROOT / "scripts" / "check-deploy")], env=environment(**env), capture_output=True, text=True, timeout=120
    )


def test_check_deploy_finds_no_issue_under_the_production_settings():
    result = check_deploy(MAILADMIN_ENV_FILE="/dev/null")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNING" not in result.stdout + result.stderr


def test_check_deploy_reads_the_installed_environment_file_and_fails_a_console_served_over_plain_http(tmp_path):
    env_file = tmp_path / "mailadmin.env"
    env_file.write_text(
        f'# as make install writes it, but without HTTPS\nMAILADMIN_HTTPS="0"\nMAILADMIN_ALLOWED_HOSTS={CONSOLE_HOST}\n'
    )

    result = check_deploy(MAILADMIN_ENV_FILE=str(env_file))

    assert result.returncode != 0
    output = result.stdout + result.stderr
    for check in ("security.W004", "security.W008", "security.W012", "security.W016"):  # HSTS, redirect, cookies
        assert check in output, output


# --- A var/ of its own, set up by scripts/bootstrap as `make run` sets up var/.


@pytest.fixture(scope="module")
def console_var():
    """scripts/bootstrap on a fresh MAILADMIN_VAR_DIR: database migrated, static files collected,
    the embedded instance prepared, the administrator created; plus a viewer to log in as."""
    var = Path(settings.VAR_DIR) / f"test-secure-{secrets.token_hex(3)}"
    env = environment(
        MAILADMIN_VAR_DIR=str(var), MAILADMIN_ADMIN_PASSWORD=PASSWORD, MAILADMIN_LOCAL_PORT=str(free_port())
    )
    try:
        made = subprocess.run(
            [str(ROOT / "scripts" / "bootstrap")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
        )
        assert made.returncode == 0, made.stdout + made.stderr
        # As the web tier's user, so every file in var/console/ stays its own.
        viewer = subprocess.run(
            as_web_user(
                [
                    sys.executable,
                    "manage.py",
                    "shell",
                    "-c",
                    "from testing.users import make_user; make_user('vera', 'viewer')",
                ]
            ),
            cwd=ROOT,
            env=dict(env, DJANGO_SETTINGS_MODULE="mailadmin.settings_test"),  # its password hasher
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert viewer.returncode == 0, viewer.stdout + viewer.stderr
        yield var
    finally:
        shutil.rmtree(var, ignore_errors=True)


def web_environment(var: Path, **extra: str) -> dict[str, str]:
    """Settings that point a web server at `var` alone, whatever the test run's environment holds."""
    return {
        "MAILADMIN_VAR_DIR": str(var),
        "MAILADMIN_CONSOLE_DIR": str(var / "console"),
        "MAILADMIN_DATABASE_URL": "",
        "MAILADMIN_DB_PATH": str(var / "console" / "db.sqlite3"),
        "MAILADMIN_SECRET_KEY": "",
        "MAILADMIN_KEYS": "",
        "MAILADMIN_REDIS_PASSWORD": "",
        **extra,
    }


HOLD_CONNECTION = (
    "from django.contrib.sessions.models import Session; Session.objects.count(); import time; time.sleep(300)"
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def owner(path: Path) -> str:
    return pwd.getpwuid(path.stat().st_uid).pw_name


def nobody_can_read(path: Path) -> bool:
    """A local account that is neither root nor the web tier's user."""
    argv = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", "head", "-c1", str(path)]
    return subprocess.run(argv, capture_output=True, timeout=10).returncode == 0


def test_the_console_writes_its_state_for_its_own_user_alone(console_var, test_run_dir):
    console, db = console_var / "console", console_var / "console" / "db.sqlite3"
    web = WebProcess(web_environment(console_var), test_run_dir / "web-private-state")
    web.start()
    beat = holder = None
    try:
        Browser(web.url).log_in("vera", PASSWORD)  # a session row: the web tier writes the database
        # SQLite removes -wal and -shm when the last connection closes, and a web request closes its
        # own: a console process holding its connection open keeps them there to be looked at.
        holder = subprocess.Popen(
            as_web_user([sys.executable, "manage.py", "shell", "-c", HOLD_CONNECTION]),
            cwd=ROOT,
            env=environment(**web_environment(console_var), DJANGO_SETTINGS_MODULE="mailadmin.settings"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for suffix in ("-wal", "-shm"):
            wait_for(lambda s=suffix: Path(f"{db}{s}").exists(), 30, f"SQLite's {suffix} file")
        # Beat, as make run starts it: its schedule and its log are files it creates itself. (A broker
        # where nothing listens: it sends no task anywhere in the few seconds it runs.)
        beat = subprocess.Popen(
            as_web_user(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "mailadmin",
                    "beat",
                    "-s",
                    str(console / "celerybeat-schedule"),
                    "-l",
                    "warning",
                    "--logfile",
                    str(console / "log" / "beat.log"),
                ]
            ),
            cwd=ROOT,
            env=environment(
                **web_environment(console_var, MAILADMIN_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0"),
                DJANGO_SETTINGS_MODULE="mailadmin.settings",
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        schedule = wait_for(lambda: next(console.glob("celerybeat-schedule*"), None), 30, "beat's schedule file")

        # Files: 0600 and the web tier's; the database's -wal and -shm as well.
        private = [db, Path(f"{db}-wal"), Path(f"{db}-shm"), schedule, console / "log" / "beat.log"]
        private += [console / name for name in ("secret_key", "keys", "redis.password")]
        for path in private:
            assert (oct(mode(path)), owner(path)) == (oct(0o600), WEB_USER), path
        # Directories: 0700; var/ itself is root's, and the web tier's user may only pass through it.
        assert (oct(mode(console)), owner(console)) == (oct(0o700), WEB_USER)
        for directory in (console_var / "instances", console_var / "log"):
            assert (oct(mode(directory)), owner(directory)) == (oct(0o700), "root"), directory
        assert owner(console_var) == "root" and mode(console_var) & 0o007 == 0
        acl = subprocess.run(["getfacl", "-cp", str(console_var)], capture_output=True, text=True).stdout.split()
        assert sorted(acl) == sorted(["user::rwx", f"user:{WEB_USER}:--x", "group::---", "mask::--x", "other::---"])

        # Another local account reads none of it; the web tier reads what it serves.
        assert not nobody_can_read(db)
        assert not nobody_can_read(console / "secret_key")
        static = console_var / "staticfiles" / "staticfiles.json"
        assert web_user_can_read(str(static)) and not nobody_can_read(static)
        status, _ = Browser(web.url).get("/static/css/mailadmin.css")
        assert status == 200
    finally:
        for process in (beat, holder):
            if process is not None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=30)
        web.stop()


# --- HTTP on loopback, HTTPS behind nginx.


def request(port: int, method: str, path: str, *, proxied_https: bool, headers=None, body: str | None = None):
    """One request as nginx forwards it (X-Forwarded-Proto: https, the browser's Host), or as a
    browser sends it straight to gunicorn over plain HTTP."""
    sent = {"Host": CONSOLE_HOST if proxied_https else f"127.0.0.1:{port}", **(headers or {})}
    if proxied_https:
        sent["X-Forwarded-Proto"] = "https"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        return response, response.read().decode("utf-8", "replace")
    finally:
        connection.close()


def cookies(response) -> SimpleCookie:
    jar = SimpleCookie()
    for header in response.headers.get_all("Set-Cookie") or []:
        jar.load(header)
    return jar


class ProxiedWebProcess(WebProcess):
    """gunicorn as it runs behind nginx: it answers HTTPS requests only, so that is how it is asked."""

    def _answers(self) -> bool:
        try:
            return request(self.port, "GET", "/login/", proxied_https=True)[0].status == 200
        except OSError:
            return False


def test_over_plain_http_on_loopback_the_console_works_with_no_redirect_and_no_secure_cookie(console_var, test_run_dir):
    web = WebProcess(web_environment(console_var), test_run_dir / "web-plain-http")
    web.start()
    try:
        response, page = request(web.port, "GET", "/login/", proxied_https=False)
        assert response.status == 200 and 'name="password"' in page
        assert response.getheader("Strict-Transport-Security") is None
        assert not cookies(response)["csrftoken"]["secure"]

        # A cookie jar sends no Secure cookie over http://: logging in proves there is none.
        browser = Browser(web.url)
        browser.log_in("vera", PASSWORD)
        status, page = browser.get("/audit/")
        assert status == 200 and "vera" in page
    finally:
        web.stop()


def test_behind_https_the_console_redirects_plain_http_sends_hsts_and_marks_its_cookies_secure(
    console_var, test_run_dir
):
    web = ProxiedWebProcess(
        web_environment(console_var, MAILADMIN_HTTPS="1", MAILADMIN_ALLOWED_HOSTS=CONSOLE_HOST),
        test_run_dir / "web-https",
    )
    web.start()
    try:
        response, _ = request(web.port, "GET", "/login/", proxied_https=False, headers={"Host": CONSOLE_HOST})
        assert (response.status, response.getheader("Location")) == (301, f"https://{CONSOLE_HOST}/login/")

        response, page = request(web.port, "GET", "/login/", proxied_https=True)
        assert response.status == 200
        assert response.getheader("Strict-Transport-Security") == "max-age=31536000; includeSubDomains"
        csrf = cookies(response)["csrftoken"]
        assert csrf["secure"]

        # The login form posts back through the proxy: the CSRF origin and referer checks pass as HTTPS.
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        response, page = request(
            web.port,
            "POST",
            "/login/",
            proxied_https=True,
            headers={
                "Cookie": f"csrftoken={csrf.value}",
                "Origin": f"https://{CONSOLE_HOST}",
                "Referer": f"https://{CONSOLE_HOST}/login/",
                "Content-Type": "application/x-www-form-urlencoded",
            },
            body=urllib.parse.urlencode({"csrfmiddlewaretoken": token, "username": "vera", "password": PASSWORD}),
        )
        assert response.status == 302, page[:2000]
        session = cookies(response)["sessionid"]
        assert session["secure"] and session["httponly"]

        response, page = request(
            web.port, "GET", "/audit/", proxied_https=True, headers={"Cookie": f"sessionid={session.value}"}
        )
        assert response.status == 200 and "vera" in page
    finally:
        web.stop()


def test_redis_answers_no_client_without_the_password(redis_server):
    """The broker the tests start as scripts/run starts make run's: the password on stdin (requirepass)."""
    with socket.create_connection(("127.0.0.1", redis_server.port), timeout=5) as sock:
        sock.sendall(b"PING\r\n")
        assert sock.recv(128).startswith(b"-NOAUTH")
        sock.sendall(f"AUTH {redis_server.password}\r\nPING\r\n".encode())
        assert wait_for(lambda: sock.recv(128), 5, "Redis to answer").startswith(b"+OK")
