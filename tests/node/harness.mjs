// Test harness for the Chorus protocol-compatibility suite.
//
// - startServer(): writes a TOML config into a fresh temp dir and spawns the real
//   `chorus serve` binary on an ephemeral port.
// - JWT helpers (HS256 via node:crypto), including deliberately bad tokens.
// - Provider / raw-websocket helpers with bounded waits.
//
// Environment:
//   CHORUS_BIN            path of the chorus binary (default <repo>/target/debug/chorus)
//   CHORUS_TEST_TIMEOUT   ms for every bounded wait (default 10000)
//   CHORUS_TEST_SETTLE    ms to wait before asserting that something did NOT happen (default 600)
//   CHORUS_TEST_VERBOSE   if set, server output is echoed to stderr
//   CHORUS_KEEP_TMP       if set, temp dirs (config, data, server log) are not removed

import { spawn, execFile } from 'node:child_process'
import { createHmac, randomBytes } from 'node:crypto'
import { mkdtemp, writeFile, rm, readdir, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import assert from 'node:assert/strict'

import * as Y from 'yjs'
import WebSocket from 'ws'
import { WebsocketProvider } from 'y-websocket'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import * as syncProtocol from 'y-protocols/sync'
import * as awarenessProtocol from 'y-protocols/awareness'

export { Y, WebSocket, WebsocketProvider, encoding, decoding, syncProtocol, awarenessProtocol }

const here = path.dirname(fileURLToPath(import.meta.url))
export const REPO_ROOT = path.resolve(here, '..', '..')
export const CHORUS_BIN = process.env.CHORUS_BIN ?? path.join(REPO_ROOT, 'target', 'debug', 'chorus')
export const TIMEOUT = Number(process.env.CHORUS_TEST_TIMEOUT ?? 10_000)
export const SETTLE = Number(process.env.CHORUS_TEST_SETTLE ?? 600)
const VERBOSE = !!process.env.CHORUS_TEST_VERBOSE

// y-protocols message types
export const MSG_SYNC = 0
export const MSG_AWARENESS = 1
export const MSG_QUERY_AWARENESS = 3
export const SYNC_STEP1 = 0
export const SYNC_STEP2 = 1
export const SYNC_UPDATE = 2

// ---------------------------------------------------------------------------
// Small utilities
// ---------------------------------------------------------------------------

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

let uniq = 0
/** A unique id (content ids, user ids) so tests sharing a server never collide. */
export const uid = (prefix = 'doc') => `${prefix}-${process.pid}-${Date.now().toString(36)}-${(uniq++).toString(36)}`

/** Races `promise` against a timer; rejects with a clear message on timeout. */
export function withTimeout (promise, ms, what) {
  let timer
  const timeout = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms waiting for: ${what}`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/**
 * Polls `predicate` until it returns a truthy value (which is returned).
 * On timeout fails with `what` and, if given, `describe()` (the observed state).
 */
export async function waitFor (predicate, what, { timeout = TIMEOUT, interval = 20, describe } = {}) {
  const deadline = Date.now() + timeout
  let lastError
  for (;;) {
    try {
      const v = await predicate()
      if (v) return v
      lastError = undefined
    } catch (err) {
      lastError = err
    }
    if (Date.now() >= deadline) {
      let observed = ''
      if (describe) {
        try { observed = `\n  observed: ${describe()}` } catch (e) { observed = `\n  observed: <describe threw ${e}>` }
      }
      const le = lastError ? `\n  last predicate error: ${lastError.stack ?? lastError}` : ''
      throw new Error(`Timed out after ${timeout} ms waiting for: ${what}${observed}${le}`)
    }
    await sleep(interval)
  }
}

// ---------------------------------------------------------------------------
// Server process
// ---------------------------------------------------------------------------

function tomlValue (v) {
  if (typeof v === 'string') return JSON.stringify(v) // JSON string escapes are valid TOML basic strings
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new Error(`cannot encode ${v} in TOML`)
    return String(v)
  }
  if (typeof v === 'boolean') return v ? 'true' : 'false'
  if (Array.isArray(v)) return `[${v.map(tomlValue).join(', ')}]`
  // An inline table (an app's `sessions = { max_editors = 2 }`).
  if (v !== null && typeof v === 'object') return `{ ${Object.entries(v).filter(([, x]) => x !== undefined).map(([k, x]) => `${k} = ${tomlValue(x)}`).join(', ')} }`
  throw new Error(`unsupported TOML value ${JSON.stringify(v)}`)
}

/** Renders the chorus config file (top-level keys first, then [[apps]] tables). */
export function renderConfig ({ bind, dataDir, apps, extraConfig = {} }) {
  const lines = [`bind = ${tomlValue(bind)}`, `data_dir = ${tomlValue(dataDir)}`]
  const tables = []
  for (const [k, v] of Object.entries(extraConfig)) {
    if (v === undefined) continue
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) tables.push([k, v])
    else lines.push(`${k} = ${tomlValue(v)}`)
  }
  // A plain object is a table (`[http_transport]`), after every top-level key.
  for (const [name, table] of tables) {
    lines.push('', `[${name}]`)
    for (const [k, v] of Object.entries(table)) {
      if (v !== undefined) lines.push(`${k} = ${tomlValue(v)}`)
    }
  }
  for (const app of apps) {
    lines.push('', '[[apps]]')
    const { id, secrets, enabled = true, ...rest } = app
    lines.push(`id = ${tomlValue(id)}`)
    lines.push(`secrets = ${tomlValue(secrets)}`)
    lines.push(`enabled = ${tomlValue(enabled)}`)
    for (const [k, v] of Object.entries(rest)) {
      if (v !== undefined) lines.push(`${k} = ${tomlValue(v)}`)
    }
  }
  return lines.join('\n') + '\n'
}

export const DEFAULT_APP = Object.freeze({ id: 'wiki', secrets: ['wiki-secret-current-0123456789abcdef', 'wiki-secret-previous-0123456789abcdef'], enabled: true })

/**
 * Environment for the server process: every `CHORUS_<KEY>` variable is a config key
 * for chorus (unknown keys are rejected), so the test-suite's own CHORUS_* variables
 * (CHORUS_BIN, CHORUS_TEST_*) must not leak into it. The config file is the only source.
 */
function serverEnv () {
  const env = { NO_COLOR: '1' }
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('CHORUS_')) env[k] = v
  }
  return env
}

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;]*[A-Za-z]/g
const LISTEN_RE = /listening on http:\/\/127\.0\.0\.1:(\d+)/
const MAX_LOG = 512 * 1024

/**
 * Starts `chorus serve` with a fresh config and data dir.
 * @param {{apps?: Array<{id:string, secrets:string[], enabled?:boolean}>, extraConfig?: object, startTimeout?: number, reuseDir?: string}} opts
 */
export async function startServer ({ apps = [DEFAULT_APP], extraConfig = {}, startTimeout = 20_000, reuseDir, bind = '127.0.0.1:0' } = {}) {
  // `reuseDir`: the dir of an earlier (stopped or killed) server, to restart on its data.
  const dir = reuseDir ?? await mkdtemp(path.join(tmpdir(), 'chorus-node-test-'))
  const dataDir = path.join(dir, 'data')
  const configPath = path.join(dir, 'chorus.toml')
  // `bind`: a fixed address lets a restarted server come back where clients reconnect.
  await writeFile(configPath, renderConfig({ bind, dataDir, apps, extraConfig }))

  const args = ['serve', '--config', configPath, '--bind', bind, '--data-dir', dataDir]
  let output = ''
  const append = (stream) => (chunk) => {
    const text = chunk.toString('utf8')
    output += text
    if (output.length > MAX_LOG) output = output.slice(output.length - MAX_LOG)
    if (VERBOSE) process.stderr.write(`[chorus ${stream}] ${text}`)
  }

  let child
  try {
    child = spawn(CHORUS_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'], env: serverEnv() })
  } catch (err) {
    throw new Error(`failed to spawn ${CHORUS_BIN}: ${err.message}`)
  }
  child.stdout.on('data', append('stdout'))
  child.stderr.on('data', append('stderr'))

  let exitInfo = null
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => { exitInfo = { code, signal }; resolve(exitInfo) })
    child.once('error', (err) => { exitInfo = { code: null, signal: null, error: err }; resolve(exitInfo) })
  })

  const port = await new Promise((resolve, reject) => {
    const check = () => {
      const m = output.replace(ANSI, '').match(LISTEN_RE)
      if (m) { cleanup(); resolve(Number(m[1])) }
    }
    const onExit = (info) => {
      cleanup()
      reject(new Error(`chorus exited before listening (${JSON.stringify({ code: info.code, signal: info.signal, error: info.error?.message })})\n` +
        `command: ${CHORUS_BIN} ${args.join(' ')}\n--- captured output ---\n${output}`))
    }
    const timer = setTimeout(() => {
      cleanup()
      child.kill('SIGKILL')
      reject(new Error(`chorus did not log "listening on http://127.0.0.1:PORT" within ${startTimeout} ms\n` +
        `command: ${CHORUS_BIN} ${args.join(' ')}\n--- captured output ---\n${output}`))
    }, startTimeout)
    const cleanup = () => {
      clearTimeout(timer)
      child.stdout.off('data', check)
      child.stderr.off('data', check)
    }
    child.stdout.on('data', check)
    child.stderr.on('data', check)
    exited.then(onExit)
    check()
  }).catch(async (err) => {
    await rm(dir, { recursive: true, force: true }).catch(() => {})
    throw err
  })

  let stopping = null
  let removing = null
  /** Removes the temp dir (config, data) once; with CHORUS_KEEP_TMP keeps it and writes server.log. */
  const removeDir = () => {
    if (removing) return removing
    removing = (async () => {
      if (process.env.CHORUS_KEEP_TMP) {
        await writeFile(path.join(dir, 'server.log'), output).catch(() => {})
        process.stderr.write(`[harness] kept ${dir}\n`)
      } else {
        await rm(dir, { recursive: true, force: true }).catch(() => {})
      }
    })()
    return removing
  }
  const server = {
    port,
    dir,
    dataDir,
    configPath,
    apps,
    process: child,
    httpUrl: `http://127.0.0.1:${port}`,
    wsBase: `ws://127.0.0.1:${port}/v1/ws`,
    output: () => output,
    exited,
    get exitInfo () { return exitInfo },
    /** URL for a raw websocket client. */
    wsUrl (appId, contentId, token) {
      const base = `ws://127.0.0.1:${port}/v1/ws/${encodeURIComponent(appId)}/${encodeURIComponent(contentId)}`
      return token === undefined ? base : `${base}?token=${encodeURIComponent(token)}`
    },
    /**
     * SIGTERM, await exit (SIGKILL after `timeout`). Idempotent. Resolves to {code, signal}.
     * With `keepDir: true` the temp dir (config, data dir) is left in place so a test can
     * inspect what the server stored; call `removeDir()` (or a later plain `stop()`) afterwards.
     */
    stop ({ timeout = 15_000, keepDir = false } = {}) {
      if (!stopping) stopping = terminate(timeout)
      return keepDir ? stopping : stopping.then(async (info) => { await removeDir(); return info })
    },
    /** Removes the temp dir (idempotent). */
    removeDir
  }
  /** SIGTERM, await exit, SIGKILL after `timeout`; resolves to the exit info. */
  async function terminate (timeout) {
    if (exitInfo === null) {
      child.kill('SIGTERM')
      let timer
      const killed = await Promise.race([
        exited.then(() => false),
        new Promise((resolve) => { timer = setTimeout(() => resolve(true), timeout) })
      ])
      clearTimeout(timer)
      if (killed) {
        child.kill('SIGKILL')
        await exited
        exitInfo = { ...exitInfo, forcedKill: true }
      }
    }
    return exitInfo
  }
  return server
}

