"""sendmail queue files for the parser tests: the lab samples, and random mutations of them to fuzz the parser with."""

from __future__ import annotations

import random
from pathlib import Path

from mailqueue.parser import QueueFile, parse_queue_file

SAMPLES = Path("/work/shared/lab/samples")
SAMPLE_FILES = sorted(p for p in SAMPLES.glob("*.txt") if p.name[:2] in ("qf", "hf"))


def mutate(data: bytes, rnd: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rnd.randint(1, 8)):
        choice = rnd.random()
        pos = rnd.randrange(len(buf) + 1)
        if choice < 0.3 and buf:
            buf[min(pos, len(buf) - 1)] = rnd.randrange(256)
        elif choice < 0.5:
            buf[pos:pos] = bytes(rnd.choice([b"\n", b"\t", b"\x81", b":", b"?", b".\n", b"\r", b"\x00", b"{"]))
        elif choice < 0.7 and buf:
            del buf[pos : pos + rnd.randint(1, 40)]
        elif choice < 0.85:
            line = rnd.choice(data.split(b"\n"))
            buf[pos:pos] = line + b"\n"
        else:
            buf = buf[:pos]
    return bytes(buf)


def fuzz(corpus: list[bytes], rounds: int, seed: int) -> int:
    rnd = random.Random(seed)
    truncated = 0
    for _ in range(rounds):
        data = mutate(rnd.choice(corpus), rnd)
        qf = parse_queue_file(data, kind=rnd.choice(["qf", "hf", "Qf"]))
        assert isinstance(qf, QueueFile)
        assert qf.truncated == (b"\n.\n" not in b"\n" + data)
        truncated += qf.truncated
    return truncated
