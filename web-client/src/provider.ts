/**
 * `ChorusProvider`: keeps a Y.Doc in sync with a Chorus server.
 *
 * Standard y-protocols sync and awareness (encoded with `y-protocols`), plus the
 * Chorus extension messages (type 100, opted in with the `chorus.v1` subprotocol):
 * saved acks, errors, external-change notices, read-only / holder / editable. The
 * token travels as a subprotocol, never in the URL (where proxies log it).
 * Reconnects with exponential backoff and full jitter, reset only after a healthy
 * stretch; retries once at once after a 4401 with a fresh token; stops on 4403 and
 * 1008 (see `onClose`). Asks the host for a fresh token on every connect and shortly
 * before the current one expires, judging expiry on the host's clock as the
 * tokens themselves tell it (`iat` against their arrival), so a client clock that
 * is off by any amount neither refuses fresh tokens nor keeps stale ones.
 * Edits survive a reload while offline through y-indexeddb. Where a proxy refuses
 * websockets it falls back to the HTTP transport (`ChorusHttpSocket`) by itself and
 * moves back when a websocket works again (`transport`). See proto/PROTOCOL.md.
 */
import * as Y from 'yjs'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import * as syncProtocol from 'y-protocols/sync'
import * as awarenessProtocol from 'y-protocols/awareness'
import { IndexeddbPersistence } from 'y-indexeddb'
import { Emitter } from './emitter'
import { ChorusHttpSocket, type FallbackReason } from './http-socket'

export const MSG_SYNC = 0
export const MSG_AWARENESS = 1
export const MSG_AUTH = 2
export const MSG_QUERY_AWARENESS = 3
export const MSG_CHORUS = 100

export const CHORUS_ERROR = 0
export const CHORUS_SAVED = 1
export const CHORUS_EXTERNAL_CHANGE = 2
export const CHORUS_READ_ONLY = 3
export const CHORUS_REFRESH_TOKEN = 4
export const CHORUS_HOLDER = 5
export const CHORUS_EDITABLE = 6
export const CHORUS_HOST_ACTION = 7
export const CHORUS_IDLE_WARNING = 8

/**
 * The claims of a JWT, read without verifying it (the server verifies; the client
 * only needs to know when to ask for a new one and whose it is), or null if the
 * token does not decode.
 */
function unverifiedClaims (token: string): Record<string, unknown> | null {
  const part = token.split('.')[1]
  if (part === undefined || typeof atob !== 'function') return null
  try {
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/')
    const claims: unknown = JSON.parse(atob(b64 + '='.repeat((4 - b64.length % 4) % 4)))
    return claims !== null && typeof claims === 'object' && !Array.isArray(claims) ? claims as Record<string, unknown> : null
  } catch {
    return null
  }
}

const finite = (v: unknown): number | null => typeof v === 'number' && Number.isFinite(v) ? v : null
const text = (v: unknown): string | null => typeof v === 'string' ? v : null

/** The `exp` claim (unix seconds) of a JWT, or null if the token has none or does not decode. */
export function tokenExpiry (token: string): number | null {
  return finite(unverifiedClaims(token)?.exp)
}

/** The `exp` and `iat` claims (unix seconds) of a JWT, read without verifying it. */
export function tokenTimes (token: string): { exp: number | null, iat: number | null } {
  const claims = unverifiedClaims(token)
  return { exp: finite(claims?.exp), iat: finite(claims?.iat) }
}

/** The `sub` and `mode` claims of a JWT, read without verifying it. */
export function tokenClaims (token: string): { sub: string | null, mode: string | null } {
  const claims = unverifiedClaims(token)
  return { sub: text(claims?.sub), mode: text(claims?.mode) }
}

/** The IndexedDB name of one user's offline copy of one document. */
export function offlineKey (app: string, user: string, doc: string): string {
  return `chorus:${encodeURIComponent(app)}:${encodeURIComponent(user)}:${doc}`
}

/**
 * Delete the offline copies this origin keeps (every IndexedDB database named
 * `chorus:…`), or only those of one app, or of one user of one app: what a host
 * calls at logout on a shared computer. Resolves to the names deleted. Open
 * providers should be destroyed first (a database in use is deleted once they
 * close it).
 */
export async function clearOfflineData ({ app, user }: { app?: string, user?: string } = {}): Promise<string[]> {
  if (typeof indexedDB === 'undefined' || typeof indexedDB.databases !== 'function') return []
  const prefix = app === undefined
    ? 'chorus:'
    : user === undefined ? `chorus:${encodeURIComponent(app)}:` : `chorus:${encodeURIComponent(app)}:${encodeURIComponent(user)}:`
  const names = (await indexedDB.databases()).map((d) => d.name ?? '').filter((n) => n.startsWith(prefix))
  await Promise.all(names.map((name) => new Promise<void>((resolve, reject) => {
    const req = indexedDB.deleteDatabase(name)
    req.onsuccess = () => resolve()
    req.onerror = () => reject(req.error)
    req.onblocked = () => resolve()
  })))
  return names
}

/** A token this close to its expiry (ms) counts as expired: it could lapse on the way. */
const EXPIRY_SKEW_MS = 1000

/** A connection that stayed open and synced this long resets the back-off (ms). */
const HEALTHY_MS = 30_000

/** The subprotocol that opts into Chorus extension messages. */
export const CHORUS_SUBPROTOCOL = 'chorus.v1'

export type ConnectionStatus = 'connecting' | 'connected' | 'disconnected' | 'forbidden'

/** How a provider reaches the server now. */
export type Transport = 'websocket' | 'http'

