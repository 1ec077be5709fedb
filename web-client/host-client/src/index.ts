// A typed client for the Chorus host REST API (proto/openapi.yaml).
//
// No runtime dependencies: the platform `fetch` (Node >= 20) and node:crypto for
// minting host tokens. Types come from src/schema.d.ts, generated from the spec
// (`npm run generate`).

import { createHmac } from 'node:crypto'
import type { components, paths } from './schema.js'

export type { components, paths } from './schema.js'
export * from './webhooks.js'

// ---- types from the spec ----------------------------------------------------------

type Schemas = components['schemas']
type JsonOf<R> = R extends { content: { 'application/json': infer T } } ? T : never
type Operation<P extends keyof paths, M extends 'get' | 'put' | 'post' | 'delete'> = NonNullable<paths[P][M]>
type DraftGet = Operation<'/v1/apps/{app}/docs/{doc}/draft', 'get'>
type PublishPost = Operation<'/v1/apps/{app}/docs/{doc}/publish', 'post'>
type PointGet = Operation<'/v1/apps/{app}/docs/{doc}/history/{point}', 'get'>

/** Every refusal's body: `{code, message}` (and `etag` on a publish conflict). */
export type ErrorBody = Schemas['Error']
/** The stable error codes the spec lists. */
export type ErrorCode = ErrorBody['code']
/** `GET …/draft?format=json`: title, body tree, ETag and last change. */
export type DraftJson = Schemas['DraftJson']
/** One node of a body tree (element or text run). */
export type DocNode = Schemas['Node']
/** One entry of `GET …/docs`. */
export type DocSummary = Schemas['DocSummary']
/** What `PUT …/content` and `POST …/restore` answer. */
export type ChangeResult = Schemas['ChangeResult']
/** A webhook event Chorus gave up on (`listDeadLetters`). */
export interface DeadLetter {
  /** The event id every attempt carried (`evt-<n>`). */
  id: string
  /** The event type, if the record could be read. */
  type?: string
  /** The content id, if the record could be read. */
  doc?: string
  /** Why: `max-age: …`, `no-target` or `unreadable: …`. */
  reason: string
  /** When it was given up (ms since the epoch). */
  deadAt: number
  /** The body every attempt sent, if the record could be read. */
  body?: Record<string, unknown>
}

/** What `deleteDraft` answers. */
export interface DeleteResult {
  /** Sessions that were connected and were closed with 4404. */
  closedSessions: number
}
/** A field an external change can change (`title`, `body`). */
export type ChangedField = ChangeResult['changed'][number]
/** One entry of `GET …/sessions`. */
export type Session = Schemas['Session']
/** One entry of `GET …/history`. */
export type HistoryPoint = Schemas['HistoryPoint']
/** What the admin switch answers. */
export type AppState = Schemas['AppState']
/** `POST …/publish`: what was published. */
export type PublishResult = JsonOf<PublishPost['responses'][200]>
/** `GET …/history/{point}?format=json`: the point's content and metadata. */
export type HistoryPointJson = JsonOf<PointGet['responses'][200]>
/** The representations of the draft: `json`, `html` or `yjs`. */
export type DraftFormat = NonNullable<NonNullable<DraftGet['parameters']['query']>['format']>
/** The representations of a history point: `json` or `html`. */
export type PointFormat = NonNullable<NonNullable<PointGet['parameters']['query']>['format']>
/** What publish does when the draft moved on (the spec has only `abort`). */
export type ConflictPolicy = NonNullable<NonNullable<PublishPost['parameters']['query']>['conflictPolicy']>

// ---- types of this client -----------------------------------------------------------

/**
 * `PUT …/content`: a new title, new body HTML, or both, optionally computed from the
 * draft read with `baseEtag` (edits made since that read are kept). Written by hand:
 * the spec's `anyOf: [{required: [title]}, {required: [html]}]` generates `unknown`.
 */
export type ContentChange =
  | { title: string; html?: string; baseEtag?: string }
  | { title?: string; html: string; baseEtag?: string }

