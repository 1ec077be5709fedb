// @ts-check
// An example wiki that embeds Chorus, as a host application would: it is registered
// with Chorus as the app `wiki` (see chorus.toml), signs its users in, mints a session
// token for each editor page, embeds a TipTap editor that syncs through Chorus, takes
// Chorus's webhooks (signature and body hash verified), publishes a reviewed draft
// with `conflictPolicy=abort`, and lists and restores history points.
//
// Node >= 20, no framework: node:http and @chorus/host-client (no dependencies of its
// own). Configuration from the environment:
//
//   WIKI_APP_SECRET          the app's secret in Chorus (required); WIKI_APP_SECRETS
//                            instead for several, comma-separated (the first signs)
//   WIKI_APP_ID              the app id in Chorus (default "wiki")
//   WIKI_CHORUS_URL          where the wiki reaches Chorus (default http://127.0.0.1:10123)
//   WIKI_CHORUS_BROWSER_URL  where browsers reach it, if elsewhere (default: the same)
//   WIKI_HOST, WIKI_PORT     where the wiki listens (default 127.0.0.1:3000)
//   WIKI_DATA_FILE           the wiki's own records (default ./wiki-data.json)
//   WIKI_PUBLIC_URL          the wiki's own URL as browsers see it (default http://HOST:PORT):
//                            every POST must come from this origin
//   WIKI_INSECURE_COOKIE     1: a plain `wiki_session` cookie, for http on an address a
//                            browser does not treat as secure (default: `__Host-`, Secure)
//   WIKI_VIEWERS             users who may only read pages (comma-separated): view-mode tokens
//   WIKI_EDITOR_PROVIDER     y-websocket (default) or hocuspocus: what the editor page syncs with
//
// (Not CHORUS_*: chorus itself reads every CHORUS_<KEY> variable as a config key and
// refuses unknown ones, so a shell that runs both would break it.)
import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import http from 'node:http'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { ChorusHost, isChorusApiError, mintSessionToken } from '@chorus/host-client'
import { verifyWebhook, verifyWebhookToken, WebhookError } from '@chorus/host-client/webhooks'

import { WikiStore } from './lib/store.mjs'
import * as views from './lib/views.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))

// ---- configuration ----------------------------------------------------------------

const env = process.env
const secrets = (env.WIKI_APP_SECRETS ?? env.WIKI_APP_SECRET ?? '').split(',').map((s) => s.trim()).filter(Boolean)
if (secrets.length === 0) {
  console.error('wiki: set WIKI_APP_SECRET to the secret of the app in chorus.toml')
  process.exit(2)
}
const config = {
  appId: env.WIKI_APP_ID ?? 'wiki',
  chorusUrl: env.WIKI_CHORUS_URL ?? 'http://127.0.0.1:10123',
  browserUrl: env.WIKI_CHORUS_BROWSER_URL ?? env.WIKI_CHORUS_URL ?? 'http://127.0.0.1:10123',
  host: env.WIKI_HOST ?? '127.0.0.1',
  port: Number(env.WIKI_PORT ?? 3000),
  dataFile: path.resolve(env.WIKI_DATA_FILE ?? 'wiki-data.json'),
  publicUrl: '',
  insecureCookie: env.WIKI_INSECURE_COOKIE === '1',
  viewers: new Set((env.WIKI_VIEWERS ?? '').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean)),
  editorProvider: env.WIKI_EDITOR_PROVIDER ?? 'y-websocket'
}
config.publicUrl = (env.WIKI_PUBLIC_URL ?? `http://${config.host}:${config.port}`).replace(/\/+$/, '')
/** Every POST from a browser must carry this Origin (the wiki's own). */
const ownOrigin = new URL(config.publicUrl).origin
if (config.editorProvider !== 'y-websocket' && config.editorProvider !== 'hocuspocus') {
  console.error(`wiki: WIKI_EDITOR_PROVIDER is y-websocket or hocuspocus, not ${JSON.stringify(config.editorProvider)}`)
  process.exit(2)
}
const browserWs = config.browserUrl.replace(/^http/, 'ws').replace(/\/+$/, '')
/** How long a session token opens sockets; editor pages fetch a fresh one well before. */
const SESSION_TOKEN_SECS = 600
/** A `closed` event carries the whole body HTML: up to Chorus's 16 MiB body, and its JSON escaping. */
const WEBHOOK_BODY_MAX = 40 * 1024 * 1024
const FORM_BODY_MAX = 64 * 1024

