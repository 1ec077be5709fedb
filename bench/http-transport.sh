#!/usr/bin/env bash
# Chorus's HTTP transport (server-sent events down, POSTs up; proto/PROTOCOL.md
# "HTTP transport") against its websocket, one chorus binary, one run, the same
# Node generator (bench/node/loadgen.mjs: --protocol y-websocket vs chorus-http),
# alternating websocket and HTTP at every size:
#
#  1. fanout: 1 writer + R readers on one document, RATE inserts/s for DURATION s:
#     delivery latency p50/p99, delivered %, server CPU (user, system) and CPU per
#     delivered update;
#  2. idle: IDLE_CLIENTS silent clients on one document (each HTTP one with its
#     stream attached), held IDLE_HOLD s: server RSS per connection.
#
# Every run gets a freshly started server with an empty store (so RSS deltas do
# not inherit an earlier run's heap) and is bounded by `timeout`. Chorus runs with
# its defaults and, as in compare.sh, with its limits off.
#
# Writes bench/results/<UTC timestamp>-http-transport/: results.jsonl (one
# generator line per run, `label` = ws|http), results.md (the tables printed at the
# end), meta.json, logs/ (server log per run, generator stderr).
#
# Env: CHORUS_BIN (default target/release/chorus; never built here), QUICK=1 (tiny
#      sizes, about half a minute, for CI smoke use), READERS="50 200", RATE=50,
#      DURATION=15, DRAIN=5, IDLE_CLIENTS=500, IDLE_HOLD=10, PORT=10240,
#      HTTP_ACK_EVERY=0 (ms between the HTTP clients' acknowledgement-only POSTs; 0 =
#      acknowledge only with frames posted, as web-client's ChorusHttpSocket does).
set -euo pipefail
cd "$(dirname "$0")/.."
CHORUS_BIN=${CHORUS_BIN:-target/release/chorus}
QUICK=${QUICK:-0}
PORT=${PORT:-10240}
if [ "$QUICK" = 1 ]; then
  READERS=${READERS:-"5 20"}; RATE=${RATE:-20}; DURATION=${DURATION:-3}; DRAIN=${DRAIN:-3}
  IDLE_CLIENTS=${IDLE_CLIENTS:-50}; IDLE_HOLD=${IDLE_HOLD:-2}
else
  READERS=${READERS:-"50 200"}; RATE=${RATE:-50}; DURATION=${DURATION:-15}; DRAIN=${DRAIN:-5}
  IDLE_CLIENTS=${IDLE_CLIENTS:-500}; IDLE_HOLD=${IDLE_HOLD:-10}
fi
HTTP_ACK_EVERY=${HTTP_ACK_EVERY:-0}

[ -x "$CHORUS_BIN" ] || { echo "no chorus binary at $CHORUS_BIN (build it: cargo build --release -p chorus --bin chorus, or set CHORUS_BIN)" >&2; exit 1; }
(cd bench/node && { npm ls --silent >/dev/null 2>&1 || npm ci --no-audit --no-fund --loglevel=error; })

# Hundreds of sockets on both ends (an HTTP client holds a stream and, at times, a POST).
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -gt 65536 ]; then ulimit -n 65536; else ulimit -n "$hard"; fi

out=bench/results/$(date -u +%Y%m%dT%H%M%SZ)-http-transport
logs=$out/logs
mkdir -p "$logs"
: > "$out/results.jsonl"
node -e '
  const os = require("os")
  const [quick, bin, rev, readers, rate, duration, idle, hold, ack] = process.argv.slice(1)
  console.log(JSON.stringify({ started: new Date().toISOString(), quick: quick === "1", chorus_bin: bin, git: rev,
    machine: `${os.cpus().length} × ${os.cpus()[0].model}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, node ${process.version}`,
    readers, rate: Number(rate), duration_s: Number(duration), idle_clients: Number(idle), idle_hold_s: Number(hold),
    http_ack_every_ms: Number(ack) }))' \
  "$QUICK" "$CHORUS_BIN" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "$READERS" "$RATE" "$DURATION" \
  "$IDLE_CLIENTS" "$IDLE_HOLD" "$HTTP_ACK_EVERY" > "$out/meta.json"

