#!/usr/bin/env bash
# Set up (idempotent) and run the end-to-end demo: a local OpenSearch node, the sample
# multilingual corpus indexed with MILCO vectors, a few queries with their matched terms.
# Pass --model DIR to use a real MILCO checkpoint instead of a tiny random one.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
exec "$MILCO_VENV/bin/milco-os" demo "$@"
