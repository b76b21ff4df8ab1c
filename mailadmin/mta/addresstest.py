"""The address tester, agent side: "where does this address go?", answered by sendmail itself.

`@answer("address test")` (params: `address`, optionally `build`, a ConfigBuild id of this server)
runs, against the installed cf or a staged copy of a finished build:

    sendmail -v -d60.1 -bv ADDRESS          the verdict per recipient, alias expansions, map answers
    sendmail -d60.1 -bt   3,0 ADDRESS       the rule sets' $# mailer $@ host $: user triple
                          /parse ADDRESS    the envelope-recipient path, ending "mailer …, host …, user …"
                          /tryflags hs, /try esmtp ADDRESS   (only when the cf reads a genericstable)

and returns the parsed result (mailadmin/cf/addressresult.py), one plain sentence and the raw outputs.

A build is tried without touching anything live: its cf is written to a private directory under
the agent's staging directory, its map sources (ConfigBuild.maps) are compiled there by
mapbuild.compile_into exactly as a build compiles them, and a copy of the cf whose K lines, class
file lines (Fw, FR, Ft) and AliasFile read the staged files instead of the live ones runs the
commands with -C. A map the build does not carry is read from the live file, as it would be once
the build is installed. The directory is removed afterwards, whatever happened.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.core.exceptions import ValidationError

from mailadmin.cf import addressresult
from mailadmin.models import ConfigBuild
from mailadmin.mta import cfbuild, mapbuild
from mailadmin.mta.answers import answer
from mailadmin.mta.files import create_new, private_directory
from mailadmin.mta.gateway import Mta
from mailadmin.work import WorkStatus

# Every exit status sendmail gives a verdict with (0 deliverable, 67 user unknown, 65 an error:
# mailer, …): the verdict is in the output, not the status.
ANY_EXIT = tuple(range(0, 80))
# The mailer a From: header is rewritten for when generics are tried (MAILER(smtp) defines it).
SENDER_MAILER = "esmtp"


class AddressTestRefused(Exception):
    """The question itself is refused (a bad address, a build that is not this server's)."""


def clean_params(server, params: dict) -> tuple[str, ConfigBuild | None]:
    """The address (by its strict type) and the build to try (a finished build of this server), or refused."""
    try:
        address = addressresult.clean_address(params.get("address"))
    except ValidationError as exc:
        raise AddressTestRefused(f"the address is refused: {' '.join(exc.messages)}") from exc
    build_id = params.get("build")
    if build_id in (None, ""):
        return address, None
    if isinstance(build_id, bool) or not isinstance(build_id, int):
        raise AddressTestRefused(f"a build is named by its number, not {build_id!r}")
    build = ConfigBuild.objects.filter(pk=build_id, server_id=server.pk).first()
    if build is None:
        raise AddressTestRefused(f"build {build_id} is not a build of {server.name}")
    if build.status != WorkStatus.DONE or not build.cf_text:
        raise AddressTestRefused(f"{build.build_id} has no finished cf to try")
    return address, build


def _reads_live(path: str, live: Path) -> bool:
    return bool(path) and os.path.normpath(path) == os.path.normpath(live)


def staged_cf_text(cf_text: str, staged: dict[str, Path], live: dict[str, Path]) -> str:
    """`cf_text` reading each map in `staged` (map name → staged file) instead of its live file.

    Only a line that reads the live file is changed (a K line of virtuser, mailertable, generics
    or domaintable; an Fw, FR or Ft class file line; an AliasFile entry): a cf that reads a map
    from elsewhere would not see the installed file either, so the test must not see it.
    """
    by_key = {key: name for name, key in mapbuild.DATABASE_MAPS.items() if name in staged}
    by_class = {cls: name for name, cls in mapbuild.CLASS_FILES.items() if name in staged}
    lines = []
    for line in cf_text.splitlines(keepends=True):
        body = line.rstrip("\n")
        if body.startswith("K"):
            words = body[1:].split()
            name = by_key.get(words[0]) if words else None
            path = mapbuild.first_path(words[2:]) if name else ""
            if name and _reads_live(path, live[name]):
                body = body.replace(f" {path}", f" {staged[name]}", 1)
        elif body.startswith("F") and len(body) > 1 and body[1] in by_class:
            name = by_class[body[1]]
            path = mapbuild.first_path(body[2:].split())
            if _reads_live(path, live[name]):
                body = body[:2] + body[2:].replace(path, str(staged[name]), 1)
        elif body.startswith("O AliasFile=") and mapbuild.ALIASES in staged:
            entries = []
            for entry in body.removeprefix("O AliasFile=").split(","):
                kind, colon, path = entry.strip().rpartition(":")
                if _reads_live(path, live[mapbuild.ALIASES]):
                    path = str(staged[mapbuild.ALIASES])
                entries.append(f"{kind}{colon}{path}")
            body = "O AliasFile=" + ",".join(entries)
        lines.append(body + line[len(line.rstrip("\n")) :])
    return "".join(lines)


@contextmanager
def staged_build(server, build: ConfigBuild, mta: Mta) -> Iterator[tuple[Path, list[str]]]:
    """The build's cf (and its maps, compiled) in a private directory: yields the cf to test with
    and the map compile log; the directory is gone afterwards."""
    directory = private_directory(cfbuild.staging_dir(server) / f"address-test-{build.pk}-{secrets.token_hex(4)}")
    try:
        as_built = directory / "build.cf"
        create_new(as_built, build.cf_text.encode())
        maps = dict(build.maps or {})
        log = mapbuild.compile_into(directory, maps, mta, as_built) if maps else []
        staged = {name: directory / name for name in maps}
        live = {name: mapbuild.source_path(server, name) for name in maps}
        tested = directory / "address-test.cf"
        create_new(tested, staged_cf_text(build.cf_text, staged, live).encode())
        yield tested, log
    finally:
        mapbuild.discard(directory)


def reads_generics(cf_text: str) -> bool:
    return any(line.startswith("Kgenerics ") for line in cf_text.splitlines())


def run_tests(address: str, mta: Mta, cf_path: Path | None, cf_text: str) -> dict:
    """Ask sendmail about `address` (on `cf_path`, or the installed cf when None)."""
    verify = mta.sendmail("-v", "-d60.1", "-bv", address, action="address test", ok_codes=ANY_EXIT, cf_path=cf_path)
    lines = [f"3,0 {address}", f"/parse {address}"]
    generics = reads_generics(cf_text)
    if generics:
        lines += ["/tryflags hs", f"/try {SENDER_MAILER} {address}"]
    test_mode = mta.sendmail(
        "-d60.1",
        "-bt",
        action="address test",
        stdin=("\n".join(lines) + "\n").encode(),
        ok_codes=ANY_EXIT,
        cf_path=cf_path,
    )
    blocks = addressresult.answers_per_line(test_mode.stdout_text)
    block = dict(zip(lines, blocks, strict=False))
    return {
        "verify": addressresult.parse_verify(verify.stdout_text),
        "rulesets": addressresult.parse_rulesets(block.get(lines[0], "")),
        "parse": addressresult.parse_parse(block.get(lines[1], "")),
        "sender": addressresult.parse_try(block.get(lines[3], "")) if generics else None,
        "outputs": [
            {
                "command": verify.command_line,
                "input": "",
                "exit": verify.returncode,
                "output": (verify.stdout_text + verify.stderr_text).strip(),
            },
            {
                "command": test_mode.command_line,
                "input": "\n".join(lines),
                "exit": test_mode.returncode,
                "output": (test_mode.stdout_text + test_mode.stderr_text).strip(),
            },
        ],
    }


@answer("address test")
def address_test(server, params: dict, mta: Mta) -> dict:
    """Where `address` goes with the installed configuration, or with build `build` staged."""
    address, build = clean_params(server, params)
    if build is None:
        cf_text = Path(mta.server.cf_path).read_text(errors="replace")
        found = run_tests(address, mta, None, cf_text)
        found.update(configuration="installed", build=None, build_label="", map_log=[])
    else:
        with staged_build(server, build, mta) as (tested_cf, map_log):
            found = run_tests(address, mta, tested_cf, build.cf_text)
        label = f"build {build.build_id.removeprefix('mailadmin-')}"
        found.update(configuration=build.build_id, build=build.pk, build_label=label, map_log=map_log)
    found["address"] = address
    found["sentence"] = addressresult.sentence(
        address, found["verify"], build_label=found["build_label"], sender=found["sender"]
    )
    return found
