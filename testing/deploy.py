"""What the tests of `make install` run: the installer into a staging root, systemd-analyze verify
over the units it wrote, and a real nginx serving the generated site in front of gunicorn on a
unix socket (as the web tier's user), all on 127.0.0.1 high ports and under temporary directories,
never the machine's own /etc, /opt or /var/lib.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
from pathlib import Path

from testing.processes import ROOT, free_port, wait_for
from testing.web import WEB_USER, as_web_user

NGINX = "/usr/sbin/nginx"
NGINX_USER = "www-data"


def run_installer(staging: Path, *args: str) -> subprocess.CompletedProcess:
    """scripts/install --root STAGING with this checkout's venv (building one would take minutes)."""
    argv = [str(ROOT / "scripts" / "install"), "--root", str(staging), "--venv", str(ROOT / ".venv"), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300)


def verify_units(staging: Path, unit_files: list[Path]) -> subprocess.CompletedProcess:
    """`systemd-analyze verify` on the installed unit files, in a private mount namespace in which
    /opt is a tmpfs holding the staged /opt/mailadmin: the units' ExecStart= binaries are checked
    at the very paths the units name, and the machine's own /opt is untouched."""
    script = (
        "set -e; mount -t tmpfs mailadmin-verify /opt; mkdir /opt/mailadmin; "
        f"mount --bind {shlex.quote(str(staging / 'opt' / 'mailadmin'))} /opt/mailadmin; "
        "exec systemd-analyze verify " + " ".join(shlex.quote(str(f)) for f in unit_files)
    )
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
    )


# The system directories a real (not --root) install writes to: in the test's private mount namespace
# each is an overlay whose writes land in the test's own directory, or (/opt) a bind of one.
OVERLAID = ("/etc", "/var/lib", "/usr/local")


def install_in_private_namespace(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """scripts/install as on a real host (no --root), in a private mount namespace where /etc,
    /var/lib and /usr/local are overlays over the machine's own (what it writes lands in
    workdir/<name>-up) and /opt is workdir/opt: the machine's own files stay as they were."""
    mounts = []
    for directory in OVERLAID:
        name = directory.strip("/").replace("/", "-")
        upper, work = workdir / f"{name}-up", workdir / f"{name}-work"
        upper.mkdir()
        work.mkdir()
        # The merged directory takes the upper one's mode: keep the machine's (0755), whatever the umask.
        os.chmod(upper, stat.S_IMODE(os.stat(directory).st_mode))
        mounts.append(f"mount -t overlay overlay -o lowerdir={directory},upperdir={upper},workdir={work} {directory}")
    (workdir / "opt").mkdir()
    os.chmod(workdir / "opt", 0o755)  # as /opt is: the web tier's user passes through it
    mounts.append(f"mount --bind {workdir / 'opt'} /opt")
    installer = [str(ROOT / "scripts" / "install"), "--venv", str(ROOT / ".venv"), *args]
    script = "set -e; " + "; ".join(mounts) + "; exec " + " ".join(shlex.quote(a) for a in installer)
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=600,
    )


