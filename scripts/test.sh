#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the whole test suite: ruff, mypy --strict, pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
echo "== ruff"; ruff check trustkit tests benchmarks
echo "== mypy --strict trustkit"; mypy --strict trustkit
echo "== pytest"; python -m pytest -q -p no:cacheprovider --timeout=300 "$@"
