#!/usr/bin/env bash
# Real sigstore-format peers for interop tests: cosign 2.5 and a sigstore-enabled skopeo.
# Debian 13 ships both. Debian 12 has no cosign and its skopeo has sigstore compiled out, so there
# we unpack Debian 13's packages (from the mirror apt already uses) into .peers/ without installing
# anything system-wide. Writes .peers/env with COSIGN=..., SKOPEO_SIGSTORE=... and SIGSTORE_GO=...
# (sigstore-go's verification example, an independent keyless verifier) lines.
set -euo pipefail
cd "$(dirname "$0")/.."
P=$PWD/.peers
mkdir -p "$P"
if [ -f "$P/env" ] && . "$P/env" && [ -x "${COSIGN:-}" ] && [ -x "${SIGSTORE_GO:-}" ]; then
  echo "peers: cosign at $COSIGN"; exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if apt-cache policy cosign 2>/dev/null | grep -q 'Candidate: [0-9]'; then
  apt-get install -y -qq cosign sigstore-go >/dev/null
  printf 'COSIGN=%s\nSKOPEO_SIGSTORE=%s\nSIGSTORE_GO=%s\n' "$(command -v cosign)" \
    "$(command -v skopeo)" "$(command -v sigstore-go-verification)" > "$P/env"
  echo "peers: cosign from Debian"; exit 0
fi
uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$uri" ] || uri=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$uri" ] || { echo "peers: no Debian mirror configured" >&2; exit 1; }
mkdir -p "$P/apt/lists/partial" "$P/apt/cache/archives/partial" "$P/root"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri trixie main" > "$P/apt/sources.list"
APT=(-o "Dir::Etc::SourceList=$P/apt/sources.list" -o Dir::Etc::SourceParts=/nonexistent
     -o "Dir::State::Lists=$P/apt/lists" -o "Dir::Cache=$P/apt/cache")
apt-get "${APT[@]}" update -qq >/dev/null
(cd "$P/apt" && apt-get "${APT[@]}" download cosign skopeo sigstore-go libc6 libgpgme11t64 libassuan9 libgpg-error0 libsqlite3-0 >/dev/null 2>&1)
for f in "$P"/apt/*.deb; do dpkg -x "$f" "$P/root"; done
L=$P/root/usr/lib/x86_64-linux-gnu
[ -d "$L" ] || L=$P/root/usr/lib/aarch64-linux-gnu
loader=$(ls "$L"/ld-linux-*.so.* | head -n 1)
cat > "$P/skopeo" <<SH
#!/bin/sh
exec "$loader" --library-path "$L" "$P/root/usr/bin/skopeo" "\$@"
SH
chmod +x "$P/skopeo"
"$P/root/usr/bin/cosign" version >/dev/null 2>&1
printf 'COSIGN=%s\nSKOPEO_SIGSTORE=%s\nSIGSTORE_GO=%s\n' "$P/root/usr/bin/cosign" "$P/skopeo" \
  "$P/root/usr/bin/sigstore-go-verification" > "$P/env"
echo "peers: cosign unpacked into $P"
