"""The fuzz targets over their committed seeds, then each under Atheris for a few seconds.

libFuzzer ends its process when it stops, on success or not, so the Atheris runs are subprocesses.
The long runs are `make fuzz` (scripts/fuzz).
"""

import importlib
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fuzz import TARGETS

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
SECONDS_PER_INPUT = 1
SHORT_RUN_SECONDS = 5


def seeds(target: str) -> list[Path]:
    return sorted((CORPUS / target).iterdir())


def test_every_target_has_seeds_and_they_stay_small():
    assert sorted(path.name for path in CORPUS.iterdir()) == sorted(TARGETS)
    every_seed = [path for target in TARGETS for path in seeds(target)]
    assert all(seeds(target) for target in TARGETS)
    assert len(every_seed) <= 50
    assert sum(path.stat().st_size for path in every_seed) <= 200_000


@pytest.mark.parametrize("target", TARGETS)
def test_the_seeds_pass_the_check(target):
    check = importlib.import_module(f"fuzz.{target}").check
    for path in seeds(target):
        started = time.monotonic()
        check(path.read_bytes())
        assert time.monotonic() - started < SECONDS_PER_INPUT, path.name


@pytest.mark.parametrize("target", TARGETS)
def test_a_short_atheris_run_finds_nothing(target, tmp_path, fault_random):
    """libFuzzer's seed comes from the session seed: a run that finds something can be replayed
    with MAILADMIN_FAULT_SEED (the same inputs, as far as the machine gets in the time)."""
    found = tmp_path / "corpus"
    found.mkdir()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "fuzz",
            target,
            str(found),
            str(CORPUS / target),
            f"-max_total_time={SHORT_RUN_SECONDS}",
            f"-seed={fault_random.randrange(1, 2**31)}",
            f"-timeout={SECONDS_PER_INPUT}",
            "-print_final_stats=1",
            f"-artifact_prefix={tmp_path}/",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    executed = re.search(r"^stat::number_of_executed_units: (\d+)$", run.stderr, re.M)
    assert executed and int(executed.group(1)) > len(seeds(target)), run.stderr[-4000:]
