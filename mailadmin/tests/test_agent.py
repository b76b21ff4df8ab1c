"""The agent's configuration decides what an MTA host is: paths under its roots, pinned binaries,
and a gateway that refuses everything else (and says so in the audit log)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from mailadmin.models import AuditEvent, MailServer
from mailadmin.mta import agent, instance
from mailadmin.mta.gateway import BinaryRefused, Mta


def instance_toml(root: Path, **overrides) -> str:
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "spool").mkdir(exist_ok=True)
    values = {
        "hostname": "relay1.example.org",
        "roots": [str(root)],
        "conf_dir": f"{root}/etc",
        "mc": f"{root}/etc/sendmail.mc",
        "cf": f"{root}/etc/sendmail.cf",
        "access": f"{root}/etc/access",
        "cert_dir": f"{root}/etc/certs",
        "queue_dir": f"{root}/spool/mqueue",
        "pid_file": f"{root}/run/sendmail.pid",
        "log_file": f"{root}/syslog",
        "smtp_port": 2525,
        **overrides,
    }
    lines = ['host = "relay1"', "", "[instances.main]"]
    for key, value in values.items():
        if isinstance(value, list):
            lines.append(f"{key} = [{', '.join(repr(v).replace(chr(39), chr(34)) for v in value)}]")
        elif isinstance(value, int):
            lines.append(f"{key} = {value}")
        else:
            lines.append(f'{key} = "{value}"')
    return "\n".join(lines) + "\n"


def test_a_valid_configuration_parses_with_real_paths(tmp_path):
    config = agent.parse(instance_toml(tmp_path))
    main = config.instances["main"]
    assert config.celery_queue == "mta.relay1"
    assert main.roots == (os.path.realpath(tmp_path),)
    assert main.sendmail_bin == "/usr/sbin/sendmail" and main.smtp_port == 2525


@pytest.mark.parametrize(
    ("override", "complaint"),
    [
        ({"pid_file": "/etc/shadow"}, "outside the instance.s roots"),
        ({"cf": "ROOT/etc/../../../etc/passwd"}, "components are not allowed"),
        ({"queue_dir": "ROOT/spool/$(touch x)"}, "not allowed in a path"),
        ({"sendmail": "/usr/bin/nonexistent-sendmail"}, "No such file"),
        ({"roots": ["/"]}, "other than /"),
        ({"hostname": "relay1"}, "fully qualified"),
        ({"colour": "blue"}, "unknown setting"),
    ],
)
def test_a_bad_configuration_is_refused_with_every_reason(tmp_path, override, complaint):
    override = {k: v.replace("ROOT", str(tmp_path)) if isinstance(v, str) else v for k, v in override.items()}
    with pytest.raises(agent.AgentConfigError, match=complaint.replace("$", r"\$").replace("(", r"\(")):
        agent.parse(instance_toml(tmp_path, **override))


def test_a_symlink_inside_a_root_that_leaves_it_is_refused(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "escape").symlink_to("/etc")
    with pytest.raises(agent.AgentConfigError, match="outside the instance.s roots"):
        agent.parse(instance_toml(tmp_path, cf=f"{tmp_path}/etc/escape/passwd"))


def test_a_binary_others_may_write_is_refused(tmp_path):
    copy = tmp_path / "sendmail"
    shutil.copy("/usr/sbin/sendmail", copy)
    os.chmod(copy, 0o777)
    with pytest.raises(agent.AgentConfigError, match="writable by nobody else"):
        agent.parse(instance_toml(tmp_path, sendmail=str(copy)))


def test_a_root_holding_the_consoles_secrets_is_refused(settings, tmp_path):
    with pytest.raises(agent.AgentConfigError, match="console's own secret"):
        agent.parse(instance_toml(tmp_path, roots=[str(tmp_path), str(settings.CONSOLE_DIR.parent)]))


@pytest.fixture
def served_relay(tmp_path):
    config = instance.write_agent_config(
        tmp_path / "agent.toml", "relay1", [agent.parse(instance_toml(tmp_path / "i")).instances["main"]]
    )
    agent.serve(config)
    yield config
    agent._served.pop("main", None)
    agent._configs.remove(config)


def test_the_gateway_uses_the_agents_paths_whatever_the_row_says(db, served_relay):
    server = MailServer.objects.create(
        name="main",
        hostname="x.example",
        sendmail_bin="/usr/bin/bash",
        cf_path="/var/spool/mqueue/dfX",
        celery_queue="mta.relay1",
    )
    mta = Mta(server)
    assert mta.server.sendmail_bin == "/usr/sbin/sendmail"
    assert mta.server.cf_path == served_relay.instances["main"].cf_path
    assert mta.sendmail_argv("-bp")[:3] == ["/usr/sbin/sendmail", "-C", served_relay.instances["main"].cf_path]


def test_the_gateway_refuses_a_binary_the_agent_does_not_pin_and_audits_it(db, served_relay, tmp_path):
    server = MailServer.objects.create(name="main", hostname="x.example", celery_queue="mta.relay1")
    canary = tmp_path / "canary"
    with pytest.raises(BinaryRefused):
        Mta(server)._audited("sendmail", lambda: None, ["/usr/bin/bash", "-c", f"touch {canary}"])
    assert not canary.exists()
    event = AuditEvent.objects.get(action="sendmail")
    assert event.outcome == AuditEvent.Outcome.DENIED and event.argv[0] == "/usr/bin/bash"


def test_a_process_that_is_not_the_hosts_agent_runs_nothing_for_it(db):
    server = MailServer.objects.create(name="elsewhere", hostname="x.example", celery_queue="mta.other")
    with pytest.raises(agent.NotServedHere):
        Mta(server)
