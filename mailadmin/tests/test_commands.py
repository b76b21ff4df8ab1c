"""The shell side of configuration: importmc and buildcf, on a real instance."""

from pathlib import Path

from django.core.management import call_command

from mailadmin.models import ConfigBuild
from mailadmin.mta import cfbuild, daemon


def test_importmc_turns_the_stock_debian_mc_into_rows_and_keeps_the_rest(mta_server, capsys):
    call_command("importmc", "/etc/mail/sendmail.mc", server=mta_server.name)
    out = capsys.readouterr().out
    mta_server.refresh_from_db()
    assert "imported /etc/mail/sendmail.mc" in out
    assert mta_server.mc_template == Path("/etc/mail/sendmail.mc").read_text()
    assert mta_server.features.filter(name="access_db").exists()
    assert "DAEMON_OPTIONS" in mta_server.mc_template


def test_buildcf_builds_and_installs_from_the_shell(instance_files, capsys):
    server = instance_files
    call_command("importmc", server.mc_path, server=server.name, access=server.access_path)
    call_command("buildcf", server=server.name, install=True)
    out = capsys.readouterr().out
    build = ConfigBuild.objects.get(origin=ConfigBuild.Origin.CONSOLE)
    # What was live before the first install is kept as a build of its own, to roll back to.
    assert ConfigBuild.objects.filter(origin=ConfigBuild.Origin.HOST).count() == 1
    assert f"{build.build_id} built" in out
    assert f"answers with {build.build_id}" in out
    assert cfbuild.live_build(server) == build
    assert f"/{build.build_id};" in daemon.status(server).banner
