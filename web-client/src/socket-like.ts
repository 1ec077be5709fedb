/**
 * What the HTTP transport's WebSocket-compatible classes share: the ready-state
 * constants (on the class and its instances, as on `WebSocket`), the `on…`
 * handler properties beside `addEventListener` (providers use either), and
 * dispatching an event to both, a throwing handler rethrown on its own tick.
 */
type Listener = (event: any) => void

export abstract class SocketLike extends EventTarget {
  static readonly CONNECTING = 0
  static readonly OPEN = 1
  static readonly CLOSING = 2
  static readonly CLOSED = 3
  readonly CONNECTING = 0
  readonly OPEN = 1
  readonly CLOSING = 2
  readonly CLOSED = 3

  readyState = 0
  binaryType: 'arraybuffer' | 'blob' = 'arraybuffer'
  readonly extensions = ''
  onopen: Listener | null = null
  onmessage: Listener | null = null
  onclose: Listener | null = null
  onerror: Listener | null = null

  protected dispatch (type: 'open' | 'message' | 'close' | 'error', event: Event): void {
    const handler = this[`on${type}`]
    if (handler !== null) {
      try { handler.call(this, event) } catch (err) { setTimeout(() => { throw err }, 0) }
    }
    this.dispatchEvent(event)
  }

  /** A `close` event, asynchronously, as a websocket's. */
  protected dispatchClose (code: number, reason: string, wasClean: boolean): void {
    setTimeout(() => this.dispatch('close', Object.assign(new Event('close'), { code, reason, wasClean })), 0)
  }
}
