// Verifying the webhooks Chorus POSTs to an app's `callback_url`
// (crates/chorus-hooks: the body format in src/event.rs, the signature in src/sign.rs).
//
// Each request carries `Authorization: Bearer <JWT>`, HS256 with the app's first
// secret, claims `{iss: "chorus", aud: <app id>, iat, exp: iat + 300, jti: <event id>,
// body_sha256: base64url(SHA-256(raw body)), no padding}`. The body is one JSON object:
// the envelope `{id, type, app, doc, at}` and the fields of its type.

import { createHash, createHmac, timingSafeEqual } from 'node:crypto'

// ---- event types (chorus-hooks src/event.rs) --------------------------------------

/** The fields every event has. */
export interface WebhookEnvelope<T extends string> {
  /** `evt-<n>`: the same in every attempt and after restarts; dedupe on it. */
  id: string
  type: T
  /** The app id. */
  app: string
  /** The content id. */
  doc: string
  /** When it happened, ms since the epoch. */
  at: number
}

/** The first editor joined the document. */
export interface EditingEvent extends WebhookEnvelope<'editing'> {
  /** User ids of the editors connected so far. */
  users: string[]
}

/** A draft snapshot was written (throttled by `saved_webhook_secs`). */
export interface SavedEvent extends WebhookEnvelope<'saved'> {
  etag: string
}

/** Every editor left and the save delay passed: the final draft. */
export interface ClosedEvent extends WebhookEnvelope<'closed'> {
  title: string
  /** Body HTML, cleaned by the app's whitelist. */
  html: string
  /** User ids of everyone who contributed. */
  contributors: string[]
  etag: string
  /**
   * The draft differs from what it was after the last publish or external change
   * (true for a draft the host never published nor changed): false means there is
   * nothing new to take.
   */
  changed: boolean
}

/** The host changed the draft through the API (`PUT …/content`, `POST …/restore`). */
export interface ExternalChangeEvent extends WebhookEnvelope<'external-change'> {
  /** The fields that changed: `title`, `body`. */
  fields: string[]
  etag: string
}

/** The draft was published. */
export interface PublishedEvent extends WebhookEnvelope<'published'> {
  title: string
  /** Body HTML, cleaned by the app's whitelist. */
  html: string
  etag: string
  /** ms since the epoch. */
  publishedAt: number
}

/**
 * The host deleted the draft (`DELETE …/docs/{doc}`). The document's events not yet
 * delivered are dropped: this one replaces them.
 */
export interface DeletedEvent extends WebhookEnvelope<'deleted'> {
  /** Sessions that were connected and were closed with 4404. */
  closedSessions: number
}

/**
 * The draft was not used for its app's `evict_after_secs` and left Chorus's store:
 * this is its final content. Editors are refused (4410) and reads are 410 until the
 * host writes it again (`putContent`).
 */
export interface EvictedEvent extends WebhookEnvelope<'evicted'> {
  title: string
  /** Body HTML, cleaned by the app's whitelist. */
  html: string
  etag: string
  /** Its last change or session, ms since the epoch. */
  lastUsedAt: number
}

/** Every event Chorus sends; narrow on `type`. Unknown fields are kept as sent. */
export type WebhookEvent = EditingEvent | SavedEvent | ClosedEvent | ExternalChangeEvent | PublishedEvent | DeletedEvent | EvictedEvent
export type WebhookEventType = WebhookEvent['type']
export const WEBHOOK_EVENT_TYPES: readonly WebhookEventType[] = Object.freeze(['editing', 'saved', 'closed', 'external-change', 'published', 'deleted', 'evicted'] as const)

/** The claims of a delivery token (chorus-hooks `DeliveryClaims`). */
export interface WebhookClaims {
  /** Always `"chorus"`. */
  iss: string
  /** The app id. */
  aud: string
  /** Unix seconds of the attempt. */
  iat: number
  /** `iat + 300`. */
  exp: number
  /** The event id (the body's `id`). */
  jti: string
  /** base64url (no padding) of SHA-256 of the exact body bytes. */
  body_sha256: string
}

// ---- errors -----------------------------------------------------------------------

