"""The words no value may contain: m4's builtins and every macro name Debian's cf tree defines,
found by the agent (mailadmin/mta/macronames.py) and reported to the console."""

from __future__ import annotations

import os
import re

from mailadmin.mta import macronames
from testing.hostile_values import LOWER_MACRO_WORDS, UPPER_MACRO_WORDS

M4 = "/usr/bin/m4"
CF_TREE = "/usr/share/sendmail/cf"


def test_macro_names_come_from_m4_and_the_installed_tree():
    names = macronames.macro_names(CF_TREE)
    assert set(LOWER_MACRO_WORDS) <= names
    assert set(UPPER_MACRO_WORDS) <= names
    assert {"confTO_STARTTLS", "confFALLBACK_SMARTHOST", "_DEFIFNOT", "_MAILER_local_"} <= names
    for ordinary in ("mail", "example", "relay", "local", "hash", "etc", "skip", "nodelay", "Port", "MTA", "True"):
        assert ordinary not in names
    # GNU m4 1.4.19 defines __unix__, not the traditional unix (that needs -G): only what m4 defines counts.
    assert "__unix__" in names and "unix" not in names


def test_the_tree_scan_alone_finds_almost_every_name_m4_defines():
    """The regex over the tree is cross-checked by m4's own dumpdef; only names built from pieces
    at run time (and m4's builtins, which no file defines) are missing from the scan."""
    builtins = macronames.m4_builtin_names(M4)
    missed = macronames.dumped_names(CF_TREE, M4) - macronames.scanned_names(CF_TREE) - builtins
    assert all(re.fullmatch(r"_MAILER_\w+_|\w+_MF_[AD]_|__HOST__", name) for name in missed), missed
    assert missed <= macronames.macro_names(CF_TREE)


def test_macro_names_are_cached_per_tree_and_newest_mtime(tmp_path, monkeypatch):
    monkeypatch.setattr(macronames, "_TREE_RECHECK_SECONDS", 0)
    tree = tmp_path / "cf"
    (tree / "m4").mkdir(parents=True)
    (tree / "m4" / "cf.m4").write_text("define(`firstword', `1')\n")
    first = macronames.macro_names(str(tree), M4)
    assert "firstword" in first and "secondword" not in first
    assert macronames.macro_names(str(tree), M4) is first
    (tree / "feature").mkdir()
    added = tree / "feature" / "extra.m4"
    added.write_text("pushdef(`secondword', `2')\n")
    os.utime(added, ns=(10**19, 10**19))
    assert "secondword" in macronames.macro_names(str(tree), M4)
