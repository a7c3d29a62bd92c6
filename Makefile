# The two commands of the README: `make serve` and `make test`. Each installs what it needs.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
PORT ?= 8080

.PHONY: install system-deps serve test lint bench

install:
	$(PIP) install -q -e '.[dev]'

# HAProxy (end-to-end fleet tests), wrk and hey (benchmarks) come from Debian's packages.
system-deps:
	@if ! command -v haproxy >/dev/null || ! command -v wrk >/dev/null || ! command -v hey >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy wrk hey >/dev/null; \
	fi

# Serve the built-in default model (all-MiniLM-L6-v2, fetched on first use) on $(PORT).
serve: install
	SAGEMAKER_BIND_TO_PORT=$(PORT) warmgate serve

lint:
	ruff check warmgate tests scripts
	ruff format --check warmgate tests scripts
	mypy

test: install system-deps lint
	$(PYTHON) -m pytest -q -p no:cacheprovider

bench: install system-deps
	warmgate bench
	$(PYTHON) scripts/bench_server.py