export interface StatusEvent {
  status: ConnectionStatus
  /** The transport of the connection this is about. */
  transport?: Transport
  /** Close code and reason of the connection that ended (disconnected / forbidden). */
  code?: number
  reason?: string
}

export interface ChorusError { code: string, message: string }
export interface Holder { userId: string, name: string }

export interface ChorusEvents extends Record<string, unknown> {
  status: StatusEvent
  /** The first sync with the server of this connection is complete. */
  synced: boolean
  /** Every local update sent so far is durable on the server. */
  saved: { n: number }
  /** A host change reached the document (and once after the initial content loaded). */
  'external-change': { fields: string[], initial: boolean }
  /**
   * The server refused this copy's content (1008 `content-rejected`): its offline
   * copy is cleared and the provider stops. Load the document again (a new Y.Doc
   * and provider, or a page reload) to continue from the server's copy.
   */
  'reload-required': { code: number, reason: string }
  /**
   * The host deleted the document (4404 `document-deleted`): the provider stops and
   * this copy's offline data is cleared (a reload would otherwise write the deleted
   * content into the new, empty draft). The app should leave the editor.
   */
  deleted: { code: number, reason: string }
  /**
   * The draft was evicted for disuse (4410 `document-evicted`): the host has its
   * content and must write it again before it opens. The provider stops and clears
   * its offline copy; load the editor again once the host has.
   */
  evicted: { code: number, reason: string }
  /** Connected, synced and saved: the host may publish what the user sees. */
  'can-publish': boolean
  'read-only': { reason: string }
  holder: Holder
  editable: undefined
  /**
   * The host did something to the draft and credits who (plain text, never HTML):
   * `published`, `discarded` (the unpublished changes; the content change itself
   * arrives as `external-change`) or `restored`. `userId` and `name` are empty when
   * the host did not say. Show it as "Ann published".
   */
  'host-action': { action: string, userId: string, name: string }
  /**
   * No input from this session for a while (the app's `idle_warning_secs`): the
   * server closes it in `closesInSecs` unless the user types or moves the cursor.
   */
  'idle-warning': { closesInSecs: number }
  /**
   * The server closed the idle session (4408 `idle-timeout`). The provider stays
   * disconnected until the next local change (an edit, a cursor move) or `connect()`,
   * and then reconnects by itself; what was typed meanwhile is sent then.
   */
  idle: { code: number, reason: string }
  error: ChorusError
  /** The provider moved to another transport: `http` after a fallback (and why), `websocket` after an upgrade back. */
  transport: { transport: Transport, reason: FallbackReason | 'upgraded' }
}

export interface BackoffOptions {
  /** First delay ceiling (ms). */
  baseMs: number
  /** Largest delay ceiling (ms). */
  capMs: number
}

export interface ChorusProviderOptions {
  /** Server origin: `https://chorus.example` or `ws://127.0.0.1:10123`. */
  server: string
  app: string
  doc: string
  /**
   * Called before every connect (and after a 4401 close), and shortly before the
   * current token expires: a fresh session token. A token that is already expired
   * (its `exp`, read without verifying) is never sent: getToken is asked again.
   */
  getToken: () => Promise<string>
  /** Local presence fields (the server overwrites `user` from the token). */
  user?: Record<string, unknown>
  /**
   * Keep the document in IndexedDB so offline edits survive a reload (default: yes
   * for an edit session, no for a view session, which has no edits to keep). The
   * copy belongs to one user: it is opened only once the first token says who
   * (its `sub`), under `chorus:{app}:{user}:{doc}`, so whoever signs in next on a
   * shared computer neither sees it nor sends it. See `clearOfflineData`.
   */
  offline?: boolean
  /** IndexedDB database name (default `chorus:{app}:{user}:{doc}`, user = the token's `sub`). */
  offlineKey?: string
  backoff?: Partial<BackoffOptions>
  /** A connection open and synced this long resets the back-off (ms; default 30 s). */
  healthyMs?: number
  /**
   * The session is view-only (a view-mode token): never send document updates,
   * not even before the server's read-only notice arrives.
   */
  readOnly?: boolean
  /** Connect at once (default true). */
  connect?: boolean
  /**
   * How to connect. `auto` (default): a websocket first; when its upgrade is
   * refused (an abnormal close before it opened), it does not open within
   * `fallbackAfterMs`, or it dies before its first message, the HTTP transport,
   * without losing anything (the Y.Doc holds every edit; the new connection's sync
   * sends what the server lacks); while on HTTP, a websocket is tried every
   * `upgradeEveryMs` and the provider moves back to the first that works.
   * `websocket` or `http`: only that one.
   */
  transport?: 'auto' | Transport
  /** `auto`: a websocket that has not opened and spoken within this long is given up (ms; default 5000). */
  fallbackAfterMs?: number
  /** `auto`, on HTTP: try a websocket again this often (ms; default 60 s). */
  upgradeEveryMs?: number
  /** For tests: the random source of the jitter, and the WebSocket and HTTP socket classes. */
  random?: () => number
  WebSocketImpl?: typeof WebSocket
  HttpSocketImpl?: typeof ChorusHttpSocket
}

/** Full jitter: a delay uniformly drawn from [0, min(cap, base·2^attempt)). */
export function backoffDelay (attempt: number, { baseMs, capMs }: BackoffOptions, random: () => number = Math.random): number {
  const ceiling = Math.min(capMs, baseMs * Math.pow(2, Math.min(attempt, 30)))
  return Math.floor(random() * ceiling)
}

