# canary: progressive delivery inside the proxy.
#
#   make demo    the whole canary flow on this machine (does its own setup);
#                make demo SCENARIO=failure shows the automatic rollback,
#                SCENARIO=aa two identical versions judged and promoted
#   make test    setup, lint, unit and end-to-end tests (what CI runs)
#
#   make bench   benchmarks, written to BENCHMARKS.md
#   make bench-guard  only the in-proxy guard's rows of BENCHMARKS.md
#   make bench-judge RUNS=n  only the judge beside fixed thresholds, real runs
#   make judge-sim  the judge's simulated rollouts: false rollbacks and
#                detection times (JUDGE_RUNS=2000 per row)
#   make fuzz    every parser of outside input fed FUZZ_INPUTS mutated inputs
#                (1M each), written to RELIABILITY.md
#
# Other targets: setup, wasm, build, lint, fmt, schema, crd, oci,
# controller-image, validate-envoy, manifests-check.

SHELL := /bin/bash
CARGO ?= cargo
WASM_TARGET := wasm32-wasip1
WASM_PROFILE := wasm-release
WASM := target/$(WASM_TARGET)/$(WASM_PROFILE)/canary_filter.wasm
# Release budget for the filter module, in bytes (200 KB).
WASM_MAX_BYTES := 200000
ENVOY ?= $(CURDIR)/.tools/bin/envoy
MANIFESTS_PYTHON := $(CURDIR)/.tools/manifests-venv/bin/python

.PHONY: all setup wasm wasm-size build demo bench bench-guard bench-judge judge-sim fuzz lint fmt test unit e2e schema crd oci controller-image validate-envoy manifests-check clean

all: wasm

## setup: wasm target and the pinned Envoy into .tools/ (idempotent)
setup:
	@./scripts/setup.sh

## wasm: the filter, optimised for size
wasm:
	$(CARGO) build -p canary-filter --target $(WASM_TARGET) --profile $(WASM_PROFILE)
	@$(MAKE) --no-print-directory wasm-size

wasm-size:
	@size=$$(stat -c %s $(WASM)); \
	  echo "filter: $(WASM) is $$size bytes (budget $(WASM_MAX_BYTES))"; \
	  if [ $$size -gt $(WASM_MAX_BYTES) ]; then echo "filter module over budget" >&2; exit 1; fi

## build: the canary binary (controller, CLI, demo)
build:
	$(CARGO) build -p canary

## demo: the whole canary flow on this machine (SCENARIO=failure for the rollback, SCENARIO=aa for identical versions)
SCENARIO ?= success
SPEED ?= 1
demo: setup wasm build
	ENVOY=$(ENVOY) target/debug/canary demo --scenario $(SCENARIO) --speed $(SPEED)

## bench: data-plane cost, time to stop a bad canary, push latency, controller footprint -> BENCHMARKS.md
bench: setup wasm
	$(CARGO) build --release -p canary -p canary-bench
	ENVOY=$(ENVOY) CANARY_BIN=$(CURDIR)/target/release/canary target/release/canary-bench

## bench-guard: the in-proxy guard alone (cut-off in a real Envoy, cost guard on vs off, simulated false trips) -> its rows of BENCHMARKS.md
bench-guard: setup wasm
	$(CARGO) build --release -p canary-bench
	ENVOY=$(ENVOY) target/release/canary-bench --guard-only
## bench-judge: only the judge beside fixed thresholds, with real Envoy (RUNS A/A runs per analysis, RUNS/4 of each regression) -> BENCHMARKS.md
RUNS ?= 20
bench-judge: setup wasm
	$(CARGO) build --release -p canary -p canary-bench
	ENVOY=$(ENVOY) CANARY_BIN=$(CURDIR)/target/release/canary target/release/canary-bench --decisions-only --aa-runs $(RUNS) --regression-runs $$(( ($(RUNS) + 3) / 4 ))

## judge-sim: the judge's simulation sweep (false rollbacks, detection times), Markdown tables on stdout
JUDGE_RUNS ?= 2000
judge-sim:
	$(CARGO) run --release -q -p canary-judge --features simulation --bin judge-sim -- --runs $(JUDGE_RUNS)