const host = new ChorusHost({ baseUrl: config.chorusUrl, appId: config.appId, secret: secrets[0] })
const store = await WikiStore.open(config.dataFile)

// ---- users --------------------------------------------------------------------------

const USER_NAME = /^[a-z][a-z0-9_-]{0,31}$/
const COLORS = ['#e6194b', '#3cb44b', '#4363d8', '#f58231', '#911eb4', '#008080', '#9a6324', '#800000']

// Server-side sessions: a random id in the cookie, the user and the times here. A
// sign-in gets a new id (an id set before it, by anyone, is worth nothing) and a
// sign-out deletes it, so a stolen cookie stops working at logout. In memory: a
// restart signs everyone out (keep them in your own store in a real host).
/** Idle and absolute lifetimes of a session (ms). */
const SESSION_IDLE_MS = 8 * 3600_000
const SESSION_MAX_MS = 24 * 3600_000
const SESSION_COOKIE = config.insecureCookie ? 'wiki_session' : '__Host-wiki_session'
/** @type {Map<string, { user: string, created: number, seen: number }>} */
const sessions = new Map()

/** The session id the request's cookie names, or null (never throws on a malformed header). @param {http.IncomingMessage} req */
function sessionId (req) {
  for (const part of String(req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=')
    if (eq < 0 || part.slice(0, eq).trim() !== SESSION_COOKIE) continue
    const value = part.slice(eq + 1).trim()
    if (/^[A-Za-z0-9_-]{43}$/.test(value)) return value
  }
  return null
}

/** The signed-in user, or null. @param {http.IncomingMessage} req */
function currentUser (req) {
  const id = sessionId(req)
  const session = id === null ? undefined : sessions.get(id)
  if (!id || !session) return null
  const now = Date.now()
  if (now - session.seen > SESSION_IDLE_MS || now - session.created > SESSION_MAX_MS) {
    sessions.delete(id)
    return null
  }
  session.seen = now
  return session.user
}

/** Start a session for `user` (a new id); the Set-Cookie value. @param {string} user */
function startSession (user) {
  const id = randomBytes(32).toString('base64url')
  const now = Date.now()
  sessions.set(id, { user, created: now, seen: now })
  const secure = config.insecureCookie ? '' : '; Secure'
  return `${SESSION_COOKIE}=${id}; Path=/; Max-Age=${SESSION_MAX_MS / 1000}; HttpOnly; SameSite=Lax${secure}`
}

/** End the request's session; the Set-Cookie value that clears it. @param {http.IncomingMessage} req */
function endSession (req) {
  const id = sessionId(req)
  if (id) sessions.delete(id)
  const secure = config.insecureCookie ? '' : '; Secure'
  return `${SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax${secure}`
}

/**
 * What `user` may do with `page`: 'edit', 'view', or null (nothing). This is the
 * hook a host fills in with its own permissions; the session token's mode follows
 * it, so Chorus enforces it in every editor. Here: the users in WIKI_VIEWERS read,
 * every other signed-in user edits.
 * @param {string} user @param {import('./lib/store.mjs').Page} page @returns {'edit' | 'view' | null}
 */
// eslint-disable-next-line no-unused-vars
function access (user, page) {
  return config.viewers.has(user) ? 'view' : 'edit'
}

/** @param {string} user */
const displayName = (user) => user[0].toUpperCase() + user.slice(1)
/** @param {string} user */
const colorOf = (user) => COLORS[[...user].reduce((h, c) => (h * 31 + c.charCodeAt(0)) >>> 0, 7) % COLORS.length]

// ---- HTTP plumbing -------------------------------------------------------------------

class HttpError extends Error {
  /** @param {number} status @param {string} message */
  constructor (status, message) { super(message); this.status = status }
}

/** @param {http.IncomingMessage} req @param {number} limit @returns {Promise<Buffer>} */
function readBody (req, limit) {
  return new Promise((resolve, reject) => {
    /** @type {Buffer[]} */
    const chunks = []
    let size = 0
    req.on('data', (chunk) => {
      size += chunk.length
      if (size > limit) { reject(new HttpError(413, 'request body too large')); req.destroy() } else chunks.push(chunk)
    })
    req.on('end', () => resolve(Buffer.concat(chunks)))
    req.on('error', reject)
  })
}

/** @param {http.IncomingMessage} req */
const readForm = async (req) => new URLSearchParams((await readBody(req, FORM_BODY_MAX)).toString('utf8'))

/** @param {http.ServerResponse} res @param {number} status @param {string} body */
const sendHtml = (res, status, body) => res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(body)
/** @param {http.ServerResponse} res @param {number} status @param {unknown} value */
const sendJson = (res, status, value) => res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(value))
/** @param {http.ServerResponse} res @param {string} location */
const redirect = (res, location) => res.writeHead(303, { location }).end()

