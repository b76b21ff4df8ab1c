"""`make run` under honcho: whatever ends it, nothing it started is left running.

Each test runs the real `make run` (scripts/run, bootstrap, honcho, the Procfile's services: Redis,
the log sink, the sendmail daemon, the agent, the central worker, beat and gunicorn) in a var
directory and on ports of its own (testing/supervision.py), ends it one way, and then requires
that within 15 s no process of the run, no daemon and no listener on its ports is left.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from testing.processes import ROOT, wait_for
from testing.supervision import MakeRun, RunDirectory

pytestmark = pytest.mark.faults

STOP_SECONDS = 15


@pytest.fixture(scope="module")
def run_directory():
    directory = RunDirectory.create()
    yield directory
    directory.stop()
    directory.remove()


@pytest.fixture
def make_run(run_directory):
    """Start `make run`s; whatever a failed test leaves of them is killed and swept afterwards."""
    started = []

    def start(output: str = "file") -> MakeRun:
        run = MakeRun(run_directory, output)
        started.append(run)
        run.wait_running()
        return run

    yield start
    for run in started:
        if run.leftovers():
            run.kill_everything()


def test_ctrl_c_stops_every_service_and_the_daemon(make_run, run_directory):
    run = make_run()
    services = set(run_directory.processes().values())
    assert {"redis", "logsink", "mta", "agent", "worker", "beat", "web"} <= services
    with urllib.request.urlopen(f"http://127.0.0.1:{run_directory.web_port}/login/", timeout=10) as page:
        assert "csrfmiddlewaretoken" in page.read().decode()
    password = (run_directory.path / "console" / "redis.password").read_text().strip().encode()
    with socket.create_connection(("127.0.0.1", run_directory.redis_port), timeout=5) as redis:
        redis.sendall(b"PING\r\n")
        assert redis.recv(128).startswith(b"-NOAUTH")
    for pid in run_directory.processes():
        assert password not in Path(f"/proc/{pid}/cmdline").read_bytes()

    run.signal_group(signal.SIGINT)

    run.wait_all_gone(STOP_SECONDS)
    assert "==> Stopping (Ctrl-C)" in run.output()
    assert re.search(r"mta\.1 +\| stopping the daemon: stopped \(pid", run.output())
    assert not (run_directory.path / "run" / "supervisor").exists()


def test_sigterm_to_make_stops_everything(make_run):
    run = make_run()
    os.kill(run.proc.pid, signal.SIGTERM)
    run.wait_all_gone(STOP_SECONDS)
    assert "==> Stopping (SIGTERM)" in run.output()


def test_sighup_to_the_terminals_job_stops_everything(make_run):
    run = make_run()
    run.signal_group(signal.SIGHUP)
    run.wait_all_gone(STOP_SECONDS)
    assert "==> Stopping (SIGHUP: the terminal went away)" in run.output()


def test_closing_the_terminal_stops_everything(make_run):
    run = make_run("pty")
    run.close_output()
    run.wait_all_gone(STOP_SECONDS)
    log = (run.directory.path / "log" / "run.log").read_text()
    assert "==> Stopping (the terminal went away)" in log or "==> Stopping (the output went away)" in log


def test_a_reader_that_goes_away_stops_everything(make_run):
    """`make run | head`, `make run | tee log` and Ctrl-C: the end of the pipe closes under the run."""
    run = make_run("pipe")
    run.close_output()
    run.wait_all_gone(STOP_SECONDS)
    assert "==> Stopping (the output went away)" in (run.directory.path / "log" / "run.log").read_text()


def test_a_service_that_dies_takes_the_others_down_and_is_named(make_run, run_directory):
    """kill -9 of the daemon's foreground command: nothing stops the daemon for it, the sweep does."""
    run = make_run()
    (mta,) = [pid for pid, name in run_directory.processes().items() if name == "mta"]
    os.kill(mta, signal.SIGKILL)
    run.wait_all_gone(STOP_SECONDS)
    assert run.proc.returncode != 0
    assert "==> The service 'mta' exited (rc=-9), so make run stopped the others" in run.output()
    assert f"PidFile names a live sendmail (pid {run.daemon_pid}); stopping it" in run.output()
    assert f"stopped (pid {run.daemon_pid})" in run.output()


