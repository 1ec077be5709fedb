// A tiny starter for the real `chorus` binary, and the helpers the tests share: a
// webhook receiver (node:http) and a raw websocket session (node:http upgrade, no
// dependencies), so this package's tests need nothing but node and the binary.
//
// Environment: CHORUS_BIN (default <repo>/target/debug/chorus), CHORUS_TEST_VERBOSE
// (echo the server's output), CHORUS_KEEP_TMP (keep the config and data dir).
import { spawn } from 'node:child_process'
import { createHmac, randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import http from 'node:http'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
export const REPO_ROOT = path.resolve(here, '..', '..', '..')
export const CHORUS_BIN = path.resolve(process.env.CHORUS_BIN ?? path.join(REPO_ROOT, 'target', 'debug', 'chorus'))
export const TIMEOUT = Number(process.env.CHORUS_TEST_TIMEOUT ?? 15_000)

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

let n = 0
/** A content id unique to this run. */
export const uid = (prefix = 'doc') => `${prefix}-${process.pid}-${Date.now().toString(36)}-${(n++).toString(36)}`

/** Polls `fn` until it returns a truthy value (returned); fails after `timeout` with `what`. */
export async function waitFor (fn, what, { timeout = TIMEOUT, interval = 25 } = {}) {
  const deadline = Date.now() + timeout
  let last
  for (;;) {
    try {
      const v = await fn()
      if (v) return v
    } catch (err) { last = err }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}${last ? `: ${last.stack ?? last}` : ''}`)
    await sleep(interval)
  }
}

const toml = (v) => {
  if (typeof v === 'string') return JSON.stringify(v)
  if (typeof v === 'number' || typeof v === 'boolean') return String(v)
  if (Array.isArray(v)) return `[${v.map(toml).join(', ')}]`
  throw new Error(`no TOML for ${JSON.stringify(v)}`)
}

/**
 * Starts `chorus serve` on an ephemeral port with a fresh data dir.
 * `apps`: [{id, secrets, callback_url?, limits?: {...}, ...}]; `config`: top-level keys.
 */
export async function startChorus ({ apps, config = {}, startTimeout = 30_000 }) {
  const dir = await mkdtemp(path.join(tmpdir(), 'chorus-host-client-'))
  const lines = ['bind = "127.0.0.1:0"', `data_dir = ${toml(path.join(dir, 'data'))}`]
  for (const [k, v] of Object.entries(config)) lines.push(`${k} = ${toml(v)}`)
  for (const { limits, ...app } of apps) {
    lines.push('', '[[apps]]')
    for (const [k, v] of Object.entries(app)) lines.push(`${k} = ${toml(v)}`)
    if (limits) {
      lines.push('[apps.limits]')
      for (const [k, v] of Object.entries(limits)) lines.push(`${k} = ${toml(v)}`)
    }
  }
  const configPath = path.join(dir, 'chorus.toml')
  await writeFile(configPath, lines.join('\n') + '\n')

  // Every CHORUS_<KEY> variable is a config key for chorus (unknown ones are refused):
  // keep the test's own (CHORUS_BIN, CHORUS_TEST_*) away from it.
  const env = { NO_COLOR: '1' }
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CHORUS_')) env[k] = v
  const child = spawn(CHORUS_BIN, ['serve', '--config', configPath], { stdio: ['ignore', 'pipe', 'pipe'], env })
  let output = ''
  const onData = (chunk) => {
    output = (output + chunk.toString('utf8')).slice(-256 * 1024)
    if (process.env.CHORUS_TEST_VERBOSE) process.stderr.write(chunk)
  }
  child.stdout.on('data', onData)
  child.stderr.on('data', onData)
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }))
    child.once('error', (error) => resolve({ code: null, signal: null, error }))
  })

  let port
  try {
    port = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`chorus did not start listening within ${startTimeout} ms`)), startTimeout)
      const check = () => {
        // eslint-disable-next-line no-control-regex
        const m = output.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '').match(/listening on http:\/\/127\.0\.0\.1:(\d+)/)
        if (m) { clearTimeout(timer); resolve(Number(m[1])) }
      }
      child.stdout.on('data', check)
      child.stderr.on('data', check)
      exited.then((info) => { clearTimeout(timer); reject(new Error(`chorus exited before listening: ${JSON.stringify({ ...info, error: info.error?.message })}`)) })
    })
  } catch (err) {
    child.kill('SIGKILL')
    await rm(dir, { recursive: true, force: true })
    throw new Error(`${err.message}\ncommand: ${CHORUS_BIN} serve --config ${configPath}\n--- output ---\n${output}`)
  }

  let stopping
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    output: () => output,
    stop () {
      stopping ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGTERM')
          const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
          await exited
          clearTimeout(timer)
        }
        if (process.env.CHORUS_KEEP_TMP) {
          await writeFile(path.join(dir, 'server.log'), output)
          process.stderr.write(`[test] kept ${dir}\n`)
        } else {
          await rm(dir, { recursive: true, force: true })
        }
      })()
      return stopping
    }
  }
}

/** A callback receiver: records every POST (headers, raw body bytes) and answers `{"error":0}`. */
export async function startReceiver () {
  const requests = []
  const waiters = new Set()
  const server = http.createServer((req, res) => {
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', () => {
      const raw = Buffer.concat(chunks)
      let body = null
      try { body = JSON.parse(raw.toString('utf8')) } catch {}
      requests.push({ method: req.method, url: req.url, headers: req.headers, raw, body })
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end('{"error":0}')
      for (const w of waiters) w()
    })
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${server.address().port}/chorus/callback`,
    requests,
    /** The first request whose parsed body matches `pred`. */
    waitFor: (pred, what) => waitFor(() => requests.find((r) => r.body && pred(r.body)), `webhook ${what}`),
    close: () => new Promise((resolve) => { server.closeAllConnections?.(); server.close(() => resolve()) })
  }
}

