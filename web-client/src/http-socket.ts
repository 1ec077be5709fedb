/**
 * `ChorusHttpSocket`: a WebSocket-compatible class over the Chorus HTTP transport
 * (`/v1/http/{app}/{content}`, proto/PROTOCOL.md "HTTP transport"), for networks
 * whose proxies refuse websocket upgrades.
 *
 * It takes the URL and protocols a websocket client would (`ws[s]://HOST/v1/ws/
 * {app}/{content}`, the token in `?token=` or offered as a subprotocol beside
 * `chorus.v1`), so `ChorusProvider` falls back to it by itself, and y-websocket's
 * `WebsocketProvider` takes it through its `WebSocketPolyfill` option:
 *
 * ```js
 * new WebsocketProvider(`${server}/v1/ws/${app}`, docId, ydoc,
 *   { params: { token }, WebSocketPolyfill: ChorusHttpSocket })
 * ```
 *
 * Underneath: one `POST` opens the session; the server's frames arrive as
 * server-sent events on a streamed `GET` (resumed from the last event id when it
 * drops, so nothing is lost or repeated); if no byte of a stream arrives within
 * `streamTimeoutMs` (a proxy holding streamed responses back), it long-polls
 * instead. Frames sent are queued and POSTed in order with sequence numbers, one
 * request at a time, retried until the server has them. A close from the server
 * (the stream's `close` event, or a refused POST) is a `close` event with the
 * websocket close code; a session the server no longer knows is a 1006 close,
 * after which a provider reconnects (a new session, synced from scratch).
 */

import { SocketLike } from './socket-like'

/** The reasons a client gives the server for being on HTTP (its metrics). */
export type FallbackReason = 'refused' | 'never-opened' | 'died-early' | 'configured'

export interface HttpSocketOptions {
  /** Give up on a stream whose first bytes take longer (ms) and long-poll. Default 4000. */
  streamTimeoutMs?: number
  /** `stream` (fall back to polling only when a stream stays silent), or `poll` from the start. */
  mode?: 'stream' | 'poll'
  /** Why this session is not a websocket (sent to the server for its metrics). */
  fallback?: FallbackReason
  /** The fetch to use (default: the global one). */
  fetch?: typeof fetch
  /** `hocuspocus`: frames in `@hocuspocus/provider`'s framing (see `ChorusHocuspocusHttpSocket`). */
  framing?: 'plain' | 'hocuspocus'
}

interface Opened {
  session: string
  heartbeatSecs: number
  sessionTimeoutSecs: number
  pollWaitSecs: number
  maxMessageSize: number
}

interface ServerEvent {
  event: string
  id: string | null
  data: string
}

const CHORUS_SUBPROTOCOL = 'chorus.v1'
const TOKEN_SUBPROTOCOL = 'chorus.token'

/** A stream once found held back stays polled, for every socket of this page. */
let streamsHeldBack = false

/** Whether streams were found held back by a proxy on this page (long-polling since). */
export function httpStreamsHeldBack (): boolean {
  return streamsHeldBack
}

/** The HTTP transport's base URL (`http[s]://HOST/v1/http/{app}/{content}`) of a websocket URL. */
export function httpTransportUrl (wsUrl: string): { base: string, token: string | null, chorus: boolean } {
  const url = new URL(wsUrl)
  const protocol = url.protocol === 'wss:' || url.protocol === 'https:' ? 'https:' : 'http:'
  const match = /^(.*)\/v1\/ws\/([^/]+)\/([^/]+)\/?$/.exec(url.pathname)
  if (match === null) throw new SyntaxError(`not a Chorus websocket URL: ${wsUrl}`)
  const [, prefix, app, content] = match
  return {
    base: `${protocol}//${url.host}${prefix}/v1/http/${app}/${content}`,
    token: url.searchParams.get('token'),
    chorus: url.searchParams.get('chorus') === '1'
  }
}

function encodeFrames (frames: Uint8Array[]): Uint8Array<ArrayBuffer> {
  let size = 0
  for (const f of frames) size += f.length + 10
  const out = new Uint8Array(size)
  let at = 0
  for (const f of frames) {
    let n = f.length
    while (n > 0x7f) {
      out[at++] = (n & 0x7f) | 0x80
      n = Math.floor(n / 128)
    }
    out[at++] = n
    out.set(f, at)
    at += f.length
  }
  return out.subarray(0, at)
}