/**
 * A POST from another site (a form or a script on any page the user visits) is
 * refused: the Origin a browser sends must be the wiki's own. (SameSite=Lax alone
 * does not cover sign-in, which has no session yet.)
 * @param {http.IncomingMessage} req
 */
function checkOrigin (req) {
  const origin = req.headers.origin
  if (origin === ownOrigin) return
  if (origin === undefined && req.headers['sec-fetch-site'] === 'same-origin') return
  throw new HttpError(403, 'This request did not come from the wiki\'s own pages.')
}

/** @param {string} id */
const pageUrl = (id, rest = '') => `/pages/${encodeURIComponent(id)}${rest}`

/** A content id from a title: letters and digits, then a random tail so titles may repeat. @param {string} title */
function newPageId (title) {
  const slug = title.normalize('NFKD').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40) || 'page'
  return `${slug}-${randomBytes(4).toString('hex')}`
}

// ---- routes ----------------------------------------------------------------------------

/**
 * @typedef {{ req: http.IncomingMessage, res: http.ServerResponse, user: string, page: import('./lib/store.mjs').Page, params: string[], url: URL }} PageContext
 */

/** @param {string} id */
function pageOr404 (id) {
  const page = store.page(id)
  if (!page) throw new HttpError(404, 'There is no such page.')
  return page
}

/** The draft as Chorus renders it, for the publish preview. @param {string} id */
const draftHtml = (id) => host.getDraft(id, { format: 'html' })