// ---- session tokens and a raw websocket --------------------------------------------

const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url')

/** A browser session token (`{iss, sub, doc, mode, exp}`, HS256). */
export function sessionToken ({ appId, secret, doc, user = 'alice', mode = 'edit', name }) {
  const iat = Math.floor(Date.now() / 1000)
  const claims = { iss: appId, sub: user, doc, mode, iat, exp: iat + 600 }
  if (name !== undefined) claims.name = name
  const input = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`
}

/**
 * Opens a websocket session (`/v1/ws/{app}/{doc}?token=…`) with a bare RFC 6455
 * handshake and keeps it open; `closed` resolves with the close frame's code.
 * Enough to be listed, downgraded and ended: it never sends a frame but pongs and
 * the close reply.
 */
export function openSession (baseUrl, { appId, doc, token }) {
  const url = new URL(`/v1/ws/${encodeURIComponent(appId)}/${encodeURIComponent(doc)}?token=${encodeURIComponent(token)}`, baseUrl)
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      headers: {
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': randomBytes(16).toString('base64')
      }
    })
    req.on('response', (res) => reject(new Error(`websocket refused: HTTP ${res.statusCode}`)))
    req.on('error', reject)
    req.on('upgrade', (_res, socket, head) => {
      let buf = head
      let resolveClosed
      const closed = new Promise((resolve) => { resolveClosed = resolve })
      const frame = (opcode, payload) => {
        // Client frames are masked (RFC 6455 §5.3); payloads here are < 126 bytes.
        const mask = randomBytes(4)
        const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]))
        return Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | payload.length]), mask, masked])
      }
      // The server may close right after the 101, so its close frame can arrive in
      // `head`, with no 'data' event after it: parse what is buffered first.
      const drain = () => {
        for (;;) {
          if (buf.length < 2) return
          const opcode = buf[0] & 0x0f
          let len = buf[1] & 0x7f
          let off = 2
          if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4 } else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); off = 10 }
          if (buf.length < off + len) return
          const payload = buf.subarray(off, off + len)
          buf = buf.subarray(off + len)
          if (opcode === 0x9) socket.write(frame(0xA, [...payload])) // ping → pong
          if (opcode === 0x8) {
            const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005
            socket.write(frame(0x8, [...payload.subarray(0, 2)]))
            resolveClosed({ code, reason: payload.subarray(2).toString('utf8') })
            socket.end()
          }
        }
      }
      socket.on('data', (chunk) => { buf = Buffer.concat([buf, chunk]); drain() })
      drain()
      socket.on('close', () => resolveClosed({ code: 1006, reason: '' }))
      socket.on('error', () => {})
      resolve({ closed, close: () => socket.destroy() })
    })
    req.end()
  })
}