function base64ToBytes (text: string): Uint8Array<ArrayBuffer> {
  const binary = atob(text)
  const out = new Uint8Array(binary.length)
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i)
  return out
}

function toBytes (data: ArrayBufferLike | ArrayBufferView | Blob | string): Uint8Array {
  if (typeof data === 'string') return new TextEncoder().encode(data)
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice()
  if (data instanceof ArrayBuffer) return new Uint8Array(data.slice(0))
  throw new TypeError('ChorusHttpSocket sends binary data only')
}

/** Reads server-sent events from text chunks (WHATWG event-stream parsing, the subset the server writes). */
class EventParser {
  private buffer = ''
  private event = ''
  private id: string | null = null
  private data: string[] = []

  push (chunk: string): ServerEvent[] {
    this.buffer += chunk
    const out: ServerEvent[] = []
    let newline: number
    while ((newline = this.buffer.indexOf('\n')) >= 0) {
      let line = this.buffer.slice(0, newline)
      this.buffer = this.buffer.slice(newline + 1)
      if (line.endsWith('\r')) line = line.slice(0, -1)
      if (line === '') {
        if (this.data.length > 0 || this.event !== '') {
          out.push({ event: this.event === '' ? 'message' : this.event, id: this.id, data: this.data.join('\n') })
        }
        this.event = ''
        this.id = null
        this.data = []
        continue
      }
      if (line.startsWith(':')) continue
      const colon = line.indexOf(':')
      const field = colon < 0 ? line : line.slice(0, colon)
      let value = colon < 0 ? '' : line.slice(colon + 1)
      if (value.startsWith(' ')) value = value.slice(1)
      if (field === 'event') this.event = value
      else if (field === 'data') this.data.push(value)
      else if (field === 'id') this.id = value
    }
    return out
  }
}

export class ChorusHttpSocket extends SocketLike {
  readonly url: string
  protocol = ''

  /** `stream` or `poll`: how frames from the server arrive now. */
  mode: 'stream' | 'poll'
  private readonly base: string
  private readonly token: string | null
  private readonly chorus: boolean
  private readonly fetchImpl: typeof fetch
  private readonly streamTimeoutMs: number
  private readonly fallback: FallbackReason | undefined
  private readonly framing: 'plain' | 'hocuspocus'
  private session: Opened | null = null
  /** The last event id received. */
  private lastId = 0
  /** Frames waiting to be POSTed, and the sequence number of the first. */
  private queue: Uint8Array[] = []
  private queueSeq = 0
  private posting = false
  private reader: AbortController | null = null
  private closed = false