## fuzz: mutated inputs for every parser of outside input; no panics, bounded memory, parse time against size -> RELIABILITY.md
FUZZ_INPUTS ?= 1000000
fuzz:
	$(CARGO) run --profile fuzz -q -p canary-fuzz -- --inputs $(FUZZ_INPUTS) --report RELIABILITY.md

## lint: formatting and clippy (native and wasm), warnings are errors
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --exclude canary-filter --all-targets -- -D warnings
	$(CARGO) clippy -p canary-filter --target $(WASM_TARGET) -- -D warnings

fmt:
	$(CARGO) fmt --all

## schema: regenerate the filter configuration's JSON Schema
schema:
	UPDATE_SCHEMA=1 $(CARGO) test -p canary-config --test json_schema

## crd: regenerate manifests/kubernetes/crd/crd.yaml from the Rust types
crd:
	UPDATE_CRD=1 $(CARGO) test -p canary-operator --test crd

OCI_DIR := target/oci/canary-filter
OCI_TAG ?= 0.1.0
## oci: the filter as an OCI image layout (Istio's Wasm image, compat variant); prints its digest
oci: wasm
	$(CARGO) run -q -p canary -- oci --module $(WASM) --out $(OCI_DIR) --tag $(OCI_TAG)

# The controller as a static executable: the musl target when the toolchain
# has it, else glibc linked statically (crt-static). Its own target folder,
# so the static flags never invalidate the ordinary build.
CONTROLLER_TARGET ?= $(shell rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl && echo x86_64-unknown-linux-musl || echo x86_64-unknown-linux-gnu)
CONTROLLER_TARGET_DIR := target/static
CONTROLLER_OCI_DIR := target/oci/canary
## controller-image: the controller's container image (one static executable, no base image) as an OCI layout; prints its digest
controller-image:
	CARGO_TARGET_DIR=$(CONTROLLER_TARGET_DIR) RUSTFLAGS="-C target-feature=+crt-static" \
	  $(CARGO) build --release -p canary --target $(CONTROLLER_TARGET)
	$(CARGO) run -q -p canary-oci --bin controller-image -- \
	  --binary $(CONTROLLER_TARGET_DIR)/$(CONTROLLER_TARGET)/release/canary --out $(CONTROLLER_OCI_DIR) --tag $(OCI_TAG)

## validate-envoy: `envoy --mode validate` on the shipped bootstraps and the Istio stats fragment
validate-envoy: setup wasm
	@for f in manifests/envoy/standalone.yaml manifests/envoy/ecds.yaml; do \
	  $(ENVOY) --mode validate -c $$f --log-level warn --base-id $$RANDOM || exit 1; \
	done
	@# The stats fragment Istio's proxies merge into their bootstrap (--config-yaml).
	@$(ENVOY) --mode validate -c manifests/envoy/ecds.yaml --config-yaml "$$(cat manifests/istio/stats/custom_bootstrap.json)" \
	  --log-level warn --base-id $$RANDOM

## manifests-check: every kustomization built and its objects validated (Kubernetes 1.33, Istio, Gateway API, Argo CRDs, CEL rules), the admission policy's tests
manifests-check:
	@test -x $(MANIFESTS_PYTHON) || { echo "manifests-check: the checkers are not installed in .tools/manifests-venv; run make setup" >&2; exit 1; }
	cd tests/manifests && $(MANIFESTS_PYTHON) -m unittest test_admission_policy
	$(MANIFESTS_PYTHON) tests/manifests/check.py

unit:
	$(CARGO) test --workspace --exclude canary-filter --exclude canary-e2e

e2e: wasm
	ENVOY=$(ENVOY) $(CARGO) test -p canary-e2e -- --test-threads=2

## test: everything CI runs
test: setup lint wasm validate-envoy manifests-check
	ENVOY=$(ENVOY) $(CARGO) test --workspace --exclude canary-filter

clean:
	$(CARGO) clean