/** @type {Record<string, (ctx: PageContext) => Promise<void> | void>} */
const pageRoutes = {
  'GET ': ({ res, user, page, url }) => {
    sendHtml(res, 200, views.viewPage({ user, page, notice: url.searchParams.has('published') ? 'Published.' : null }))
  },

  'GET /edit': ({ res, user, page }) => {
    const mode = access(user, page)
    sendHtml(res, 200, views.editPage({
      user,
      page,
      config: {
        provider: config.editorProvider,
        // A stock y-websocket provider: serverUrl ws(s)://chorus/v1/ws/{app}, room = the content id.
        serverUrl: `${browserWs}/v1/ws/${encodeURIComponent(config.appId)}`,
        // Or @hocuspocus/provider: url ws(s)://chorus/v1/hocuspocus/{app}, name = the content id.
        hocuspocusUrl: `${browserWs}/v1/hocuspocus/${encodeURIComponent(config.appId)}`,
        room: page.id,
        readOnly: mode === 'view',
        token: sessionTokenFor(user, page),
        tokenUrl: pageUrl(page.id, '/token'),
        tokenRefreshSecs: SESSION_TOKEN_SECS / 2,
        user: { name: displayName(user), color: colorOf(user) }
      }
    }))
  },

  // Editor pages fetch a fresh token before the one they hold expires, so a provider
  // that reconnects after a network blip is let in again.
  'GET /token': ({ res, user, page }) => { sendJson(res, 200, { token: sessionTokenFor(user, page) }) },

  'GET /publish': async ({ res, user, page }) => {
    sendHtml(res, 200, views.publishPage({ user, page, draft: await draftHtml(page.id) }))
  },

  'POST /publish': async ({ req, res, user, page }) => {
    mustEdit(user, page)
    const etag = (await readForm(req)).get('etag') ?? ''
    if (!etag) throw new HttpError(400, 'The form has no draft version to publish.')
    try {
      // Publish exactly what was reviewed: if anyone changed the draft since the
      // preview was read, Chorus refuses (409 conflict) and nothing is published.
      // `by`: the people editing the page are told who published it.
      const result = await host.publish(page.id, { ifMatch: etag, conflictPolicy: 'abort', by: actedBy(user) })
      await store.updatePage(page.id, (p) => {
        p.published = { title: result.title, html: result.html, etag: result.etag, at: result.publishedAt, by: user }
      })
      redirect(res, pageUrl(page.id, '?published'))
    } catch (err) {
      if (!isChorusApiError(err, 'conflict')) throw err
      sendHtml(res, 409, views.publishPage({
        user,
        page,
        draft: await draftHtml(page.id),
        notice: 'The draft changed while you were reviewing it, so nothing was published. This is the draft now: review it and publish again.'
      }))
    }
  },

  'GET /history': async ({ res, user, page }) => {
    sendHtml(res, 200, views.historyPage({ user, page, points: await host.listHistory(page.id) }))
  },

  'GET /history/:point': async ({ res, user, page, params }) => {
    const number = Number(params[0])
    const point = (await host.listHistory(page.id)).find((p) => p.point === number)
    if (!point) throw new HttpError(404, 'There is no such history point.')
    const content = await host.getHistoryPoint(page.id, number, { format: 'html' })
    sendHtml(res, 200, views.pointPage({ user, page, point, content }))
  },

  'POST /history/:point/restore': async ({ res, user, page, params }) => {
    mustEdit(user, page)
    // An external change: every open editor shows the restored content as it arrives.
    await host.restore(page.id, Number(params[0]), { by: actedBy(user) })
    redirect(res, pageUrl(page.id, '/edit'))
  },

  // Back to the published version: an external change every open editor shows, and
  // they are told who discarded the changes.
  'POST /discard': async ({ res, user, page }) => {
    mustEdit(user, page)
    try {
      await host.discard(page.id, { by: actedBy(user) })
    } catch (err) {
      if (!isChorusApiError(err, 'not-found')) throw err
      throw new HttpError(409, 'This page was never published: there is no published version to go back to.')
    }
    redirect(res, pageUrl(page.id, '/edit'))
  },

  // The draft, its history and log go in Chorus (open editors are closed with 4404
  // and stop); the wiki forgets the page too.
  'POST /delete': async ({ res, user, page }) => {
    mustEdit(user, page)
    try {
      await host.deleteDraft(page.id)
    } catch (err) {
      if (!isChorusApiError(err, 'not-found')) throw err // already gone in Chorus
    }
    await store.removePage(page.id)
    redirect(res, `/?deleted=${encodeURIComponent(page.published?.title ?? page.title)}`)
  }
}

/** Who did something, as Chorus tells the page's editors. @param {string} user */
const actedBy = (user) => ({ id: user, name: displayName(user) })

/** @param {string} user @param {import('./lib/store.mjs').Page} page */
function mustEdit (user, page) {
  if (access(user, page) !== 'edit') throw new HttpError(403, 'You may read this page, not change it.')
}

/** A session token whose mode is what `access` allows. @param {string} user @param {import('./lib/store.mjs').Page} page */
function sessionTokenFor (user, page) {
  const mode = access(user, page)
  if (mode === null) throw new HttpError(403, 'You may not open this page.')
  return mintSessionToken({
    appId: config.appId,
    secret: secrets[0],
    user,
    doc: page.id,
    mode,
    name: displayName(user), // collaborators see this name on the caret: Chorus stamps it
    color: colorOf(user),
    ttlSecs: SESSION_TOKEN_SECS
  })
}