/** Every regular file under `dir` (recursively) as {path, bytes}; missing dir → []. */
export async function readFilesRecursive (dir) {
  const out = []
  let entries
  try {
    entries = await readdir(dir, { withFileTypes: true })
  } catch (err) {
    if (err.code === 'ENOENT') return out
    throw err
  }
  for (const e of entries) {
    const p = path.join(dir, e.name)
    if (e.isDirectory()) out.push(...await readFilesRecursive(p))
    else if (e.isFile()) out.push({ path: p, bytes: await readFile(p) })
  }
  return out
}

/** Runs `chorus <args>` to completion; resolves {code, stdout, stderr}. */
export function runChorus (args, { timeout = 20_000 } = {}) {
  return new Promise((resolve, reject) => {
    execFile(CHORUS_BIN, args, { timeout, env: serverEnv() }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') {
        reject(new Error(`chorus ${args.join(' ')} failed: ${err.message}\nstdout: ${stdout}\nstderr: ${stderr}`))
        return
      }
      resolve({ code: err ? err.code : 0, stdout, stderr })
    })
  })
}

// ---------------------------------------------------------------------------
// JWT
// ---------------------------------------------------------------------------

export const b64url = (input) => Buffer.from(typeof input === 'string' ? input : JSON.stringify(input)).toString('base64url')
export const nowSec = () => Math.floor(Date.now() / 1000)

