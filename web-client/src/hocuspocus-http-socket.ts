/**
 * `ChorusHocuspocusHttpSocket`: the HTTP transport for `@hocuspocus/provider`,
 * through its `WebSocketPolyfill` option, so a TipTap app that keeps its
 * Hocuspocus provider also works where a proxy refuses websockets:
 *
 * ```js
 * new HocuspocusProvider({ url: 'wss://chorus.example/v1/hocuspocus/wiki', name: contentId,
 *   token, document: ydoc, WebSocketPolyfill: ChorusHocuspocusHttpSocket })
 * ```
 *
 * The provider speaks its own framing (every message behind the document's name,
 * its token in an `Auth` message); the server speaks it over HTTP too
 * (`framing=hocuspocus`, PROTOCOL.md "HTTP transport"). This class reports itself
 * open at once (the provider sends its `Auth` only then), takes the name and token
 * from that `Auth`, opens the HTTP session with them and passes every later
 * frame through unchanged, both ways; the server's first event is the provider's
 * `Authenticated`. A refused token reaches the provider as `PermissionDenied` with
 * the reason a websocket client would get, then a close with its code.
 */
import { ChorusHttpSocket, type HttpSocketOptions } from './http-socket'
import { SocketLike } from './socket-like'

/** Hocuspocus message types and auth subtypes used here. */
const MSG_AUTH = 2
const AUTH_TOKEN = 0
const AUTH_PERMISSION_DENIED = 1

/**
 * lib0's variable-length integers and strings, written out here so the class
 * depends on nothing (an app bundling it next to its own lib0 gets no second copy).
 */
class Reader {
  private at = 0
  constructor (private readonly bytes: Uint8Array) {}

  uint (): number {
    let value = 0
    let scale = 1
    for (;;) {
      if (this.at >= this.bytes.length) throw new RangeError('truncated varint')
      const byte = this.bytes[this.at++]
      value += (byte & 0x7f) * scale
      if (byte < 0x80) return value
      scale *= 128
      if (scale > 2 ** 53) throw new RangeError('varint out of range')
    }
  }

  string (): string {
    const length = this.uint()
    if (this.at + length > this.bytes.length) throw new RangeError('truncated string')
    const text = new TextDecoder('utf-8', { fatal: true }).decode(this.bytes.subarray(this.at, this.at + length))
    this.at += length
    return text
  }
}

function writeUint (out: number[], n: number): void {
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80)
    n = Math.floor(n / 128)
  }
  out.push(n)
}

function writeString (out: number[], text: string): void {
  const bytes = new TextEncoder().encode(text)
  writeUint(out, bytes.length)
  for (const b of bytes) out.push(b)
}

/** The document name and token of a Hocuspocus `Auth` frame, or null for any other frame. */
export function readHocuspocusAuth (frame: Uint8Array): { name: string, token: string } | null {
  try {
    const reader = new Reader(frame)
    const name = reader.string()
    if (reader.uint() !== MSG_AUTH) return null
    if (reader.uint() !== AUTH_TOKEN) return null
    return { name, token: reader.string() }
  } catch {
    return null
  }
}

function permissionDenied (name: string, reason: string): Uint8Array<ArrayBuffer> {
  const out: number[] = []
  writeString(out, name)
  writeUint(out, MSG_AUTH)
  writeUint(out, AUTH_PERMISSION_DENIED)
  writeString(out, reason)
  return Uint8Array.from(out)
}

export class ChorusHocuspocusHttpSocket extends SocketLike {
  readonly url: string
  readonly protocol = ''
  bufferedAmount = 0

  /** The HTTP session, once the provider's `Auth` named the document. */
  inner: ChorusHttpSocket | null = null
  /** `ws[s]://HOST/…/v1/ws/{app}`: where the document's URL starts. */
  private readonly wsApp: string
  private readonly options: HttpSocketOptions
  /** Frames the provider sent before the session was open, in order. */
  private pending: Uint8Array[] = []
  private closed = false

  constructor (url: string | URL, _protocols?: string | string[], options: HttpSocketOptions = {}) {
    super()
    this.url = String(url)
    const parsed = new URL(this.url)
    const match = /^(.*)\/v1\/hocuspocus\/([^/]+)\/?$/.exec(parsed.pathname)
    if (match === null) throw new SyntaxError(`not a Chorus Hocuspocus URL: ${this.url}`)
    const scheme = parsed.protocol === 'wss:' || parsed.protocol === 'https:' ? 'wss:' : 'ws:'
    this.wsApp = `${scheme}//${parsed.host}${match[1]}/v1/ws/${match[2]}`
    this.options = options
    setTimeout(() => {
      if (this.closed) return
      this.readyState = this.OPEN
      this.dispatch('open', new Event('open'))
    }, 0)
  }

  send (data: ArrayBufferLike | ArrayBufferView): void {
    if (this.readyState !== this.OPEN) return
    const bytes = ArrayBuffer.isView(data)
      ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice()
      : new Uint8Array((data as ArrayBuffer).slice(0))
    if (this.inner === null) {
      const auth = readHocuspocusAuth(bytes)
      if (auth === null) {
        this.pending.push(bytes)
        return
      }
      this.start(auth.name, auth.token)
      return
    }
    if (this.inner.readyState === this.inner.CONNECTING) this.pending.push(bytes)
    else this.inner.send(bytes)
  }

  close (code = 1000, reason = ''): void {
    if (this.closed) return
    this.inner?.close(code, reason)
    this.finish(code, reason)
  }

  private start (name: string, token: string): void {
    const inner = new ChorusHttpSocket(`${this.wsApp}/${encodeURIComponent(name)}`, [token], { ...this.options, framing: 'hocuspocus' })
    inner.binaryType = 'arraybuffer'
    this.inner = inner
    let opened = false
    inner.onopen = () => {
      opened = true
      const pending = this.pending
      this.pending = []
      for (const frame of pending) inner.send(frame)
    }
    inner.onmessage = (event: MessageEvent) => {
      if (this.closed) return
      const data = this.binaryType === 'blob' ? new Blob([event.data as ArrayBuffer]) : event.data
      this.dispatch('message', new MessageEvent('message', { data }))
    }
    inner.onclose = (event: { code: number, reason: string }) => {
      if (!opened && (event.code === 4401 || event.code === 4403)) {
        // The provider learns why as it would over a websocket.
        const denied = permissionDenied(name, event.reason === '' ? 'permission-denied' : event.reason)
        this.dispatch('message', new MessageEvent('message', { data: denied.buffer }))
      }
      this.finish(event.code, event.reason)
    }
  }

  private finish (code: number, reason: string): void {
    if (this.closed) return
    this.closed = true
    this.readyState = this.CLOSED
    this.dispatchClose(code, reason, code !== 1006)
  }
}
