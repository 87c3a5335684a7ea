#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite against real services the suite starts itself.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$MILCO_ROOT"
exec "$MILCO_VENV/bin/python" -m pytest "$@"