/** `GET …/draft?format=html`: the body HTML and the title (from `X-Chorus-Title`). */
export interface DraftHtml {
  title: string
  html: string
  etag: string
}

/** `GET …/draft?format=yjs`: the whole document as one Yjs update (lib0 v1 encoding). */
export interface DraftYjs {
  update: Uint8Array
  etag: string
}

/** The draft still has the ETag given as `ifNoneMatch` (HTTP 304). */
export interface NotModified {
  notModified: true
  etag: string
}

/** `GET …/history/{point}?format=html`: the point's (cleaned) body HTML and title. */
export interface HistoryPointHtml {
  title: string
  html: string
}

interface DraftByFormat {
  json: DraftJson
  html: DraftHtml
  yjs: DraftYjs
}

interface PointByFormat {
  json: HistoryPointJson
  html: HistoryPointHtml
}

/** Per-call options every method takes. */
export interface CallOptions {
  signal?: AbortSignal | undefined
}

export interface GetDraftOptions<F extends DraftFormat> extends CallOptions {
  /** `json` (default), `html` or `yjs`. */
  format?: F | undefined
  /** An ETag read before: the answer is {@link NotModified} if the draft still has it. */
  ifNoneMatch?: string | undefined
}

/** Who did something, as the host names them: the document's editors are told ("Ann published"). */
export interface ActedBy {
  /** The user's id in the host (at most 256 characters). */
  id?: string | undefined
  /** Their display name (at most 256 characters). */
  name?: string | undefined
}

export interface PublishOptions extends CallOptions {
  /** The ETag of the draft that was read (required: publishing is conditional). */
  ifMatch: string
  /** Only `abort` (the default): a draft that moved on is a 409 `conflict`. */
  conflictPolicy?: ConflictPolicy | undefined
  /** Who publishes: opted-in editors are told once the publish is durable. */
  by?: ActedBy | undefined
}

export interface RestoreOptions extends CallOptions {
  /** Who restores: opted-in editors are told once the restore is durable. */
  by?: ActedBy | undefined
}

export interface DiscardOptions extends CallOptions {
  /** A history point to return to instead of the last published version. */
  point?: number | undefined
  /** Who discards the changes: opted-in editors are told once it is durable. */
  by?: ActedBy | undefined
}

export interface GetPointOptions<F extends PointFormat> extends CallOptions {
  /** `json` (default) or `html`. */
  format?: F | undefined
}

/** What a token provider is asked for: a token for `doc`, or app-wide if absent. */
export interface TokenRequest {
  appId: string
  doc?: string
}

/** Supplies the bearer token of each request (e.g. from a token service). */
export type TokenProvider = (request: TokenRequest) => string | Promise<string>

interface CommonOptions {
  /** Where Chorus answers, e.g. `http://127.0.0.1:10123` (a path prefix is kept). */
  baseUrl: string | URL
  /** The app id: the `{app}` of every route and the `iss` of minted tokens. */
  appId: string
  /** A `fetch` to use instead of the global one. */
  fetch?: typeof globalThis.fetch | undefined
}

/** Mint host tokens with the app's secret (its first one, the one that signs). */
export interface SecretOptions extends CommonOptions {
  secret: string
  /** Lifetime of minted tokens in seconds (default 300). The server allows no clock skew by default. */
  tokenTtlSecs?: number | undefined
  /**
   * Restrict each minted token to the document of its request (a `doc` claim);
   * `listDocuments` still gets an app-wide one. Default false.
   */
  docScopedTokens?: boolean | undefined
  token?: never
}

/** Bring your own token: a fixed string or a provider called for every request. */
export interface TokenOptions extends CommonOptions {
  token: string | TokenProvider
  secret?: never
}

export type ChorusHostOptions = SecretOptions | TokenOptions

// ---- errors -----------------------------------------------------------------------

/** The `code` of a {@link ChorusApiError}: one of the spec's, or a newer server's. */
// `string & {}` keeps the listed codes as completions while admitting unknown ones.
export type ApiErrorCode = ErrorCode | 'unexpected-response' | (string & {})

