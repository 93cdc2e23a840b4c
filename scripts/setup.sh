#!/usr/bin/env bash
# Sets up everything trustkit needs on a fresh Debian 12/13 machine with Python 3.11:
# the Debian peers used by tests and the demo (docker-registry, notary, skopeo), a virtualenv
# in .venv with trustkit and its test tools, and cosign 2.5 (see scripts/install-peers.sh).
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive

# docker-registry and skopeo are the real peers of the tests and the demo; notary (server,
# signer, CLI) is the peer of benchmarks/bench_trust.py and tests/test_notary_peer.py, and is
# skipped where Debian lacks it
# softhsm2 and opensc (pkcs11-tool) give the hsm: key tests a real PKCS#11 token
# postgresql backs notary-server and notary-signer in tests/test_notary_postgres.py (a throw-away
# cluster on a loopback port; the schema comes from notary v0.7.0's migrations, in the test)
apt_pkgs=(docker-registry skopeo curl ca-certificates openssl softhsm2 opensc)
optional_pkgs=(notary postgresql)
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=()
for p in "${apt_pkgs[@]}" "${optional_pkgs[@]}"; do installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}" >/dev/null
  for p in "${optional_pkgs[@]}"; do
    installed "$p" || $SUDO apt-get install -y -qq --no-install-recommends "$p" >/dev/null \
      || echo "setup: optional package $p is not available here (only a benchmark uses it)" >&2
  done
fi

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null && "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      PY=$cand; break
    fi
  done
fi
[ -n "$PY" ] || { echo "setup: Python 3.11+ is required" >&2; exit 3; }
if ! "$PY" -c 'import venv, ensurepip' 2>/dev/null; then
  $SUDO apt-get install -y -qq python3-venv >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $("$PY" --version)"
  "$PY" -m venv .venv
fi
stamp=.venv/.trustkit-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing trustkit and test tools into .venv"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  if ! .venv/bin/python -m pip install -q -e ".[test,webhook,hsm,kms]" > .venv/pip-install.log 2>&1; then
    cat .venv/pip-install.log >&2
    echo "setup: pip install failed" >&2; exit 3
  fi
  .venv/bin/python -c 'import trustkit, tuf, securesystemslib, httpx'
  touch "$stamp"
fi

bash scripts/install-peers.sh >/dev/null || echo "setup: cosign peer not available; cosign interop tests will be skipped" >&2
echo "setup: ok"
