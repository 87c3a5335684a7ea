#!/usr/bin/env bash
# Idempotent set-up for a new machine: the project virtualenv (.venv/), the Python
# packages, and the Java artifacts of the local OpenSearch node. Downloads are cached
# under .cache/ (git-ignored), so a second run downloads nothing. Meant to be sourced
# by the other scripts; prints a timing summary of its steps.
set -euo pipefail

MILCO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export MILCO_OS_CACHE="${MILCO_OS_CACHE:-$MILCO_ROOT/.cache/milco-os}"
export PIP_CACHE_DIR="${PIP_CACHE_DIR:-$MILCO_ROOT/.cache/pip}"
MILCO_PYTHON="${MILCO_PYTHON:-python3}"
MILCO_VENV="$MILCO_ROOT/.venv"
setup_timings=()

timed() {
  local name="$1"; shift
  local started=$SECONDS
  "$@"
  setup_timings+=("$(printf '%-28s %4ds' "$name" $((SECONDS - started)))")
}

create_venv() {
  if [ ! -x "$MILCO_VENV/bin/python" ]; then
    "$MILCO_PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
      || { echo "milco-os needs Python 3.10+; set MILCO_PYTHON to one." >&2; return 1; }
    "$MILCO_PYTHON" -m venv "$MILCO_VENV"
  fi
}

install_packages() {
  local stamp="$MILCO_VENV/.milco-os-installed" wanted
  wanted="$(cat "$MILCO_ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    "$MILCO_VENV/bin/python" -m pip install --quiet --editable "$MILCO_ROOT[dev]"
    echo "$wanted" > "$stamp"
  fi
}

fetch_java_artifacts() {
  for tool in java mvn; do
    command -v "$tool" >/dev/null || { echo "milco-os needs '$tool' (a JDK 17 and Maven) on PATH." >&2; return 1; }
  done
  # The default OpenSearch 2.x, and the 3.x release the test suite also runs.
  "$MILCO_VENV/bin/milco-os" dev-cluster fetch >/dev/null
  "$MILCO_VENV/bin/milco-os" dev-cluster fetch --version 3.8.0 >/dev/null
  # The release the security plugin is served for (TLS + basic-auth tests).
  "$MILCO_VENV/bin/milco-os" dev-cluster fetch --secure >/dev/null
  # The Elasticsearch nodes of the backend tests: 7.17 (rank_features), 8.x and 9.x (sparse_vector).
  "$MILCO_VENV/bin/milco-os" dev-cluster fetch --engine elasticsearch --version 7.17.29 >/dev/null
  "$MILCO_VENV/bin/milco-os" dev-cluster fetch --engine elasticsearch --version 8.19.21 >/dev/null
  "$MILCO_VENV/bin/milco-os" dev-cluster fetch --engine elasticsearch --version 9.2.4 >/dev/null
}

timed "virtualenv (.venv)" create_venv
timed "python packages" install_packages
timed "OpenSearch/ES artifacts (mvn)" fetch_java_artifacts
echo "== set-up timings =="
printf '  %s\n' "${setup_timings[@]}"
export PATH="$MILCO_VENV/bin:$PATH"
