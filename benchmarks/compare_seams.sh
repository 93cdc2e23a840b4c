#!/usr/bin/env bash
# "Not slower" check of the seams refactor: the SAME benchmark code (the trust, pull and webhook
# benchmarks as they were at d947798, before the refactor) run alternately against d947798's
# trustkit and the working tree's, so both sides do the same work under the same machine load.
#   bash benchmarks/compare_seams.sh [ROUNDS]        # about 5 minutes for 2 rounds on 2 cores
# The old scripts are adapted in a temporary worktree only where the API moved: the local store
# is named by URL (file://, which both revisions read alike) and push/pull/check_image are
# imported from wherever the revision keeps them. Prints every table, labelled.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}
base_rev=d947798
[ -x .venv/bin/python ] || bash scripts/setup.sh
here=$PWD
work=$(mktemp -d /tmp/trustkit-seams-XXXXXX)
cleanup() { git worktree remove --force "$work" >/dev/null 2>&1 || rm -rf "$work"; }
trap cleanup EXIT
git worktree add -q --detach "$work" "$base_rev"
.venv/bin/python - "$work" <<'PY'
import sys
from pathlib import Path

bench = Path(sys.argv[1]) / "benchmarks"
trust = (bench / "bench_trust.py").read_text()
trust = trust.replace(
    '            repository_passphrase="bench-repo-pass",\n        )\n',
    '            repository_passphrase="bench-repo-pass",\n'
    "            trust_server=f\"file://{work / 'trust' / 'server'}\",\n        )\n",
)
trust = trust.replace(
    "            SERVIN_TRUST_DIR=str(settings.trust_dir),\n",
    "            SERVIN_TRUST_DIR=str(settings.trust_dir),\n"
    "            SERVIN_CONTENT_TRUST_SERVER=str(settings.trust_server),\n",
)
trust = trust.replace("    peer = bench_notary()", "    peer = None")
(bench / "bench_trust_same.py").write_text(trust)

pull = (bench / "bench_pull.py").read_text()
pull = pull.replace(
    "from trustkit.enforce import check_image  # noqa: E402\n",
    "try:\n    from trustkit.pipeline.check import check_image\n"
    "except ImportError:\n    from trustkit.enforce import check_image  # noqa: E402\n",
)
pull = pull.replace(
    "from trustkit.registry import pull_image, push_image  # noqa: E402\n",
    "try:\n    from trustkit.pipeline.flows import pull_image, push_image\n"
    "except ImportError:\n    from trustkit.registry import pull_image, push_image  # noqa: E402\n",
)
pull = pull.replace(
    '            config_dir=tmp / "config",\n        )\n',
    '            config_dir=tmp / "config",\n'
    "            trust_server=f\"file://{tmp / 'trust' / 'server'}\",\n        )\n",
)
pull = pull.replace(
    '            SERVIN_CONTENT_TRUST="1",\n        )\n',
    '            SERVIN_CONTENT_TRUST="1",\n'
    "            SERVIN_CONTENT_TRUST_SERVER=str(settings.trust_server),\n        )\n",
)
cut = pull.index("        # the CI gate on one image, whole process")
end = pull.index("    finally:", cut)
pull = (
    pull[:cut]
    + '        print(f"| pull, in-process, trust off / on (ms) | {off:.2f} / {on:.2f} |")\n'
    + '        print(f"| check_image (pull), in-process (ms) | {pipeline:.2f} |")\n'
    + '        print(f"| hook pre-pull, whole process (ms) | {hook_whole:.1f} |")\n'
    + '        print(f"| hook pre-pull, persistent socket (ms) | {hook_persistent:.3f} |")\n'
    + pull[end:]
)
(bench / "bench_pull_same.py").write_text(pull)
PY
run() {  # run LABEL ROOT SCRIPT ARGS...
  local label=$1 root=$2 script=$3
  shift 3
  echo "#### $label"
  (cd /tmp && PYTHONPATH="$root" "$here/.venv/bin/python" "$work/benchmarks/$script" "$@")
}
for round in $(seq 1 "$rounds"); do
  for side in before after; do
    root=$work; [ "$side" = after ] && root=$here
    run "round $round, $side: bench_trust" "$root" bench_trust_same.py --tags 1000 10000 --verify-runs 100
    run "round $round, $side: bench_pull" "$root" bench_pull_same.py --runs 30 --process-runs 5
    run "round $round, $side: bench_webhook" "$root" bench_webhook.py --requests 3000 --concurrency 16
  done
done
