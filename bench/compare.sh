#!/usr/bin/env bash
# Chorus against three Yjs servers, measured in one run with the same generator
# (chorus-loadgen, release) and the same sizes: @y/websocket-server 0.1.1 and
# @hocuspocus/server 4.7.0 (Node, in memory) and y-sweet 0.9.1 (Rust, in memory).
# Chorus runs with its defaults: sled store on (a temp data dir), default whitelist.
# Every run gets a freshly started server and is bounded by `timeout`.
#
# Writes bench/results/<UTC timestamp>/: results.jsonl (one JSON line per run,
# `label` = server), results.md (one table per scenario, Chorus ÷ best peer),
# p99-vs-clients.svg, logs/ (server and generator stderr).
#
# Env: QUICK=1 (smoke sizes, a few minutes), ONLY=chorus,y-websocket,hocuspocus,y-sweet,
#      SCENARIOS=fanout,throughput,rooms,idle,coldload,presence,joinstorm (defaults: all),
#      BUILD=0 (use the release binaries already in $CARGO_TARGET_DIR, or target/, as they are).
set -euo pipefail
cd "$(dirname "$0")/.."
ONLY=${ONLY:-chorus,y-websocket,hocuspocus,y-sweet}
SCENARIOS=${SCENARIOS:-fanout,throughput,rooms,idle,coldload,presence,joinstorm}
QUICK=${QUICK:-0}
# Where cargo builds (and so where the binaries are).
TARGET=${CARGO_TARGET_DIR:-target}
RATE=200
# presence: every client's awareness once a second (an editor's cursor while its
# user reads), one typist at 10 keystrokes a second.
PRESENCE_HZ=1; PRESENCE_RATE=10
JOIN_CHUNK=20000
if [ "$QUICK" = 1 ]; then
  FANOUT_CLIENTS="10 50"; FANOUT_DURATION=3; DRAIN=3
  TP_READERS=5; TP_DURATION=3
  ROOMS_DOCS=200; ROOMS_AFTER_WAIT=${ROOMS_AFTER_WAIT:-3}
  IDLE_CLIENTS=200; IDLE_HOLD=2
  COLD_HISTORY=5000; COLD_CHUNK=500; COLD_RUNS=3
  PRESENCE_CLIENTS="20"; PRESENCE_DURATION=3
  JOIN_CLIENTS=10; JOIN_DOC_BYTES=${JOIN_DOC_BYTES:-1000000}
else
  FANOUT_CLIENTS="100 500 1000 2000"; FANOUT_DURATION=20; DRAIN=5
  TP_READERS=20; TP_DURATION=20
  # Chorus unloads a doc 30 s after its last client left (idle_unload_secs).
  ROOMS_DOCS=10000; ROOMS_AFTER_WAIT=${ROOMS_AFTER_WAIT:-40}
  IDLE_CLIENTS=5000; IDLE_HOLD=10
  COLD_HISTORY=100000; COLD_CHUNK=1000; COLD_RUNS=5
  PRESENCE_CLIENTS="500 1500"; PRESENCE_DURATION=20
  JOIN_CLIENTS=150; JOIN_DOC_BYTES=${JOIN_DOC_BYTES:-20000000}
fi

# Thousands of sockets on both ends (the generator raises its own soft limit too).
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -gt 65536 ]; then ulimit -n 65536; else ulimit -n "$hard"; fi

if [ "${BUILD:-1}" != 0 ]; then
  echo "building chorus and chorus-loadgen (release)" >&2
  cargo build --release --locked -p chorus --bin chorus -p chorus-bench --bin chorus-loadgen >&2
