"""The map and class files as they are on the host now, for the console's "Import from the host"
(agent side: the web tier never reads an MTA file).

`@answer("map sources")` (no params) returns, for each of the eight files at its fixed path under
the agent's conf directory (mapbuild.live_sources): whether it exists, its text, and what an import
would make of it (typed rows and lines kept as they are, by the same pure parser the import uses).
A file that is not UTF-8 is reported, with its text decoded with replacement characters, so the
page can say an import would change it. The import itself reads the text from this answer's row.
"""

from __future__ import annotations

from mailadmin.cf import maps as mapfiles
from mailadmin.mta import mapbuild
from mailadmin.mta.answers import answer

KIND = "map sources"


def summary(name: str, text: str | None, not_text: bool) -> dict:
    """One file of the answer: what exists and what an import of it would make."""
    if text is None:
        return {"name": name, "exists": False, "text": "", "utf8": True, "rows": 0, "kept": 0, "lines": 0}
    rows, kept = mapfiles.counts(mapfiles.parse(name, text))
    return {
        "name": name,
        "exists": True,
        "text": text,
        "utf8": not not_text,
        "rows": rows,
        "kept": kept,
        "lines": len(text.splitlines()),
    }


@answer(KIND)
def map_sources(server, params: dict, mta) -> dict:
    found, not_text = mapbuild.live_sources(server)
    return {
        "conf_dir": str(mapbuild.conf_dir(server)),
        "files": [summary(name, found.get(name), name in not_text) for name in mapbuild.MAP_NAMES],
    }
