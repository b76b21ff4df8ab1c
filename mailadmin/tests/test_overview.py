"""The dashboard's facts: gathered by the agent (mailadmin.mta.snapshot, mailadmin.mta.spool) from real
files and Debian's real sendmail binary, and read back from the row by the web tier (mailadmin.overview)."""

import os
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from mailadmin import overview
from mailadmin.models import AgentHost, HostSnapshot, MailServer
from mailadmin.mta import snapshot, spool

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


@pytest.fixture
def fresh_version_cache():
    snapshot._version_cache.clear()
    yield
    snapshot._version_cache.clear()


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


def test_the_agents_pinned_binary_reports_its_version_once_per_binary(fresh_version_cache, mta_server):
    found = snapshot.sendmail_version(mta_server)
    assert found.error == ""
    assert found.version.startswith("8.")
    assert "STARTTLS" in found.compile_options
    assert snapshot.sendmail_version(mta_server) is found
    assert list(snapshot._version_cache) == [(mta_server.sendmail_bin, os.stat(mta_server.sendmail_bin).st_mtime_ns)]


def test_the_binary_a_row_names_is_not_the_one_asked(fresh_version_cache, mta_server):
    """The agent runs the binary its own configuration pins, whatever the database row says."""
    mta_server.sendmail_bin = "/bin/true"
    found = snapshot.sendmail_version(mta_server)
    assert found.error == "" and found.version.startswith("8.")
    assert mta_server.sendmail_bin != "/bin/true"


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

    counts = spool.spool_counts(str(queue))
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

    counts = spool.spool_counts(str(queue))
    assert (counts.queued, counts.quarantined, counts.data, counts.transcripts) == (1, 1, 2, 1)


def test_a_queue_glob_sums_every_matching_directory(tmp_path):
    for name, files in {"q1": 2, "q2": 3, "other": 5}.items():
        directory = tmp_path / name
        directory.mkdir()
        for number in range(files):
            sample("qf-normal.txt", directory / f"qf6AOIGq4n{name}{number}")
    (tmp_path / "q3-is-a-file").write_text("")

    counts = spool.spool_counts(str(tmp_path / "q*"))
    assert counts.queued == 5
    assert counts.directories == [str(tmp_path / "q1"), str(tmp_path / "q2")]


def test_a_missing_queue_directory_is_reported(tmp_path):
    missing = spool.spool_counts(str(tmp_path / "absent"))
    assert "No such file" in missing.error
    assert missing.queued == 0
    assert "No such file" in spool.spool_counts(str(tmp_path / "absent" / "q*")).error
    assert "no directory matches" in spool.spool_counts(str(tmp_path / "q*")).error


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

    cf, text, cut = snapshot.installed_cf(str(cf_path))
    assert text == CF and not cut
    assert cf.exists and cf.error == ""
    assert cf.version == "8.17.1.9/mailadmin-b42"
    assert cf.option_count == 3
    assert cf.size == len(CF)
    assert len(cf.sha256) == 64
    assert int(cf.mtime.timestamp()) == 1_700_000_000
    assert overview.CfOption("DaemonPortOptions", "Port=2525,Addr=127.0.0.1,Name=MTA-local", True) in cf.options
    assert [o.name for o in cf.default_options] == ["MaxMessageSize", "UseMSP"]
    assert overview.InstalledCf.from_dict(cf.to_dict()) == cf, "the row gives back what the agent saw"


def test_a_cf_bigger_than_the_snapshot_keeps_its_hash_and_options(tmp_path, monkeypatch):
    monkeypatch.setattr(snapshot, "CF_TEXT_LIMIT", 64)
    cf_path = tmp_path / "sendmail.cf"
    cf_path.write_text(CF)
    cf, text, cut = snapshot.installed_cf(str(cf_path))
    assert cut and text == CF[:64]
    assert cf.size == len(CF) and cf.option_count == 3


def test_a_missing_cf_is_described_not_raised(tmp_path):
    cf, text, _ = snapshot.installed_cf(str(tmp_path / "sendmail.cf"))
    assert not cf.exists and text == ""
    assert "No such file" in cf.error
    assert cf.option_count == 0


def test_the_log_tail_keeps_only_this_servers_lines(tmp_path):
    log = tmp_path / "syslog"
    lines = [f"Nov 24 18:00:{n:02d} vm sm-probe[{100 + n}]: line {n}" for n in range(40)]
    lines.insert(5, "Nov 24 18:00:05 vm sm-probe2[7]: another instance")
    lines.insert(9, "Nov 24 18:00:09 vm cron[8]: unrelated")
    log.write_text("\n".join(lines) + "\n")

    tail = snapshot.log_tail(str(log), "sm-probe", lines=30)
    assert len(tail.lines) == 30
    assert tail.lines[-1].endswith("line 39")
    assert all("sm-probe[" in line for line in tail.lines)