/** Decodes one Chorus extension message body (after the outer type 100). */
export type ChorusMessage =
  | { kind: 'error', code: string, message: string }
  | { kind: 'saved', n: number }
  | { kind: 'external-change', fields: string[] }
  | { kind: 'read-only', reason: string }
  | { kind: 'holder', userId: string, name: string }
  | { kind: 'editable' }
  | { kind: 'host-action', action: string, userId: string, name: string }
  | { kind: 'idle-warning', closesInSecs: number }
  | { kind: 'unknown', value: number }

export function readChorusMessage (decoder: decoding.Decoder): ChorusMessage {
  const kind = decoding.readVarUint(decoder)
  switch (kind) {
    case CHORUS_ERROR: {
      const code = decoding.readVarString(decoder)
      return { kind: 'error', code, message: decoding.readVarString(decoder) }
    }
    case CHORUS_SAVED:
      return { kind: 'saved', n: decoding.readVarUint(decoder) }
    case CHORUS_EXTERNAL_CHANGE: {
      const count = decoding.readVarUint(decoder)
      const fields: string[] = []
      for (let i = 0; i < count; i++) fields.push(decoding.readVarString(decoder))
      return { kind: 'external-change', fields }
    }
    case CHORUS_READ_ONLY:
      return { kind: 'read-only', reason: decoding.readVarString(decoder) }
    case CHORUS_HOLDER: {
      const userId = decoding.readVarString(decoder)
      return { kind: 'holder', userId, name: decoding.readVarString(decoder) }
    }
    case CHORUS_EDITABLE:
      return { kind: 'editable' }
    case CHORUS_IDLE_WARNING:
      return { kind: 'idle-warning', closesInSecs: decoding.readVarUint(decoder) }
    case CHORUS_HOST_ACTION: {
      const action = decoding.readVarString(decoder)
      const userId = decoding.readVarString(decoder)
      return { kind: 'host-action', action, userId, name: decoding.readVarString(decoder) }
    }
    default:
      // An opted-in client must ignore kinds it does not know.
      return { kind: 'unknown', value: kind }
  }
}

/** Largest integer a JavaScript number holds exactly. */
const MAX_ID = Number.MAX_SAFE_INTEGER

function isId (v: unknown): boolean {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false
  const o = v as Record<string, unknown>
  return Object.keys(o).length === 2 &&
    Number.isInteger(o.client) && (o.client as number) >= 0 && (o.client as number) <= MAX_ID &&
    Number.isInteger(o.clock) && (o.clock as number) >= 0 && (o.clock as number) <= 0xffffffff
}

/** A relative position as `Y.relativePositionToJSON` writes it. */
function isRelativePosition (v: unknown): boolean {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false
  return Object.entries(v as Record<string, unknown>).every(([k, x]) => {
    switch (k) {
      case 'type': case 'item': return x === null || x === undefined || isId(x)
      case 'tname': return x === null || x === undefined || (typeof x === 'string' && x.length <= 256)
      case 'assoc': return x === null || x === undefined || Number.isInteger(x)
      default: return false
    }
  })
}

/** `null`, or `{anchor, head}` of relative positions (what y-prosemirror and TipTap draw). */
export function isPresenceCursor (v: unknown): boolean {
  if (v === null) return true
  if (typeof v !== 'object' || Array.isArray(v)) return false
  const o = v as Record<string, unknown>
  return Object.keys(o).length === 2 && isRelativePosition(o.anchor) && isRelativePosition(o.head)
}

/**
 * A peer's presence as this client applies it: an awareness update (y-protocols
 * encoding) re-encoded with every state made safe for the editors that draw it.
 * A state that is not a JSON object (or `null`, a removal) is dropped; a `cursor`
 * that is not `null` or `{anchor, head}` of relative positions becomes `null`
 * (y-prosemirror's cursor plugin throws on `{}`); a `user` that is not an object
 * becomes `{}` and its `color` is kept only as `#rgb`/`#rrggbb`, its `name` only as
 * a string. The Chorus server already relays only such states (PROTOCOL.md,
 * "Awareness"); this keeps a client safe behind any server.
 */