/**
 * Signs a JWT. `alg` HS256 (default) or HS384/HS512 (HMAC with the same secret),
 * or 'none' (empty signature). `header` overrides/extends the header.
 */
export function signJwt (payload, secret, { alg = 'HS256', header = {} } = {}) {
  const h = b64url({ alg, typ: 'JWT', ...header })
  const p = b64url(payload)
  const input = `${h}.${p}`
  if (alg === 'none') return `${input}.`
  const hash = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' }[alg]
  if (!hash) throw new Error(`signJwt: unsupported alg ${alg}`)
  return `${input}.${createHmac(hash, secret).update(input).digest('base64url')}`
}

export function decodeJwt (token) {
  const [h, p] = token.split('.')
  return { header: JSON.parse(Buffer.from(h, 'base64url')), payload: JSON.parse(Buffer.from(p, 'base64url')) }
}

/** Session-token claims with sensible defaults; `undefined` values are dropped. */
export function sessionClaims ({ app, doc, user = 'user-1', mode = 'edit', ttl = 600, ...extra }) {
  const iat = nowSec()
  const claims = { iss: app, sub: user, doc, mode, iat, exp: iat + ttl, ...extra }
  for (const k of Object.keys(claims)) if (claims[k] === undefined) delete claims[k]
  return claims
}

