#!/usr/bin/env bash
# The interop suites of status-rs's libp2p transport (docs/interop.md):
#   1. rust-libp2p gossipsub <-> status-rs relay   (cargo test, feature interop-gossipsub)
#   2. js-waku light node    <-> status-node full nodes over libp2p (Node >= 20, pinned @waku/* from npm)
# Installs what it needs (the npm packages from package-lock.json), builds, runs both.
# Exit code 0 only if both pass. CARGO_TARGET_DIR is honoured; -j defaults to 2.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
jobs="${INTEROP_JOBS:-2}"
target="${CARGO_TARGET_DIR:-$root/target}"

node_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
if [ "$node_major" -lt 20 ]; then
    echo "interop: needs Node.js >= 20 (found: $(node --version 2>/dev/null || echo none))" >&2
    exit 1
fi

status=0

echo "== interop 1/2: rust-libp2p gossipsub vs status-rs relay"
start=$SECONDS
if cargo test -j "$jobs" -p transports --features interop-gossipsub \
    --test libp2p_gossipsub_interop --test libp2p_loopback --test libp2p_flood -- --nocapture; then
    echo "== interop 1/2: passed ($((SECONDS - start)) s)"
else
    echo "== interop 1/2: FAILED" >&2
    status=1
fi

echo "== interop 2/2: js-waku light node vs status-rs full nodes"
start=$SECONDS
cargo build -j "$jobs" -p node --features libp2p
(cd interop && npm ci --no-audit --no-fund --loglevel=error)
if (cd interop && STATUS_NODE_BIN="$target/debug/status-node" \
    timeout 300 node --import ./polyfill.mjs js-waku.test.mjs); then
    echo "== interop 2/2: passed ($((SECONDS - start)) s)"
else
    echo "== interop 2/2: FAILED" >&2
    status=1
fi
exit $status