/**
 * A refusal of the host API (any status other than the route's success), or an answer
 * that is not what the spec says (`code` `unexpected-response`).
 */
export class ChorusApiError extends Error {
  override readonly name = 'ChorusApiError'
  /** HTTP status. */
  readonly status: number
  /** The stable machine-readable code of the body (`conflict`, `base-expired`, …). */
  readonly code: ApiErrorCode
  /** `Retry-After` in seconds (429 `rate-limited`, 503), if the answer had it. */
  readonly retryAfter: number | undefined
  /** The draft's current ETag, where the body has it (publish's 409 `conflict`). */
  readonly etag: string | undefined
  /** The request, e.g. `POST /v1/apps/wiki/docs/post-1/publish`. */
  readonly request: string
  /** The parsed error body, if it was JSON `{code, message}`. */
  readonly body: ErrorBody | undefined

  constructor (init: {
    status: number
    code: ApiErrorCode
    message: string
    request: string
    retryAfter?: number | undefined
    etag?: string | undefined
    body?: ErrorBody | undefined
  }) {
    super(init.message)
    this.status = init.status
    this.code = init.code
    this.request = init.request
    this.retryAfter = init.retryAfter
    this.etag = init.etag
    this.body = init.body
  }

  override toString (): string {
    return `ChorusApiError: ${this.status} ${this.code}: ${this.message} (${this.request})`
  }
}

/** `true` if `err` is a {@link ChorusApiError}, with this `code` if given. */
export function isChorusApiError (err: unknown, code?: ApiErrorCode): err is ChorusApiError {
  return err instanceof ChorusApiError && (code === undefined || err.code === code)
}

/** `true` for the answer of a conditional read whose draft did not change. */
export function isNotModified (value: unknown): value is NotModified {
  return typeof value === 'object' && value !== null && (value as { notModified?: unknown }).notModified === true
}

// ---- host tokens ------------------------------------------------------------------

/** The claims of a host token, as chorus-auth's `HostClaims` reads them. */
export interface HostTokenClaims {
  /** The app id. */
  iss: string
  /** Always `"host"`. */
  scope: 'host'
  /** Issued at, unix seconds (informational). */
  iat: number
  /** Expiry, unix seconds (required). */
  exp: number
  /** Not before, unix seconds. */
  nbf?: number
  /** If set, the token grants only this document. */
  doc?: string
}

export interface MintHostTokenOptions {
  appId: string
  /** The app's signing secret (its first `secrets` entry). */
  secret: string
  /** Restrict the token to one document. */
  doc?: string | undefined
  /** Lifetime in seconds (default 300). */
  ttlSecs?: number | undefined
  /** The current time, ms since the epoch or a Date (default now). */
  now?: number | Date | undefined
}

const b64url = (bytes: string | Uint8Array): string =>
  (typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : Buffer.from(bytes)).toString('base64url')