/** A valid HS256 session token signed with `secret` (default: the app's first secret). */
export function sessionToken ({ app = DEFAULT_APP, secret, ...claims } = {}) {
  const appId = typeof app === 'string' ? app : app.id
  const key = secret ?? (typeof app === 'string' ? undefined : app.secrets[0])
  if (key === undefined) throw new Error('sessionToken: secret required')
  return signJwt(sessionClaims({ app: appId, ...claims }), key)
}

/**
 * A host (REST API) token: `scope: "host"`, app-wide unless `doc` is given.
 * Signed with the app's first secret unless `secret` is given.
 */
export function hostToken ({ app = DEFAULT_APP, doc, ttl = 600, secret } = {}) {
  const appId = typeof app === 'string' ? app : app.id
  const key = secret ?? (typeof app === 'string' ? undefined : app.secrets[0])
  if (key === undefined) throw new Error('hostToken: secret required')
  const iat = nowSec()
  const claims = { iss: appId, scope: 'host', iat, exp: iat + ttl }
  if (doc !== undefined) claims.doc = doc
  return signJwt(claims, key)
}

/**
 * Deliberately bad tokens for `app` (an app object) and `doc`.
 * kind: 'alg-none' | 'wrong-secret' | 'hs512' | 'expired' | 'not-yet-valid' |
 *       'garbage' | 'tampered' | 'missing-exp' | 'bad-json'
 */