export type WebhookErrorCode =
  | 'missing-token' // no `Authorization: Bearer …`
  | 'malformed-token' // not a compact JWS with JSON header and claims
  | 'algorithm-not-allowed' // header `alg` is not HS256
  | 'bad-signature' // no given secret verifies it
  | 'missing-claim' // a claim Chorus always sends is absent or mistyped
  | 'wrong-issuer' // `iss` is not "chorus"
  | 'wrong-audience' // `aud` is not the app id
  | 'token-expired' // now >= exp + leeway
  | 'token-not-yet-valid' // nbf > now + leeway
  | 'body-mismatch' // `body_sha256` is not the hash of the raw body
  | 'malformed-body' // the body is not an event object
  | 'event-id-mismatch' // the body's `id` is not the token's `jti`
  | 'wrong-app' // the body's `app` is not the app id
  | 'unknown-event-type' // authentic, but a `type` this library does not know

/**
 * Why a webhook request was refused. `authentic` is true only for
 * `unknown-event-type`: the request is genuine (signature, claims and body hash
 * checked) but of a newer event type; answer it with a 2xx (Chorus retries anything
 * else for a day) and find the parsed body in `body`. For every other code answer 401
 * (token problems) or 400.
 */
export class WebhookError extends Error {
  override readonly name = 'WebhookError'
  readonly code: WebhookErrorCode
  readonly authentic: boolean
  readonly body: Record<string, unknown> | undefined

  constructor (code: WebhookErrorCode, message: string, body?: Record<string, unknown>) {
    super(message)
    this.code = code
    this.authentic = code === 'unknown-event-type'
    this.body = body
  }
}

// ---- verification -----------------------------------------------------------------

interface VerifyBase {
  /** The app id: the token's `aud` and the body's `app` must be it. */
  appId: string
  /** The `Authorization` header as received (`Bearer <JWT>`). */
  authorization: string | readonly string[] | null | undefined
  /** The exact body bytes received (a string is hashed as its UTF-8 encoding). */
  rawBody: string | Uint8Array | ArrayBuffer
  /** The current time, ms since the epoch or a Date (default now). */
  now?: number | Date | undefined
  /** Clock skew allowed on `exp` and `nbf`, seconds (default 30). */
  leewaySecs?: number | undefined
  /** The expected `iss` (default `"chorus"`). */
  issuer?: string | undefined
}

/**
 * Options of {@link verifyWebhook}: the app's secret, or several (rotation: any of them
 * verifies; Chorus signs with the first of its configured `secrets`).
 */
export type VerifyWebhookOptions =
  | (VerifyBase & { secret: string; secrets?: readonly string[] | undefined })
  | (VerifyBase & { secret?: string | undefined; secrets: readonly string[] })

/** Longest token looked at, as chorus-auth's limit for tokens it verifies. */
const MAX_TOKEN_LEN = 16 * 1024
const B64URL_PART = /^[A-Za-z0-9_-]*$/

function decodePart (part: string, what: string): Record<string, unknown> {
  if (!B64URL_PART.test(part) || part.length % 4 === 1) throw new WebhookError('malformed-token', `the token's ${what} is not base64url`)
  let value: unknown
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(part, 'base64url')))
  } catch {
    throw new WebhookError('malformed-token', `the token's ${what} is not JSON`)
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new WebhookError('malformed-token', `the token's ${what} is not a JSON object`)
  return value as Record<string, unknown>
}

function bytesOf (raw: string | Uint8Array | ArrayBuffer): Buffer {
  if (typeof raw === 'string') return Buffer.from(raw, 'utf8')
  if (raw instanceof ArrayBuffer) return Buffer.from(raw)
  if (ArrayBuffer.isView(raw)) return Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength)
  throw new TypeError('rawBody must be the raw body: a string, Uint8Array/Buffer or ArrayBuffer')
}

/** Constant-time equality of two strings (different lengths are simply unequal). */
function sameString (a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8')
  const y = Buffer.from(b, 'utf8')
  // Compare equal-length buffers whatever the inputs, so the time does not depend on
  // where they differ.
  const same = timingSafeEqual(x.length === y.length ? x : y, y)
  return same && x.length === y.length
}

