"""The dashboard's read-only facts, against real files and Debian's real sendmail binary."""

import os
import shutil
from pathlib import Path

import pytest

from mailadmin import overview
from mailadmin.models import MailServer

SAMPLES = Path("/work/shared/lab/samples")
SENDMAIL = "/usr/sbin/sendmail"


def server(**fields) -> MailServer:
    defaults = {
        "name": "probe",
        "hostname": "mx.example.org",
        "cf_path": "/nonexistent.cf",
        "mc_path": "/nonexistent.mc",
        "queue_dir": "/nonexistent/mqueue",
        "pid_file": "/nonexistent/sendmail.pid",
        "sendmail_bin": SENDMAIL,
        "syslog_tag": "sm-probe",
    }
    return MailServer(**{**defaults, **fields})


def sample(name: str, target: Path) -> None:
    shutil.copyfile(SAMPLES / name, target)


@pytest.fixture(autouse=True)
def fresh_version_cache():
    overview._version_cache.clear()
    yield
    overview._version_cache.clear()


REPORT = """Version 8.17.1.9
 Compiled with: DNSMAP IPV6_FULL LDAPMAP
\t\tLDAP_REFERRALS LOG MAXDAEMONS=64
\t\tSTARTTLS XDEBUG

============ SYSTEM IDENTITY (after readcf) ============
      (short domain name) $w = vm
"""


def test_the_version_report_is_parsed_with_its_continuation_lines():
    parsed = overview.parse_version_report(REPORT)
    assert parsed.version == "8.17.1.9"
    assert parsed.compile_options == [
        "DNSMAP", "IPV6_FULL", "LDAPMAP", "LDAP_REFERRALS", "LOG", "MAXDAEMONS=64", "STARTTLS", "XDEBUG"
    ]  # fmt: skip
    assert "$w" not in parsed.compile_options


def test_the_real_binary_reports_its_version_even_without_a_cf():
    found = overview.sendmail_version(server())
    assert found.error == ""
    assert found.version.startswith("8.")
    assert "STARTTLS" in found.compile_options


def test_the_version_is_asked_once_per_binary(tmp_path):
    first = overview.sendmail_version(server())
    assert overview.sendmail_version(server(cf_path=str(tmp_path / "other.cf"))) is first
    assert list(overview._version_cache) == [(SENDMAIL, os.stat(SENDMAIL).st_mtime_ns)]


def test_a_missing_binary_is_an_error_not_an_exception():
    found = overview.sendmail_version(server(sendmail_bin="/nonexistent"))
    assert found.version == ""
    assert "/nonexistent" in found.error
    assert "No such file" in found.error
    assert overview._version_cache == {}


def test_a_binary_that_cannot_be_executed_is_an_error(tmp_path):
    binary = tmp_path / "sendmail"
    binary.write_text("not a program\n")
    binary.chmod(0o644)
    found = overview.sendmail_version(server(sendmail_bin=str(binary)))
    assert found.version == ""
    assert "program not found" in found.error


def test_a_program_that_is_not_sendmail_is_named(tmp_path):
    found = overview.sendmail_version(server(sendmail_bin="/bin/true"))
    assert found.version == ""
    assert "did not report a sendmail version" in found.error


def test_spool_files_are_counted_by_prefix(tmp_path):
    queue = tmp_path / "mqueue"
    queue.mkdir()
    sample("qf-normal.txt", queue / "qf6AOIGq4n025795")
    sample("qf-dsn-8bit.txt", queue / "qf6AOIGq4n025796")
    sample("hf-quarantined.txt", queue / "hf6AOIGq4n025797")
    (queue / "Qf6AOIGq4n025798").write_bytes(b"V8\n")
    for name in ("df6AOIGq4n025795", "df6AOIGq4n025796", "df6AOIGq4n025797"):
        (queue / name).write_bytes(b"body\n")
    (queue / "xf6AOIGq4n025796").write_bytes(b"transcript\n")
    (queue / "tf6AOIGq4n025799").write_bytes(b"being written\n")
    (queue / "qfnot-a-file").mkdir()

    counts = overview.spool_counts(str(queue))
    assert counts.error == ""
    assert (counts.queued, counts.quarantined, counts.lost, counts.data, counts.transcripts) == (2, 1, 1, 3, 1)
    assert counts.messages == 3
    assert counts.directories == [str(queue)]


def test_qf_df_xf_subdirectories_are_counted(tmp_path):
    queue = tmp_path / "mqueue"
    for sub in ("qf", "df", "xf"):
        (queue / sub).mkdir(parents=True)
    sample("qf-normal.txt", queue / "qf" / "qf6AOIGq4n000001")
    sample("hf-quarantined.txt", queue / "qf" / "hf6AOIGq4n000002")
    (queue / "df" / "df6AOIGq4n000001").write_bytes(b"x")
    (queue / "df" / "df6AOIGq4n000002").write_bytes(b"x")
    (queue / "xf" / "xf6AOIGq4n000001").write_bytes(b"x")

    counts = overview.spool_counts(str(queue))
    assert (counts.queued, counts.quarantined, counts.data, counts.transcripts) == (1, 1, 2, 1)


