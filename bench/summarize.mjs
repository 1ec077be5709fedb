#!/usr/bin/env node
// Turns bench/compare.sh's results.jsonl into results.md (one table per scenario,
// Chorus's ratio to the best peer) and p99-vs-clients.svg. No dependencies.
// Usage: node bench/summarize.mjs RESULTS_DIR
// Every JSON line carries `label` = the server's name; a failed run is a line with
// `error` (and `scenario`, `label`, and for fanout `clients`).
import fs from 'node:fs'
import path from 'node:path'

const dir = process.argv[2]
if (!dir) { console.error('usage: node summarize.mjs RESULTS_DIR'); process.exit(2) }
const rows = fs.readFileSync(path.join(dir, 'results.jsonl'), 'utf8').split('\n').filter(Boolean).map(l => JSON.parse(l))
const meta = fs.existsSync(path.join(dir, 'meta.json')) ? JSON.parse(fs.readFileSync(path.join(dir, 'meta.json'), 'utf8')) : {}
const order = ['chorus', 'y-websocket', 'hocuspocus', 'y-sweet']
const servers = [...new Set(rows.map(r => r.label))].sort((a, b) => order.indexOf(a) - order.indexOf(b))
const peers = servers.filter(s => s !== 'chorus')
const get = (o, k) => k.split('.').reduce((x, p) => (x == null ? undefined : x[p]), o)
const num = x => (typeof x === 'number' && Number.isFinite(x) ? x : null)
const fmt = x => {
  if (x === null || x === undefined) return '–'
  if (typeof x === 'boolean') return x ? 'yes' : 'no'
  if (typeof x !== 'number') return String(x)
  const a = Math.abs(x)
  return a >= 1000 ? Math.round(x).toLocaleString('en-US') : a >= 100 ? x.toFixed(0) : a >= 10 ? x.toFixed(1) : x.toFixed(2)
}
// Chorus's value / the best peer's (lower is better unless `higher`), with that peer's name.
function ratio (vals, higher) {
  const c = num(vals.chorus)
  const ps = peers.map(p => [p, num(vals[p])]).filter(([, v]) => v !== null)
  if (c === null || ps.length === 0) return '–'
  ps.sort((a, b) => higher ? b[1] - a[1] : a[1] - b[1])
  const [best, v] = ps[0]
  if (v === 0) return c === 0 ? `1.00 (${best})` : `∞ (${best})`
  return `${(c / v).toFixed(2)} (${best})`
}
const cell = (r, k, f = fmt) => r ? (r.error ? 'error' : f(get(r, k))) : '–'
// counts: no decimals
const count = x => (typeof x === 'number' ? x.toLocaleString('en-US') : fmt(x))
function table (head, body) {
  return ['| ' + head.join(' | ') + ' |', '|' + head.map(() => '---').join('|') + '|', ...body.map(b => '| ' + b.join(' | ') + ' |')].join('\n')
}
const by = (scenario, extra = () => true) => {
  const m = {}
  for (const r of rows) if (r.scenario === scenario && extra(r) && r.phase !== 'upload') m[r.label] = r
  return m
}
const errors = rows.filter(r => r.error)
const out = []
out.push('# Chorus vs Yjs servers', '')
out.push(`Run ${meta.started || ''}${meta.quick ? ' (**QUICK**: smoke sizes, not comparable figures)' : ''}; generator: chorus-loadgen (Rust, release), one process on the same machine as the server.`)
if (meta.machine) out.push(`Machine: ${meta.machine}.`)
out.push('Ratio columns: Chorus ÷ the best peer for that figure (in brackets); below 1 is better for Chorus, except where marked "higher is better".', '')

// fanout
const fan = rows.filter(r => r.scenario === 'fanout')
if (fan.length) {
  const clients = [...new Set(fan.map(r => r.clients))].sort((a, b) => a - b)
  const rate = fan.find(r => r.rate)?.rate
  out.push(`## fanout (1 doc, --rate ${rate ?? '?'} inserts/s over all clients)`, '')
  out.push('Latency p99 in ms (send → receipt at every other client), server CPU % in brackets; "! r" = only the fraction r of the updates arrived within the drain time (such a run is left out of the ratios).', '')
  const head = ['clients', ...servers, 'p99 ratio', 'CPU ratio']
  const body = clients.map(n => {
    const m = {}; for (const r of fan) if (r.clients === n) m[r.label] = r
    const p99 = {}; const cpu = {}
    // a peer that lost updates (delivered ratio < 0.999) is no "best peer": its p99
    // covers only what it delivered
    for (const s of servers) {
      const ok = m[s] && !(m[s].delivered_ratio < 0.999)
      p99[s] = ok ? get(m[s], 'latency_ms.p99') : null; cpu[s] = ok ? get(m[s], 'server_cpu_pct') : null
    }
    return [n, ...servers.map(s => {
      const r = m[s]; if (!r) return '–'; if (r.error) return 'error'
      const bad = r.delivered_ratio !== null && r.delivered_ratio < 1 ? ` ! ${fmt(r.delivered_ratio)}` : ''
      return `${fmt(get(r, 'latency_ms.p99'))} (${fmt(get(r, 'server_cpu_pct'))} %)${bad}`
    }), ratio(p99), ratio(cpu)]
  })
  out.push(table(head, body), '')
}