function numericDate (claims: Record<string, unknown>, name: string): number | undefined {
  const v = claims[name]
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new WebhookError('missing-claim', `the token's ${name} is not a number`)
  return v
}

const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string')

/** The fields each known type must have, with their checks. */
const FIELDS: Record<WebhookEventType, Record<string, (v: unknown) => boolean>> = {
  editing: { users: isStringArray },
  saved: { etag: (v) => typeof v === 'string' },
  closed: {
    title: (v) => typeof v === 'string',
    html: (v) => typeof v === 'string',
    contributors: isStringArray,
    etag: (v) => typeof v === 'string',
    changed: (v) => typeof v === 'boolean'
  },
  'external-change': { fields: isStringArray, etag: (v) => typeof v === 'string' },
  published: {
    title: (v) => typeof v === 'string',
    html: (v) => typeof v === 'string',
    etag: (v) => typeof v === 'string',
    publishedAt: (v) => typeof v === 'number'
  },
  deleted: { closedSessions: (v) => typeof v === 'number' },
  evicted: {
    title: (v) => typeof v === 'string',
    html: (v) => typeof v === 'string',
    etag: (v) => typeof v === 'string',
    lastUsedAt: (v) => typeof v === 'number'
  }
}

/**
 * Verify one webhook request and return its event, or throw a {@link WebhookError}.
 *
 * Checks, in order: a bearer token; a compact JWS whose header has `alg` HS256
 * (nothing else) and no `crit`; the HMAC-SHA256 signature with any of the secrets
 * (constant time); `iss` (default `"chorus"`), `aud` = `appId`; `exp` (required: Chorus
 * always sets it) and `nbf` if present, with `leewaySecs`; `body_sha256` equal to the
 * base64url SHA-256 of `rawBody` (constant time); then the body: a JSON object with the
 * envelope, `id` = `jti`, `app` = `appId`, and the fields of its type.
 *
 * Pass the raw bytes as received: a body parsed and serialized again does not hash
 * the same.
 */
export function verifyWebhook (options: VerifyWebhookOptions): WebhookEvent {
  const { appId, rawBody } = options
  const claims = verifyWebhookToken(options)
  return checkBody(appId, claims as unknown as Record<string, unknown> & { jti: string, body_sha256: string }, rawBody)
}

/**
 * Verify a webhook request's token alone, before its body is read (a body can be
 * tens of MiB; a request that is not Chorus's should cost nothing): every check of
 * {@link verifyWebhook} up to and including the claims, none of the body's. Throws
 * a {@link WebhookError}; returns the claims. {@link verifyWebhook} must still be
 * called with the body (it checks `body_sha256`).
 */
