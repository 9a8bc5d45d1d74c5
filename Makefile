# keel: the commands a person types. Recipes stay thin; the logic lives in scripts/.
#
#   make run           local stack up, build, start every configured service (twice is harmless)
#   make stop          stop the services, then the local stack
#   make test          every test, against the local stack (started if needed)
#   make lint          rustfmt check + clippy with -D warnings
#   make bench         outbox relay throughput and commit-to-consumer latency -> BENCHMARKS.md
#   make fuzz-api      schemathesis against the gateway's OpenAPI (no 5xx, no off-schema answers)
#   make python-stubs  generate Python gRPC stubs from proto/ and check they work
#   make clean-dev     stop everything and delete all local state (.dev/)
#   make images        container image per service from local debootstrap bases (needs Docker)
#   make k8s-check     render, validate and config-check the Kubernetes manifests (offline)
#   make compose-smoke the images as a mesh (deploy/compose) through the `make run` REST scenario
#   make chaos         the mesh on a private stack under load while NATS, Postgres and services die
#   make up | down | status   just the local stack (Postgres + NATS JetStream under .dev/)

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
STACK := bash scripts/stack.sh
SERVICES := bash scripts/services.sh
# The stack's connection settings (KEEL_TEST_PG_URL, KEEL_TEST_NATS_URL, ...) for the command after it.
WITH_STACK_ENV = eval "$$($(STACK) env)" &&
# Extra arguments, e.g. `make test NEXTEST_ARGS='-E test(outbox)'`.
NEXTEST_ARGS ?=

.PHONY: help run stop test lint bench fuzz-api python-stubs clean-dev up down status
.PHONY: chaos images k8s-check compose-smoke

help:
	@sed -n 's/^#   make/  make/p' Makefile

run: up
	@echo "==> building service binaries (cargo build --workspace --bins)"
	$(CARGO) build --workspace --bins
	@$(SERVICES) start

stop:
	@$(SERVICES) stop
	@$(STACK) down

test: up
	@$(STACK) prune-test-dbs
	@$(CARGO) nextest --version >/dev/null 2>&1 || { echo "==> installing cargo-nextest"; $(CARGO) install cargo-nextest --locked; }
	$(WITH_STACK_ENV) $(CARGO) nextest run --workspace --no-fail-fast $(NEXTEST_ARGS)

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

bench: up
	$(WITH_STACK_ENV) $(CARGO) run --release -p keel-bench -- --write BENCHMARKS.md

# The mesh on its own Postgres + NATS under .dev-chaos/ (never the local stack), release binaries,
# keel-load through the gateway while NATS, Postgres and each service are killed.
chaos:
	bash scripts/chaos.sh

# schemathesis (pinned, in .dev/venv) against the gateway's /openapi.json: no 5xx, nothing off-schema.
# The script starts the stack, identity, tenancy and a gateway of its own.
fuzz-api:
	bash scripts/fuzz-api.sh

python-stubs:
	bash scripts/check-python-stubs.sh

clean-dev:
	@$(SERVICES) stop
	@$(STACK) clean

up:
	@$(STACK) up

down:
	@$(STACK) down

status:
	@$(STACK) status || true
	@$(SERVICES) status

# Docker images keel-<service>:dev; without a Docker daemon it says so and skips.
images:
	bash scripts/images.sh all

k8s-check:
	bash scripts/k8s-check.sh

# Builds the images if missing; distinct host ports, never touches the local stack.
compose-smoke:
	bash scripts/compose-smoke.sh
