"""Build, install and rollback on the real sendmail instance of the test session."""

import os
import re
import signal
import time
from pathlib import Path

import pytest

from mailadmin import work
from mailadmin.models import ConfigBuild, InstallJob
from mailadmin.mta import cfbuild, daemon
from mailadmin.mta.gateway import Mta
from mailadmin.work import WorkStatus
from testing.processes import TEST_LEASE_SECONDS, wait_for
from testing.work import wait_terminal


def stamped_mc(server, build_id: str, extra: str = "") -> str:
    mc = Path(server.mc_path).read_text()
    mc = re.sub(r"define\(`confCF_VERSION', `[^']*'\)dnl", f"define(`confCF_VERSION', `{build_id}')dnl", mc)
    return mc.replace("MAILER(`local')dnl", extra + "MAILER(`local')dnl")


def new_build(server, extra: str = "", expected: dict | None = None) -> ConfigBuild:
    row = ConfigBuild.objects.create(server=server, mc_text="", access_text=Path(server.access_path).read_text())
    row.mc_text = stamped_mc(server, row.build_id, extra)
    row.expected_options = expected or {}
    row.save()
    return row


def run_build(row: ConfigBuild) -> ConfigBuild:
    work.execute(ConfigBuild, row.pk, lambda r: cfbuild.build(r, Mta(r.server), lambda *_: None))
    row.refresh_from_db()
    return row


def run_install(row: ConfigBuild, rollback: bool = False) -> InstallJob:
    job = InstallJob.objects.create(server=row.server, build=row, rollback=rollback)

    def perform(item):
        work.finish(item, WorkStatus.DONE, output=cfbuild.install(item, Mta(item.server), lambda *_: None))

    work.execute(InstallJob, job.pk, perform)
    job.refresh_from_db()
    return job


def live_state(server):
    cf = Path(server.cf_path)
    return cf.read_bytes(), cf.stat().st_mtime_ns, daemon.live_pid(server)


def test_a_build_is_checked_and_diffed_without_touching_the_live_cf(instance_files):
    server = instance_files
    before = live_state(server)
    row = run_build(new_build(server))
    assert row.status == WorkStatus.DONE, row.error
    assert re.search(rf"^DZ[\d.]+/{row.build_id}$", row.cf_text, re.M)
    assert re.search(rf"^\+DZ[\d.]+/{row.build_id}$", row.diff, re.M)
    assert "-bt" in row.log
    assert live_state(server) == before
    assert not list(cfbuild.staging_dir(server).glob("*.cf"))


@pytest.mark.parametrize("spoil", ["symlink", "group-writable", "other-owner"])
def test_a_staging_directory_that_is_not_the_agents_own_refuses_the_build(instance_files, tmp_path, spoil):
    server = instance_files
    stage = Path(server.conf_dir) / ".mailadmin"
    if stage.exists():
        for leftover in stage.iterdir():
            leftover.unlink()
        stage.rmdir()
    if spoil == "symlink":
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir(mode=0o700)
        stage.symlink_to(elsewhere)
    else:
        stage.mkdir(mode=0o700)
        if spoil == "group-writable":
            stage.chmod(0o770)
        else:
            os.chown(stage, 65534, 65534)
    before = live_state(server)
    try:
        row = run_build(new_build(server))
    finally:
        spoiled = stage.is_symlink() or stage.stat().st_mode & 0o077 or stage.stat().st_uid != os.geteuid()
        (stage.unlink if stage.is_symlink() else stage.rmdir)()
    assert spoiled
    assert row.status == WorkStatus.FAILED
    assert f"{stage} " in row.error and "the agent stages nothing there" in row.error, row.error
    assert live_state(server) == before
    if spoil == "symlink":
        assert list((tmp_path / "elsewhere").iterdir()) == []


def test_an_m4_error_fails_the_build_and_the_live_cf_and_daemon_are_untouched(instance_files):
    server = instance_files
    before = live_state(server)
    row = run_build(new_build(server, extra="FEATURE(`ratecontrol', `nodelay')dnl\n"))
    assert row.status == WorkStatus.FAILED
    assert "requires FEATURE(`delay_checks')" in row.error
    assert "m4 exited 0" in row.error
    assert live_state(server) == before
    assert daemon.status(server).answering