SECRET=bench-secret-0123456789abcdef0123456789
dir=$(mktemp -d)
printf '[[apps]]\nid = "bench"\nsecrets = ["%s"]\n\n# As in compare.sh: no limits (docs/LIMITS.md).\n[limits]\nmessages_per_sec = 0\nawareness_per_sec = 0\nbytes_per_sec = 0\nmax_connections = 0\nmax_connections_per_address = 0\nhost_requests_per_sec = 0\n' "$SECRET" > "$dir/chorus.toml"
PID=""
cleanup() { [ -n "$PID" ] && kill -KILL "$PID" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT

# start_server LOGNAME: a fresh chorus on an empty store; sets PID.
start_server() {
  rm -rf "$dir/data"
  "$CHORUS_BIN" serve --config "$dir/chorus.toml" --bind "127.0.0.1:$PORT" --data-dir "$dir/data" > "$logs/$1.log" 2>&1 &
  PID=$!
  for _ in $(seq 100); do
    curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/readyz" && return 0
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.2
  done
  echo "chorus did not start (see $logs/$1.log)" >&2
  return 1
}

stop_server() {
  [ -n "$PID" ] || return 0
  kill -TERM "$PID" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  PID=""
}

# run LABEL CAP_SECS ARGS...: one generator run against a fresh server; appends its
# JSON line (or an error line) to results.jsonl and prints a one-line summary.
run() {
  local label=$1 cap=$2; shift 2
  local line="" scenario="" clients="" prev="" a
  for a in "$@"; do case $prev in --scenario) scenario=$a ;; --clients) clients=$a ;; esac; prev=$a; done
  if start_server "$scenario-$clients-$label"; then
    line=$(timeout -k 10 "$cap" node bench/node/loadgen.mjs --url "ws://127.0.0.1:$PORT/v1/ws/bench/{doc}" \
      --chorus-app bench --chorus-secret "$SECRET" --root title --server-pid "$PID" --label "$label" "$@" \
      2>> "$logs/loadgen.err" | tail -n 1) || true
    stop_server
  fi
  line=$(node -e '
    let r; try { r = JSON.parse(process.argv[1]) } catch { r = { error: "no JSON line (server did not start, timeout or crash)" } }
    const a = process.argv.slice(2); const flag = k => { const i = a.indexOf(k); return i < 0 ? undefined : a[i + 1] }
    r.label ??= a[0]; r.scenario ??= flag("--scenario"); r.protocol ??= flag("--protocol"); r.clients ??= Number(flag("--clients"))
    console.log(JSON.stringify(r))' "$line" "$label" "$@")
  echo "$line" >> "$out/results.jsonl"
  node -e '
    const r = JSON.parse(process.argv[1])
    if (r.error) { console.log(`${r.label} ${r.scenario} ${r.clients}: ERROR ${String(r.error).slice(0, 200)}`); process.exit() }
    if (r.scenario === "fanout") console.log(`${r.label} fanout ${r.clients - 1} readers: delivered ${(r.delivered_ratio * 100).toFixed(2)} %, p50 ${r.latency_ms.p50} ms, p99 ${r.latency_ms.p99} ms, server CPU ${r.server_cpu_pct} %, loadgen CPU ${r.loadgen_cpu_pct} %`)
    else console.log(`${r.label} idle ${r.clients}: connected ${r.connected}, open after hold ${r.still_open_after_hold}, ${r.server_rss_kb_per_conn} KB/conn`)' "$line" >&2
}

t_start=$(date +%s)
for r in $READERS; do
  n=$((r + 1))
  for proto in y-websocket chorus-http; do
    label=ws; [ "$proto" = chorus-http ] && label=http
    run "$label" $((DURATION + DRAIN + 90)) --protocol "$proto" --http-ack-every "$HTTP_ACK_EVERY" --scenario fanout --clients "$n" --writers 1 \
      --rate "$RATE" --duration "$DURATION" --drain "$DRAIN" --concurrency 50
  done
