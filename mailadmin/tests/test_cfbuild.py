"""Build, install and rollback on the real sendmail instance of the test session."""

import os
import re
import signal
import time
from pathlib import Path

import pytest

from mailadmin import work
from mailadmin.models import ConfigBuild, InstallJob
from mailadmin.mta import cfbuild, daemon, mapbuild
from mailadmin.mta.files import write_atomically
from mailadmin.mta.gateway import Mta
from mailadmin.work import WorkStatus
from testing.processes import TEST_LEASE_SECONDS, wait_for
from testing.work import wait_terminal


def stamped_mc(server, build_id: str, extra: str = "") -> str:
    mc = Path(server.mc_path).read_text()
    mc = re.sub(r"define\(`confCF_VERSION', `[^']*'\)dnl", f"define(`confCF_VERSION', `{build_id}')dnl", mc)
    return mc.replace("MAILER(`local')dnl", extra + "MAILER(`local')dnl")


def new_build(server, extra: str = "", expected: dict | None = None, maps: dict | None = None) -> ConfigBuild:
    row = ConfigBuild.objects.create(server=server, mc_text="", access_text=Path(server.access_path).read_text())
    row.mc_text = stamped_mc(server, row.build_id, extra)
    row.expected_options = expected or {}
    row.maps = maps or {}
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


# --- maps: built, checked and installed with the cf ---------------------------------------------

TABLES = "FEATURE(`virtusertable')dnl\nFEATURE(`mailertable')dnl\n"
TEAM = "postmaster: root\nMAILER-DAEMON: postmaster\nteam: a@remote.example, b@remote.example\n"


@pytest.fixture
def whole_conf_dir(instance_files):
    """instance_files, and every other file of the conf directory (.mc, aliases, maps) as it was."""
    server = instance_files
    conf = Path(server.conf_dir)
    saved = {p: (p.read_bytes(), p.stat().st_mode & 0o777) for p in conf.iterdir() if p.is_file()}
    yield server
    for path in conf.iterdir():
        if path.is_file() and path not in saved:
            path.unlink()
    for path, (data, mode) in saved.items():
        write_atomically(path, data, mode)


def conf_files(server) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in Path(server.conf_dir).iterdir() if p.is_file()}


def expands(server, address: str) -> str:
    return Mta(server).sendmail("-bv", address, action="test -bv", ok_codes=(0, 67, 68)).stdout_text


def test_a_builds_maps_are_compiled_against_the_staged_cf_and_nothing_live_changes(whole_conf_dir):
    server = whole_conf_dir
    before = conf_files(server)
    maps = {"aliases": TEAM, "virtusertable": f"info@{server.hostname}\tbob@remote.example\n"}
    row = run_build(new_build(server, TABLES, maps=maps))
    assert row.status == WorkStatus.DONE, row.error
    staged = cfbuild.staging_dir(server) / f"{row.build_id}.maps"
    assert f"-oA{staged}/aliases -bi" in row.log
    assert f"-C {cfbuild.staging_dir(server)}/{row.build_id}.cf hash {staged}/virtusertable" in row.log
    assert "aliases: 3 aliases" in row.log
    assert "NOTE" not in row.log
    assert conf_files(server) == before
    assert not staged.exists()


def test_an_alias_file_newaliases_cannot_parse_fails_the_build_with_its_message(whole_conf_dir):
    server = whole_conf_dir
    before = conf_files(server)
    row = run_build(new_build(server, maps={"aliases": "postmaster: root\nno colon here\n"}))
    assert row.status == WorkStatus.FAILED
    assert "aliases does not compile" in row.error and "line 2: missing colon" in row.error
    assert "ERROR (aliases):" in row.log and "missing colon" in row.log
    assert conf_files(server) == before


def test_newaliases_warnings_are_kept_and_marked_in_the_build_log(whole_conf_dir):
    row = run_build(new_build(whole_conf_dir, maps={"aliases": TEAM + "team: c@remote.example\n"}))
    assert row.status == WorkStatus.DONE, row.error
    assert re.search(r"^WARNING \(aliases\): .*line 4: team\.\.\. Warning: duplicate alias name team$", row.log, re.M)


