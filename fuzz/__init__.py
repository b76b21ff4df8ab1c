"""Atheris fuzz targets: each module's `check(data)` states one property that must hold for any bytes.

`python -m fuzz TARGET [libFuzzer arguments]` fuzzes one target and `scripts/fuzz` all of them, starting
from the seeds committed under fuzz/corpus/TARGET/; test_fuzz_targets.py replays those seeds and fuzzes
each target briefly, so `make test` keeps the harness working.
"""

TARGETS = ("queue_file", "queue_validators", "tls_upload", "mail_log")
