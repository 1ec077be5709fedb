#!/usr/bin/env bash
# Cluster mode measured against a single node in the same run (docs/PERFORMANCE.md,
# "Cluster mode"). Both use PostgreSQL (a fresh database each, dropped after) so only
# the topology differs; the cluster's bus is this machine's Redis under a prefix of
# its own.
#
#   fan-out     one writer (the owner's node) at RATE inserts/s, R readers; single:
#               all on one node; cluster: readers spread over three nodes
#               (R = 100, 500, 2000): reader latency p50/p99, owner CPU
#   throughput  one hot document, 1 writer + 20 readers, window 64
#   failover    chorus-bench failover: kill -9 of the owner -> next acked edit, x10
#
# Usage: bench/cluster.sh [OUT_DIR]   (default docs/bench/cluster-<date>)
#   QUICK=1      smoke: 20 readers, 3 s, one failover (what CI runs)
#   PROFILE=debug use debug binaries (CI's smoke; figures only from release)
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${PROFILE:-release}
out=${1:-docs/bench/cluster-$(date +%Y%m%d)}
mkdir -p "$out"
if [ -n "${QUICK:-}" ]; then
  readers_list="20"; duration=3; failover_runs=1; tput_readers=5
else
  readers_list="100 500 2000"; duration=20; failover_runs=10; tput_readers=20
fi
rate=${RATE:-20}
flag=""; [ "$profile" = release ] && flag="--release"
cargo build $flag --locked --bin chorus --bin chorus-loadgen --bin chorus-bench >&2
bin="target/$profile"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

