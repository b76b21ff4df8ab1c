import re
import smtplib
import socket
from pathlib import Path

import pytest

from mailadmin.mta import daemon, instance
from mailadmin.mta.gateway import Mta


def queue_files(server) -> dict[str, Path]:
    return {p.name: p for p in Path(server.queue_dir).iterdir()}


def submit(server, sender: str, recipients: list[str], subject: str) -> str:
    before = set(queue_files(server))
    with smtplib.SMTP(server.smtp_address, server.smtp_port, timeout=10) as smtp:
        smtp.ehlo("client.example")
        smtp.sendmail(sender, recipients, f"Subject: {subject}\r\n\r\nbody\r\n")
    new = [name for name in set(queue_files(server)) - before if name.startswith("qf")]
    assert len(new) == 1, new
    return new[0][2:]


def test_the_instance_answers_with_its_own_name_and_build_stamp(mta_server):
    status = daemon.status(mta_server)
    assert status.answering and status.process_alive
    assert status.banner.startswith(f"220 {mta_server.hostname} ESMTP Sendmail ")
    assert f"/mailadmin-{mta_server.name};" in status.banner


def test_a_message_is_queued_and_a_queue_run_defers_it(mta_server):
    queue_id = submit(mta_server, "alice@client.example", ["bob@remote.example"], "stays queued")
    files = queue_files(mta_server)
    assert f"df{queue_id}" in files
    assert re.search(rb"^R[A-Z]*:<bob@remote.example>$", files[f"qf{queue_id}"].read_bytes(), re.M)

    result = Mta(mta_server).sendmail(f"-qI{queue_id}", "-v", action="queue run")

    assert "Deferred: Connection refused by [127.0.0.2]" in result.stdout_text
    files = queue_files(mta_server)
    qf = files[f"qf{queue_id}"].read_bytes()
    assert b"MDeferred: Connection refused by [127.0.0.2]" in qf
    assert b"\nN1\n" in qf
    assert f"df{queue_id}" in files
    # Not bounced: no dead letter, and no new message from MAILER-DAEMON in the queue.
    assert not (Path(mta_server.queue_dir).parent / "dead.letter").exists()
    assert [n for n in files if n.startswith("qf")].count(f"qf{queue_id}") == 1
    assert all(b"MAILER-DAEMON" not in p.read_bytes() for n, p in files.items() if n.startswith("qf"))


def test_no_submission_agent_listens_and_nothing_is_delivered_directly(mta_server):
    cf = Path(mta_server.cf_path).read_text()
    assert "Name=MSA" not in cf
    assert "O DeliveryMode=queueonly" in cf
    assert f"O DaemonPortOptions=Port={mta_server.smtp_port},Addr=127.0.0.1" in cf
    assert "DS[127.0.0.2]" in cf


def test_the_base_mc_puts_the_build_stamp_after_ostype():
    mc = instance.render_embedded_mc(
        instance.Layout(Path("/srv/x")),
        name="x",
        hostname="mx.example.org",
        address="127.0.0.1",
        port=2600,
        cf_tree="/usr/share/sendmail/cf",
        queue_dir="/srv/x/spool/mqueue",
        pid_file="/srv/x/run/sendmail.pid",
        access_path="/srv/x/etc/mail/access",
    )
    assert mc.index("OSTYPE(`debian')") < mc.index("confCF_VERSION")
    assert "FEATURE(`no_default_msa')" in mc
    assert "DAEMON_OPTIONS(`Port=2600,Addr=127.0.0.1,Name=MTA-x')dnl" in mc


def test_a_value_mangled_by_m4_is_named():
    cf = "O QueueDirectory=/srv/.example\nO PidFile=/srv/run/pid\n"
    missing = instance.check_cf_values(cf, {"QueueDirectory": "/srv/lower.example", "PidFile": "/srv/run/pid"})
    assert missing == ["O QueueDirectory=/srv/lower.example"]


def test_hostname_comes_from_the_hosts_file(tmp_path):
    short = socket.gethostname()
    hosts = tmp_path / "hosts"
    hosts.write_text(f"127.0.0.1 localhost\n127.0.1.1 {short}.example.net {short}\n")
    assert instance.qualified_hostname(str(hosts)) == f"{short}.example.net"
    hosts.write_text(f"127.0.0.1 {short}\n127.0.1.1 {short}.example.net {short}\n")
    with pytest.raises(instance.InstanceError, match="no qualified name"):
        instance.qualified_hostname(str(hosts))