def test_a_queue_glob_sums_every_matching_directory(tmp_path):
    for name, files in {"q1": 2, "q2": 3, "other": 5}.items():
        directory = tmp_path / name
        directory.mkdir()
        for number in range(files):
            sample("qf-normal.txt", directory / f"qf6AOIGq4n{name}{number}")
    (tmp_path / "q3-is-a-file").write_text("")

    counts = overview.spool_counts(str(tmp_path / "q*"))
    assert counts.queued == 5
    assert counts.directories == [str(tmp_path / "q1"), str(tmp_path / "q2")]


def test_a_missing_queue_directory_is_reported(tmp_path):
    missing = overview.spool_counts(str(tmp_path / "absent"))
    assert "No such file" in missing.error
    assert missing.queued == 0
    assert "No such file" in overview.spool_counts(str(tmp_path / "absent" / "q*")).error
    assert "no directory matches" in overview.spool_counts(str(tmp_path / "q*")).error


CF = """#
V10/Berkeley
DZ8.17.1.9/mailadmin-b42
O AliasWait=10
#O MaxMessageSize=0
O DaemonPortOptions=Port=2525,Addr=127.0.0.1,Name=MTA-local
#O UseMSP
O PrivacyOptions=authwarnings,noexpn,novrfy
Oldstyle
"""


def test_the_installed_cf_is_described(tmp_path):
    cf_path = tmp_path / "sendmail.cf"
    cf_path.write_text(CF)
    os.utime(cf_path, (1_700_000_000, 1_700_000_000))

    cf = overview.installed_cf(server(cf_path=str(cf_path)))
    assert cf.exists and cf.error == ""
    assert cf.version == "8.17.1.9/mailadmin-b42"
    assert cf.option_count == 3
    assert cf.size == len(CF)
    assert len(cf.sha256) == 64
    assert int(cf.mtime.timestamp()) == 1_700_000_000
    assert overview.CfOption("DaemonPortOptions", "Port=2525,Addr=127.0.0.1,Name=MTA-local", True) in cf.options
    assert [o.name for o in cf.default_options] == ["MaxMessageSize", "UseMSP"]


def test_a_missing_cf_is_described_not_raised(tmp_path):
    cf = overview.installed_cf(server(cf_path=str(tmp_path / "sendmail.cf")))
    assert not cf.exists
    assert "No such file" in cf.error
    assert cf.option_count == 0


def test_the_log_tail_keeps_only_this_servers_lines(tmp_path):
    log = tmp_path / "syslog"
    lines = [f"Nov 24 18:00:{n:02d} vm sm-probe[{100 + n}]: line {n}" for n in range(40)]
    lines.insert(5, "Nov 24 18:00:05 vm sm-probe2[7]: another instance")
    lines.insert(9, "Nov 24 18:00:09 vm cron[8]: unrelated")
    log.write_text("\n".join(lines) + "\n")

    tail = overview.log_tail(server(log_file=str(log)), lines=30)
    assert len(tail.lines) == 30
    assert tail.lines[-1].endswith("line 39")
    assert all("sm-probe[" in line for line in tail.lines)


def test_the_log_tail_reads_only_the_end_of_a_big_file(tmp_path):
    log = tmp_path / "syslog"
    with log.open("w") as handle:
        for n in range(20000):
            handle.write(f"Nov 24 18:00:00 vm sm-probe[1]: message {n:05d} {'x' * 40}\n")
    tail = overview.log_tail(server(log_file=str(log)), lines=5)
    assert tail.lines[-1].split()[6] == "19999"
    assert len(tail.lines) == 5
    assert all(line.startswith("Nov 24") for line in tail.lines)


def test_the_real_syslog_capture_is_filtered_by_tag(tmp_path):
    tail = overview.log_tail(server(log_file=str(SAMPLES / "syslog-capture.log"), syslog_tag="sendmail"))
    assert tail.lines
    assert all("sendmail[" in line or "sendmail:" in line for line in tail.lines)


def test_a_missing_log_is_a_note(tmp_path):
    tail = overview.log_tail(server(log_file=str(tmp_path / "none")))
    assert tail.lines == []
    assert "No such file" in tail.note
    assert "No log file" in overview.log_tail(server(log_file="")).note


@pytest.mark.django_db
def test_the_overview_of_a_server_with_nothing_installed_names_every_problem(tmp_path):
    row = server(
        name="broken",
        sendmail_bin=str(tmp_path / "sendmail"),
        cf_path=str(tmp_path / "sendmail.cf"),
        queue_dir=str(tmp_path / "mqueue"),
        pid_file=str(tmp_path / "sendmail.pid"),
        log_file=str(tmp_path / "syslog"),
        smtp_address="127.0.0.1",
        smtp_port=9,
        celery_queue="mta.broken",
    )
    row.save()
    summary = overview.server_overview(row)
    assert not summary.status.answering
    assert summary.last_action is None
    assert summary.audit_events == []
    text = "\n".join(summary.problems)
    assert "sendmail cannot be run" in text
    assert "configuration file is missing" in text
    assert "not running" in text
    assert "queue cannot be read" in text