def test_a_value_m4_rewrites_fails_the_build(instance_files):
    server = instance_files
    row = run_build(
        new_build(
            server,
            extra="define(`confDOUBLE_BOUNCE_ADDRESS', `lower.example.com')dnl\n",
            expected={"DoubleBounceAddress": "lower.example.com"},
        )
    )
    assert row.status == WorkStatus.FAILED
    assert "O DoubleBounceAddress=lower.example.com" in row.error
    assert "O DoubleBounceAddress=.example.com" in row.cf_text or row.cf_text == ""


def test_install_reloads_the_daemon_which_then_greets_with_the_new_build(instance_files):
    server = instance_files
    old_cf, _, old_pid = live_state(server)
    row = run_build(new_build(server))
    job = run_install(row)
    assert job.status == WorkStatus.DONE, job.error
    status = daemon.status(server)
    assert f"/{row.build_id};" in status.banner
    assert status.pid != old_pid
    assert cfbuild.sha256(Path(server.cf_path).read_bytes()) == row.cf_sha256
    assert Path(server.cf_path).with_name("sendmail.cf.prev").read_bytes() == old_cf
    assert cfbuild.live_build(server) == row
    row.refresh_from_db()
    assert row.installed_at is not None


def test_rollback_installs_an_earlier_build_and_the_daemon_answers_on_it(instance_files):
    server = instance_files
    first, second = run_build(new_build(server)), run_build(new_build(server))
    assert run_install(first).status == WorkStatus.DONE
    assert run_install(second).status == WorkStatus.DONE
    assert f"/{second.build_id};" in daemon.status(server).banner

    job = run_install(first, rollback=True)

    assert job.status == WorkStatus.DONE, job.error
    assert f"/{first.build_id};" in daemon.status(server).banner
    assert cfbuild.live_build(server) == first


def test_a_cf_that_kills_the_daemon_is_rolled_back_automatically(instance_files):
    server = instance_files
    good = run_build(new_build(server))
    assert run_install(good).status == WorkStatus.DONE
    fatal = new_build(server)
    # A queue directory under the instance's roots that does not exist: the daemon dies at start.
    fatal.mc_text = fatal.mc_text.replace(server.queue_dir, f"{server.queue_dir}-missing")
    fatal.save()
    assert run_build(fatal).status == WorkStatus.DONE  # sendmail -bt does not notice a missing queue directory

    job = run_install(fatal)

    assert job.status == WorkStatus.FAILED
    assert "exited" in job.error and "previous cf and access map were put back" in job.error
    assert cfbuild.live_build(server) == good
    assert f"/{good.build_id};" in daemon.status(server).banner


def test_a_rerun_of_a_finished_install_changes_nothing(instance_files):
    server = instance_files
    row = run_build(new_build(server))
    assert run_install(row).status == WorkStatus.DONE
    pid = daemon.live_pid(server)
    again = run_install(row)
    assert again.status == WorkStatus.DONE
    assert "already the live cf" in again.output
    assert daemon.live_pid(server) == pid  # no reload was needed


@pytest.mark.faults
def test_a_worker_killed_mid_install_leaves_one_whole_cf_and_the_rerun_finishes(worker, instance_files):
    server = instance_files
    old_cf = Path(server.cf_path).read_bytes()
    row = run_build(new_build(server))
    frozen = daemon.live_pid(server)
    os.kill(frozen, signal.SIGSTOP)  # the SIGHUP stays pending, so the install waits in its reload step
    job = InstallJob.objects.create(server=server, build=row)
    assert work.publish(job)
    wait_for(
        lambda: InstallJob.objects.get(pk=job.pk).progress_note.startswith("reloading"),
        30,
        "the install to reach its reload step",
    )

    worker.kill_all()
    assert Path(server.cf_path).read_bytes() in (old_cf, row.cf_text.encode())
    os.kill(frozen, signal.SIGCONT)
    worker.start()
    time.sleep(TEST_LEASE_SECONDS)
    wait_terminal(job, timeout=60, sweep_every=1.0)

    assert job.status == WorkStatus.DONE, (job.error, worker.log()[-2000:])
    assert job.attempt == 2
    assert cfbuild.live_build(server) == row
    assert f"/{row.build_id};" in daemon.status(server).banner
    assert not [p.name for p in Path(server.conf_dir).iterdir() if "mailadmin-tmp" in p.name]
