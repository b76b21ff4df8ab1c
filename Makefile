# Thin wrappers: the work is in scripts/, so CI and a newcomer run exactly the same thing.
.PHONY: run test bench lint fuzz

run:
	scripts/run

test:
	scripts/test $(ARGS)

bench:
	scripts/bench

fuzz:
	scripts/fuzz

lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