  constructor (url: string | URL, protocols?: string | string[], options: HttpSocketOptions = {}) {
    super()
    this.url = String(url)
    const target = httpTransportUrl(this.url)
    const offered = protocols === undefined ? [] : Array.isArray(protocols) ? protocols : [protocols]
    this.base = target.base
    this.token = target.token ?? offered.find((p) => p.split('.').length === 3) ?? null
    this.chorus = target.chorus || offered.includes(CHORUS_SUBPROTOCOL)
    if (offered.includes(CHORUS_SUBPROTOCOL)) this.protocol = CHORUS_SUBPROTOCOL
    else if (offered.includes(TOKEN_SUBPROTOCOL)) this.protocol = TOKEN_SUBPROTOCOL
    this.fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis)
    this.streamTimeoutMs = options.streamTimeoutMs ?? 4000
    this.mode = options.mode ?? (streamsHeldBack ? 'poll' : 'stream')
    this.fallback = options.fallback
    this.framing = options.framing ?? 'plain'
    void this.open()
  }

  /** Bytes queued and not yet taken by the server. */
  get bufferedAmount (): number {
    let n = 0
    for (const f of this.queue) n += f.length
    return n
  }

  send (data: ArrayBufferLike | ArrayBufferView | Blob | string): void {
    if (this.readyState === this.CONNECTING) throw new DOMException('still connecting', 'InvalidStateError')
    if (this.readyState !== this.OPEN) return
    this.queue.push(toBytes(data as ArrayBufferLike))
    void this.flush()
  }

  close (code = 1000, reason = ''): void {
    if (this.readyState >= this.CLOSING) return
    const session = this.session
    if (session !== null) {
      // Leave at once rather than after the session times out; nobody waits for it.
      this.fetchImpl(`${this.base}/${session.session}`, { method: 'DELETE', keepalive: true }).catch(() => {})
    }
    this.finish(code, reason, true)
  }

  private async open (): Promise<void> {
    const query = new URLSearchParams()
    if (this.chorus) query.set('chorus', '1')
    if (this.fallback !== undefined) query.set('fallback', this.fallback)
    if (this.framing === 'hocuspocus') query.set('framing', 'hocuspocus')
    const headers: Record<string, string> = {}
    if (this.token !== null) headers.authorization = `Bearer ${this.token}`
    let response: Response
    try {
      response = await this.fetchImpl(`${this.base}${query.toString() !== '' ? `?${query}` : ''}`, { method: 'POST', headers })
    } catch {
      return this.fail()
    }
    if (this.closed) return
    if (response.status !== 201) return this.refused(response)
    this.session = await response.json() as Opened
    if (this.closed) return
    this.readyState = this.OPEN
    this.dispatch('open', new Event('open'))
    void this.read()
  }

  /** An answer that is not a success: its close code, or an abnormal close. */
  private async refused (response: Response): Promise<void> {
    let body: { code?: string, closeCode?: number } = {}
    try { body = await response.json() } catch {}
    if (typeof body.closeCode === 'number') return this.finish(body.closeCode, body.code ?? '', true)
    // Full (503), throttled (429), gone (404/410): a provider reconnects with back-off.
    this.fail(body.code ?? `http-${response.status}`)
  }

  private fail (reason = ''): void {
    if (this.readyState < this.CLOSING) this.dispatch('error', new Event('error'))
    this.finish(1006, reason, false)
  }

  private finish (code: number, reason: string, wasClean: boolean): void {
    if (this.closed) return
    this.closed = true
    this.readyState = this.CLOSED
    this.reader?.abort()
    this.queue = []
    this.dispatchClose(code, reason, wasClean)
  }

  private deliver (events: ServerEvent[]): boolean {
    for (const event of events) {
      if (this.closed) return false
      if (event.event === 'close') {
        let close: { code?: number, reason?: string } = {}
        try { close = JSON.parse(event.data) } catch {}
        this.finish(close.code ?? 1006, close.reason ?? '', true)
        return false
      }
      if (event.event !== 'message') continue
      if (event.id !== null) this.lastId = Number(event.id)
      const bytes = base64ToBytes(event.data)
      const data = this.binaryType === 'blob' ? new Blob([bytes]) : bytes.buffer
      this.dispatch('message', new MessageEvent('message', { data }))
    }
    return true
  }

  /** Read the server's events until the session is over: streaming, or polling. */
  private async read (): Promise<void> {
    let failures = 0
    let lastAnswer = Date.now()
    while (!this.closed && this.session !== null) {
      const outcome = this.mode === 'stream' ? await this.stream() : await this.poll()
      if (outcome === 'over') return
      if (outcome === 'held-back') {
        streamsHeldBack = true
        this.mode = 'poll'
        continue
      }
      if (outcome === 'ok') {
        failures = 0
        lastAnswer = Date.now()
        continue
      }
      // Unreachable for as long as the server keeps a session nobody reads: it is
      // gone, and a new one (a new connection) is the way back.
      const session = this.session
      if (session === null || Date.now() - lastAnswer > session.sessionTimeoutSecs * 1000) return this.fail('stream-lost')
      failures++
      await new Promise((resolve) => setTimeout(resolve, Math.min(250 * failures, 2000)))
    }
  }

  private streamUrl (poll: boolean): string {
    const session = this.session as Opened
    return `${this.base}/${session.session}?after=${this.lastId}${poll ? '&poll=1' : ''}`
  }

  /** What a failed stream or poll answer means: over (the session is gone), or retry. */
  private async badAnswer (response: Response): Promise<'over' | 'retry'> {
    if (response.status === 404 || response.status === 410) {
      let body: { code?: string } = {}
      try { body = await response.json() } catch {}
      this.fail(body.code ?? 'unknown-session')
      return 'over'
    }
    return 'retry'
  }

  private async stream (): Promise<'ok' | 'retry' | 'over' | 'held-back'> {
    const session = this.session as Opened
    const abort = new AbortController()
    this.reader = abort
    let heardAnything = false
    let silence: ReturnType<typeof setTimeout> | null = null
    let heldBack = false
    // No byte at all in time: a proxy holds the stream back. Then silence longer
    // than two heartbeats: the stream is dead without having ended.
    const watch = (ms: number, why: () => void): void => {
      if (silence !== null) clearTimeout(silence)
      silence = setTimeout(() => { why(); abort.abort() }, ms)
    }
    watch(this.streamTimeoutMs, () => { heldBack = true })
    try {
      const response = await this.fetchImpl(this.streamUrl(false), { signal: abort.signal, headers: { accept: 'text/event-stream' }, cache: 'no-store' })
      if (!response.ok) return await this.badAnswer(response)
      if (response.body === null) return 'retry'
      const parser = new EventParser()
      const decoder = new TextDecoder()
      const reader = response.body.getReader()
      for (;;) {
        const { value, done } = await reader.read()
        if (done) return 'ok'
        if (!heardAnything) heardAnything = true
        watch(session.heartbeatSecs * 2000 + 5000, () => {})
        if (!this.deliver(parser.push(decoder.decode(value, { stream: true })))) return 'over'
      }
    } catch {
      if (this.closed) return 'over'
      return heldBack && !heardAnything ? 'held-back' : 'retry'
    } finally {
      if (silence !== null) clearTimeout(silence)
    }
  }

  private async poll (): Promise<'ok' | 'retry' | 'over'> {
    const session = this.session as Opened
    const abort = new AbortController()
    this.reader = abort
    const timer = setTimeout(() => abort.abort(), (session.pollWaitSecs + 15) * 1000)
    try {
      const response = await this.fetchImpl(this.streamUrl(true), { signal: abort.signal, cache: 'no-store' })
      if (!response.ok) return await this.badAnswer(response)
      const text = await response.text()
      return this.deliver(new EventParser().push(text)) ? 'ok' : 'over'
    } catch {
      return this.closed ? 'over' : 'retry'
    } finally {
      clearTimeout(timer)
    }
  }

  /** POST what is queued, in order, one request at a time, until the queue is empty. */
  private async flush (): Promise<void> {
    if (this.posting) return
    this.posting = true
    let failures = 0
    let lastAnswer = Date.now()
    try {
      while (!this.closed && this.queue.length > 0 && this.session !== null) {
        const session = this.session
        const batch: Uint8Array[] = []
        let bytes = 0
        for (const frame of this.queue) {
          if (batch.length > 0 && bytes + frame.length > session.maxMessageSize) break
          batch.push(frame)
          bytes += frame.length
        }
        let response: Response
        try {
          response = await this.fetchImpl(`${this.base}/${session.session}?seq=${this.queueSeq}&ack=${this.lastId}`, {
            method: 'POST',
            headers: { 'content-type': 'application/octet-stream' },
            body: encodeFrames(batch)
          })
        } catch {
          // Nothing known about what arrived: the same frames again, the same numbers.
          failures++
          if (Date.now() - lastAnswer > session.sessionTimeoutSecs * 1000) return this.fail('post-lost')
          await new Promise((resolve) => setTimeout(resolve, Math.min(250 * failures, 2000)))
          continue
        }
        if (this.closed) return
        lastAnswer = Date.now()
        let body: { next?: number, expected?: number, code?: string, closeCode?: number } = {}
        try { body = await response.json() } catch {}
        if (response.ok || response.status === 409) {
          failures = 0
          const next = response.ok ? body.next : body.expected
          if (typeof next !== 'number' || next < this.queueSeq) return this.fail('bad-answer')
          const taken = Math.min(next - this.queueSeq, this.queue.length)
          this.queue.splice(0, taken)
          this.queueSeq += taken
          continue
        }
        if (typeof body.closeCode === 'number') return this.finish(body.closeCode, body.code ?? '', true)
        if (response.status === 503 || response.status === 429) {
          await new Promise((resolve) => setTimeout(resolve, 500))
          continue
        }
        return this.fail(body.code ?? `http-${response.status}`)
      }
    } finally {
      this.posting = false
    }
  }
}