/** Sign a host token (HS256, `{iss, scope: "host", iat, exp, doc?}`). */
export function mintHostToken (options: MintHostTokenOptions): string {
  const { appId, secret, doc, ttlSecs = 300 } = options
  if (secret === '') throw new TypeError('mintHostToken: the secret is empty (Chorus ignores empty secrets)')
  if (!Number.isFinite(ttlSecs) || ttlSecs <= 0) throw new TypeError('mintHostToken: ttlSecs must be positive')
  const nowMs = options.now === undefined ? Date.now() : +options.now
  const iat = Math.floor(nowMs / 1000)
  const claims: HostTokenClaims = { iss: appId, scope: 'host', iat, exp: iat + Math.ceil(ttlSecs) }
  if (doc !== undefined) claims.doc = doc
  const input = `${b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64url(JSON.stringify(claims))}`
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`
}

// ---- session tokens (browser -> websocket) ----------------------------------------

/** Whether a session may edit or only watch. */
export type SessionMode = 'edit' | 'view'

/** The claims of a session token, as chorus-auth's `SessionClaims` reads them. */
export interface SessionTokenClaims {
  /** The app id. */
  iss: string
  /** The user id (what webhooks list in `users` and `contributors`). */
  sub: string
  /** The content id: the token opens only this document. */
  doc: string
  mode: SessionMode
  /** Issued at, unix seconds (informational). */
  iat: number
  /** Expiry, unix seconds (required; checked when the socket opens). */
  exp: number
  /** Shown to collaborators (carets, presence); the server stamps it, clients cannot claim another. */
  name?: string
  avatar?: string
  color?: string
}

export interface MintSessionTokenOptions {
  appId: string
  /** The app's signing secret (its first `secrets` entry). */
  secret: string
  /** The user id. */
  user: string
  /** The content id. */
  doc: string
  /** `edit` (default) or `view`. */
  mode?: SessionMode | undefined
  name?: string | undefined
  avatar?: string | undefined
  color?: string | undefined
  /**
   * Lifetime in seconds (default 300). Chorus checks it when a socket opens, so it
   * bounds how long a page may keep reconnecting with one token, not a session's length.
   */
  ttlSecs?: number | undefined
  /** The current time, ms since the epoch or a Date (default now). */
  now?: number | Date | undefined
}

/**
 * Sign a session token for one user and one document (HS256,
 * `{iss, sub, doc, mode, iat, exp, name?, avatar?, color?}`): what a browser's
 * provider passes as `params: { token }` (y-websocket) or `token` (Hocuspocus).
 */
export function mintSessionToken (options: MintSessionTokenOptions): string {
  const { appId, secret, user, doc, mode = 'edit', ttlSecs = 300 } = options
  if (secret === '') throw new TypeError('mintSessionToken: the secret is empty (Chorus ignores empty secrets)')
  if (typeof user !== 'string' || user === '') throw new TypeError('mintSessionToken: user is required')
  if (typeof doc !== 'string' || doc === '') throw new TypeError('mintSessionToken: doc is required')
  if (mode !== 'edit' && mode !== 'view') throw new TypeError('mintSessionToken: mode is "edit" or "view"')
  if (!Number.isFinite(ttlSecs) || ttlSecs <= 0) throw new TypeError('mintSessionToken: ttlSecs must be positive')
  const nowMs = options.now === undefined ? Date.now() : +options.now
  const iat = Math.floor(nowMs / 1000)
  const claims: SessionTokenClaims = { iss: appId, sub: user, doc, mode, iat, exp: iat + Math.ceil(ttlSecs) }
  if (options.name !== undefined) claims.name = options.name
  if (options.avatar !== undefined) claims.avatar = options.avatar
  if (options.color !== undefined) claims.color = options.color
  const input = `${b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64url(JSON.stringify(claims))}`
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`
}

// ---- HTTP -------------------------------------------------------------------------

interface RequestSpec {
  method: 'GET' | 'PUT' | 'POST' | 'DELETE'
  path: string
  query?: Record<string, string | undefined>
  headers?: Record<string, string | undefined>
  json?: unknown
  signal?: AbortSignal | undefined
}

/** `Retry-After` as seconds: a delay, or an HTTP date from now. */
function parseRetryAfter (value: string | null): number | undefined {
  if (value === null) return undefined
  const v = value.trim()
  if (/^\d+$/.test(v)) return Number(v)
  const date = Date.parse(v)
  if (Number.isNaN(date)) return undefined
  return Math.max(0, Math.ceil((date - Date.now()) / 1000))
}

function isErrorBody (v: unknown): v is ErrorBody {
  return typeof v === 'object' && v !== null &&
    typeof (v as { code?: unknown }).code === 'string' &&
    typeof (v as { message?: unknown }).message === 'string'
}

/** The shared HTTP plumbing of {@link ChorusHost} and {@link ChorusAdmin}. */
class Transport {
  readonly #base: string
  readonly #fetch: typeof globalThis.fetch
  readonly #auth: (doc: string | undefined) => Promise<string>

