"""The agent checks every path of a build against its own roots before it builds or installs it.

The console refuses a path outside the instance's roots when it is set; the agent checks again with
the roots of its own configuration (not the database row's), so a row written past the console,
or a .mc line kept verbatim, still cannot make root's sendmail write /etc/shadow. The refusal
comes before anything is staged, built or touched: no daemon is needed to show it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mailadmin import work
from mailadmin.models import AuditEvent, ConfigBuild, InstallJob, MailServer
from mailadmin.mta import agent, cfbuild
from mailadmin.mta.gateway import Mta
from mailadmin.work import WorkStatus

NAME = "rootcheck"


@pytest.fixture
def instance(tmp_path, monkeypatch):
    """A MailServer row, its live files, and this process serving it with roots = its own directory.

    The row itself claims /etc as a root too: the agent goes by its own configuration only."""
    root = Path(os.path.realpath(tmp_path / "instance"))
    conf = root / "etc" / "mail"
    conf.mkdir(parents=True)
    (conf / "sendmail.cf").write_text("O PidFile=/run/live.pid\n")
    (conf / "access").write_text("Connect:127.0.0.1\tRELAY\n")
    (conf / "escape").symlink_to("/etc")
    paths = {
        "conf_dir": str(conf),
        "mc_path": str(conf / "sendmail.mc"),
        "cf_path": str(conf / "sendmail.cf"),
        "access_path": str(conf / "access"),
        "cert_dir": str(conf / "certs"),
        "queue_dir": str(root / "spool" / "mqueue"),
        "pid_file": str(root / "run" / "sendmail.pid"),
        "log_file": str(root / "log" / "mail.log"),
    }
    served = agent.Instance(
        name=NAME,
        hostname="mail.example.test",
        roots=(str(root),),
        **paths,
        syslog_tag="sm-rootcheck",
        sendmail_bin=agent.DEFAULT_BINARIES["sendmail"],
        m4_bin=agent.DEFAULT_BINARIES["m4"],
        makemap_bin=agent.DEFAULT_BINARIES["makemap"],
        cf_tree=agent.DEFAULT_CF_TREE,
        smtp_address="127.0.0.1",
        smtp_port=2599,
    )
    monkeypatch.setitem(agent._served, NAME, served)
    server = MailServer.objects.create(
        name=NAME,
        hostname="mail.example.test",
        celery_queue=f"mta.{NAME}",
        roots=["/etc", str(root)],
        reserved_words=["dnl"],
        **paths,
    )
    return server, root


def a_build(server, *, expected: dict, mc_text: str = "") -> ConfigBuild:
    mc_text = mc_text or "divert(-1)dnl\ninclude(`/usr/share/sendmail/cf/m4/cf.m4')dnl\ndivert(0)dnl\n"
    cf_text = "O PidFile=/etc/shadow\n"
    return ConfigBuild.objects.create(
        server=server,
        mc_text=mc_text,
        access_text="Connect:10.0.0.1\tREJECT\n",
        expected_options=expected,
        cf_text=cf_text,
        cf_sha256=cfbuild.sha256(cf_text.encode()),
        status=WorkStatus.DONE,
    )


def run_install(row: ConfigBuild) -> InstallJob:
    job = InstallJob.objects.create(server=row.server, build=row)

    def perform(item):
        work.finish(item, WorkStatus.DONE, output=cfbuild.install(item, Mta(item.server), lambda *_: None))

    work.execute(InstallJob, job.pk, perform)
    job.refresh_from_db()
    return job


def live_files(server) -> dict[str, tuple[bytes, int]]:
    conf = Path(server.conf_dir)
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(conf.iterdir()) if p.is_file()}


def mta_commands() -> int:
    return AuditEvent.objects.filter(action__in=["m4", "makemap", "check cf", "sendmail"]).count()


@pytest.mark.django_db
def test_the_agent_refuses_to_install_a_build_whose_path_option_points_outside_its_roots(instance):
    server, root = instance
    before, commands = live_files(server), mta_commands()

    job = run_install(a_build(server, expected={"PidFile": "/etc/shadow", "LogLevel": "9"}))

    assert job.status == WorkStatus.FAILED
    assert "the agent refuses to install build" in job.error
    assert "PidFile=/etc/shadow" in job.error and str(root) in job.error
    assert "LogLevel" not in job.error
    assert live_files(server) == before
    assert not Path(server.cf_path + ".prev").exists() and not Path(server.conf_dir, ".mailadmin").exists()
    assert mta_commands() == commands
    assert ConfigBuild.objects.get(pk=job.build_id).installed_at is None


@pytest.mark.django_db
@pytest.mark.parametrize(
    "expected, mc_line, refused",
    [
        ({"DeadLetterDrop": "/root/.ssh/authorized_keys"}, "", "DeadLetterDrop=/root/.ssh/authorized_keys"),
        ({"ServerKeyFile": "ROOT/etc/mail/escape/shadow"}, "", "ServerKeyFile=ROOT/etc/mail/escape/shadow"),
        ({}, "define(`confPID_FILE', `/etc/shadow')dnl\n", "PidFile=/etc/shadow"),
        ({}, "FEATURE(`access_db', `hash -T<TMPF> /etc/shadow')dnl\n", "FEATURE(access_db) map file=/etc/shadow"),
        ({}, "FEATURE(`local_lmtp', `/bin/sh', `sh -c id')dnl\n", "FEATURE(local_lmtp) mailer path=/bin/sh"),
    ],
)
def test_every_path_of_the_build_is_checked_its_mc_lines_included(instance, expected, mc_line, refused):
    server, root = instance
    expected = {name: value.replace("ROOT", str(root)) for name, value in expected.items()}
    mc_text = "divert(0)dnl\n" + mc_line if mc_line else ""
    before = live_files(server)

    job = run_install(a_build(server, expected=expected, mc_text=mc_text))

    assert job.status == WorkStatus.FAILED
    assert refused.replace("ROOT", str(root)) in job.error
    assert live_files(server) == before


@pytest.mark.django_db
def test_the_agent_refuses_to_build_a_build_whose_path_points_outside_its_roots_before_m4_runs(instance):
    server, _ = instance
    row = a_build(server, expected={"PidFile": "/etc/shadow"})
    ConfigBuild.objects.filter(pk=row.pk).update(status=WorkStatus.QUEUED, cf_text="", cf_sha256="")
    commands = mta_commands()

    work.execute(ConfigBuild, row.pk, lambda r: cfbuild.build(r, Mta(r.server), lambda *_: None))

    row.refresh_from_db()
    assert row.status == WorkStatus.FAILED
    assert "the agent refuses to build build" in row.error and "PidFile=/etc/shadow" in row.error
    assert mta_commands() == commands
    assert not Path(server.conf_dir, ".mailadmin").exists()


@pytest.mark.django_db
def test_a_build_whose_paths_all_lie_under_the_agents_roots_passes_the_check(instance):
    server, root = instance
    mc_text = f"FEATURE(`access_db', `hash -T<TMPF> {root}/etc/mail/access')dnl\n"
    row = a_build(server, expected={"PidFile": f"{root}/run/sendmail.pid", "DHParameters": "none"}, mc_text=mc_text)
    assert cfbuild.paths_outside_roots(row) == []


@pytest.mark.django_db
def test_a_process_that_does_not_serve_the_instance_checks_nothing(instance, monkeypatch):
    server, _ = instance
    row = a_build(server, expected={})
    monkeypatch.delitem(agent._served, NAME)
    with pytest.raises(agent.NotServedHere):
        cfbuild.paths_outside_roots(row)