def test_a_daemon_stopped_from_the_console_leaves_the_run_up(make_run, run_directory):
    """An administrator may stop the daemon (the agent does it, as `mta stop` does here): that is no crash."""
    run = make_run()
    stopped = subprocess.run(
        [".venv/bin/python", "manage.py", "mta", "stop", "--server", "local"],
        cwd=ROOT,
        env=run_directory.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert f"stopped (pid {run.daemon_pid})" in stopped.stdout, stopped.stdout + stopped.stderr
    wait_for(lambda: "the daemon is not running (stopped from the console?)" in run.output(), 10, "mta run to notice")
    assert run.proc.poll() is None
    assert {"redis", "mta", "agent", "worker", "beat", "web"} <= set(run_directory.processes().values())

    run.signal_group(signal.SIGINT)
    run.wait_all_gone(STOP_SECONDS)
    assert re.search(r"mta\.1 +\| stopping the daemon: already stopped", run.output())


def test_after_kill_9_of_the_supervisor_and_its_terminal_a_new_make_run_starts_cleanly(make_run, run_directory):
    crashed = make_run()
    honcho = int((run_directory.path / "run" / "supervisor").read_text().split()[0].removeprefix("pid="))
    crashed.signal_group(signal.SIGKILL)
    os.kill(honcho, signal.SIGKILL)
    crashed.proc.wait(10)
    time.sleep(1)
    orphans = run_directory.processes()
    assert {"redis", "mta", "agent", "worker", "beat", "web"} <= set(orphans.values())

    fresh = make_run()
    assert "==> Stopping what a make run left behind" in fresh.output()
    assert not set(orphans) & set(run_directory.processes())
    fresh.signal_group(signal.SIGINT)
    fresh.wait_all_gone(STOP_SECONDS)
    crashed.wait_all_gone(0)


def test_make_stop_stops_a_run_started_elsewhere_and_make_run_refuses_a_second(make_run, run_directory):
    run = make_run()
    second = subprocess.run(
        ["make", "--no-print-directory", "run"], cwd=ROOT, env=run_directory.env, capture_output=True, text=True
    )
    assert second.returncode != 0
    assert "make run is already running here" in second.stderr + second.stdout
    assert "make stop" in second.stderr

    started = time.monotonic()
    said = run_directory.stop()
    run.wait_all_gone(STOP_SECONDS - (time.monotonic() - started))
    assert "==> Stopping make run (honcho, pid" in said
    assert run.proc.returncode == 0
    assert "==> Stopped by 'make stop'" in run.output()


def test_a_stale_daemon_pid_file_is_not_trusted(run_directory, tmp_path):
    """A PidFile naming a sendmail that started after it was written (a reused pid) is never signalled."""
    impostor_binary = tmp_path / "sendmail"  # comm "sendmail", as any other instance's sendmail has
    shutil.copy("/bin/sleep", impostor_binary)
    pid_file = run_directory.daemon_pid_file
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    impostor = subprocess.Popen([str(impostor_binary), "300"])
    try:
        pid_file.write_text(f"{impostor.pid}\n/usr/sbin/sendmail -bd\n")
        an_hour_ago = time.time() - 3600
        os.utime(pid_file, (an_hour_ago, an_hour_ago))

        said = run_directory.stop()

        assert f"{pid_file} is stale (pid {impostor.pid} is a sendmail started after the file was written" in said
        time.sleep(0.5)
        assert impostor.poll() is None
    finally:
        impostor.kill()
        impostor.wait()
        pid_file.unlink(missing_ok=True)
    wait_for(lambda: impostor.poll() is not None, 5, "the impostor to exit")