export function badToken (kind, { app = DEFAULT_APP, doc, user = 'user-bad', mode = 'edit' } = {}) {
  const secret = app.secrets[0]
  const claims = sessionClaims({ app: app.id, doc, user, mode })
  switch (kind) {
    case 'alg-none':
      return signJwt(claims, null, { alg: 'none' })
    case 'wrong-secret':
      return signJwt(claims, 'definitely-not-the-secret')
    case 'hs512':
      // correct secret, but an algorithm the app is not pinned to
      return signJwt(claims, secret, { alg: 'HS512' })
    case 'expired':
      // far enough in the past that no reasonable clock-skew leeway accepts it
      return signJwt({ ...claims, iat: nowSec() - 7200, exp: nowSec() - 3600 }, secret)
    case 'not-yet-valid':
      return signJwt({ ...claims, nbf: nowSec() + 3600, exp: nowSec() + 7200 }, secret)
    case 'missing-exp': {
      const { exp, ...rest } = claims
      return signJwt(rest, secret)
    }
    case 'tampered': {
      // valid signature for a view token, payload swapped for an edit token
      const signed = signJwt({ ...claims, mode: 'view' }, secret)
      const [h, , s] = signed.split('.')
      return `${h}.${b64url({ ...claims, mode: 'edit' })}.${s}`
    }
    case 'garbage':
      return 'this-is-not-a-jwt'
    case 'bad-json': {
      const h = b64url({ alg: 'HS256', typ: 'JWT' })
      const p = b64url('{"iss": "' + app.id + '", not json')
      const input = `${h}.${p}`
      return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`
    }
    default:
      throw new Error(`badToken: unknown kind ${kind}`)
  }
}

// ---------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------

/**
 * Tracks every provider / raw socket a test creates so they can be torn down in
 * afterEach / after hooks (a leaked provider keeps the test process alive).
 */
export class ClientPool {
  constructor (server) {
    this.server = server
    this.providers = []
    this.raws = []
  }

  /**
   * A stock y-websocket WebsocketProvider.
   * BroadcastChannel is disabled: Node 20 has a global BroadcastChannel and
   * providers in one process would otherwise sync with each other without the server.
   */
  provider ({ app = DEFAULT_APP, doc, token, ydoc = new Y.Doc(), connect = true, ...opts } = {}) {
    const appId = typeof app === 'string' ? app : app.id
    const provider = new WebsocketProvider(`${this.server.wsBase}/${encodeURIComponent(appId)}`, doc, ydoc, {
      WebSocketPolyfill: WebSocket,
      params: token === undefined ? {} : { token },
      disableBc: true,
      connect,
      ...opts
    })
    provider.closeEvents = []
    provider.on('connection-close', (ev) => {
      if (ev) provider.closeEvents.push({ code: ev.code, reason: String(ev.reason ?? '') })
    })
    provider.on('connection-error', () => {}) // avoid unhandled noise
    this.providers.push(provider)
    return provider
  }

  /** A raw `ws` client. */
  raw ({ app = DEFAULT_APP, doc, token, url } = {}) {
    const appId = typeof app === 'string' ? app : app.id
    const c = new RawClient(url ?? this.server.wsUrl(appId, doc, token))
    this.raws.push(c)
    return c
  }

  destroyAll () {
    for (const p of this.providers.splice(0)) {
      try { p.destroy() } catch {}
      try { p.doc.destroy() } catch {}
    }
    for (const r of this.raws.splice(0)) r.terminate()
  }
}

/** Waits until `provider` has completed the initial sync with the server. */
export function waitSynced (provider, what = 'provider synced') {
  if (provider.synced) return Promise.resolve()
  const closes = () => JSON.stringify(provider.closeEvents ?? [])
  return waitFor(() => provider.synced, `${what} (url ${provider.url.replace(/token=[^&]*/, 'token=…')})`, {
    describe: () => `wsconnected=${provider.wsconnected} close events=${closes()}`
  })
}

/** Encodes a y-protocols sync message. */
export function syncMessage (subtype, payload) {
  const enc = encoding.createEncoder()
  encoding.writeVarUint(enc, MSG_SYNC)
  encoding.writeVarUint(enc, subtype)
  encoding.writeVarUint8Array(enc, payload)
  return encoding.toUint8Array(enc)
}

export function step1Message (ydoc) {
  const enc = encoding.createEncoder()
  encoding.writeVarUint(enc, MSG_SYNC)
  syncProtocol.writeSyncStep1(enc, ydoc)
  return encoding.toUint8Array(enc)
}

export const updateMessage = (update) => syncMessage(SYNC_UPDATE, update)

export function awarenessMessage (awareness, clients) {
  const enc = encoding.createEncoder()
  encoding.writeVarUint(enc, MSG_AWARENESS)
  encoding.writeVarUint8Array(enc, awarenessProtocol.encodeAwarenessUpdate(awareness, clients))
  return encoding.toUint8Array(enc)
}

/** Parses a server → client frame into {type, subtype?, payload?} (best effort). */
export function parseMessage (buf) {
  const dec = decoding.createDecoder(buf)
  const type = decoding.readVarUint(dec)
  if (type === MSG_SYNC) {
    const subtype = decoding.readVarUint(dec)
    return { type, subtype, payload: decoding.readVarUint8Array(dec) }
  }
  if (type === MSG_AWARENESS) return { type, payload: decoding.readVarUint8Array(dec) }
  return { type }
}

export const MSG_CHORUS = 100
export const CHORUS_ERROR = 0

/**
 * Parses a Chorus extension message (type 100): {kind, code?, message?, n?, fields?, reason?,
 * action?, userId?, name?}
 * for the kinds the server sends; null if `buf` is not one.
 */
export function parseChorusMessage (buf) {
  if (typeof buf === 'string') return null
  try {
    const dec = decoding.createDecoder(buf)
    if (decoding.readVarUint(dec) !== MSG_CHORUS) return null
    const kind = decoding.readVarUint(dec)
    if (kind === CHORUS_ERROR) return { kind, code: decoding.readVarString(dec), message: decoding.readVarString(dec) }
    if (kind === 1) return { kind, n: decoding.readVarUint(dec) }
    if (kind === 2) {
      const fields = []
      for (let n = decoding.readVarUint(dec); n > 0; n--) fields.push(decoding.readVarString(dec))
      return { kind, fields }
    }
    if (kind === 3) return { kind, reason: decoding.readVarString(dec) }
    if (kind === 8) return { kind, closesInSecs: decoding.readVarUint(dec) }
    if (kind === 7) {
      const action = decoding.readVarString(dec)
      const userId = decoding.readVarString(dec)
      return { kind, action, userId, name: decoding.readVarString(dec) }
    }
    return { kind }
  } catch {
    return null
  }
}

export class RawClient {
  constructor (url) {
    this.url = url
    this.messages = [] // Uint8Array (binary) or string (text)
    this.error = null
    this.opened = false
    this.closeInfo = null
    this.ws = new WebSocket(url)
    this.ws.binaryType = 'nodebuffer'
    this._listeners = new Set()
    this.openPromise = new Promise((resolve) => {
      this.ws.once('open', () => { this.opened = true; resolve(true) })
      this.ws.once('close', () => resolve(false))
    })
    this.closed = new Promise((resolve) => {
      this.ws.once('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString('utf8') }
        resolve(this.closeInfo)
        this._notify()
      })
    })
    this.ws.on('error', (err) => { this.error = err })
    this.ws.on('message', (data, isBinary) => {
      this.messages.push(isBinary ? new Uint8Array(data) : data.toString('utf8'))
      this._notify()
    })
  }

  _notify () { for (const l of this._listeners) l() }

  describe () {
    return `opened=${this.opened} close=${JSON.stringify(this.closeInfo)} error=${this.error?.message ?? null} ` +
      `messages=${this.messages.length} [${this.messages.slice(0, 8).map((m) => typeof m === 'string' ? `text:${m.slice(0, 40)}` : `bin:${Buffer.from(m.slice(0, 12)).toString('hex')}`).join(', ')}]`
  }

  async waitOpen () {
    const ok = await withTimeout(this.openPromise, TIMEOUT, `websocket open ${this.url.replace(/token=[^&]*/, 'token=…')}`)
    if (!ok) throw new Error(`websocket did not open: ${this.describe()}`)
  }

  /** Waits for a message matching `pred(parsed, raw)`; returns the parsed message. */
  async waitMessage (pred, what) {
    return waitFor(() => {
      for (const m of this.messages) {
        if (typeof m === 'string') continue
        let parsed
        try { parsed = parseMessage(m) } catch { continue }
        if (pred(parsed, m)) return parsed
      }
      if (this.closeInfo) throw new Error(`socket closed: ${JSON.stringify(this.closeInfo)}`)
      return false
    }, what, { describe: () => this.describe() })
  }

  /**
   * Opens, sends a sync step 1 (as a stock client does) and waits for the
   * server's sync step 2 — proves the connection is authenticated and healthy.
   */
  async handshake () {
    await this.waitOpen()
    const probe = new Y.Doc()
    this.send(step1Message(probe))
    probe.destroy()
    await this.waitMessage((m) => m.type === MSG_SYNC && m.subtype === SYNC_STEP2, 'sync step 2 from server after our step 1')
  }

  send (data) { this.ws.send(data) }

  /** Resolves with {code, reason}; fails with a clear message after `timeout`. */
  waitClose (what = 'server to close the websocket', timeout = TIMEOUT) {
    return withTimeout(this.closed, timeout, `${what}; state: ${this.describe()}`)
  }

  /** A Y.Doc built from every sync step 2 / update the server sent (leak checks). */
  receivedDoc () {
    const d = new Y.Doc()
    for (const m of this.messages) {
      if (typeof m === 'string') continue
      try {
        const p = parseMessage(m)
        if (p.type === MSG_SYNC && (p.subtype === SYNC_STEP2 || p.subtype === SYNC_UPDATE)) Y.applyUpdate(d, p.payload)
      } catch {}
    }
    return d
  }

  terminate () {
    try { this.ws.terminate() } catch {}
  }
}

/** Asserts the raw client gets closed with `code`. */
export async function expectClose (client, code, label) {
  const info = await client.waitClose(`${label}: close with code ${code}`)
  assert.equal(info.code, code,
    `${label}: expected close code ${code}, got ${info.code} (reason ${JSON.stringify(info.reason)}; ` +
    `opened=${client.opened}; error=${client.error?.message ?? null})`)
  return info
}

/** Random id-ish string for secrets. */
export const randomSecret = () => randomBytes(24).toString('base64url')

/** Serialises a Y.XmlFragment / XmlElement tree to a plain structure for deep comparisons. */
export function xmlTree (node) {
  if (node instanceof Y.XmlText) return { text: node.toDelta() }
  if (node instanceof Y.XmlElement) {
    return { name: node.nodeName, attrs: node.getAttributes(), children: node.toArray().map(xmlTree) }
  }
  if (node instanceof Y.XmlFragment) return { children: node.toArray().map(xmlTree) }
  return { unknown: String(node) }
}
