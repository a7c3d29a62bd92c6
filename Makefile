# The two commands of the README: `make serve` and `make test`. Each installs what it needs.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
PORT ?= 8080
# torch's CPU build (the same pin as dev), so serving never pulls the multi-GB CUDA wheels
TORCH_PIN ?= torch==2.13.0

.PHONY: install install-serve system-deps container-deps serve test lint bench container-test

install:
	$(PIP) install -q -e '.[dev]'

# Only what serving the default model needs: the core dependencies + torch (its weights are
# safetensors). The image installs the core + onnx the same way (docker/Dockerfile).
install-serve:
	$(PIP) install -q -e '.[serve]' '$(TORCH_PIN)'

# HAProxy (end-to-end fleet tests), PostgreSQL (the shared pool store's tests), wrk and hey
# (benchmarks) come from Debian's packages.
system-deps:
	@if ! command -v haproxy >/dev/null || ! command -v wrk >/dev/null || ! command -v hey >/dev/null \
		|| ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy wrk hey postgresql >/dev/null; \
	fi

# Serve the built-in default model (all-MiniLM-L6-v2, fetched on first use) on $(PORT).
serve: install-serve
	SAGEMAKER_BIND_TO_PORT=$(PORT) $(PYTHON) -m warmgate serve

lint:
	ruff check warmgate tests scripts
	ruff format --check warmgate tests scripts
	mypy

test: install system-deps lint
	$(PYTHON) -m pytest -q -p no:cacheprovider

bench: install system-deps
	warmgate bench
	$(PYTHON) scripts/bench_server.py

# podman + runc build and run images without a Docker engine; debootstrap makes the base image
# where no registry is reachable.
container-deps:
	@if ! command -v podman >/dev/null || ! command -v runc >/dev/null || ! command -v debootstrap >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap >/dev/null; \
	fi

# Build the CPU image and run it as SageMaker does (scripts/container_smoke.sh). Not part of `make test`.
container-test: install container-deps
	PYTHON=$(PYTHON) scripts/container_smoke.sh