/**
 * Chorus's webhooks: verified (signature with any of the app's secrets, `aud`,
 * expiry, the body's SHA-256 against the token's `body_sha256`) before anything is
 * believed, then applied once per event id. An answer other than 2xx makes Chorus
 * retry, so only a request that is not genuine is refused.
 * @param {http.IncomingMessage} req @param {http.ServerResponse} res
 */
async function webhook (req, res) {
  let event
  try {
    // The token first: a request that is not Chorus's is refused before its body
    // (up to tens of MiB) is read.
    verifyWebhookToken({ appId: config.appId, secrets, authorization: req.headers.authorization })
    const rawBody = await readBody(req, WEBHOOK_BODY_MAX)
    event = verifyWebhook({ appId: config.appId, secrets, authorization: req.headers.authorization, rawBody })
  } catch (err) {
    if (!(err instanceof WebhookError)) throw err
    if (err.authentic) return sendJson(res, 200, { error: 0 }) // a newer event type: genuine, not for us
    console.warn(`wiki: webhook refused: ${err.code}: ${err.message}`)
    const status = err.code === 'body-mismatch' || err.code === 'malformed-body' ? 400 : 401
    return sendJson(res, status, { error: err.code })
  }
  // Events of one document arrive in order, but a retried older one may come after
  // a newer one of its kind: the store applies an event only if it is not older.
  const fresh = await store.applyEvent(event.id, event.doc, event.type, event.at, (page) => {
    switch (event.type) {
      case 'editing':
        page.editing = event.users
        break
      case 'saved':
        page.lastSaved = { etag: event.etag, at: event.at }
        break
      case 'closed':
        page.editing = []
        page.lastClosed = { contributors: event.contributors, at: event.at, title: event.title }
        break
      case 'published':
        // Published elsewhere (another instance of the wiki, a script on the host API).
        if (page.published?.etag !== event.etag && event.publishedAt > (page.published?.at ?? 0)) {
          page.published = { title: event.title, html: event.html, etag: event.etag, at: event.publishedAt, by: '(host API)' }
        }
        break
      case 'external-change':
      case 'deleted':
        break
    }
  })
  // Deleted elsewhere (another instance of the wiki, a script on the host API).
  if (fresh && event.type === 'deleted') await store.removePage(event.doc)
  console.log(`wiki: webhook ${event.type} ${event.id} for ${event.doc}${fresh ? '' : ' (seen before)'}`)
  sendJson(res, 200, { error: 0 })
}

/** @param {http.IncomingMessage} req @param {http.ServerResponse} res */
async function route (req, res) {
  const url = new URL(req.url ?? '/', 'http://wiki.invalid')
  const method = req.method ?? 'GET'

  if (method === 'POST' && url.pathname === '/chorus/webhook') return webhook(req, res)
  if (method === 'POST') checkOrigin(req)
  if (method === 'GET' && url.pathname === '/assets/editor.js') return sendAsset(res, path.join(here, 'dist', 'editor.js'), 'text/javascript')
  if (method === 'GET' && url.pathname === '/assets/wiki.css') return sendAsset(res, path.join(here, 'public', 'wiki.css'), 'text/css')
  if (method === 'POST' && url.pathname === '/login') {
    const user = ((await readForm(req)).get('user') ?? '').trim().toLowerCase()
    if (!USER_NAME.test(user)) throw new HttpError(400, 'A user name is a letter, then up to 31 letters, digits, - or _.')
    // Put your own sign-in here (a password check, SSO): this example takes any name.
    endSession(req)
    res.setHeader('set-cookie', startSession(user))
    return redirect(res, '/')
  }
  if (method === 'POST' && url.pathname === '/logout') {
    res.setHeader('set-cookie', endSession(req))
    return redirect(res, '/')
  }

  // Everything else is for signed-in users (SameSite=Lax keeps other sites' forms out).
  const user = currentUser(req)
  if (!user) return sendHtml(res, method === 'GET' && url.pathname === '/' ? 200 : 401, views.loginPage())

  if (method === 'GET' && url.pathname === '/') {
    const deleted = url.searchParams.get('deleted')
    return sendHtml(res, 200, views.indexPage({ user, pages: store.pages(), notice: deleted === null ? null : `Deleted “${deleted}”.` }))
  }
  if (method === 'POST' && url.pathname === '/pages') {
    const title = ((await readForm(req)).get('title') ?? '').trim()
    if (!title || title.length > 200) throw new HttpError(400, 'A page needs a title of up to 200 characters.')
    const id = newPageId(title)
    // The draft starts in Chorus with the title and one empty paragraph, so the first
    // editors to open it never race to create TipTap's initial paragraph.
    await host.putContent(id, { title, html: '<p></p>' })
    await store.addPage({ id, title, createdBy: user, createdAt: Date.now(), published: null, editing: [], lastSaved: null, lastClosed: null })
    return redirect(res, pageUrl(id, '/edit'))
  }

  const m = url.pathname.match(/^\/pages\/([^/]+)(\/.*)?$/)
  if (m) {
    let id
    try {
      id = decodeURIComponent(m[1])
    } catch {
      throw new HttpError(404, 'There is no such page.')
    }
    const page = pageOr404(id)
    if (access(user, page) === null) throw new HttpError(404, 'There is no such page.')
    const rest = m[2] ?? ''
    /** @type {string[]} */
    const params = []
    const pattern = rest.replace(/^\/history\/(\d{1,15})/, (_, n) => { params.push(n); return '/history/:point' })
    const handler = pageRoutes[`${method} ${pattern}`]
    if (handler) return handler({ req, res, user, page, params, url })
  }
  throw new HttpError(404, 'There is no such page.')
}