  constructor (baseUrl: string | URL, fetchImpl: typeof globalThis.fetch | undefined, auth: (doc: string | undefined) => Promise<string>) {
    const base = String(baseUrl).replace(/\/+$/, '')
    if (!/^https?:\/\//i.test(base)) throw new TypeError(`baseUrl must be an http(s) URL, not ${JSON.stringify(String(baseUrl))}`)
    this.#base = base
    const f = fetchImpl ?? globalThis.fetch
    if (typeof f !== 'function') throw new TypeError('no fetch: use Node >= 20 or pass options.fetch')
    this.#fetch = f
    this.#auth = auth
  }

  /** Send `spec`; answers with the response if its status is one of `ok`, else throws. */
  async send (spec: RequestSpec, ok: readonly number[], doc?: string): Promise<Response> {
    const token = await this.#auth(doc)
    const headers: Record<string, string> = { authorization: `Bearer ${token}` }
    for (const [k, v] of Object.entries(spec.headers ?? {})) if (v !== undefined) headers[k] = v
    let body: string | undefined
    if (spec.json !== undefined) {
      body = JSON.stringify(spec.json)
      headers['content-type'] = 'application/json'
    }
    const params = new URLSearchParams()
    for (const [k, v] of Object.entries(spec.query ?? {})) if (v !== undefined) params.set(k, v)
    const qs = params.toString()
    const url = `${this.#base}${spec.path}${qs === '' ? '' : `?${qs}`}`
    const init: RequestInit = { method: spec.method, headers }
    if (body !== undefined) init.body = body
    if (spec.signal !== undefined) init.signal = spec.signal
    const response = await this.#fetch(url, init)
    if (ok.includes(response.status)) return response
    throw await this.#error(response, `${spec.method} ${spec.path}`)
  }

  async #error (response: Response, request: string): Promise<ChorusApiError> {
    const text = await response.text().catch(() => '')
    let parsed: unknown
    try { parsed = JSON.parse(text) } catch { parsed = undefined }
    const retryAfter = parseRetryAfter(response.headers.get('retry-after'))
    if (isErrorBody(parsed)) {
      const etag = typeof parsed.etag === 'string' ? parsed.etag : undefined
      return new ChorusApiError({ status: response.status, code: parsed.code, message: parsed.message, request, retryAfter, etag, body: parsed })
    }
    const snippet = text.length > 200 ? `${text.slice(0, 200)}…` : text
    return new ChorusApiError({
      status: response.status,
      code: 'unexpected-response',
      message: `HTTP ${response.status} without a JSON {code, message} body${snippet === '' ? '' : `: ${snippet}`}`,
      request,
      retryAfter
    })
  }
}

/** The JSON body of `response`, or a `ChorusApiError` `unexpected-response`. */
async function readJson<T> (response: Response, request: string): Promise<T> {
  const text = await response.text()
  try {
    return JSON.parse(text) as T
  } catch {
    throw new ChorusApiError({ status: response.status, code: 'unexpected-response', message: 'the answer is not JSON', request })
  }
}

/** The `ETag` header, which the spec makes required on these answers. */
function etagOf (response: Response, request: string): string {
  const etag = response.headers.get('etag')
  if (etag === null) {
    throw new ChorusApiError({ status: response.status, code: 'unexpected-response', message: 'the answer has no ETag header', request })
  }
  return etag
}

/** `X-Chorus-Title`, percent-decoded (the server encodes all but letters, digits, `-_.~` and space). */
function titleOf (response: Response): string {
  const raw = response.headers.get('x-chorus-title') ?? ''
  try { return decodeURIComponent(raw) } catch { return raw }
}

function checkPoint (point: number): string {
  if (!Number.isSafeInteger(point) || point < 0) throw new TypeError(`a history point is a whole number >= 0, not ${point}`)
  return String(point)
}

const enc = encodeURIComponent

// ---- the host client ----------------------------------------------------------------