pg_admin=${CHORUS_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}
pg_base=${pg_admin%/*}
redis=${CHORUS_TEST_REDIS:-redis://127.0.0.1:6379}
dir=$(mktemp -d)
dbs=()
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  for d in "${dbs[@]:-}"; do [ -n "$d" ] && psql "$pg_admin" -qc "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1 || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
secret=bench-secret-0123456789abcdef0123456789
printf 'cluster_keys = ["chorus-bench: the benchmark cluster bus key"]\n\n[[apps]]\nid = "bench"\nsecrets = ["%s"]\n\n# Peers have no limits: neither does Chorus here (docs/LIMITS.md).\n[limits]\nmessages_per_sec = 0\nawareness_per_sec = 0\nbytes_per_sec = 0\nmax_connections = 0\nmax_connections_per_address = 0\nhost_requests_per_sec = 0\n' "$secret" > "$dir/chorus.toml"

newdb() {
  local name="chorus_bench_$$_$1"
  psql "$pg_admin" -qc "CREATE DATABASE $name" >/dev/null
  dbs+=("$name")
  echo "$pg_base/$name"
}

# start NAME PORT STORE [BUS]: a node in the background; its pid in $started
start() {
  local name=$1 port=$2 store=$3 bus=${4:-}
  local env=(CHORUS_STORE="$store" CHORUS_LOG=warn)
  [ -n "$bus" ] && env+=(CHORUS_BUS="$bus" CHORUS_NODE_ID="$name" CHORUS_BUS_PREFIX="chorus-bench:$$")
  env "${env[@]}" "$bin/chorus" serve --config "$dir/chorus.toml" --bind "127.0.0.1:$port" \
    --data-dir "$dir/data-$name" > "$dir/$name.log" 2>&1 &
  started=$!
  pids+=("$started")
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && return; sleep 0.1; done
  echo "node $name did not become ready:" >&2; cat "$dir/$name.log" >&2; exit 1
}

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

loadgen() {
  "$bin/chorus-loadgen" --chorus-app bench --chorus-secret "$secret" --root title --concurrency 200 "$@"
}

results="$out/cluster.jsonl"
: > "$results"

# Single node on PostgreSQL.
start single 10400 "$(newdb single)"
single_pid=$started
# Three cluster nodes.
cluster_db=$(newdb cluster)
start node-0 10401 "$cluster_db" "$redis"; n0=$started
start node-1 10402 "$cluster_db" "$redis"; n1=$started
start node-2 10403 "$cluster_db" "$redis"; n2=$started
sleep 1
spread='ws://127.0.0.1:10401/v1/ws/bench/{doc},ws://127.0.0.1:10402/v1/ws/bench/{doc},ws://127.0.0.1:10403/v1/ws/bench/{doc}'

for r in $readers_list; do
  clients=$((r + 1))
  # Client 0 is the writer and connects first: on the cluster it lands on node 0,
  # which takes the document's lease (the owner); readers go round robin.
  before=$(ticks "$single_pid")
  loadgen --scenario fanout --url 'ws://127.0.0.1:10400/v1/ws/bench/{doc}' --clients "$clients" \
    --writers 1 --rate "$rate" --duration "$duration" --server-pid "$single_pid" \
    --doc "single-fanout-$r" --label "single-$r" >> "$results"
  echo "{\"label\":\"single-$r-cpu-ticks\",\"single\":$(( $(ticks "$single_pid") - before ))}" >> "$results"
  b0=$(ticks "$n0"); b1=$(ticks "$n1"); b2=$(ticks "$n2")
  loadgen --scenario fanout --url "$spread" --clients "$clients" \
    --writers 1 --rate "$rate" --duration "$duration" --server-pid "$n0" \
    --doc "cluster-fanout-$r" --label "cluster-$r" >> "$results"
  echo "{\"label\":\"cluster-$r-cpu-ticks\",\"owner\":$(( $(ticks "$n0") - b0 )),\"node1\":$(( $(ticks "$n1") - b1 )),\"node2\":$(( $(ticks "$n2") - b2 ))}" >> "$results"
done

loadgen --scenario throughput --url 'ws://127.0.0.1:10400/v1/ws/bench/{doc}' --readers "$tput_readers" \
  --window 64 --duration "$duration" --server-pid "$single_pid" --doc single-tput --label single-throughput >> "$results"
# Readers are clients 0..R-1 (reader 0 lands on node 0, the owner), the writer is client R.
loadgen --scenario throughput --url "$spread" --readers "$tput_readers" \
  --window 64 --duration "$duration" --server-pid "$n0" --doc cluster-tput --label cluster-throughput >> "$results"

"$bin/chorus-bench" failover --bin "$bin/chorus" --runs "$failover_runs" >> "$results"

node - "$results" <<'EOF'
const fs = require('fs')
const rows = fs.readFileSync(process.argv[2], 'utf8').trim().split('\n').map(l => JSON.parse(l))
const by = l => rows.find(r => r.label === l) || {}
const out = []
for (const r of rows.filter(r => r.scenario === 'fanout' && r.label.startsWith('single-'))) {
  const n = r.label.slice(7)
  const c = by('cluster-' + n)
  const sp99 = r.latency_ms?.p99, cp99 = c.latency_ms?.p99
  const sc = by('single-' + n + '-cpu-ticks').single, cc = by('cluster-' + n + '-cpu-ticks')
  out.push({ readers: Number(n), single_p50_ms: r.latency_ms?.p50, single_p99_ms: sp99,
    cluster_p50_ms: c.latency_ms?.p50, cluster_p99_ms: cp99,
    p99_ratio: sp99 ? +(cp99 / sp99).toFixed(2) : null,
    delivered_single: r.delivered_ratio, delivered_cluster: c.delivered_ratio,
    cpu_ticks_single: sc, cpu_ticks_owner: cc.owner, cpu_ticks_others: [cc.node1, cc.node2],
    owner_cpu_ratio: sc ? +(cc.owner / sc).toFixed(2) : null })
}
const ts = by('single-throughput'), tc = by('cluster-throughput')
out.push({ throughput_single_per_s: ts.updates_per_s_delivered_to_all, throughput_cluster_per_s: tc.updates_per_s_delivered_to_all,
  ratio: ts.updates_per_s_delivered_to_all ? +(tc.updates_per_s_delivered_to_all / ts.updates_per_s_delivered_to_all).toFixed(2) : null })
const f = rows.find(r => r.scenario === 'failover')
out.push({ failover_median_ms: f?.median_ms, failover_max_ms: f?.max_ms, failover_runs: f?.editable_again_ms })
for (const o of out) console.log(JSON.stringify(o))
EOF
