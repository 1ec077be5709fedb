#!/usr/bin/env bash
# A/B: two chorus binaries measured alternately in one session (A B A B …), each
# run on a fresh store, with the same load generator: fan-out (CLIENTS on one
# document, RATE small edits a second) and throughput (1 writer + READERS, window
# 64), then a host's external change (bench/external-change.mjs). For a structural
# change that must not move the figures, or one that must: the spread between the
# rounds of one binary is the machine's noise, the gap between A and B is the
# change's.
#
#   bench/ab.sh BEFORE_BIN AFTER_BIN            # 2 rounds, 500 clients × 200/s
#   ROUNDS=3 CLIENTS=200 bench/ab.sh A B
#
# Prints one JSON line per run (label a or b) and a median summary; writes them to
# bench/results/ab-<time>/. Builds the Rust load generator (chorus-loadgen).
set -euo pipefail
cd "$(dirname "$0")/.."
a=$(realpath "$1"); b=$(realpath "$2")
rounds=${ROUNDS:-2}; clients=${CLIENTS:-500}; rate=${RATE:-200}; duration=${DURATION:-20}
readers=${READERS:-20}; drain=${DRAIN:-5}; paragraphs=${PARAGRAPHS:-1000}
cargo build --release --locked -p chorus-bench --bin chorus-loadgen >&2
out=bench/results/ab-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
dir=$(mktemp -d)
secret=bench-secret-0123456789abcdef0123456789
printf '[[apps]]\nid = "bench"\nsecrets = ["%s"]\n\n# Peers have no limits: neither does Chorus here (docs/LIMITS.md).\n[limits]\nmessages_per_sec = 0\nawareness_per_sec = 0\nbytes_per_sec = 0\nmax_connections = 0\nmax_connections_per_address = 0\nhost_requests_per_sec = 0\n' "$secret" > "$dir/chorus.toml"
pid=""
stop() { [ -z "$pid" ] || { kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=""; }; }
trap 'stop; rm -rf "$dir"' EXIT
run() { # run LABEL BIN ARGS...: one generator run on a fresh server
  local label=$1 bin=$2; shift 2
  rm -rf "$dir/data"
  "$bin" serve --config "$dir/chorus.toml" --bind 127.0.0.1:10240 --data-dir "$dir/data" >> "$out/server-$label.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do curl -fs -o /dev/null http://127.0.0.1:10240/readyz && break; sleep 0.1; done
  local line
  line=$(timeout -k 10 600 target/release/chorus-loadgen --url 'ws://127.0.0.1:10240/v1/ws/bench/{doc}' \
    --chorus-app bench --chorus-secret "$secret" --server-pid "$pid" --label "$label" "$@" 2>>"$out/loadgen.err" | tail -n 1) || true
  stop
  echo "$line" | tee -a "$out/results.jsonl"
}
for r in $(seq "$rounds"); do
  for side in a b; do
    bin=$a; [ "$side" = b ] && bin=$b
    run "$side" "$bin" --scenario fanout --clients "$clients" --rate "$rate" --duration "$duration" --drain "$drain" --concurrency 100
    run "$side" "$bin" --scenario throughput --readers "$readers" --window 64 --duration "$duration" --drain "$drain"
    node bench/external-change.mjs --bin "$bin" --paragraphs "$paragraphs" --runs 3 2>>"$out/external.err" \
      | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const r={};for(const l of s.trim().split("\n")){try{Object.assign(r,JSON.parse(l))}catch{r.error=l}};delete r.put_ms;r.label=process.argv[1];r.scenario="external-change";console.log(JSON.stringify(r))})' "$side" \
      | tee -a "$out/results.jsonl"
  done
done
node -e '
const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map(l => { try { return JSON.parse(l) } catch { return null } }).filter(Boolean);
const med = xs => { const s = xs.filter(x => typeof x === "number").sort((p, q) => p - q); return s.length ? s[Math.floor((s.length - 1) / 2)] : null };
const pick = {
  fanout: r => ({ p50_ms: r.latency_ms?.p50, p99_ms: r.latency_ms?.p99, cpu_pct: r.server_cpu_pct }),
  throughput: r => ({ per_s_to_all: r.updates_per_s_delivered_to_all, p99_ms: r.latency_ms?.p99, cpu_pct: r.server_cpu_pct }),
  "external-change": r => r,
};
for (const scenario of Object.keys(pick)) for (const label of ["a", "b"]) {
  const runs = rows.filter(r => r.scenario === scenario && r.label === label).map(pick[scenario]);
  if (!runs.length) continue;
  const keys = Object.keys(runs[0]).filter(k => typeof runs[0][k] === "number");
  const summary = Object.fromEntries(keys.map(k => [k, { median: med(runs.map(x => x[k])), runs: runs.map(x => x[k]) }]));
  console.log(JSON.stringify({ summary: scenario, label, ...summary }));
}' "$out/results.jsonl" | tee "$out/summary.jsonl"