/**
 * The host API of one app.
 *
 * ```ts
 * const host = new ChorusHost({ baseUrl: 'http://127.0.0.1:10123', appId: 'wiki', secret })
 * const draft = await host.getDraft('post-7')
 * await host.publish('post-7', { ifMatch: draft.etag })
 * ```
 */
export class ChorusHost {
  readonly appId: string
  readonly #http: Transport

  constructor (options: ChorusHostOptions) {
    if (typeof options.appId !== 'string' || options.appId === '') throw new TypeError('appId is required')
    this.appId = options.appId
    const appId = options.appId
    let auth: (doc: string | undefined) => Promise<string>
    if (options.token !== undefined) {
      const token = options.token
      auth = typeof token === 'string'
        ? async () => token
        : async (doc) => token(doc === undefined ? { appId } : { appId, doc })
    } else if (typeof options.secret === 'string') {
      const { secret, tokenTtlSecs = 300, docScopedTokens = false } = options
      if (secret === '') throw new TypeError('secret is empty')
      auth = async (doc) => mintHostToken({ appId, secret, ttlSecs: tokenTtlSecs, doc: docScopedTokens ? doc : undefined })
    } else {
      throw new TypeError('give either secret (to mint host tokens) or token')
    }
    this.#http = new Transport(options.baseUrl, options.fetch, auth)
  }

