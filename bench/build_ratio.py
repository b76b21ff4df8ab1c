"""A full console build against sendmail's own tools on the same .mc (issue target: ≤ 1.5×).

Console: parse the .mc into catalog values, render it back with typed validation, m4 and
`sendmail -C staged.cf -bt` through the gateway, then the oracle (every value verbatim in the cf).
Bare: `m4 mc > cf` and `sendmail -C cf -bt </dev/null` of the very same .mc text.
The .mc is Debian's stock sendmail.mc with a few options a postmaster typically sets.
Prints medians and the ratio. Run with `make bench`.
"""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = int(os.environ.get("BENCH_RUNS", "30"))
M4 = shutil.which("m4") or "/usr/bin/m4"
SENDMAIL = "/usr/sbin/sendmail"
STOCK_MC = Path("/etc/mail/sendmail.mc")
EXTRA_OPTIONS = {
    "LogLevel": "9",
    "MaxDaemonChildren": "40",
    "ConnectionRateWindowSize": "2m",
    "QueueSortOrder": "modification",
    "Timeout.queuewarn": "8h",
    "SmartHost": "[192.0.2.25]",
}


def interleaved_medians_ms(first, second, runs=RUNS) -> tuple[float, float]:
    """Alternate the two so both see the same machine load; medians in milliseconds."""
    first(), second()  # warm the page cache, Python's imports and the macro-name cache
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(runs):
        for fn, times in ((first, samples[0]), (second, samples[1])):
            started = time.perf_counter()
            fn()
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples[0]), statistics.median(samples[1])


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from mailadmin.cf import catalog, m4safe, mcfile
    from mailadmin.mta.gateway import run, run_m4
    from mailadmin.mta.macronames import macro_names

    # What the web tier validates against: the agent's reported macro names, and the roots a
    # Debian host's agent would declare for the stock .mc's paths.
    reserved = macro_names()
    roots = ("/etc/mail", "/var/lib/sendmail", "/run/sendmail", "/var/spool", "/usr/share/sendmail")

    if not STOCK_MC.exists():
        print(f"skipped: {STOCK_MC} is not there (install sendmail-cf)")
        return
    (ROOT / "var").mkdir(exist_ok=True)
    # Not under /tmp: sendmail distrusts files below a world-writable directory.
    workdir = Path(tempfile.mkdtemp(prefix="bench-build-", dir=ROOT / "var"))
    source = STOCK_MC.read_text()
    imported = mcfile.parse_mc(source, reserved=reserved, roots=roots)
    options = {**imported.options(), **EXTRA_OPTIONS}
    mc_text = mcfile.render_mc(imported, options, imported.features(), "bench-1", reserved=reserved, roots=roots)
    bare_mc, bare_cf = workdir / "bare.mc", workdir / "bare.cf"
    bare_mc.write_text(mc_text)

    def bare_build() -> None:
        with open(bare_cf, "wb") as out:
            subprocess.run([M4, str(bare_mc)], stdout=out, check=True, timeout=60, cwd=workdir)
        subprocess.run(
            [SENDMAIL, "-C", str(bare_cf), "-bt"], stdin=subprocess.DEVNULL, capture_output=True, check=True, timeout=60
        )

    def console_build() -> None:
        document = mcfile.parse_mc(source, reserved=reserved, roots=roots)
        values = {**document.options(), **EXTRA_OPTIONS}
        text = mcfile.render_mc(document, values, document.features(), "bench-1", reserved=reserved, roots=roots)
        staged_mc, staged_cf = workdir / "console.mc", workdir / "console.cf"
        staged_mc.write_text(text)
        run_m4(M4, staged_mc, staged_cf, timeout=60)
        run([SENDMAIL, "-C", str(staged_cf), "-bt"], timeout=60, stdin=b"")
        missing = m4safe.missing_lines(staged_cf.read_text(), catalog.expected_lines(values))
        if missing:
            raise SystemExit(f"the oracle failed: {missing}")

    bare, console = interleaved_medians_ms(bare_build, console_build)
    print(f"{'what':<28}{'sendmail tools':>16}{'console':>12}{'ratio':>8}   ({RUNS} runs, medians)")
    print(f"{'build (m4 + sendmail -bt)':<28}{bare:>13.1f} ms{console:>9.1f} ms{console / bare:>7.2f}x   target ≤ 1.5x")
    shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
