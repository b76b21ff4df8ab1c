"""The web tier as production runs it: gunicorn as the unprivileged user `mailadmin`, and a small
HTTP client that logs in through the real login form (CSRF and session cookies included)."""

from __future__ import annotations

import http.cookiejar
import os
import pwd
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from testing.processes import ROOT, free_port, wait_for
from testing.users import fresh_totp_code

WEB_USER = "mailadmin"


def web_user_ids() -> tuple[int, int]:
    entry = pwd.getpwnam(WEB_USER)
    return entry.pw_uid, entry.pw_gid


def as_web_user(argv: list[str]) -> list[str]:
    """argv run as the web tier's user, without its root supplementary groups."""
    return ["setpriv", f"--reuid={WEB_USER}", f"--regid={WEB_USER}", "--init-groups", "--", *argv]


def web_user_can_read(path: str) -> bool:
    return subprocess.run(as_web_user(["head", "-c1", path]), capture_output=True, timeout=10).returncode == 0


class WebProcess:
    """gunicorn serving mailadmin.wsgi as `mailadmin` on 127.0.0.1:<free port>."""

    def __init__(self, env: dict[str, str], logdir: Path):
        self.port = free_port()
        self.env = env
        self.logdir = logdir
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.logdir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.logdir, 0o777)
        self.logfile = self.logdir / "web.log"
        argv = as_web_user(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "mailadmin.wsgi",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                "1",
                "--threads",
                "4",
                "--timeout",
                "30",
                "--no-control-socket",  # its default lives under $HOME, which the web user has none of
            ]
        )
        env = dict(os.environ, DJANGO_SETTINGS_MODULE="mailadmin.settings_test", **self.env)
        with open(self.logfile, "wb") as log:
            self.proc = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_for(lambda: self._answers() or self.proc.poll() is not None, 30, "gunicorn to answer")
        if self.proc.poll() is not None:
            raise AssertionError("gunicorn exited:\n" + self.logfile.read_text(errors="replace"))

    def _answers(self) -> bool:
        try:
            urllib.request.urlopen(self.url + "/login/", timeout=2).read()
            return True
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)
        self.proc = None

    def log(self) -> str:
        return self.logfile.read_text(errors="replace")


class Browser:
    """Cookies, CSRF and form posts against a live server, as a browser would send them."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path: str) -> tuple[int, str]:
        try:
            with self.opener.open(self.base_url + path, timeout=30) as response:
                return response.status, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8", "replace")

    def post(self, path: str, fields: dict[str, str], *, csrf_from: str | None = None) -> tuple[int, str]:
        _, page = self.get(csrf_from or path)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        data = dict(fields, csrfmiddlewaretoken=token.group(1) if token else "")
        request = urllib.request.Request(
            self.base_url + path,
            data=urllib.parse.urlencode(data).encode(),
            headers={"Referer": self.base_url + (csrf_from or path)},
        )
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8", "replace")

    def log_in(self, username: str, password: str) -> None:
        """The password, then (for a user with an authenticator) the current TOTP code, through the
        real forms; fails unless the session ends up at a console page."""
        status, page = self.post("/login/", {"username": username, "password": password})
        if 'action="/login/code/' in page:
            status, page = self.post("/login/code/", {"code": fresh_totp_code(username)})
        assert status == 200 and "Log out" in page and 'name="code"' not in page, page[:2000]
