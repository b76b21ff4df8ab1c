"""The words m4 would rewrite in a value: GNU m4's builtins plus every macro name of a cf tree.

Computing them runs m4 (through the gateway), so only an MTA host's agent does it: it reports
the sorted list when it starts (mailadmin.mta.report), the console keeps it on the MailServer
row (`reserved_words`), and the pure value types (mailadmin.cf.m4safe) take it as data.
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

from mailadmin.mta.gateway import run

DEFAULT_CF_TREE = "/usr/share/sendmail/cf"
DEFAULT_M4 = "m4"

_DEFINING_CALL = re.compile(
    r"\b(?:define|pushdef|popdef|undefine|defn|ifdef|indir|_DEFIFNOT)\(\s*`?([A-Za-z_][A-Za-z0-9_]*)"
)
_OPTION_VARIABLE = re.compile(r"\b_OPTION\(\s*[^,()]*,\s*`?([A-Za-z_][A-Za-z0-9_]*)")
# m4 variables such as confLOG_LEVEL are tested with ifdef(`$2') inside _OPTION, so no
# define() names them; an .mc that sets one makes the word a macro all the same.
_CONF_VARIABLE = re.compile(r"\bconf[A-Z0-9_]+\b")
_DUMPDEF_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*):\t", re.MULTILINE)
# How long a computed newest-mtime of the tree is trusted before the tree is stat()ed again.
_TREE_RECHECK_SECONDS = 1.0

_names_lock = threading.Lock()
_names_cache: dict[tuple[str, str], tuple[int, frozenset[str]]] = {}
_mtime_cache: dict[str, tuple[float, int]] = {}


def _tree_files(cf_tree: Path) -> list[Path]:
    return sorted(p for p in cf_tree.rglob("*") if p.suffix in (".m4", ".mc", ".sh") and p.is_file())


def _newest_mtime(cf_tree: str) -> int:
    now = time.monotonic()
    checked = _mtime_cache.get(cf_tree)
    if checked and now - checked[0] < _TREE_RECHECK_SECONDS:
        return checked[1]
    newest = os.stat(cf_tree).st_mtime_ns
    for path in _tree_files(Path(cf_tree)):
        newest = max(newest, path.stat().st_mtime_ns)
    _mtime_cache[cf_tree] = (now, newest)
    return newest


def m4_builtin_names(m4_bin: str = DEFAULT_M4) -> frozenset[str]:
    """What this m4 defines before reading anything (`dumpdef` of an empty input)."""
    result = run([m4_bin], stdin=b"dumpdef\n", timeout=30)
    return frozenset(_DUMPDEF_LINE.findall(result.stderr_text))


def scanned_names(cf_tree: str) -> frozenset[str]:
    """Every name the tree's m4 files define, push, test or hand to _OPTION as a variable."""
    names: set[str] = set()
    for path in _tree_files(Path(cf_tree)):
        text = path.read_text(errors="replace")
        names.update(_DEFINING_CALL.findall(text))
        names.update(_OPTION_VARIABLE.findall(text))
        names.update(_CONF_VARIABLE.findall(text))
    return frozenset(names)


def dumped_names(cf_tree: str, m4_bin: str = DEFAULT_M4) -> frozenset[str]:
    """What is defined once cf.m4, OSTYPE and the usual mailers have been read, proto.m4 included.

    proto.m4 is read from cf.m4's m4wrap at end of input, and GNU m4 runs wrapped text last in,
    first out: the dumpdef is wrapped twice so it runs after proto.m4. Catches names a regex
    over the tree misses, such as those built from pieces (`_MAILER_local_`).
    """
    tree = Path(cf_tree)
    ostype = "OSTYPE(`debian')\n" if (tree / "ostype" / "debian.m4").exists() else ""
    script = (
        "divert(-1)\n"
        f"include(`{tree / 'm4' / 'cf.m4'}')\n"
        f"{ostype}"
        "MAILER(`local')\nMAILER(`smtp')\n"
        "m4wrap(`m4wrap(`divert(-1)dumpdef\n')')\n"
    )
    result = run([m4_bin, "-D_NO_MAKEINFO_"], stdin=script.encode(), timeout=30, ok_codes=(0, 1))
    return frozenset(_DUMPDEF_LINE.findall(result.stderr_text))


def macro_names(cf_tree: str | None = None, m4_bin: str = DEFAULT_M4) -> frozenset[str]:
    """Words m4 would rewrite in a value built with this tree; cached per (tree, newest mtime)."""
    tree = os.path.realpath(cf_tree or DEFAULT_CF_TREE)
    stamp = _newest_mtime(tree)
    key = (tree, m4_bin)
    with _names_lock:
        cached = _names_cache.get(key)
        if cached and cached[0] == stamp:
            return cached[1]
        names = m4_builtin_names(m4_bin) | scanned_names(tree) | dumped_names(tree, m4_bin)
        _names_cache[key] = (stamp, names)
        return names
