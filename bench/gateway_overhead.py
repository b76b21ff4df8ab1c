"""What the console adds on top of sendmail's own tools when it runs them.

Times, on a throw-away embedded instance (no daemon needed):
  - `sendmail -C cf -bt </dev/null` bare vs through the gateway (argv checks, temp-file
    output, audit row written to SQLite);
  - building the base cf: bare `m4 mc > cf` + `sendmail -bt` vs the console's build (render,
    m4, sendmail check, value check, atomic install).
Prints medians and ratios. Run with `make bench`.
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


def median_ms(fn, runs=RUNS) -> float:
    fn()  # warm the page cache and Python's imports
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-", dir=ROOT / "var"))
    os.environ["MAILADMIN_VAR_DIR"] = str(workdir)
    os.environ["DJANGO_SETTINGS_MODULE"] = "mailadmin.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from mailadmin.models import MailServer
    from mailadmin.mta import agent, instance
    from mailadmin.mta.gateway import Mta

    call_command("migrate", verbosity=0)
    # This process is the bench instance's agent, as a host's agent worker would be.
    embedded = instance.embedded_instance("bench", Path(settings.MAILADMIN_INSTANCES_DIR) / "bench", 2599)
    agent.serve(instance.write_agent_config(Path(settings.VAR_DIR) / "bench-agent.toml", "bench", [embedded]))
    server = MailServer.objects.create(name="bench", celery_queue="mta.bench", **embedded.server_fields())
    mta = Mta(server)
    instance.prepare(server, mta)
    cf, mc = Path(server.cf_path), Path(server.mc_path)
    scratch = workdir / "bare.cf"

    def bare_check():
        subprocess.run(
            [server.sendmail_bin, "-C", str(cf), "-bt"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=True,
            timeout=60,
        )

    def bare_build():
        with open(scratch, "wb") as out:
            subprocess.run([server.m4_bin, str(mc)], stdout=out, check=True, timeout=60)
        subprocess.run(
            [server.sendmail_bin, "-C", str(scratch), "-bt"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=True,
            timeout=60,
        )

    rows = [
        ("sendmail -bt check", median_ms(bare_check), median_ms(lambda: mta.check_cf(cf))),
        ("base cf build", median_ms(bare_build), median_ms(lambda: instance.build_base_cf(server, mta))),
    ]
    print(f"{'what':<22}{'sendmail tools':>16}{'console':>12}{'ratio':>8}   ({RUNS} runs, medians)")
    for name, bare, console in rows:
        print(f"{name:<22}{bare:>13.1f} ms{console:>9.1f} ms{console / bare:>7.2f}x")
    shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