  #doc (doc: string, rest = ''): string {
    return `/v1/apps/${enc(this.appId)}/docs/${enc(doc)}${rest}`
  }

  /**
   * `GET …/draft`: the shared draft as JSON (default), HTML or a Yjs update. With
   * `ifNoneMatch`, a draft that still has that ETag answers {@link NotModified}.
   */
  getDraft<F extends DraftFormat = 'json'>(doc: string, options?: GetDraftOptions<F> & { ifNoneMatch?: undefined }): Promise<DraftByFormat[F]>
  getDraft<F extends DraftFormat = 'json'>(doc: string, options: GetDraftOptions<F>): Promise<DraftByFormat[F] | NotModified>
  async getDraft (doc: string, options: GetDraftOptions<DraftFormat> = {}): Promise<DraftJson | DraftHtml | DraftYjs | NotModified> {
    const format = options.format ?? 'json'
    const path = this.#doc(doc, '/draft')
    const request = `GET ${path}`
    const response = await this.#http.send({
      method: 'GET',
      path,
      query: { format: options.format },
      headers: { 'if-none-match': options.ifNoneMatch },
      signal: options.signal
    }, [200, 304], doc)
    const etag = etagOf(response, request)
    if (response.status === 304) return { notModified: true, etag }
    switch (format) {
      case 'json': return await readJson<DraftJson>(response, request)
      case 'html': return { title: titleOf(response), html: await response.text(), etag }
      case 'yjs': return { update: new Uint8Array(await response.arrayBuffer()), etag }
    }
  }

  /**
   * `PUT …/content`: push an external change (editors see it live, as a minimal diff).
   * With `baseEtag` the change is computed against that read and merged, keeping edits
   * made since; a base the server no longer knows is a 412 `base-expired`
   * {@link ChorusApiError} (read the draft again and redo the change on it). A
   * reject-mode app answers 422 `content-rejected` for HTML outside its whitelist.
   */
  async putContent (doc: string, change: ContentChange, options: CallOptions = {}): Promise<ChangeResult> {
    if (change.title === undefined && change.html === undefined) throw new TypeError('putContent: give a title, an html body, or both')
    const path = this.#doc(doc, '/content')
    const body: Record<string, string> = {}
    if (change.title !== undefined) body.title = change.title
    if (change.html !== undefined) body.html = change.html
    if (change.baseEtag !== undefined) body.baseEtag = change.baseEtag
    const response = await this.#http.send({ method: 'PUT', path, json: body, signal: options.signal }, [200], doc)
    return await readJson<ChangeResult>(response, `PUT ${path}`)
  }

  /**
   * `POST …/publish`: publish the draft if its ETag is still `ifMatch`. Otherwise a 409
   * `conflict` {@link ChorusApiError} whose `etag` is the draft's current one; a
   * document never written is 404 `not-found`.
   */
  async publish (doc: string, options: PublishOptions): Promise<PublishResult> {
    if (typeof options?.ifMatch !== 'string') throw new TypeError('publish: ifMatch (the ETag that was read) is required')
    const path = this.#doc(doc, '/publish')
    const response = await this.#http.send({
      method: 'POST',
      path,
      query: { conflictPolicy: options.conflictPolicy },
      headers: { 'if-match': options.ifMatch },
      json: options.by === undefined ? undefined : { by: options.by },
      signal: options.signal
    }, [200], doc)
    return await readJson<PublishResult>(response, `POST ${path}`)
  }

  /** `GET …/history`: the draft's history points, oldest first (none for an unknown document). */
  async listHistory (doc: string, options: CallOptions = {}): Promise<HistoryPoint[]> {
    const path = this.#doc(doc, '/history')
    const response = await this.#http.send({ method: 'GET', path, signal: options.signal }, [200], doc)
    return (await readJson<{ points: HistoryPoint[] }>(response, `GET ${path}`)).points
  }

  /** `GET …/history/{point}`: one point's content, as JSON (default) or HTML. */
  async getHistoryPoint<F extends PointFormat = 'json'>(doc: string, point: number, options?: GetPointOptions<F>): Promise<PointByFormat[F]>
  async getHistoryPoint (doc: string, point: number, options: GetPointOptions<PointFormat> = {}): Promise<HistoryPointJson | HistoryPointHtml> {
    const path = this.#doc(doc, `/history/${checkPoint(point)}`)
    const response = await this.#http.send({ method: 'GET', path, query: { format: options.format }, signal: options.signal }, [200], doc)
    if ((options.format ?? 'json') === 'html') return { title: titleOf(response), html: await response.text() }
    return await readJson<HistoryPointJson>(response, `GET ${path}`)
  }

  /** `POST …/restore`: bring a history point's content back as an external change. */
  async restore (doc: string, point: number, options: RestoreOptions = {}): Promise<ChangeResult> {
    const path = this.#doc(doc, '/restore')
    checkPoint(point)
    const json = options.by === undefined ? { point } : { point, by: options.by }
    const response = await this.#http.send({ method: 'POST', path, json, signal: options.signal }, [200], doc)
    return await readJson<ChangeResult>(response, `POST ${path}`)
  }

  /**
   * `POST …/discard`: the draft returns to its last published version (or `point`),
   * as an external change editors see live; opted-in editors are told who discarded
   * the changes. A draft never published (and no `point`) is 404 `not-found`.
   */
  async discard (doc: string, options: DiscardOptions = {}): Promise<ChangeResult> {
    const path = this.#doc(doc, '/discard')
    const json: { point?: number, by?: ActedBy } = {}
    if (options.point !== undefined) json.point = Number(checkPoint(options.point))
    if (options.by !== undefined) json.by = options.by
    const response = await this.#http.send({ method: 'POST', path, json, signal: options.signal }, [200], doc)
    return await readJson<ChangeResult>(response, `POST ${path}`)
  }

  /** `GET …/sessions`: the sessions connected to the document, oldest first. */
  async listSessions (doc: string, options: CallOptions = {}): Promise<Session[]> {
    const path = this.#doc(doc, '/sessions')
    const response = await this.#http.send({ method: 'GET', path, signal: options.signal }, [200], doc)
    return (await readJson<{ sessions: Session[] }>(response, `GET ${path}`)).sessions
  }

  /** `POST …/sessions/{session}/downgrade`: make one session view-only (404 if not connected). */
  async downgradeSession (doc: string, session: string, options: CallOptions = {}): Promise<void> {
    const path = this.#doc(doc, `/sessions/${enc(session)}/downgrade`)
    const response = await this.#http.send({ method: 'POST', path, signal: options.signal }, [204], doc)
    await response.body?.cancel()
  }

  /** `DELETE …/sessions/{session}`: end one session (its socket closes with 4403). */
  async endSession (doc: string, session: string, options: CallOptions = {}): Promise<void> {
    const path = this.#doc(doc, `/sessions/${enc(session)}`)
    const response = await this.#http.send({ method: 'DELETE', path, signal: options.signal }, [204], doc)
    await response.body?.cancel()
  }

  /**
   * `DELETE /v1/apps/{app}/docs/{doc}`: delete the draft with its history and log.
   * Its sessions close with 4404 `document-deleted`, a `deleted` webhook replaces the
   * events not yet delivered, and the same id starts empty afterwards. Resolves once
   * the deletion is durable; a draft never stored is `ChorusApiError` 404 `not-found`.
   */
  async deleteDraft (doc: string, options: CallOptions = {}): Promise<DeleteResult> {
    const path = this.#doc(doc)
    const response = await this.#http.send({ method: 'DELETE', path, signal: options.signal }, [200], doc)
    return await readJson<DeleteResult>(response, `DELETE ${path}`)
  }

  /**
   * `GET /v1/apps/{app}/webhooks/dead-letters`: webhook events Chorus gave up on (too
   * old, no callback URL, unreadable), oldest first, with the body every attempt sent
   * and why. Needs an app-wide token. Acknowledge each with `ackDeadLetter`.
   */
  async listDeadLetters (options: CallOptions = {}): Promise<DeadLetter[]> {
    const path = `/v1/apps/${enc(this.appId)}/webhooks/dead-letters`
    const response = await this.#http.send({ method: 'GET', path, signal: options.signal }, [200])
    return (await readJson<{ events: DeadLetter[] }>(response, `GET ${path}`)).events
  }

  /** `DELETE /v1/apps/{app}/webhooks/dead-letters/{event}`: the host took it (404 if there is none). */
  async ackDeadLetter (eventId: string, options: CallOptions = {}): Promise<void> {
    const path = `/v1/apps/${enc(this.appId)}/webhooks/dead-letters/${enc(eventId)}`
    const response = await this.#http.send({ method: 'DELETE', path, signal: options.signal }, [204])
    await response.body?.cancel()
  }

  /** `GET /v1/apps/{app}/docs`: every stored document of the app, sorted by id (needs an app-wide token). */
  async listDocuments (options: CallOptions = {}): Promise<DocSummary[]> {
    const path = `/v1/apps/${enc(this.appId)}/docs`
    const response = await this.#http.send({ method: 'GET', path, signal: options.signal }, [200])
    return (await readJson<{ docs: DocSummary[] }>(response, `GET ${path}`)).docs
  }
}

