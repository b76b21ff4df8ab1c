"""The agent's side of AgentRequest rows: one registered function per kind of question.

Apps register their answers in their own agent-side modules (imported by their tasks.py, which
only the workers load): `@answers.answer("map lookup")` on `fn(server, params, mta) -> dict`.
`server` is already bound to the agent's configuration; the returned dict must be JSON-able
and becomes `row.result`.
"""

from __future__ import annotations

from collections.abc import Callable

from mailadmin.cf import accessmap
from mailadmin.mta import gateway

Answer = Callable[..., dict]
ANSWERS: dict[str, Answer] = {}


class UnknownQuestion(Exception):
    pass


def answer(kind: str) -> Callable[[Answer], Answer]:
    def register(function: Answer) -> Answer:
        ANSWERS[kind] = function
        return function

    return register


def perform(row) -> None:
    """Answer one claimed AgentRequest row (work.execute calls this in the host's agent)."""
    from mailadmin import work

    function = ANSWERS.get(row.kind)
    if function is None:
        raise UnknownQuestion(f"this agent does not know how to answer {row.kind!r}")
    mta = gateway.mta_for(row)
    result = function(row.server, dict(row.params), mta)
    work.finish(row, work.WorkStatus.DONE, result=json_safe(result))


def json_safe(value):
    """An answer as every JSON column takes it: PostgreSQL refuses NUL in jsonb, so it is shown as ␀
    (spool files and peers' certificates are hostile input, NULs included)."""
    if isinstance(value, str):
        return value.replace("\0", "\u2400")
    if isinstance(value, dict):
        return {json_safe(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value


# --- mailadmin's own answers ---------------------------------------------------------------------

# The maps a page may look up in; the agent refuses any other name, whatever a row says.
LOOKUP_MAPS = frozenset({"access"})


@answer("map lookup")
def map_lookup(server, params: dict, mta) -> dict:
    """What the compiled, installed map returns for a key, in sendmail's own words (`/map NAME KEY`
    in address test mode): its reply line as well as the value (None: no match)."""
    map_name, key = str(params.get("map", "")), str(params.get("key", ""))
    if map_name not in LOOKUP_MAPS:
        raise ValueError(f"looking up in the {map_name!r} map is not something this agent does")
    result = mta.map_lookup(map_name, key)  # refuses keys with spaces or control characters
    output = result.stdout_text
    replies = [line[line.index("map_lookup:") :].strip() for line in output.splitlines() if "map_lookup:" in line]
    return {
        "map": map_name,
        "key": key,
        "value": accessmap.parse_lookup(output),
        "reply": replies[-1] if replies else "",
        "command": result.command_line,
        "input": f"/map {map_name} {key}",
    }
