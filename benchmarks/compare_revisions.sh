#!/usr/bin/env bash
# Before/after figures for a refactor: runs one benchmark script alternately against an older
# revision (a temporary git worktree) and the working tree, so both see the same machine load.
#   bash benchmarks/compare_revisions.sh BASE_REV ROUNDS SCRIPT [ARGS...]
# e.g. bash benchmarks/compare_revisions.sh d947798 3 benchmarks/bench_trust.py --tags 1000 10000
# The base revision's own copy of SCRIPT is run with its own trustkit first on sys.path; the
# same .venv (dependencies) serves both. Prints every run's table, labelled.
set -euo pipefail
cd "$(dirname "$0")/.."
base_rev=$1 rounds=$2 script=$3
shift 3
[ -x .venv/bin/python ] || bash scripts/setup.sh
work=$(mktemp -d /tmp/trustkit-base-XXXXXX)
cleanup() { git worktree remove --force "$work" >/dev/null 2>&1 || rm -rf "$work"; }
trap cleanup EXIT
git worktree add -q --detach "$work" "$base_rev"
for round in $(seq 1 "$rounds"); do
  echo "#### round $round: before ($base_rev)"
  (cd "$work" && PYTHONPATH="$work" "$OLDPWD/.venv/bin/python" "$script" "$@")
  echo "#### round $round: after (working tree)"
  PYTHONPATH="$PWD" .venv/bin/python "$script" "$@"
done