// per-server tables; `ok(run)` false: the run is no best peer (it did not finish the job)
function serverTable (scenario, title, note, cols, ratios, ok = () => true) {
  const m = by(scenario)
  if (!Object.keys(m).length) return
  out.push(`## ${title}`, '', note, '')
  const body = servers.map(s => [s, ...cols.map(([, k, f]) => cell(m[s], k, f))])
  for (const [label, k, higher] of ratios) {
    const vals = {}; for (const s of servers) vals[s] = m[s] && !m[s].error && (s === 'chorus' || ok(m[s])) ? get(m[s], k) : null
    body.push([`**Chorus ratio: ${label}**${higher ? ' (higher is better)' : ''}`, ...cols.map(([, ck]) => ck === k ? ratio(vals, higher) : '')])
  }
  out.push(table(['server', ...cols.map(([h]) => h)], body), '')
}
const tp = by('throughput')
serverTable('throughput', `throughput (1 writer + ${Object.values(tp)[0]?.readers ?? '?'} readers, window ${Object.values(tp)[0]?.window ?? '?'})`,
  'Inserts per second delivered to **every** reader (whole run, first 5 s, last 5 s), latency p99 in ms, server CPU %.',
  [['updates/s to all', 'updates_per_s_delivered_to_all'], ['first 5 s', 'first_5s_per_s_delivered_to_all'], ['last 5 s', 'last_5s_per_s_delivered_to_all'], ['p99 ms', 'latency_ms.p99'], ['server CPU %', 'server_cpu_pct'], ['tail delivered', 'tail_delivered_after_drain']],
  [['updates/s', 'updates_per_s_delivered_to_all', true], ['last 5 s', 'last_5s_per_s_delivered_to_all', true]])
const ro = by('rooms')
serverTable('rooms', `rooms (${Object.values(ro)[0]?.docs ?? '?'} docs, 1 client and 1 edit each)`,
  `Server RSS growth per doc while connected; RSS at start, after every client left (+${Object.values(ro)[0]?.settle_s ?? ''} settle) and after a further ${Object.values(ro)[0]?.after_wait_s ?? '?'} s; "back" = RSS after the wait within 10 % of the start.`,
  [['KB/doc', 'server_rss_kb_per_doc'], ['connected', 'connected'], ['connect p99 ms', 'connect_sync_ms.p99'], ['RSS start MB', 'server_rss_mb_start'], ['peak MB', 'server_rss_mb_peak_sampled'], ['after disconnect MB', 'server_rss_mb_after_disconnect'], ['after wait MB', 'server_rss_mb_after_wait'], ['back within 10 %', 'server_rss_back_within_10pct']],
  [['KB/doc', 'server_rss_kb_per_doc']])
const id = by('idle')
serverTable('idle', `idle (${Object.values(id)[0]?.clients ?? '?'} connections, doc mode ${Object.values(id)[0]?.doc_mode ?? '?'})`,
  'Server RSS growth per connection after holding them, server CPU % while idle, connections still open.',
  [['KB/conn', 'server_rss_kb_per_conn'], ['idle CPU %', 'server_idle_cpu_pct'], ['connected', 'connected'], ['still open', 'still_open_after_hold'], ['connect p99 ms', 'connect_sync_ms.p99'], ['RSS after disconnect MB', 'server_rss_mb_after_disconnect']],
  [['KB/conn', 'server_rss_kb_per_conn']])
const co = by('coldload')
serverTable('coldload', `coldload (${Object.values(co)[0]?.history_inserts ?? '?'}-insert history)`,
  'A fresh client connects: median time to SyncStep2 received and applied (ms, from the websocket connect), the first run alone, SyncStep2 size. Chorus: the server was restarted after the upload, so the first run loads the doc from the store (later runs find it in memory); the peers keep it in memory with the uploader connected.',
  [['median step2 ms', 'median_step2_recv_ms'], ['first step2 ms', 'first_step2_recv_ms'], ['median applied ms', 'median_synced_applied_ms'], ['step2 bytes', 'step2_bytes'], ['complete', 'all_complete']],
  [['median step2', 'median_step2_recv_ms'], ['first step2', 'first_step2_recv_ms']])