@pytest.mark.parametrize(
    "target, reason",
    [
        (":include:/etc/shadow", "lies outside the directories the agent serves"),
        ("/etc/passwd", "lies outside the directories the agent serves"),
        ("{conf}/../../../../../../etc/cron.d/x", "lies outside the directories the agent serves"),
        ('"|/bin/sh -c id"', "not smrsh"),
    ],
)
def test_alias_targets_a_console_administrator_must_not_reach_are_refused(whole_conf_dir, target, reason):
    server = whole_conf_dir
    before = conf_files(server)
    aliases = f"postmaster: root\nevil: {target.format(conf=server.conf_dir)}\n"
    row = run_build(new_build(server, maps={"aliases": aliases}))
    assert row.status == WorkStatus.FAILED
    assert "aliases line 2 (evil)" in row.error and reason in row.error, row.error
    assert conf_files(server) == before


def test_files_under_the_roots_and_programs_under_smrsh_are_allowed(whole_conf_dir):
    server = whole_conf_dir
    aliases = f'list: :include:{server.conf_dir}/list.members\narchive: {server.conf_dir}/archive\nbot: "|vacation"\n'
    row = run_build(new_build(server, "FEATURE(`smrsh')dnl\n", maps={"aliases": aliases}))
    assert row.status == WorkStatus.DONE, row.error


def test_a_map_the_staged_cf_does_not_read_gets_a_note_in_the_build_log(whole_conf_dir):
    server = whole_conf_dir
    maps = {"virtusertable": "a@b.example\tc@d.example\n", "local-host-names": "hosted.example\n"}
    row = run_build(new_build(server, maps=maps))
    assert row.status == WorkStatus.DONE, row.error
    assert "NOTE: virtusertable is installed but has no effect: the cf has no Kvirtuser line reading it" in row.log
    assert "add FEATURE(`virtusertable')" in row.log
    assert "NOTE: local-host-names is installed but has no effect" in row.log


def test_a_map_the_staged_cf_reads_from_elsewhere_gets_a_note(whole_conf_dir):
    server = whole_conf_dir
    elsewhere = f"{server.conf_dir}/other-virtusertable"
    row = run_build(
        new_build(
            server,
            f"FEATURE(`virtusertable', `hash {elsewhere}')dnl\n",
            maps={"virtusertable": "a@b.example\tc@d.example\n"},
        )
    )
    assert row.status == WorkStatus.DONE, row.error
    assert f"the cf's Kvirtuser line reads {elsewhere}, not {server.conf_dir}/virtusertable" in row.log


def test_a_map_the_cf_reads_but_nobody_installs_is_a_warning_in_the_build_log(whole_conf_dir):
    server = whole_conf_dir
    row = run_build(new_build(server, TABLES, maps={"virtusertable": ""}))
    assert row.status == WorkStatus.DONE, row.error
    assert f"WARNING: the cf reads mailertable from {server.conf_dir}/mailertable, which does not exist" in row.log
    assert "reads virtusertable" not in row.log


@pytest.mark.parametrize("name", ["../../../../etc/passwd", "sendmail.cf", "access", "aliases/../sendmail.cf"])
def test_a_map_name_is_one_of_the_managed_files_never_a_path(whole_conf_dir, name):
    server = whole_conf_dir
    before = conf_files(server)
    row = run_build(new_build(server, maps={name: "root: /tmp/x\n"}))
    assert row.status == WorkStatus.FAILED
    assert "is not a map or class file the console manages" in row.error
    assert conf_files(server) == before