export function sanitizePresenceUpdate (update: Uint8Array): Uint8Array {
  const decoder = decoding.createDecoder(update)
  const count = decoding.readVarUint(decoder)
  const kept: Array<[number, number, string]> = []
  for (let i = 0; i < count; i++) {
    const client = decoding.readVarUint(decoder)
    const clock = decoding.readVarUint(decoder)
    const json = decoding.readVarString(decoder)
    let state: unknown
    try {
      state = JSON.parse(json)
    } catch {
      continue
    }
    if (state === null) {
      kept.push([client, clock, 'null'])
      continue
    }
    if (typeof state !== 'object' || Array.isArray(state)) continue
    const safe = state as Record<string, unknown>
    if ('cursor' in safe && !isPresenceCursor(safe.cursor)) safe.cursor = null
    if ('user' in safe) {
      const user = safe.user
      if (user === null || typeof user !== 'object' || Array.isArray(user)) {
        safe.user = {}
      } else {
        const u = user as Record<string, unknown>
        if ('color' in u && !(typeof u.color === 'string' && /^#(?:[0-9a-fA-F]{3}){1,2}$/.test(u.color))) delete u.color
        if ('name' in u && typeof u.name !== 'string') delete u.name
      }
    }
    kept.push([client, clock, JSON.stringify(safe)])
  }
  const encoder = encoding.createEncoder()
  encoding.writeVarUint(encoder, kept.length)
  for (const [client, clock, json] of kept) {
    encoding.writeVarUint(encoder, client)
    encoding.writeVarUint(encoder, clock)
    encoding.writeVarString(encoder, json)
  }
  return encoding.toUint8Array(encoder)
}

/** The websocket base of `server`, its path prefix kept (`https://h/collab` → `wss://h/collab`). */
export function wsBase (server: string): string {
  const url = new URL(server)
  const scheme = url.protocol === 'https:' || url.protocol === 'wss:' ? 'wss:' : 'ws:'
  return `${scheme}//${url.host}${url.pathname.replace(/\/+$/, '')}`
}

export class ChorusProvider extends Emitter<ChorusEvents> {
  readonly doc: Y.Doc
  readonly awareness: awarenessProtocol.Awareness
  readonly app: string
  readonly docId: string
  persistence: IndexeddbPersistence | null

  /** Current connection state. */
  status: ConnectionStatus = 'disconnected'
  /** The first sync of the current connection is done. */
  synced = false
  /** Sync step 2 + update messages sent on the current connection (what "saved n" counts). */
  sentCount = 0
  /** Highest "saved n" of the current connection. */
  savedCount = 0
  /** The server says this session may not edit (view mode, downgraded, held). */
  readOnly = false
  readOnlyReason: string | null = null
  holder: Holder | null = null

  private readonly options: ChorusProviderOptions
  private readonly backoff: BackoffOptions
  private readonly random: () => number
  private readonly WS: typeof WebSocket
  private readonly HttpWS: typeof ChorusHttpSocket
  private ws: WebSocket | null = null
  /** The transport connections use now (`auto` starts on the websocket). */
  transport: Transport
  /** Falls back to HTTP, and tries the websocket again, by itself. */
  private readonly autoTransport: boolean
  private readonly fallbackAfterMs: number
  private readonly upgradeEveryMs: number
  /** Why the provider is on HTTP (sent to the server for its metrics). */
  private fallbackReason: FallbackReason = 'configured'
  private fallbackTimer: ReturnType<typeof setTimeout> | null = null
  private upgradeTimer: ReturnType<typeof setTimeout> | null = null
  private probe: WebSocket | null = null
  /** Moves to HTTP, and back to a websocket (for tests and logs). */
  fallbacks = 0
  upgrades = 0
  /** Failed connections since the last healthy one (the back-off exponent). */
  private attempt = 0
  /** The one immediate retry after a 4401 was used (since the last healthy connection). */
  private authRetried = false
  private healthyTimer: ReturnType<typeof setTimeout> | null = null
  private readonly healthyMs: number
  /** Connections opened (for tests and logs: what a retry policy costs the server). */
  connectionAttempts = 0
  /** The host's clock minus this client's (ms), from the tokens' `iat`; see `offsetOf`. */
  clockOffset: number | null = null
  private retryTimer: ReturnType<typeof setTimeout> | null = null
  private wanted = false
  /** Closed for idleness (4408 `idle-timeout`): the next local change reconnects. */
  private idled = false
  private destroyed = false
  /** We answered the server's step 1 on this connection: updates may flow. */
  private answeredStep1 = false
  private initialExternalFired = false
  private lastCanPublish = false
  /** The user whose offline copy is open (the first token's `sub`). */
  private offlineUser: string | null = null
  /** Fires shortly before the token of the current connection expires. */
  private refreshTimer: ReturnType<typeof setTimeout> | null = null
  /** Tokens handed out by getToken that were expired on arrival (for tests and logs). */
  expiredTokensRefused = 0
  /** Peers' presence updates that did not read or whose listeners threw (for tests and logs). */
  presenceErrors = 0

  constructor (doc: Y.Doc, options: ChorusProviderOptions) {
    super()
    this.doc = doc
    this.options = options
    this.app = options.app
    this.docId = options.doc
    this.backoff = { baseMs: options.backoff?.baseMs ?? 500, capMs: options.backoff?.capMs ?? 30_000 }
    this.random = options.random ?? Math.random
    this.healthyMs = options.healthyMs ?? HEALTHY_MS
    this.WS = options.WebSocketImpl ?? WebSocket
    this.HttpWS = options.HttpSocketImpl ?? ChorusHttpSocket
    this.autoTransport = (options.transport ?? 'auto') === 'auto'
    this.transport = options.transport === 'http' ? 'http' : 'websocket'
    this.fallbackAfterMs = options.fallbackAfterMs ?? 5000
    this.upgradeEveryMs = options.upgradeEveryMs ?? 60_000
    this.awareness = new awarenessProtocol.Awareness(doc)
    this.readOnly = options.readOnly === true
    this.awareness.setLocalState({ user: { ...(options.user ?? {}) }, cursor: null })

    this.persistence = null

    doc.on('update', this.onDocUpdate)
    this.awareness.on('update', this.onAwarenessUpdate)
    this.awareness.on('change', this.onAwarenessChange)
    if (typeof window !== 'undefined') {
      window.addEventListener('beforeunload', this.onUnload)
      window.addEventListener('online', this.onOnline)
    }
    if (options.connect !== false) this.connect()
  }

  /** Every local update sent on this connection is durable. */
  get saved (): boolean {
    return this.status === 'connected' && this.synced && this.savedCount >= this.sentCount
  }

  /** Connected, synced and saved. */
  get canPublish (): boolean {
    return this.saved
  }

  connect (): void {
    if (this.destroyed) return
    this.idled = false
    this.wanted = true
    if (this.ws !== null || this.retryTimer !== null) return
    void this.open()
  }

  disconnect (): void {
    this.wanted = false
    if (this.retryTimer !== null) {
      clearTimeout(this.retryTimer)
      this.retryTimer = null
    }
    this.clearRefresh()
    this.clearHealthy()
    this.clearTransportTimers()
    this.ws?.close(1000, 'client-disconnect')
  }

  destroy (): void {
    this.disconnect()
    this.destroyed = true
    this.doc.off('update', this.onDocUpdate)
    this.awareness.off('update', this.onAwarenessUpdate)
    this.awareness.off('change', this.onAwarenessChange)
    awarenessProtocol.removeAwarenessStates(this.awareness, [this.doc.clientID], 'destroy')
    this.awareness.destroy()
    if (typeof window !== 'undefined') {
      window.removeEventListener('beforeunload', this.onUnload)
      window.removeEventListener('online', this.onOnline)
    }
    void this.persistence?.destroy()
  }

  private setStatus (event: StatusEvent): void {
    this.status = event.status
    this.emit('status', { ...event, transport: this.transport })
    this.updateCanPublish()
  }

  private updateCanPublish (): void {
    const now = this.canPublish
    if (now !== this.lastCanPublish) {
      this.lastCanPublish = now
      this.emit('can-publish', now)
    }
  }

  /**
   * When (this client's ms) `token` expires: its `exp` on the host's clock, moved
   * onto this client's clock by `clockOffset`; null without `exp`.
   */
  private expiresAt (token: string): number | null {
    const { exp } = tokenTimes(token)
    return exp === null ? null : exp * 1000 - (this.clockOffset ?? 0)
  }

  /** Is `token` expired (or about to)? */
  private isExpired (token: string): boolean {
    const expiry = this.expiresAt(token)
    return expiry !== null && expiry <= Date.now() + EXPIRY_SKEW_MS
  }

  /**
   * The host's clock against this client's, as a token tells it: a fresh token's
   * `iat` is the host's "now" when it arrives. The largest such offset seen is the
   * best estimate (a token that waited in a cache only makes it smaller), so a
   * stale token cannot hide behind a clock that is off.
   */
  private offsetOf (token: string, arrivedAt: number): number | null {
    const { iat } = tokenTimes(token)
    return iat === null ? null : iat * 1000 - arrivedAt
  }

  /**
   * A token from getToken that is not expired: a host that caches tokens may hand
   * back a stale one once, so an expired answer is refused and getToken asked again
   * (three times at most). Three expired answers in a row mean the host's clock
   * moved (or this estimate is wrong): the last token's own clock is believed and
   * it is sent; the server judges it.
   */
  private async freshToken (): Promise<string> {
    let token = ''
    for (let i = 0; i < 3; i++) {
      token = await this.options.getToken()
      const offset = this.offsetOf(token, Date.now())
      if (offset !== null && (this.clockOffset === null || offset > this.clockOffset)) this.clockOffset = offset
      if (!this.isExpired(token)) return token
      this.expiredTokensRefused++
    }
    this.clockOffset = this.offsetOf(token, Date.now())
    return token
  }

  private clearHealthy (): void {
    if (this.healthyTimer !== null) {
      clearTimeout(this.healthyTimer)
      this.healthyTimer = null
    }
  }

  private clearRefresh (): void {
    if (this.refreshTimer !== null) {
      clearTimeout(this.refreshTimer)
      this.refreshTimer = null
    }
  }

  /**
   * Shortly before `token` expires (a tenth of its remaining life, 1–60 s ahead),
   * asks getToken for a new one and offers it to the server (`refresh-token`; the
   * server does not act on it yet, see proto/PROTOCOL.md). The connection itself
   * stays up: the server checks tokens when a connection opens.
   */
  private scheduleRefresh (ws: WebSocket, token: string): void {
    this.clearRefresh()
    const expiry = this.expiresAt(token)
    if (expiry === null) return
    const left = expiry - Date.now()
    const ahead = Math.min(60_000, Math.max(1000, left / 10))
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = null
      if (this.ws !== ws) return
      this.freshToken().then((next) => {
        if (this.ws !== ws) return
        const encoder = encoding.createEncoder()
        encoding.writeVarUint(encoder, MSG_CHORUS)
        encoding.writeVarUint(encoder, CHORUS_REFRESH_TOKEN)
        encoding.writeVarString(encoder, next)
        this.send(encoding.toUint8Array(encoder))
        this.scheduleRefresh(ws, next)
      }, (err) => { console.warn('chorus: token refresh failed', err) })
    }, Math.min(2 ** 31 - 1, Math.max(0, left - ahead)))
  }

  private async open (): Promise<void> {
    this.setStatus({ status: 'connecting' })
    let token: string
    try {
      token = await this.freshToken()
      await this.openOfflineCopy(token)
    } catch (err) {
      console.warn('chorus: getToken failed', err)
      this.scheduleReconnect()
      return
    }
    if (!this.wanted || this.destroyed) {
      this.setStatus({ status: 'disconnected' })
      return
    }
    const url = this.socketUrl()
    // The token as its own subprotocol value, beside `chorus.v1`: never in the URL,
    // which proxies, ingresses and APM tools log.
    const overHttp = this.transport === 'http'
    const ws = overHttp
      ? new this.HttpWS(url, [CHORUS_SUBPROTOCOL, token], { fallback: this.fallbackReason }) as unknown as WebSocket
      : new this.WS(url, [CHORUS_SUBPROTOCOL, token])
    this.connectionAttempts++
    // `auto`: a websocket that says nothing in time is given up for HTTP.
    let opened = false
    let heard = false
    if (!overHttp && this.autoTransport) {
      this.clearFallbackTimer()
      this.fallbackTimer = setTimeout(() => {
        this.fallbackTimer = null
        if (this.ws === ws && !heard) this.fallBack(opened ? 'died-early' : 'never-opened')
      }, this.fallbackAfterMs)
    }
    if (overHttp) this.scheduleUpgrade()
    ws.binaryType = 'arraybuffer'
    this.ws = ws
    this.synced = false
    this.sentCount = 0
    this.savedCount = 0
    this.answeredStep1 = false

    ws.onopen = () => {
      if (this.ws !== ws) return
      opened = true
      this.setStatus({ status: 'connected' })
      this.scheduleRefresh(ws, token)
      const encoder = encoding.createEncoder()
      encoding.writeVarUint(encoder, MSG_SYNC)
      syncProtocol.writeSyncStep1(encoder, this.doc)
      this.send(encoding.toUint8Array(encoder))
      if (this.awareness.getLocalState() !== null) {
        this.sendAwareness([this.doc.clientID])
      }
    }
    ws.onmessage = (event: MessageEvent) => {
      if (this.ws !== ws) return
      if (!heard) {
        heard = true
        this.clearFallbackTimer()
      }
      try {
        this.receive(new Uint8Array(event.data as ArrayBuffer))
      } catch (err) {
        console.error('chorus: could not handle a message', err)
        ws.close(4400, 'malformed-message')
      }
    }
    ws.onclose = (event: CloseEvent) => {
      if (this.ws !== ws) return
      this.clearFallbackTimer()
      // An abnormal close before the first message: a proxy refused the upgrade
      // (browsers report a refused handshake as 1006) or cut the socket.
      if (!overHttp && this.autoTransport && !heard && (event.code === 1006 || event.code === 1015)) {
        this.fallBack(opened ? 'died-early' : 'refused')
        return
      }
      this.onClose(event.code, event.reason)
    }
  }

  private socketUrl (): string {
    return `${wsBase(this.options.server)}/v1/ws/${encodeURIComponent(this.app)}/${encodeURIComponent(this.docId)}`
  }

  private clearFallbackTimer (): void {
    if (this.fallbackTimer !== null) {
      clearTimeout(this.fallbackTimer)
      this.fallbackTimer = null
    }
  }

  private clearTransportTimers (): void {
    this.clearFallbackTimer()
    if (this.upgradeTimer !== null) {
      clearTimeout(this.upgradeTimer)
      this.upgradeTimer = null
    }
    if (this.probe !== null) {
      const probe = this.probe
      this.probe = null
      probe.onclose = null
      probe.onmessage = null
      probe.close(1000, 'probe')
    }
  }

  /** Leave the current connection for a new one over `transport`, at once. */
  private switchTransport (transport: Transport, reason: FallbackReason | 'upgraded'): void {
    const old = this.ws
    this.ws = null
    this.clearRefresh()
    this.clearHealthy()
    this.clearTransportTimers()
    this.synced = false
    this.answeredStep1 = false
    if (old !== null) {
      old.onclose = null
      old.onmessage = null
      try { old.close(1000, 'transport-switch') } catch {}
    }
    this.transport = transport
    this.emit('transport', { transport, reason })
    if (this.wanted && !this.destroyed) void this.open()
  }

  /** `auto`: the websocket did not work; go on over HTTP. */
  private fallBack (reason: FallbackReason): void {
    this.fallbacks++
    this.fallbackReason = reason
    this.switchTransport('http', reason)
  }

  /**
   * `auto`, on HTTP: in `upgradeEveryMs`, open a websocket beside the HTTP
   * connection; if it hears from the server, move back to websockets (the probe
   * itself is closed: the new connection syncs as any other).
   */
  private scheduleUpgrade (): void {
    if (!this.autoTransport || this.upgradeTimer !== null) return
    this.upgradeTimer = setTimeout(() => {
      this.upgradeTimer = null
      if (!this.wanted || this.destroyed || this.transport !== 'http' || this.probe !== null) return
      this.freshToken().then((token) => this.openProbe(token), () => this.scheduleUpgrade())
    }, this.upgradeEveryMs)
  }

  private openProbe (token: string): void {
    if (!this.wanted || this.destroyed || this.transport !== 'http' || this.probe !== null) return
    let probe: WebSocket
    try {
      probe = new this.WS(this.socketUrl(), [CHORUS_SUBPROTOCOL, token])
    } catch {
      this.scheduleUpgrade()
      return
    }
    this.probe = probe
    probe.binaryType = 'arraybuffer'
    const giveUp = setTimeout(() => probe.close(1000, 'probe'), this.fallbackAfterMs)
    probe.onmessage = () => {
      clearTimeout(giveUp)
      probe.onmessage = null
      probe.onclose = null
      this.probe = null
      probe.close(1000, 'probe')
      if (this.transport !== 'http' || this.destroyed) return
      this.upgrades++
      this.switchTransport('websocket', 'upgraded')
    }
    probe.onclose = () => {
      clearTimeout(giveUp)
      if (this.probe === probe) this.probe = null
      if (this.transport === 'http') this.scheduleUpgrade()
    }
  }

  /**
   * What a close means for the user, and when to try again:
   * - 4404 `document-deleted`, 4410 `document-evicted`: stop; the offline copy is
   *   cleared and `deleted` / `evicted` is emitted;
   * - 4403 (not for this document, session ended, app disabled): stop; the editor
   *   turns read-only (reason `forbidden: <close reason>`);
   * - 1008 `content-rejected`: stop; this copy's offline data is cleared (it holds
   *   the refused edit, which every reload would send again) and `reload-required`
   *   is emitted so the app loads the server's copy;
   * - 4408 `idle-timeout`: stay disconnected until the next local change, then
   *   reconnect (`idle`); 4408 `session-expired`: reconnect at once;
   * - 4401 (token refused): one retry at once with a fresh token, then back-off;
   * - anything else (4413, 4429, 1006, 1011–1013, …): back-off with full jitter.
   * The back-off resets only after a connection stayed open and synced for
   * `healthyMs` (30 s): a server that accepts and then closes at once is not retried
   * in a tight loop, and neither is a persistent 4401.
   */
  private onClose (code: number, reason: string): void {
    this.ws = null
    this.clearRefresh()
    this.clearHealthy()
    this.synced = false
    this.answeredStep1 = false
    // Remote presence is stale once the connection is gone.
    const others = [...this.awareness.getStates().keys()].filter((id) => id !== this.doc.clientID)
    awarenessProtocol.removeAwarenessStates(this.awareness, others, this)
    if (code === 4404 || code === 4410) {
      // Deleted, or evicted (its content went to the host, which writes it again
      // before it opens): this copy must not be written into what comes next.
      this.wanted = false
      this.setStatus({ status: 'forbidden', code, reason })
      const gone = code === 4404 ? 'deleted' : 'evicted'
      this.setReadOnly(gone)
      void this.clearOfflineData().finally(() => this.emit(gone, { code, reason }))
      return
    }
    if (code === 4403 || code === 1008) {
      this.wanted = false
      this.setStatus({ status: 'forbidden', code, reason })
      if (code === 4403) {
        this.setReadOnly(`forbidden: ${reason === '' ? 'unknown' : reason}`)
      } else {
        this.setReadOnly('content-rejected')
        void this.clearOfflineData().finally(() => this.emit('reload-required', { code, reason }))
      }
      return
    }
    this.setStatus({ status: 'disconnected', code, reason })
    if (code === 4408 && reason === 'idle-timeout') {
      // Nobody is here: come back when someone is (onDocUpdate, onAwarenessUpdate).
      this.wanted = false
      this.idled = true
      this.emit('idle', { code, reason })
      return
    }
    if (code === 4408) {
      // The session reached its lifetime (`session-expired`): again at once, with a
      // fresh token.
      this.scheduleReconnect(0)
      return
    }
    if (code === 4401 && !this.authRetried) {
      // The token was refused (expired on the way, a rotated secret): getToken is
      // asked again, once at once; a second refusal in a row backs off.
      this.authRetried = true
      this.scheduleReconnect(0)
      return
    }
    this.scheduleReconnect()
  }

  /**
   * Open this user's offline copy once a token says who the user is, and wait (2 s
   * at most) until it is loaded, so the handshake carries edits made offline. Not
   * for a view session (by option or by the token's `mode`), and never another
   * user's: a token for someone else stops keeping a copy.
   */
  private async openOfflineCopy (token: string): Promise<void> {
    if (this.options.offline === false || typeof indexedDB === 'undefined') return
    const { sub, mode } = tokenClaims(token)
    if (this.persistence !== null) {
      if (sub !== this.offlineUser) {
        const persistence = this.persistence
        this.persistence = null
        await persistence.destroy()
      }
      return
    }
    if (this.offlineUser !== null || sub === null) return
    const view = this.options.readOnly === true || mode === 'view'
    if (view && this.options.offline !== true) return
    this.offlineUser = sub
    const name = this.options.offlineKey ?? offlineKey(this.app, sub, this.docId)
    const persistence = new IndexeddbPersistence(name, this.doc)
    this.persistence = persistence
    await Promise.race([
      persistence.whenSynced.then(() => undefined),
      new Promise<void>((resolve) => setTimeout(resolve, 2000))
    ])
  }

  /**
   * Delete this document's offline copy (IndexedDB) and stop keeping one: for a
   * host's logout on a shared computer, or a copy the server refused. The
   * in-memory Y.Doc is left as it is.
   */
  async clearOfflineData (): Promise<void> {
    const persistence = this.persistence
    this.persistence = null
    if (persistence !== null) await persistence.clearData()
  }

  private scheduleReconnect (delayMs?: number): void {
    if (!this.wanted || this.destroyed) {
      if (this.status !== 'disconnected') this.setStatus({ status: 'disconnected' })
      return
    }
    const delay = delayMs ?? backoffDelay(this.attempt++, this.backoff, this.random)
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null
      if (this.wanted && this.ws === null) void this.open()
    }, delay)
  }

  private send (message: Uint8Array): void {
    const ws = this.ws
    if (ws !== null && ws.readyState === ws.OPEN) ws.send(message)
  }

  private sendAwareness (clients: number[]): void {
    const encoder = encoding.createEncoder()
    encoding.writeVarUint(encoder, MSG_AWARENESS)
    encoding.writeVarUint8Array(encoder, awarenessProtocol.encodeAwarenessUpdate(this.awareness, clients))
    this.send(encoding.toUint8Array(encoder))
  }

  private receive (data: Uint8Array): void {
    const decoder = decoding.createDecoder(data)
    const type = decoding.readVarUint(decoder)
    switch (type) {
      case MSG_SYNC: {
        const encoder = encoding.createEncoder()
        encoding.writeVarUint(encoder, MSG_SYNC)
        const subtype = syncProtocol.readSyncMessage(decoder, encoder, this.doc, this)
        if (subtype === syncProtocol.messageYjsSyncStep1) {
          // readSyncMessage wrote our step 2 (everything the server lacks,
          // offline edits included): it counts towards "saved n".
          this.send(encoding.toUint8Array(encoder))
          this.sentCount++
          this.answeredStep1 = true
          this.updateCanPublish()
        } else if (subtype === syncProtocol.messageYjsSyncStep2 && !this.synced) {
          this.synced = true
          // Healthy once it stays up: only then does the back-off start over.
          const ws = this.ws
          this.clearHealthy()
          this.healthyTimer = setTimeout(() => {
            this.healthyTimer = null
            if (this.ws === ws) {
              this.attempt = 0
              this.authRetried = false
            }
          }, this.healthyMs)
          this.emit('synced', true)
          if (!this.initialExternalFired) {
            this.initialExternalFired = true
            this.emit('external-change', { fields: ['title', 'body'], initial: true })
          }
          this.updateCanPublish()
        }
        break
      }
      case MSG_AWARENESS:
        this.applyPresence(decoding.readVarUint8Array(decoder))
        break
      case MSG_QUERY_AWARENESS:
        this.sendAwareness([...this.awareness.getStates().keys()])
        break
      case MSG_AUTH: {
        decoding.readVarUint(decoder)
        const reason = decoding.readVarString(decoder)
        this.setReadOnly(reason === '' ? 'permission-denied' : reason)
        break
      }
      case MSG_CHORUS:
        this.receiveChorus(readChorusMessage(decoder))
        break
      default:
        break
    }
  }

  /**
   * Apply a peer's presence, made safe first; an error thrown by what draws it
   * (an editor's cursor plugin) is the drawing's problem, not the connection's:
   * it is logged and counted, and syncing goes on.
   */
  private applyPresence (update: Uint8Array): void {
    let safe: Uint8Array
    try {
      safe = sanitizePresenceUpdate(update)
    } catch (err) {
      this.presenceErrors++
      console.warn('chorus: unreadable presence update ignored', err)
      return
    }
    try {
      awarenessProtocol.applyAwarenessUpdate(this.awareness, safe, this)
    } catch (err) {
      this.presenceErrors++
      console.warn('chorus: a presence listener failed', err)
    }
  }

  private receiveChorus (msg: ChorusMessage): void {
    switch (msg.kind) {
      case 'saved':
        if (msg.n > this.savedCount) this.savedCount = msg.n
        if (this.saved) this.emit('saved', { n: this.savedCount })
        this.updateCanPublish()
        break
      case 'external-change':
        // The server sends the notice after the change's update, and messages on
        // one socket arrive in order: the doc already holds the change.
        this.emit('external-change', { fields: msg.fields, initial: false })
        break
      case 'read-only':
        this.setReadOnly(msg.reason)
        break
      case 'holder':
        this.holder = { userId: msg.userId, name: msg.name }
        this.emit('holder', this.holder)
        break
      case 'host-action':
        this.emit('host-action', { action: msg.action, userId: msg.userId, name: msg.name })
        break
      case 'idle-warning':
        this.emit('idle-warning', { closesInSecs: msg.closesInSecs })
        break
      case 'editable':
        this.readOnly = false
        this.readOnlyReason = null
        this.holder = null
        this.emit('editable', undefined)
        break
      case 'error':
        this.emit('error', { code: msg.code, message: msg.message })
        if (msg.code === 'read-only') this.setReadOnly('view-mode')
        // The document reached its size limit and is read-only for everyone: the
        // next keystroke would only close this connection (4413).
        if (msg.code === 'document-too-large') this.setReadOnly('document-too-large')
        break
      case 'unknown':
        break
    }
  }

  private setReadOnly (reason: string): void {
    const changed = !this.readOnly || this.readOnlyReason !== reason
    this.readOnly = true
    this.readOnlyReason = reason
    if (changed) this.emit('read-only', { reason })
  }

  private readonly onDocUpdate = (update: Uint8Array, origin: unknown): void => {
    if (origin === this) return
    this.resumeIfIdle()
    // Before our step 2 the server may lack what this update depends on; the
    // step 2 we send in answer to the server's step 1 carries it instead.
    if (!this.answeredStep1 || this.readOnly) return
    const encoder = encoding.createEncoder()
    encoding.writeVarUint(encoder, MSG_SYNC)
    syncProtocol.writeUpdate(encoder, update)
    this.send(encoding.toUint8Array(encoder))
    this.sentCount++
    this.updateCanPublish()
  }

  private readonly onAwarenessUpdate = (
    { added, updated, removed }: { added: number[], updated: number[], removed: number[] },
    origin: unknown
  ): void => {
    if (origin === this) return
    const changed = added.concat(updated, removed)
    if (changed.length > 0) this.sendAwareness(changed)
  }

  /**
   * The user's own presence changed (a cursor moved): input. A renewal that repeats
   * the state (y-protocols sends one every 15 s) is an `update` but no `change`.
   */
  private readonly onAwarenessChange = (
    { added, updated }: { added: number[], updated: number[], removed: number[] },
    origin: unknown
  ): void => {
    if (origin === this) return
    if (added.concat(updated).includes(this.doc.clientID)) this.resumeIfIdle()
  }

  /** The user is back after an idle close: connect again. */
  private resumeIfIdle (): void {
    if (!this.idled || this.destroyed) return
    this.idled = false
    this.connect()
  }

  /** Back online: try now instead of waiting out the back-off. */
  private readonly onOnline = (): void => {
    if (!this.wanted || this.destroyed || this.ws !== null || this.retryTimer === null) return
    clearTimeout(this.retryTimer)
    this.retryTimer = null
    void this.open()
  }

  private readonly onUnload = (): void => {
    awarenessProtocol.removeAwarenessStates(this.awareness, [this.doc.clientID], 'window unload')
  }
}