// presence: one row per client count, as fanout
const pre = rows.filter(r => r.scenario === 'presence')
if (pre.length) {
  const clients = [...new Set(pre.map(r => r.clients))].sort((a, b) => a - b)
  const any = pre.find(r => !r.error) || {}
  out.push(`## presence (1 doc, every client's awareness state at ${any.presence_hz ?? '?'} Hz, client 0 types ${any.rate ?? '?'} inserts/s)`, '')
  out.push('Typist p99 / presence p99 in ms (send → receipt at every other client), server CPU % in brackets; "! t r" / "! p r" = only the fraction r of the typist\'s updates / of the awareness states arrived within the drain time (such a run is left out of that ratio, and of the CPU ratio).', '')
  const okT = r => !(r.delivered_ratio < 0.999)
  const okP = r => !(r.presence_delivered_ratio < 0.99)
  const head = ['clients', ...servers, 'typist p99 ratio', 'presence p99 ratio', 'CPU ratio']
  const body = clients.map(n => {
    const m = {}; for (const r of pre) if (r.clients === n) m[r.label] = r
    const typ = {}; const pres = {}; const cpu = {}
    for (const s of servers) {
      const r = m[s] && !m[s].error ? m[s] : null
      typ[s] = r && okT(r) ? get(r, 'latency_ms.p99') : null
      pres[s] = r && okP(r) ? get(r, 'presence_latency_ms.p99') : null
      cpu[s] = r && okT(r) && okP(r) ? get(r, 'server_cpu_pct') : null
    }
    return [n, ...servers.map(s => {
      const r = m[s]; if (!r) return '–'; if (r.error) return 'error'
      const bad = (okT(r) ? '' : ` ! t ${fmt(r.delivered_ratio)}`) + (okP(r) ? '' : ` ! p ${fmt(r.presence_delivered_ratio)}`)
      return `${fmt(get(r, 'latency_ms.p99'))} / ${fmt(get(r, 'presence_latency_ms.p99'))} (${fmt(get(r, 'server_cpu_pct'))} %)${bad}`
    }), ratio(typ), ratio(pres), ratio(cpu)]
  })
  out.push(table(head, body), '')
  out.push('Details: latency p50 / p99 in ms, fraction delivered, server CPU % in user and system time, server RSS peak, awareness messages and entries a client received per second (a server that merges states sends fewer messages), connections the server closed (a slow consumer) during the run.', '')
  const dh = ['server', 'clients', 'typist p50 / p99', 'typist delivered', 'presence p50 / p99', 'presence delivered', 'CPU user / sys %', 'RSS peak MB', 'msgs/s/client', 'entries/s/client', 'closed']
  const db = []
  for (const s of servers) {
    for (const n of clients) {
      const r = pre.find(x => x.label === s && x.clients === n)
      if (!r) continue
      if (r.error) { db.push([s, n, 'error', '', '', '', '', '', '', '', '']); continue }
      db.push([s, n, `${fmt(get(r, 'latency_ms.p50'))} / ${fmt(get(r, 'latency_ms.p99'))}`, fmt(r.delivered_ratio),
        `${fmt(get(r, 'presence_latency_ms.p50'))} / ${fmt(get(r, 'presence_latency_ms.p99'))}`, fmt(r.presence_delivered_ratio),
        `${fmt(r.server_user_cpu_pct)} / ${fmt(r.server_sys_cpu_pct)}`, fmt(r.server_rss_mb_peak_sampled),
        fmt(r.awareness_messages_per_s_per_client), fmt(r.awareness_entries_per_s_per_client), count(get(r, 'conn.closed_unexpected'))])
    }
  }
  out.push(table(dh, db), '')
}