def test_install_puts_every_map_in_place_with_its_db_and_the_mc_and_keeps_the_previous_files(whole_conf_dir):
    server = whole_conf_dir
    conf = Path(server.conf_dir)
    old_aliases, old_mc = (conf / "aliases").read_bytes(), Path(server.mc_path).read_bytes()
    virtusers = f"info@{server.hostname}\tbob@remote.example\n"
    routes = "partner.example\tsmtp:[127.0.0.9]\n"
    row = run_build(
        new_build(server, TABLES, maps={"aliases": TEAM, "virtusertable": virtusers, "mailertable": routes})
    )
    job = run_install(row)
    assert job.status == WorkStatus.DONE, job.error

    assert (conf / "aliases").read_text() == TEAM and (conf / "virtusertable").read_text() == virtusers
    assert Path(server.mc_path).read_text() == row.mc_text
    assert (conf / "virtusertable.db").stat().st_mode & 0o777 == 0o640
    assert (conf / "virtusertable").stat().st_mode & 0o777 == 0o640
    assert (conf / "aliases.db").stat().st_mtime >= (conf / "aliases").stat().st_mtime
    assert (conf / "aliases.prev").read_bytes() == old_aliases
    assert Path(server.mc_path + ".prev").read_bytes() == old_mc
    assert not (conf / "virtusertable.prev").exists()
    assert cfbuild.read_manifest(server)["files"][str(conf / "virtusertable")] is False
    out = expands(server, "team")
    assert "a@remote.example... deliverable" in out and "b@remote.example... deliverable" in out
    assert "user bob@remote.example" in expands(server, f"info@{server.hostname}")
    assert "mailer smtp, host [127.0.0.9]" in expands(server, "someone@partner.example")
    assert f"/{row.build_id};" in daemon.status(server).banner


def test_a_failed_install_puts_back_every_file_and_removes_the_maps_it_added(whole_conf_dir):
    server = whole_conf_dir
    before = conf_files(server)
    maps = {"aliases": TEAM, "virtusertable": "a@b.example\tc@d.example\n", "mailertable": ""}
    built = run_build(new_build(server, TABLES, maps=maps))
    assert built.status == WorkStatus.DONE, built.error
    # A cf the daemon runs but that does not greet with the build: the install cannot confirm it.
    stranger = built.cf_text.replace(f"/{built.build_id}\n", "/someone-else\n")
    ConfigBuild.objects.filter(pk=built.pk).update(cf_text=stranger, cf_sha256=cfbuild.sha256(stranger.encode()))
    built.refresh_from_db()

    job = run_install(built)

    assert job.status == WorkStatus.FAILED
    assert "answers without build" in job.error
    assert "put back, with the maps and the .mc" in job.error
    after = {name: data for name, data in conf_files(server).items() if not name.endswith(".prev")}
    assert after == before  # byte for byte, the .db files too; virtusertable and mailertable gone again
    assert "postmaster@remote.example... deliverable" in expands(server, "postmaster")  # the old aliases.db
    assert "User unknown" in expands(server, "team")
    assert daemon.status(server).answering


def test_a_map_that_does_not_compile_at_install_changes_nothing_live(whole_conf_dir):
    server = whole_conf_dir
    row = run_build(new_build(server, maps={"aliases": TEAM}))
    ConfigBuild.objects.filter(pk=row.pk).update(maps={"aliases": "no colon here\n"})
    row.refresh_from_db()
    before, pid = conf_files(server), daemon.live_pid(server)
    job = run_install(row)
    assert job.status == WorkStatus.FAILED
    assert "missing colon" in job.error and "Nothing live was changed" in job.error
    assert conf_files(server) == before and daemon.live_pid(server) == pid