// ---- the admin client ---------------------------------------------------------------

export interface ChorusAdminOptions {
  baseUrl: string | URL
  /** The configuration's `admin_token` (the admin API is off without one), or a provider. */
  adminToken: string | (() => string | Promise<string>)
  fetch?: typeof globalThis.fetch | undefined
}

/** The admin API: switch an app off and on at runtime. */
export class ChorusAdmin {
  readonly #http: Transport

  constructor (options: ChorusAdminOptions) {
    const token = options.adminToken
    if (token === '' || token === undefined) throw new TypeError('adminToken is required')
    this.#http = new Transport(options.baseUrl, options.fetch, typeof token === 'string' ? async () => token : async () => token())
  }

  /** `POST /v1/admin/apps/{app}/enable`. */
  enableApp (appId: string, options: CallOptions = {}): Promise<AppState> {
    return this.#switch(appId, 'enable', options)
  }

  /** `POST /v1/admin/apps/{app}/disable`: its sessions close with 4403, its host calls are 403 `app-disabled`. */
  disableApp (appId: string, options: CallOptions = {}): Promise<AppState> {
    return this.#switch(appId, 'disable', options)
  }

  async #switch (appId: string, what: 'enable' | 'disable', options: CallOptions): Promise<AppState> {
    const path = `/v1/admin/apps/${enc(appId)}/${what}`
    const response = await this.#http.send({ method: 'POST', path, signal: options.signal }, [200])
    return await readJson<AppState>(response, `POST ${path}`)
  }
}
