#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh), then runs the demo: sign on push, verify on pull,
# attest a scan, block by policy, against a local trust store and a local registry.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/demo.py "$@"