done
# HTTP twice: POST connections kept alive between POSTs (a browser's HTTP/1.1 pool:
# the server holds the streams plus those), and closed after each POST (the server
# holds the streams only: what a session itself costs).
for variant in ws http http-streams-only; do
  case $variant in
    ws) args=(--protocol y-websocket) ;;
    http) args=(--protocol chorus-http --http-keepalive 1 --http-ack-every "$HTTP_ACK_EVERY") ;;
    http-streams-only) args=(--protocol chorus-http --http-keepalive 0 --http-ack-every "$HTTP_ACK_EVERY") ;;
  esac
  run "$variant" $((IDLE_HOLD + 150)) "${args[@]}" --scenario idle --clients "$IDLE_CLIENTS" --doc-mode single \
    --hold "$IDLE_HOLD" --concurrency 100
done
echo "total $(( $(date +%s) - t_start )) s" >&2

# The tables: websocket and HTTP side by side, and HTTP ÷ websocket.
node - "$out" > "$out/results.md" <<'EOF'
const fs = require('fs')
const out = process.argv[2]
const meta = JSON.parse(fs.readFileSync(out + '/meta.json', 'utf8'))
const rows = fs.readFileSync(out + '/results.jsonl', 'utf8').split('\n').filter(Boolean).map(l => JSON.parse(l))
const f = (x, d = 1) => x === undefined || x === null || Number.isNaN(x) ? '–' : Number(x).toFixed(d)
const ratio = (h, w, d = 2) => (typeof h === 'number' && typeof w === 'number' && w > 0) ? (h / w).toFixed(d) + '×' : '–'
const L = []
L.push(`# HTTP transport vs websocket (${meta.quick ? 'QUICK, ' : ''}${meta.machine}; ${meta.chorus_bin} @ ${meta.git})`, '')
L.push(`## Fanout: 1 writer, R readers, ${meta.rate} inserts/s for ${meta.duration_s} s`, '')
L.push(`HTTP clients acknowledge events ${meta.http_ack_every_ms > 0 ? 'every ' + meta.http_ack_every_ms + ' ms (HTTP_ACK_EVERY)' : 'only with the frames they POST (readers: never after the sync), as ChorusHttpSocket does'}.`, '')
L.push('| readers | transport | delivered | p50 ms | p99 ms | server CPU % (user / sys) | server CPU µs per delivery (user / sys) | server RSS Δ MB | loadgen CPU % |')
L.push('|---|---|---|---|---|---|---|---|---|')
const fan = rows.filter(r => r.scenario === 'fanout')
const sizes = [...new Set(fan.map(r => r.clients))]
for (const n of sizes) {
  const by = { ws: fan.find(r => r.clients === n && r.label === 'ws'), http: fan.find(r => r.clients === n && r.label === 'http') }
  for (const k of ['ws', 'http']) {
    const r = by[k]
    if (!r || r.error) { L.push(`| ${n - 1} | ${k} | ERROR: ${r ? String(r.error).slice(0, 80) : 'missing'} | | | | | | |`); continue }
    L.push(`| ${n - 1} | ${k} | ${f(r.delivered_ratio * 100, 2)} % (${r.deliveries}/${r.deliveries_expected}) | ${f(r.latency_ms.p50, 2)} | ${f(r.latency_ms.p99, 2)} | ${f(r.server_cpu_pct)} (${f(r.server_user_cpu_pct)} / ${f(r.server_sys_cpu_pct)}) | ${f(r.server_cpu_us_per_delivery)} (${f(r.server_user_cpu_us_per_delivery)} / ${f(r.server_sys_cpu_us_per_delivery)}) | ${f(r.server_rss_mb_after - r.server_rss_mb_before)} | ${f(r.loadgen_cpu_pct)} |`)
  }
  const w = by.ws; const h = by.http
  if (w && h && !w.error && !h.error) {
    L.push(`| ${n - 1} | **http ÷ ws** | | ${ratio(h.latency_ms.p50, w.latency_ms.p50)} | ${ratio(h.latency_ms.p99, w.latency_ms.p99)} | ${ratio(h.server_cpu_pct, w.server_cpu_pct)} (${ratio(h.server_user_cpu_pct, w.server_user_cpu_pct)} / ${ratio(h.server_sys_cpu_pct, w.server_sys_cpu_pct)}) | ${ratio(h.server_cpu_us_per_delivery, w.server_cpu_us_per_delivery)} | | |`)
  }
}
L.push('', `## Idle: clients on one document, held ${meta.idle_hold_s} s`, '')
L.push('| clients | transport | connected (open after hold) | server RSS KB per connection | server idle CPU % | connect+sync p50 ms | generator TCP connections |')
L.push('|---|---|---|---|---|---|---|')
const idle = rows.filter(r => r.scenario === 'idle')
const by = { ws: idle.find(r => r.label === 'ws'), http: idle.find(r => r.label === 'http'), 'http-streams-only': idle.find(r => r.label === 'http-streams-only') }
for (const k of ['ws', 'http', 'http-streams-only']) {
  const r = by[k]
  if (!r || r.error) { L.push(`| ${meta.idle_clients} | ${k} | ERROR: ${r ? String(r.error).slice(0, 80) : 'missing'} | | | | |`); continue }
  const socks = r.loadgen_http_sockets ? `${r.loadgen_http_sockets.busy + r.loadgen_http_sockets.idle} (${r.loadgen_http_sockets.busy} streams, ${r.loadgen_http_sockets.idle} idle keep-alive)` : `${r.still_open_after_hold}`
  L.push(`| ${r.clients} | ${k} | ${r.connected} (${r.still_open_after_hold}) | ${f(r.server_rss_kb_per_conn)} | ${f(r.server_idle_cpu_pct)} | ${f(r.connect_sync_ms?.p50)} | ${socks} |`)
}
for (const k of ['http', 'http-streams-only']) {
  if (by.ws && by[k] && !by.ws.error && !by[k].error) {
    L.push(`| ${meta.idle_clients} | **${k} ÷ ws** | | ${ratio(by[k].server_rss_kb_per_conn, by.ws.server_rss_kb_per_conn)} | | ${ratio(by[k].connect_sync_ms?.p50, by.ws.connect_sync_ms?.p50)} | |`)
  }
}
// Anything the HTTP client saw go wrong.
const notes = []
for (const r of rows) {
  if (r.error) continue
  const h = r.http
  if (h) {
    const bad = { stream_resumes: h.stream_resumes, id_gaps: h.id_gaps, post_retries: h.post_retries, post_409: h.post_409, post_busy: h.post_busy }
    const odd = Object.entries(bad).filter(([, v]) => v > 0)
    for (const o of ['open_failures', 'stream_errors', 'close_events', 'post_failures']) if (Object.keys(h[o] || {}).length) odd.push([o, JSON.stringify(h[o])])
    if (odd.length) notes.push(`- ${r.label} ${r.scenario} ${r.clients} clients: ${odd.map(([k, v]) => `${k} ${v}`).join(', ')}`)
  }
  if (r.conn && (r.conn.closed_unexpected || r.conn.errors)) notes.push(`- ${r.label} ${r.scenario} ${r.clients} clients: ${r.conn.closed_unexpected} closed unexpectedly, ${r.conn.errors} errors`)
  if (r.connect_failures) notes.push(`- ${r.label} ${r.scenario} ${r.clients} clients: ${r.connect_failures} connect failures ${JSON.stringify(r.fail_reasons || {})}`)
}
L.push('', 'CPU per delivery: server CPU time over load and drain ÷ updates delivered to one reader. RSS Δ: server RSS after the run minus before it. Server and generator share the machine (loadgen CPU %).',
  'Idle `http`: POST connections stay open between POSTs (keep-alive, as a browser pools them), so the server holds the streams and those; `http-streams-only`: every POST on its own connection, closed after it (the server holds one connection per session, its stream). Per-connection RSS = (RSS after the hold − RSS before connecting) ÷ clients, on a fresh server.')
if (notes.length) L.push('', 'Transport incidents:', '', ...notes)
// Undelivered updates or a failed run are a broken transport, not a figure.
const broken = rows.filter((r) => r.error || (r.scenario === 'fanout' && r.delivered_ratio < 1) || r.connect_failures)
if (broken.length) L.push('', `BROKEN: ${broken.map((r) => `${r.label} ${r.scenario} ${r.clients}`).join(', ')} (an error, undelivered updates or failed connects)`)
console.log(L.join('\n'))
EOF
cat "$out/results.md"
echo "results: $out" >&2
# A smoke (CI) fails on a broken run; a measurement run reports it in the table.
if [ "$QUICK" = 1 ] && grep -q '^BROKEN:' "$out/results.md"; then exit 1; fi