fi
# The peers are only needed when they are measured (y-sweet's cargo install takes
# long: not for a run without it).
peers=()
for p in y-websocket hocuspocus y-sweet; do case ",$ONLY," in *",$p,"*) peers+=("$p") ;; esac; done
[ ${#peers[@]} = 0 ] || bench/peers/install.sh "${peers[@]}"
LOADGEN=$TARGET/release/chorus-loadgen
YSWEET=bench/.peers/y-sweet/bin/y-sweet

out=bench/results/$(date -u +%Y%m%dT%H%M%SZ)
logs=$out/logs
mkdir -p "$logs"
: > "$out/results.jsonl"
node -e '
  const os = require("os")
  console.log(JSON.stringify({ started: new Date().toISOString(), quick: process.argv[1] === "1",
    machine: `${os.cpus().length} × ${os.cpus()[0].model}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, node ${process.version}`,
    servers: process.argv[2], scenarios: process.argv[3] }))' "$QUICK" "$ONLY" "$SCENARIOS" > "$out/meta.json"

SECRET=bench-secret-0123456789abcdef0123456789
chorus_dir=$(mktemp -d)
# chorus_toml [TOP-LEVEL LINES...]: the configuration, with extra top-level keys.
chorus_toml() {
  printf '%s\n' "$@"
  printf '[[apps]]\nid = "bench"\nsecrets = ["%s"]\n\n# Peers have no limits: neither does Chorus here (docs/LIMITS.md).\n[limits]\nmessages_per_sec = 0\nawareness_per_sec = 0\nbytes_per_sec = 0\nmax_connections = 0\nmax_connections_per_address = 0\nhost_requests_per_sec = 0\n' "$SECRET"
}
chorus_toml > "$chorus_dir/chorus.toml"
# joinstorm: Chorus turns a document larger than max_document_bytes (32 MiB by
# default) read-only, and the peers have no such cap. The 20 MB document fits
# under it; a larger JOIN_DOC_BYTES (env) raises the cap for the joinstorm run
# only (to twice the document, room for its update log). Every update is at most
# 256 KiB, well under max_message_size (8 MiB).
join_cap=$((2 * JOIN_DOC_BYTES))
[ "$join_cap" -gt 33554432 ] || join_cap=33554432
chorus_toml "max_document_bytes = $join_cap" > "$chorus_dir/chorus-joinstorm.toml"
CHORUS_CONFIG=$chorus_dir/chorus.toml
PID=""
cleanup() { [ -n "$PID" ] && kill -KILL "$PID" 2>/dev/null; rm -rf "$chorus_dir"; }
trap cleanup EXIT

# start_server NAME: starts it on its port, sets PID and LG (the generator's
# server-specific flags), waits until it answers HTTP.
start_server() {
  local name=$1 health
  case $name in
    chorus)
      "$TARGET/release/chorus" serve --config "$CHORUS_CONFIG" --bind 127.0.0.1:10230 \
        --data-dir "$chorus_dir/data" >> "$logs/chorus.log" 2>&1 &
      PID=$!
      LG=(--url 'ws://127.0.0.1:10230/v1/ws/bench/{doc}' --chorus-app bench --chorus-secret "$SECRET")
      health=http://127.0.0.1:10230/readyz ;;
    y-websocket)
      PORT=10231 node bench/peers/y-websocket-server.mjs >> "$logs/y-websocket.log" 2>&1 &
      PID=$!
      LG=(--url 'ws://127.0.0.1:10231/{doc}')
      health=http://127.0.0.1:10231/ ;;
    hocuspocus)
      PORT=10232 node bench/peers/hocuspocus-server.mjs >> "$logs/hocuspocus.log" 2>&1 &
      PID=$!
      LG=(--protocol hocuspocus --url 'ws://127.0.0.1:10232/')
      health=http://127.0.0.1:10232/ ;;
    y-sweet)
      # No store path: documents live in memory only.
      "$YSWEET" serve --host 127.0.0.1 --port 10233 >> "$logs/y-sweet.log" 2>&1 &
      PID=$!
      LG=(--setup ysweet --setup-url http://127.0.0.1:10233)
      health=http://127.0.0.1:10233/ready ;;
    *) echo "unknown server $name" >&2; return 1 ;;
  esac
  for _ in $(seq 100); do
    curl -s -o /dev/null --max-time 1 "$health" && return 0
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.2
  done
  echo "$name did not start (see $logs/$name.log)" >&2
  return 1
}

stop_server() {
  [ -n "$PID" ] || return 0
  kill -TERM "$PID" 2>/dev/null || true
  for _ in $(seq 150); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  PID=""
}