def shared_workdir(prefix: str) -> Path:
    """A temporary directory the web tier's user and nginx's user may pass through (pytest's own
    tmp_path lies under a 0700 directory of root's)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chmod(path, 0o755)
    return path


def unit_command(unit_text: str) -> list[str]:
    """The ExecStart= argv of a rendered unit, its `%%` unescaped as systemd would."""
    lines = [line for line in unit_text.splitlines() if line.startswith("ExecStart=")]
    assert len(lines) == 1, lines
    return [word.replace("%%", "%") for word in shlex.split(lines[0].removeprefix("ExecStart="))]


def run_as_web_user(argv: list[str], env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess:
    done = subprocess.run(as_web_user(argv), env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{argv}:\n{done.stdout}\n{done.stderr}"
    return done


class SocketWebProcess:
    """The web unit's own ExecStart (gunicorn on a unix socket) run as the web tier's user."""

    def __init__(self, argv: list[str], env: dict[str, str], socket_path: str, logfile: Path, cwd: Path):
        self.argv = argv
        self.cwd = cwd  # the unit's WorkingDirectory
        self.env = env
        self.socket_path = socket_path
        self.logfile = logfile
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.logfile, "wb") as log:
            self.proc = subprocess.Popen(
                as_web_user(self.argv),
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for(lambda: self._listening() or self.proc.poll() is not None, 30, "gunicorn's unix socket")
        if self.proc.poll() is not None:
            raise AssertionError("gunicorn exited:\n" + self.logfile.read_text(errors="replace"))

    def _listening(self) -> bool:
        with socket.socket(socket.AF_UNIX) as sock:
            try:
                sock.connect(self.socket_path)
                return True
            except OSError:
                return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)


class NginxProcess:
    """Debian's nginx with a throw-away main configuration that includes one site file; its
    workers run as www-data, as Debian's do."""

    def __init__(self, workdir: Path, site_file: Path):
        self.workdir = workdir
        self.site_file = site_file
        self.proc: subprocess.Popen | None = None
        self.conf = workdir / "nginx.conf"
        self.error_log = workdir / "error.log"
        temp = {name: workdir / name for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")}
        for path in temp.values():
            path.mkdir(exist_ok=True)
        self.conf.write_text(
            f"user {NGINX_USER};\n"
            "worker_processes 1;\n"
            "daemon off;\n"
            f"pid {workdir / 'nginx.pid'};\n"
            f"error_log {self.error_log} warn;\n"
            "events { worker_connections 64; }\n"
            "http {\n"
            "    include /etc/nginx/mime.types;\n"
            f"    access_log {workdir / 'access.log'};\n"
            f"    client_body_temp_path {temp['client_body']};\n"
            f"    proxy_temp_path {temp['proxy']};\n"
            f"    fastcgi_temp_path {temp['fastcgi']};\n"
            f"    uwsgi_temp_path {temp['uwsgi']};\n"
            f"    scgi_temp_path {temp['scgi']};\n"
            f"    include {site_file};\n"
            "}\n"
        )

    def argv(self, *extra: str) -> list[str]:
        # -e: nginx opens its error log before reading the configuration; keep it out of /var/log.
        return [NGINX, "-p", str(self.workdir), "-c", str(self.conf), "-e", str(self.error_log), *extra]

    def test(self) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv("-t"), capture_output=True, text=True, timeout=30)

    def start(self, ports: list[int]) -> None:
        self.proc = subprocess.Popen(
            self.argv(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )

        def listening() -> bool:
            for port in ports:
                with socket.socket() as sock:
                    if sock.connect_ex(("127.0.0.1", port)) != 0:
                        return False
            return True

        wait_for(lambda: listening() or self.proc.poll() is not None, 15, "nginx to listen")
        if self.proc.poll() is not None:
            raise AssertionError("nginx exited:\n" + self.error_log.read_text(errors="replace"))

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: workers finish, then the master exits
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)


def chown_to_web_user(path: Path, group: str | None = None) -> None:
    shutil.chown(path, WEB_USER, group or WEB_USER)


class ThrowawayPostgres:
    """A PostgreSQL cluster of Debian's binaries in a temporary directory, on 127.0.0.1:<free port>,
    password authentication over TCP as Debian configures it; deleted by stop()."""

    def __init__(self):
        binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        self.bin = binaries[-1].parent if binaries else None
        self.port = free_port()
        self.dir: Path | None = None

    def _as_postgres(self, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        argv = ["runuser", "-u", "postgres", "--", *argv]
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True, **kwargs)

    def start(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="pg-install-", dir="/tmp"))
        shutil.chown(self.dir, "postgres", "postgres")
        data = self.dir / "data"
        self._as_postgres(
            [str(self.bin / "initdb"), "-D", str(data), "-U", "postgres", "--auth-local=peer"]
            + ["--auth-host=scram-sha-256", "--no-sync"]
        )
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off"
        self._as_postgres(
            [str(self.bin / "pg_ctl"), "-D", str(data), "-l", str(self.dir / "log"), "-w", "start", "-o", options]
        )

    def psql(self, script: str) -> subprocess.CompletedProcess:
        """Run psql input as the superuser, the way the installer does on a real host."""
        argv = ["psql", "-h", str(self.dir), "-p", str(self.port), "-v", "ON_ERROR_STOP=1", "-Atq"]
        return self._as_postgres(argv, input=script)

    def stop(self) -> None:
        if self.dir:
            subprocess.run(
                ["runuser", "-u", "postgres", "--", str(self.bin / "pg_ctl"), "-D", str(self.dir / "data")]
                + ["-m", "immediate", "-w", "stop"],
                capture_output=True,
                timeout=60,
            )
            shutil.rmtree(self.dir)
