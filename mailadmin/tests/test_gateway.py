import time
from pathlib import Path

import pytest

from mailadmin.models import AuditEvent
from mailadmin.mta import gateway
from mailadmin.mta.gateway import CommandFailed, CommandNotFound, CommandTimedOut, Mta

CF_TREE = "/usr/share/sendmail/cf"


@pytest.mark.parametrize("argv", ["sendmail -bp", ("/usr/sbin/sendmail", "-bp"), [b"/usr/sbin/sendmail"], [1]])
def test_only_lists_of_strings_are_run(argv):
    with pytest.raises(TypeError):
        gateway.run(argv, timeout=5)


@pytest.mark.parametrize("argv", [[], ["/bin/echo", "a\0b"]])
def test_empty_commands_and_nul_bytes_are_refused(argv):
    with pytest.raises(ValueError):
        gateway.run(argv, timeout=5)


def test_shell_syntax_reaches_the_program_as_one_literal_argument(tmp_path):
    canary = tmp_path / "canary"
    hostile = f"$(touch {canary}); `touch {canary}` | touch {canary} && touch {canary}"
    result = gateway.run(["/bin/echo", hostile], timeout=5)
    assert result.stdout_text.strip() == hostile
    assert not canary.exists()
    assert result.argv == ("/bin/echo", hostile)


def test_a_hung_command_is_killed_at_its_timeout():
    started = time.monotonic()
    with pytest.raises(CommandTimedOut) as caught:
        gateway.run(["/bin/sleep", "30"], timeout=0.5)
    assert time.monotonic() - started < 5
    assert "did not finish within 0.5 s" in str(caught.value)


def test_a_missing_binary_is_a_typed_error():
    with pytest.raises(CommandNotFound):
        gateway.run(["/nonexistent/sendmail", "-bp"], timeout=5)


def test_a_failing_m4_run_carries_exit_code_and_stderr(tmp_path):
    mc = tmp_path / "bad.mc"
    mc.write_text(f"include(`{CF_TREE}/m4/cf.m4')\nOSTYPE(`debian')\nFEATURE(`nosuchfeature')\n")
    with pytest.raises(CommandFailed) as caught:
        gateway.run_m4("/usr/bin/m4", mc, tmp_path / "bad.cf", timeout=30)
    assert caught.value.returncode == 1
    assert "nosuchfeature.m4" in caught.value.stderr


def test_m4_errors_fail_the_build_even_when_m4_exits_zero(tmp_path):
    mc = tmp_path / "rate.mc"
    mc.write_text(f"include(`{CF_TREE}/m4/cf.m4')\nOSTYPE(`debian')\nFEATURE(`ratecontrol')\nMAILER(`local')\n")
    with pytest.raises(CommandFailed) as caught:
        gateway.run_m4("/usr/bin/m4", mc, tmp_path / "rate.cf", timeout=30)
    assert caught.value.returncode == 0
    assert "requires FEATURE(`access_db')" in caught.value.stderr
    assert "m4 exited 0" in str(caught.value)


def test_sendmail_rejects_a_broken_cf_and_the_audit_log_records_it(mta_server, tmp_path):
    broken = tmp_path / "broken.cf"
    broken.write_text(Path(mta_server.cf_path).read_text() + "O NoSuchOption=1\n")
    mta = Mta(mta_server)
    with pytest.raises(CommandFailed) as caught:
        mta.check_cf(broken)
    assert caught.value.returncode == 70
    assert "unknown option name NoSuchOption" in caught.value.output
    event = AuditEvent.objects.get(action="check cf", outcome=AuditEvent.Outcome.FAILED)
    assert event.outcome == AuditEvent.Outcome.FAILED
    assert event.exit_code == 70
    assert event.argv[:3] == [mta_server.sendmail_bin, "-C", str(broken)]


def test_every_mta_command_is_audited_with_its_argument_list(mta_server):
    result = Mta(mta_server).sendmail("-bp", action="list queue")
    event = AuditEvent.objects.get(action="list queue")
    assert event.argv == list(result.argv)
    assert event.exit_code == 0
    assert event.server == mta_server
    assert mta_server.queue_dir in result.stdout_text


def test_makemap_reports_the_map_types_it_can_build(mta_server):
    assert "hash" in Mta(mta_server).makemap_types()


def test_a_long_command_calls_back_while_it_runs_and_still_times_out():
    beats = []
    gateway.run(["/bin/sleep", "2.5"], timeout=10, while_waiting=lambda: beats.append(time.monotonic()))
    assert len(beats) == 2
    with pytest.raises(CommandTimedOut):
        gateway.run(["/bin/sleep", "30"], timeout=1.5, while_waiting=lambda: beats.append(time.monotonic()))
    assert len(beats) == 3


@pytest.mark.django_db
def test_a_command_is_in_the_audit_log_while_it_runs_and_completed_after(mta_server):
    """A worker killed mid-command leaves the row "started": the spool may have changed, the log says so."""
    seen_while_running = []

    def probe():
        seen_while_running.extend(AuditEvent.objects.filter(action="slow").values_list("outcome", flat=True))

    mta = Mta(mta_server)
    # A slow run of a pinned binary (the gateway refuses any other): m4 sleeping through syscmd.
    argv = [mta_server.m4_bin]
    slow = b"syscmd(`sleep 1.5')"
    mta._audited("slow", lambda: gateway.run(argv, timeout=5, stdin=slow, while_waiting=probe), argv)

    assert seen_while_running == ["started"]
    event = AuditEvent.objects.get(action="slow")
    assert (event.outcome, event.exit_code, event.argv) == ("ok", 0, argv)