const js = by('joinstorm')
const js0 = Object.values(js).find(r => !r.error) || {}
serverTable('joinstorm', `joinstorm (${js0.clients ?? '?'} fresh clients join a ${js0.doc_bytes ? fmt(js0.doc_bytes / 1e6) : '?'} MB document at once)`,
  'Time from the storm\'s start until a client\'s SyncStep2 (the whole document) arrived, in ms; every client synced, and how many did not (failed or short); server RSS before the storm and its peak during it (sampled every 50 ms), server CPU % over the storm. The uploader stays connected. A server that did not sync every client is left out of the ratios.',
  [['synced p50 ms', 'synced_ms.p50'], ['synced p99 ms', 'synced_ms.p99'], ['synced max ms', 'synced_ms.max'], ['all synced', 'all_synced'], ['failed', 'failed', count], ['RSS before MB', 'server_rss_mb_before'], ['peak RSS MB', 'server_peak_rss_mb'], ['server CPU %', 'server_cpu_pct'], ['upload + verify ms', 'upload_and_verify_ms']],
  [['synced p50', 'synced_ms.p50'], ['synced p99', 'synced_ms.p99'], ['peak RSS', 'server_peak_rss_mb']],
  r => r.all_synced === true)

if (errors.length) {
  out.push('## Errors', '')
  for (const e of errors) out.push(`- ${e.label} ${e.scenario}${e.clients ? ' ' + e.clients + ' clients' : ''}: ${String(e.error).slice(0, 300).replace(/\n/g, ' ')}`)
  out.push('')
}
if (fs.existsSync(path.join(dir, 'p99-vs-clients.svg')) || fan.length) out.push('![p99 vs clients](p99-vs-clients.svg)', '')
fs.writeFileSync(path.join(dir, 'results.md'), out.join('\n'))

// SVG: p99 latency vs clients, one line per server (log-scale y)
if (fan.length) {
  const W = 720; const H = 440; const L = 70; const R = 150; const T = 40; const B = 50
  const pts = {}
  for (const r of fan) if (!r.error && num(get(r, 'latency_ms.p99')) !== null) (pts[r.label] ||= []).push([r.clients, get(r, 'latency_ms.p99')])
  const xs = fan.map(r => r.clients); const ys = Object.values(pts).flat().map(p => p[1])
  const xmin = Math.min(...xs); const xmax = Math.max(...xs)
  const ymin = Math.max(0.01, Math.min(...ys, 1)); const ymax = Math.max(...ys, 1)
  const ly0 = Math.floor(Math.log10(ymin)); const ly1 = Math.ceil(Math.log10(ymax))
  const X = x => L + (xmax === xmin ? 0.5 : (x - xmin) / (xmax - xmin)) * (W - L - R)
  const Y = y => T + (1 - (Math.log10(y) - ly0) / Math.max(1, ly1 - ly0)) * (H - T - B)
  const colors = { chorus: '#d62728', 'y-websocket': '#1f77b4', hocuspocus: '#2ca02c', 'y-sweet': '#9467bd' }
  const s = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">fanout: p99 latency vs clients (--rate ${fan[0].rate ?? '?'})</text>`]
  for (let e = ly0; e <= ly1; e++) {
    const y = Y(10 ** e)
    s.push(`<line x1="${L}" x2="${W - R}" y1="${y}" y2="${y}" stroke="#ddd"/>`, `<text x="${L - 6}" y="${y + 4}" text-anchor="end">${10 ** e >= 1 ? 10 ** e : (10 ** e).toFixed(-e)} ms</text>`)
  }
  for (const x of [...new Set(xs)]) s.push(`<line x1="${X(x)}" x2="${X(x)}" y1="${T}" y2="${H - B}" stroke="#eee"/>`, `<text x="${X(x)}" y="${H - B + 18}" text-anchor="middle">${x}</text>`)
  s.push(`<text x="${(L + W - R) / 2}" y="${H - 10}" text-anchor="middle">clients</text>`)
  s.push(`<line x1="${L}" x2="${L}" y1="${T}" y2="${H - B}" stroke="black"/>`, `<line x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}" stroke="black"/>`)
  let ly = T + 10
  for (const srv of servers) {
    const p = (pts[srv] || []).sort((a, b) => a[0] - b[0]); const c = colors[srv] || '#555'
    if (p.length) s.push(`<polyline fill="none" stroke="${c}" stroke-width="2" points="${p.map(([x, y]) => `${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join(' ')}"/>`)
    for (const [x, y] of p) s.push(`<circle cx="${X(x).toFixed(1)}" cy="${Y(y).toFixed(1)}" r="3" fill="${c}"><title>${srv} ${x} clients: p99 ${y} ms</title></circle>`)
    s.push(`<line x1="${W - R + 15}" x2="${W - R + 35}" y1="${ly}" y2="${ly}" stroke="${c}" stroke-width="2"/>`, `<text x="${W - R + 40}" y="${ly + 4}">${srv}</text>`)
    ly += 20
  }
  s.push('</svg>')
  fs.writeFileSync(path.join(dir, 'p99-vs-clients.svg'), s.join('\n') + '\n')
}
console.log(path.join(dir, 'results.md'))