def test_the_first_install_keeps_the_live_configuration_as_a_host_build_that_restores_it(whole_conf_dir):
    server = whole_conf_dir
    before = conf_files(server)
    original_cf = before["sendmail.cf"]
    row = run_build(
        new_build(server, maps={"aliases": TEAM, "relay-domains": "newdomain.example\n", "trusted-users": "smmsp\n"})
    )
    job = run_install(row)
    assert job.status == WorkStatus.DONE, job.error

    host = ConfigBuild.objects.get(server=server, origin=ConfigBuild.Origin.HOST)
    assert host.build_id in job.output
    assert (host.status, host.created_by, host.rows, host.cf_sha256) == (
        WorkStatus.DONE,
        None,
        {},
        cfbuild.sha256(original_cf),
    )
    assert host.maps["aliases"].encode() == before["aliases"]
    assert set(host.maps) == {n for n in mapbuild.MAP_NAMES if n in before}
    assert host.mc_text.encode() == before["sendmail.mc"]
    assert host.installed_at is not None
    assert run_install(run_build(new_build(server))).status == WorkStatus.DONE
    assert ConfigBuild.objects.filter(origin=ConfigBuild.Origin.HOST).count() == 1  # only the first install

    back = run_install(host, rollback=True)

    assert back.status == WorkStatus.DONE, back.error
    now = conf_files(server)
    for name in ("sendmail.cf", "sendmail.mc", "access", "aliases", "relay-domains", "trusted-users"):
        assert now[name] == before[name], name
    assert "User unknown" in expands(server, "team")
    assert cfbuild.live_build(server) == host
    assert daemon.status(server).answering


def test_a_rerun_after_a_worker_died_mid_install_keeps_the_first_attempts_previous_files(whole_conf_dir):
    server = whole_conf_dir
    conf = Path(server.conf_dir)
    old_aliases, old_cf = (conf / "aliases").read_bytes(), Path(server.cf_path).read_bytes()
    row = run_build(new_build(server, maps={"aliases": TEAM}))
    # The first attempt got as far as the aliases: .prev files kept, the new aliases live, the cf not yet.
    work_dir = cfbuild.staging_dir(server) / "crashed"
    cfbuild.stage_install(server, row, Mta(server), work_dir)
    planned = cfbuild.placements(server, row, work_dir)
    cfbuild.keep_previous(server, row, planned)
    cfbuild.put_in_place(planned[:2])
    mapbuild.discard(work_dir)
    assert (conf / "aliases").read_text() == TEAM

    job = run_install(row)

    assert job.status == WorkStatus.DONE, job.error
    assert (conf / "aliases.prev").read_bytes() == old_aliases
    assert Path(server.cf_path + ".prev").read_bytes() == old_cf
    assert cfbuild.read_manifest(server)["finished"] is True
    assert f"/{row.build_id};" in daemon.status(server).banner


def test_alias_lines_split_into_names_and_targets_as_sendmail_reads_them():
    text = '# comment\nlist: a@x.example,\n  "|/usr/bin/prog a,b", :include:/etc/mail/l\n\nother:/var/f\n'
    entries = mapbuild.alias_entries(text)
    assert [(n, name) for n, name, _ in entries] == [(2, "list"), (5, "other")]
    assert mapbuild.alias_targets(entries[0][2]) == ["a@x.example", "|/usr/bin/prog a,b", ":include:/etc/mail/l"]
    assert mapbuild.alias_targets(entries[1][2]) == ["/var/f"]


def test_the_cf_lines_that_read_maps_are_found():
    cf = (
        "Kvirtuser hash -o -T<TMPF> /etc/mail/virtusertable\nFR-o /etc/mail/relay-domains %[^\\#]\n"
        "Fw/etc/mail/local-host-names %[^\\#]\n#Ft/etc/mail/trusted-users\nO AliasFile=/etc/mail/aliases,hash:/x/y\n"
        "Mprog,\t\tP=/usr/libexec/sendmail/smrsh, F=lsDFMoqeu9\n"
    )
    keyed, classes, alias_files = mapbuild.cf_readers(cf)
    assert keyed == {"virtuser": "/etc/mail/virtusertable"}
    assert classes == {"R": "/etc/mail/relay-domains", "w": "/etc/mail/local-host-names"}
    assert alias_files == ["/etc/mail/aliases", "/x/y"]
    assert mapbuild.prog_mailer(cf) == "/usr/libexec/sendmail/smrsh"
