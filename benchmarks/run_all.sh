#!/usr/bin/env bash
# Runs every benchmark with the project's .venv (scripts/setup.sh first) and prints markdown
# tables: the figures in docs/benchmarks.md come from this. Loopback only; stops by itself.
#   bash benchmarks/run_all.sh            # about 3 minutes on 2 cores
#   SOAK=600 bash benchmarks/run_all.sh   # plus the 10-minute webhook soak
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh
PY=.venv/bin/python
run() { echo; echo "### $1"; echo; shift; "$PY" "$@"; }
run "CLI start-up" benchmarks/bench_cli_startup.py --runs 20
run "Trust engine (issue: trusted collections)" benchmarks/bench_trust.py --tags 1000 10000
run "Trust data in the registry" benchmarks/bench_registry_store.py --tags 1000 10000 --runs 3
run "Notary v1 servers" benchmarks/bench_notary.py --tags 1000 10000 --migrate-tags 10000 --runs 3
run "Pull path and hooks" benchmarks/bench_pull.py --runs 60 --process-runs 10
run "Push of a 50 MB image" benchmarks/bench_push.py --runs 3
run "Scan reports and attestations" benchmarks/bench_reports.py --runs 5
run "Policy evaluation" benchmarks/bench_policy.py --runs 50
run "Admission webhook" benchmarks/bench_webhook.py --requests 5000 --concurrency 16 --soak-seconds "${SOAK:-0}"