# run_lg SERVER CAP_SECS ARGS...: one generator run against the running server;
# appends its JSON line (or an error line) to results.jsonl and echoes it.
run_lg() {
  local server=$1 cap=$2; shift 2
  local line
  line=$(timeout -k 10 "$cap" "$LOADGEN" "${LG[@]}" --server-pid "$PID" --label "$server" "$@" \
    2>> "$logs/loadgen.err" | tail -n 1) || true
  line=$(node -e '
    let r; try { r = JSON.parse(process.argv[1]) } catch { r = { error: "no JSON line (timeout or crash)" } }
    const a = process.argv.slice(2); const flag = k => { const i = a.indexOf(k); return i < 0 ? undefined : a[i + 1] }
    r.label ??= a[0]; r.scenario ??= flag("--scenario")
    if (["fanout", "presence", "joinstorm"].includes(r.scenario)) r.clients ??= Number(flag("--clients"))
    console.log(JSON.stringify(r))' "$line" "$server" "$@")
  echo "$line" >> "$out/results.jsonl"
  echo "$line"
}

# started SERVER SCENARIO [CLIENTS]: start_server, or an error line in results.jsonl.
started() {
  start_server "$1" && return 0
  printf '{"label":"%s","scenario":"%s","clients":%s,"error":"server did not start"}\n' \
    "$1" "$2" "${3:-null}" >> "$out/results.jsonl"
  return 1
}

# Every Chorus run starts from an empty store, as every peer starts empty: a run
# must not pay for what an earlier scenario wrote (the throughput run alone logs
# hundreds of thousands of updates). Only coldload restarts on its own upload.
fresh_store() { rm -rf "$chorus_dir/data"; }

want() { case ",$2," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
json_field() { node -e 'try { console.log(JSON.parse(process.argv[1])[process.argv[2]] ?? "") } catch { console.log("") }' "$1" "$2"; }
short() { cut -c1-240 <<< "$1" >&2; }

t_start=$(date +%s)
for server in chorus y-websocket hocuspocus y-sweet; do
  want "$server" "$ONLY" || continue
  echo "=== $server" >&2
  if want fanout "$SCENARIOS"; then
    for n in $FANOUT_CLIENTS; do
      fresh_store
      started "$server" fanout "$n" && short "$(run_lg "$server" $((FANOUT_DURATION + DRAIN + 150)) \
        --scenario fanout --clients "$n" --rate "$RATE" --duration "$FANOUT_DURATION" --drain "$DRAIN" \
        --concurrency 100)"
      stop_server
    done
  fi
  if want throughput "$SCENARIOS"; then
    fresh_store
    started "$server" throughput && short "$(run_lg "$server" $((TP_DURATION + DRAIN + 120)) --scenario throughput \
      --readers "$TP_READERS" --window 64 --duration "$TP_DURATION" --drain "$DRAIN")"
    stop_server
  fi
  if want rooms "$SCENARIOS"; then
    fresh_store
    started "$server" rooms && short "$(run_lg "$server" $((ROOMS_AFTER_WAIT + 900)) --scenario rooms \
      --docs "$ROOMS_DOCS" --concurrency 100 --settle 2 --after-wait "$ROOMS_AFTER_WAIT")"
    stop_server
  fi
  if want idle "$SCENARIOS"; then
    fresh_store
    started "$server" idle && short "$(run_lg "$server" $((IDLE_HOLD + 900)) --scenario idle \
      --clients "$IDLE_CLIENTS" --doc-mode single --hold "$IDLE_HOLD" --settle 2 --concurrency 100)"
    stop_server
  fi
  if want coldload "$SCENARIOS"; then
    fresh_store
    cold=(--scenario coldload --history "$COLD_HISTORY" --chunk "$COLD_CHUNK" --runs "$COLD_RUNS")
    if [ "$server" = chorus ]; then
      # Upload, restart, load: the fresh clients get the doc from the store.
      if started chorus coldload; then
        up=$(run_lg chorus 900 "${cold[@]}" --phase upload); short "$up"
        stop_server
        doc=$(json_field "$up" doc)
        if [ -n "$doc" ] && [ -z "$(json_field "$up" error)" ] && started chorus coldload; then
          short "$(run_lg chorus 600 "${cold[@]}" --phase load --doc "$doc")"
        fi
      fi
    else
      started "$server" coldload && short "$(run_lg "$server" 900 "${cold[@]}" --phase all)"
    fi
    stop_server
  fi
  if want presence "$SCENARIOS"; then
    for n in $PRESENCE_CLIENTS; do
      fresh_store
      started "$server" presence "$n" && short "$(run_lg "$server" $((PRESENCE_DURATION + DRAIN + 300)) \
        --scenario presence --clients "$n" --presence-hz "$PRESENCE_HZ" --rate "$PRESENCE_RATE" \
        --duration "$PRESENCE_DURATION" --drain "$DRAIN" --concurrency 100)"
      stop_server
    done
  fi
  if want joinstorm "$SCENARIOS"; then
    fresh_store
    CHORUS_CONFIG=$chorus_dir/chorus-joinstorm.toml
    # The uploader stays connected through the storm (--phase all): the peers keep
    # a document in memory only while a client is connected.
    started "$server" joinstorm "$JOIN_CLIENTS" && short "$(run_lg "$server" 900 --scenario joinstorm \
      --clients "$JOIN_CLIENTS" --doc-bytes "$JOIN_DOC_BYTES" --chunk-bytes "$JOIN_CHUNK" \
      --connect-timeout 120)"
    stop_server
    CHORUS_CONFIG=$chorus_dir/chorus.toml
  fi
done
echo "total $(( $(date +%s) - t_start )) s" >&2
node bench/summarize.mjs "$out" >&2
cat "$out/results.md"
