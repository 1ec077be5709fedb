#!/usr/bin/env node
// A host's external change as the host sees it: the wall time of `PUT …/content`
// (the answer comes once the change is applied and durable) on a draft of N
// paragraphs, each rewrite changing a word in every paragraph but the headings: the
// same drafts as crates/chorus-core/benches/external_change.rs, through the real
// server (HTTP, the blocking pool, the document's actor, the store).
//
//   node bench/external-change.mjs [--bin target/release/chorus] [--paragraphs 870,6000,20000,57000] [--runs 3]
//
// Starts `chorus serve` on an ephemeral port with a fresh data dir (removed after),
// prints one JSON line per size: {paragraphs, mib, first_put_ms, put_ms: [...], median_ms}.
// No dependencies: fetch and node:crypto.
import { spawn } from 'node:child_process'
import { createHmac } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'

const { values: opts } = parseArgs({
  options: {
    bin: { type: 'string', default: 'target/release/chorus' },
    paragraphs: { type: 'string', default: '870,6000,20000,57000' },
    runs: { type: 'string', default: '3' }
  }
})
const APP = 'bench'
const SECRET = 'external-change-bench-secret-0123456789'

/** Version `rev` of the draft: as `draft()` in the Rust benchmark. */
function draft (paragraphs, rev) {
  const w = ['quick', 'swift'][rev % 2]
  const out = []
  for (let i = 0; i < paragraphs; i++) {
    if (i % 25 === 0) { out.push(`<h2>Section ${i / 25} of the draft</h2>`); continue }
    let p = `<p>Paragraph ${i}: the ${w} brown fox jumps over <strong>the lazy dog</strong> and <em>keeps running</em>`
    if (i % 10 === 0) p += ` to <a href="https://example.com/${i}">the end</a>`
    out.push(p + '.</p>')
  }
  return out.join('')
}

function hostToken () {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url')
  const iat = Math.floor(Date.now() / 1000)
  const input = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ iss: APP, scope: 'host', iat, exp: iat + 3600 })}`
  return `${input}.${createHmac('sha256', SECRET).update(input).digest('base64url')}`
}

async function startChorus (dir) {
  const config = path.join(dir, 'chorus.toml')
  await writeFile(config, `bind = "127.0.0.1:0"\ndata_dir = ${JSON.stringify(path.join(dir, 'data'))}\n[[apps]]\nid = "${APP}"\nsecrets = ["${SECRET}"]\n`)
  const env = { NO_COLOR: '1' }
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CHORUS_')) env[k] = v
  const child = spawn(path.resolve(opts.bin), ['serve', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'], env })
  let output = ''
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`chorus did not start:\n${output}`)), 30_000)
    const onData = (chunk) => {
      output += chunk
      const m = output.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/)
      if (m) { clearTimeout(timer); resolve(Number(m[1])) }
    }
    child.stdout.on('data', onData)
    child.stderr.on('data', onData)
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`chorus exited ${code}:\n${output}`)) })
  })
  return { url: `http://127.0.0.1:${port}`, stop: () => new Promise((resolve) => { child.once('exit', resolve); child.kill('SIGTERM') }) }
}

const dir = await mkdtemp(path.join(tmpdir(), 'chorus-external-change-'))
const chorus = await startChorus(dir)
try {
  for (const paragraphs of opts.paragraphs.split(',').map(Number)) {
    const doc = `draft-${paragraphs}`
    const put = async (html) => {
      const started = performance.now()
      const res = await fetch(`${chorus.url}/v1/apps/${APP}/docs/${doc}/content`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${hostToken()}`, 'content-type': 'application/json' },
        body: JSON.stringify({ html })
      })
      const body = await res.text()
      if (res.status !== 200) throw new Error(`PUT ${doc}: ${res.status} ${body}`)
      return performance.now() - started
    }
    const versions = [draft(paragraphs, 0), draft(paragraphs, 1)]
    const first = await put(versions[0])
    const times = []
    for (let i = 1; i <= Number(opts.runs); i++) times.push(await put(versions[i % 2]))
    const sorted = [...times].sort((a, b) => a - b)
    console.log(JSON.stringify({
      paragraphs,
      mib: +(versions[1].length / (1024 * 1024)).toFixed(2),
      first_put_ms: Math.round(first),
      put_ms: times.map(Math.round),
      median_ms: Math.round(sorted[Math.floor(sorted.length / 2)])
    }))
  }
  // What the server itself measured: the whole change (prepare, merge, durable) and
  // its group commits, over every PUT above.
  const metrics = await (await fetch(`${chorus.url}/metrics`)).text()
  const value = (name) => Number(metrics.match(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm'))?.[1] ?? NaN)
  const mean = (name) => Math.round(1000 * value(`${name}_sum`) / value(`${name}_count`))
  console.log(JSON.stringify({
    server_external_change_mean_ms: mean('chorus_external_change_seconds'),
    server_store_commit_mean_ms: mean('chorus_store_commit_seconds'),
    store_commits: value('chorus_store_commit_seconds_count')
  }))
} finally {
  await chorus.stop()
  await rm(dir, { recursive: true, force: true })
}