/** @param {http.ServerResponse} res @param {string} file @param {string} type */
async function sendAsset (res, file, type) {
  let body
  try {
    body = await readFile(file)
  } catch {
    throw new HttpError(404, `${path.basename(file)} is missing: run npm run build`)
  }
  res.writeHead(200, { 'content-type': `${type}; charset=utf-8` }).end(body)
}

const server = http.createServer((req, res) => {
  route(req, res).catch((err) => answerError(req, res, err))
})

/**
 * The answer to a request that failed. Never throws: a request the error page
 * itself cannot handle (a header it cannot read) still gets an answer, and the
 * process goes on serving everyone else.
 * @param {http.IncomingMessage} req @param {http.ServerResponse} res @param {unknown} err
 */
function answerError (req, res, err) {
  try {
    answerErrorPage(req, res, err)
  } catch (again) {
    console.error('wiki: the error page failed', again)
    if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('Something went wrong.')
    else res.destroy()
  }
}

/** @param {http.IncomingMessage} req @param {http.ServerResponse} res @param {unknown} err */
function answerErrorPage (req, res, err) {
  let status = 500
  let message = 'Something went wrong; the log says what.'
  if (err instanceof HttpError) {
    status = err.status
    message = err.message
  } else if (isChorusApiError(err)) {
    // Chorus's answer, with its stable code: a 404 stays one, anything else is ours to report.
    status = err.status === 404 ? 404 : 502
    message = `Chorus answered ${err.status} ${err.code}: ${err.message}`
    console.error(`wiki: ${err.request}: ${err.status} ${err.code}: ${err.message}`)
  } else if (err instanceof TypeError && /fetch failed/.test(err.message)) {
    status = 503
    message = `Chorus cannot be reached at ${config.chorusUrl}.`
    console.error(`wiki: ${message}`, err.cause ?? err)
  } else {
    console.error('wiki:', err)
  }
  if (res.headersSent) return res.destroy()
  sendHtml(res, status, views.errorPage({ user: currentUser(req), status, message }))
}

server.listen(config.port, config.host, () => {
  const address = /** @type {import('node:net').AddressInfo} */ (server.address())
  const shown = { ...config, viewers: [...config.viewers], secrets: `<${secrets.length} redacted>` }
  console.log(`wiki: configuration ${JSON.stringify(shown)}`)
  console.log(`wiki: listening on http://${address.address}:${address.port}`)
})

for (const signal of /** @type {const} */ (['SIGINT', 'SIGTERM'])) {
  process.once(signal, () => server.close(() => process.exit(0)).closeAllConnections())
}
