#!/usr/bin/env bash
# Fan-out baseline: N stock-protocol clients on one document, R small edits/s.
# Starts a release chorus on 127.0.0.1:10200, runs the shared Node load generator
# (bench/node/loadgen.mjs, real yjs client stack), prints one JSON line per run.
# The generator writes into the `title` root: Chorus's whitelist empties any other.
# Usage: bench/fanout.sh [CLIENTS] [RATE] [DURATION_S]
set -euo pipefail
cd "$(dirname "$0")/.."
clients=${1:-50}; rate=${2:-300}; duration=${3:-20}
cargo build --release --locked --bin chorus >&2
(cd bench/node && { npm ls --silent >/dev/null 2>&1 || npm ci --no-audit --no-fund --loglevel=error; })
dir=$(mktemp -d)
printf '[[apps]]\nid = "bench"\nsecrets = ["bench-secret-0123456789abcdef0123456789"]\n\n# Peers have no limits: neither does Chorus here (docs/LIMITS.md).\n[limits]\nmessages_per_sec = 0\nawareness_per_sec = 0\nbytes_per_sec = 0\nmax_connections = 0\nmax_connections_per_address = 0\nhost_requests_per_sec = 0\n' > "$dir/chorus.toml"
target/release/chorus serve --config "$dir/chorus.toml" --bind 127.0.0.1:10200 --data-dir "$dir/data" > "$dir/server.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 50); do curl -fs http://127.0.0.1:10200/healthz >/dev/null 2>&1 && break; sleep 0.1; done
token=$(target/release/chorus token --app bench --secret bench-secret-0123456789abcdef0123456789 --doc fanout --user load --ttl 3600)
node bench/node/loadgen.mjs --scenario fanout --url 'ws://127.0.0.1:10200/v1/ws/bench/{doc}' \
  --doc fanout --token "$token" --root title --clients "$clients" --rate "$rate" --duration "$duration" \
  --server-pid "$pid" --label "chorus-${clients}c-${rate}rps"
