#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the whole test suite: ruff (lint and format), the layering
# contracts (import-linter, pyproject.toml), mypy --strict, pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
echo "== ruff"; ruff check trustkit tests benchmarks
echo "== ruff format"; ruff format --check trustkit tests benchmarks
echo "== import layering"; lint-imports
echo "== mypy --strict trustkit"; mypy --strict trustkit
echo "== pytest"; python -m pytest -q -p no:cacheprovider --timeout=300 "$@"