export function verifyWebhookToken (options: Omit<VerifyWebhookOptions, 'rawBody'> & { rawBody?: unknown }): WebhookClaims {
  const { appId, authorization, leewaySecs = 30, issuer = 'chorus' } = options
  const secrets = [...(options.secret !== undefined ? [options.secret] : []), ...(options.secrets ?? [])]
    .filter((s) => typeof s === 'string' && s !== '')
  if (secrets.length === 0) throw new TypeError('verifyWebhook: give the app secret (secret or secrets)')
  if (typeof appId !== 'string' || appId === '') throw new TypeError('verifyWebhook: appId is required')
  const nowSecs = (options.now === undefined ? Date.now() : +options.now) / 1000

  // The token.
  const header = typeof authorization === 'string' ? authorization : authorization?.[0]
  const match = header === undefined || header === null ? null : /^\s*Bearer\s+(\S+)\s*$/i.exec(header)
  const token = match?.[1]
  if (token === undefined) throw new WebhookError('missing-token', 'no Authorization: Bearer token')
  if (token.length > MAX_TOKEN_LEN) throw new WebhookError('malformed-token', 'the token is too long')
  const parts = token.split('.')
  if (parts.length !== 3) throw new WebhookError('malformed-token', 'the token is not a compact JWS (three parts)')
  const [h, p, s] = parts as [string, string, string]
  const jose = decodePart(h, 'header')
  if (typeof jose.alg !== 'string') throw new WebhookError('malformed-token', 'the token header has no alg')
  if (jose.alg !== 'HS256') throw new WebhookError('algorithm-not-allowed', `the token's algorithm ${JSON.stringify(jose.alg)} is not HS256`)
  if ('crit' in jose) throw new WebhookError('malformed-token', 'the token header has crit extensions')
  if (!B64URL_PART.test(s)) throw new WebhookError('malformed-token', "the token's signature is not base64url")
  const signature = Buffer.from(s, 'base64url')
  // Only the canonical encoding of 32 bytes (43 characters, no padding) is a signature.
  if (signature.length !== 32 || signature.toString('base64url') !== s) throw new WebhookError('bad-signature', 'the signature is not an HS256 signature')
  const signed = `${h}.${p}`
  const verified = secrets.some((secret) => timingSafeEqual(createHmac('sha256', secret).update(signed).digest(), signature))
  if (!verified) throw new WebhookError('bad-signature', 'no secret verifies the signature')

  // The claims (trusted from here on).
  const claims = decodePart(p, 'claims')
  if (claims.iss !== issuer) throw new WebhookError('wrong-issuer', `the token's iss is not ${JSON.stringify(issuer)}`)
  const aud = claims.aud
  if (!(aud === appId || (isStringArray(aud) && aud.includes(appId)))) throw new WebhookError('wrong-audience', `the token's aud is not ${JSON.stringify(appId)}`)
  const exp = numericDate(claims, 'exp')
  if (exp === undefined) throw new WebhookError('missing-claim', 'the token has no exp')
  if (nowSecs >= exp + leewaySecs) throw new WebhookError('token-expired', 'the token has expired')
  const nbf = numericDate(claims, 'nbf')
  if (nbf !== undefined && nbf > nowSecs + leewaySecs) throw new WebhookError('token-not-yet-valid', 'the token is not valid yet')
  if (typeof claims.jti !== 'string') throw new WebhookError('missing-claim', 'the token has no jti')
  if (typeof claims.body_sha256 !== 'string') throw new WebhookError('missing-claim', 'the token has no body_sha256')
  return claims as unknown as WebhookClaims
}

function checkBody (appId: string, claims: Record<string, unknown> & { jti: string, body_sha256: string }, rawBody: string | Uint8Array | ArrayBuffer): WebhookEvent {
  const bytes = bytesOf(rawBody)
  const digest = createHash('sha256').update(bytes).digest('base64url')
  if (!sameString(digest, claims.body_sha256)) throw new WebhookError('body-mismatch', 'the body is not the one the token was signed for')
  let body: unknown
  try {
    body = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes))
  } catch {
    throw new WebhookError('malformed-body', 'the body is not JSON')
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new WebhookError('malformed-body', 'the body is not a JSON object')
  const event = body as Record<string, unknown>
  for (const [key, type] of [['id', 'string'], ['type', 'string'], ['app', 'string'], ['doc', 'string'], ['at', 'number']] as const) {
    if (typeof event[key] !== type) throw new WebhookError('malformed-body', `the body's ${key} is not a ${type}`)
  }
  if (event.id !== claims.jti) throw new WebhookError('event-id-mismatch', "the body's id is not the token's jti")
  if (event.app !== appId) throw new WebhookError('wrong-app', `the body's app is not ${JSON.stringify(appId)}`)
  const type = event.type as string
  if (!Object.prototype.hasOwnProperty.call(FIELDS, type)) {
    throw new WebhookError('unknown-event-type', `authentic event of a type this library does not know: ${JSON.stringify(type)}`, event)
  }
  for (const [field, ok] of Object.entries(FIELDS[type as WebhookEventType])) {
    if (!ok(event[field])) throw new WebhookError('malformed-body', `the ${type} event's ${field} is missing or mistyped`)
  }
  return event as unknown as WebhookEvent
}

/** The base64url (no padding) SHA-256 of `rawBody`, as the `body_sha256` claim carries it. */
export function webhookBodySha256 (rawBody: string | Uint8Array | ArrayBuffer): string {
  return createHash('sha256').update(bytesOf(rawBody)).digest('base64url')
}