def test_the_log_tail_reads_only_the_end_of_a_big_file(tmp_path):
    log = tmp_path / "syslog"
    with log.open("w") as handle:
        for n in range(20000):
            handle.write(f"Nov 24 18:00:00 vm sm-probe[1]: message {n:05d} {'x' * 40}\n")
    tail = snapshot.log_tail(str(log), "sm-probe", lines=5)
    assert tail.lines[-1].split()[6] == "19999"
    assert len(tail.lines) == 5
    assert all(line.startswith("Nov 24") for line in tail.lines)


def test_the_real_syslog_capture_is_filtered_by_tag(tmp_path):
    tail = snapshot.log_tail(str(SAMPLES / "syslog-capture.log"), "sendmail")
    assert tail.lines
    assert all("sendmail[" in line or "sendmail:" in line for line in tail.lines)


def test_a_missing_log_is_a_note(tmp_path):
    tail = snapshot.log_tail(str(tmp_path / "none"), "sm-probe")
    assert tail.lines == []
    assert "No such file" in tail.note
    assert "No log file" in snapshot.log_tail("", "sm-probe").note


def broken_snapshot(row: MailServer, **fields) -> HostSnapshot:
    """The row an agent writes for an instance with nothing installed (what snapshot.take found there)."""
    values = {
        "taken_at": timezone.now(),
        "daemon": {"pid": None, "process_alive": False, "banner": "", "banner_error": "Connection refused"},
        "version": {"version": "", "compile_options": [], "error": "/x/sendmail: No such file or directory"},
        "spool": {"queue_dir": "/x/mqueue", "error": "/x/mqueue: No such file or directory"},
        "cf": {"path": "/x/sendmail.cf", "exists": False, "error": "/x/sendmail.cf: No such file or directory"},
        "mc": {"path": "/x/sendmail.mc", "error": "/x/sendmail.mc: No such file or directory"},
        "log": {"path": "/x/syslog", "lines": [], "note": "/x/syslog: No such file or directory"},
        "tls": {"key_problems": ["ServerKeyFile /x/key.pem: readable by group or others (mode 0644)"]},
        **fields,
    }
    return HostSnapshot.objects.create(server=row, **values)


@pytest.mark.django_db
def test_the_overview_of_a_server_with_nothing_installed_names_every_problem():
    row = server(name="broken", smtp_address="127.0.0.1", smtp_port=9, celery_queue="mta.broken")
    row.save()
    broken_snapshot(row)

    summary = overview.server_overview(row)

    assert not summary.status.answering
    assert summary.silence is None
    assert summary.last_action is None
    assert summary.audit_events == []
    text = "\n".join(summary.problems)
    assert "sendmail cannot be run" in text
    assert "configuration file is missing" in text
    assert "The daemon is not running: nothing answers on 127.0.0.1:9 (Connection refused)" in text
    assert "queue cannot be read" in text
    assert "readable by group or others" in text


@pytest.mark.django_db
def test_without_a_snapshot_the_overview_says_nothing_is_known_and_guesses_nothing():
    row = server(name="fresh", celery_queue="mta.fresh")
    row.save()
    with django_queries() as queries:
        summary = overview.server_overview(row)
    assert summary.snapshot is None and summary.status is None and summary.spool is None
    assert summary.problems == [], "no problem is claimed about an instance nobody has looked at"
    assert summary.silence == overview.AgentSilence(queue="mta.fresh", since=None)
    assert summary.silence.message == "The agent on mta.fresh has not reported yet."
    assert len(queries) <= 4


@pytest.mark.django_db
def test_a_snapshot_older_than_the_stale_limit_is_an_agent_that_does_not_answer(settings):
    settings.AGENT_SNAPSHOT_SECONDS, settings.AGENT_STALE_SECONDS = 15, 30
    host = AgentHost.objects.create(name="relay1", celery_queue="mta.relay1", approved_at=timezone.now())
    row = server(name="relay1", celery_queue="mta.relay1", host=host)
    row.save()
    taken = timezone.now() - timedelta(seconds=46)
    AgentHost.objects.filter(pk=host.pk).update(last_seen=taken)
    broken_snapshot(row, taken_at=taken)
    row = MailServer.objects.select_related("host").get(pk=row.pk)

    silence = overview.server_overview(row).silence
    assert silence is not None and silence.since == taken
    assert silence.message.startswith("The agent on mta.relay1 has not answered since ")
    assert overview.page_silence(row) == silence

    AgentHost.objects.filter(pk=host.pk).update(last_seen=timezone.now() - timedelta(seconds=44))
    row = MailServer.objects.select_related("host").get(pk=row.pk)
    assert overview.server_overview(row).silence is None, "three intervals (45 s) are not up yet"


def django_queries():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    return CaptureQueriesContext(connection)
