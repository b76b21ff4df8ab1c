"""The agent introduces itself: what it serves, reported to the console when it starts.

The report carries each instance's paths, binaries and roots exactly as the host's own
configuration declares them, and the macro names of its cf tree (the web tier validates values
against them without running m4 itself). The console keeps it on the AgentHost row and, once the
host is approved, on its MailServer rows (mailadmin.hosts).
"""

from __future__ import annotations

import logging

from mailadmin import hosts
from mailadmin.mta import agent

log = logging.getLogger(__name__)


def build(config: agent.AgentConfig) -> dict:
    from mailadmin.mta.macronames import macro_names

    instances = {}
    for name, inst in config.instances.items():
        fields = inst.server_fields()
        fields["reserved_words"] = sorted(macro_names(inst.cf_tree, inst.m4_bin))
        instances[name] = fields
    return {"host": config.host, "celery_queue": config.celery_queue, "instances": instances}


def send(config: agent.AgentConfig, *, approve_as: str = ""):
    """Report to the console; a refusal (unknown host, no valid token) is logged and raised."""
    try:
        return hosts.receive_report(build(config), join_token=config.join_token, approve_as=approve_as)
    except hosts.JoinRefused as exc:
        log.error("the console refused this agent's report: %s", exc)
        raise


def send_all(*, approve_as: str = "") -> list:
    return [send(config, approve_as=approve_as) for config in agent.configs()]
