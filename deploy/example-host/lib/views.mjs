// @ts-check
// The wiki's HTML pages: plain template strings, every interpolated value escaped by
// `html` unless it is marked `raw` (Chorus's whitelisted body HTML, our own fragments).

/** A string that is already HTML. */
class Raw {
  /** @param {string} value */
  constructor (value) { this.value = value }
  toString () { return this.value }
}

/** Marks trusted HTML: Chorus's cleaned body HTML, or a fragment built with `html`. @param {string} value */
export const raw = (value) => new Raw(value)

/** @param {unknown} value */
const escape = (value) => String(value)
  .replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;')
  .replaceAll('"', '&quot;').replaceAll("'", '&#39;')

/**
 * Tagged template: interpolations are escaped, except `raw(…)` values and arrays of them.
 * @param {TemplateStringsArray} strings @param {unknown[]} values
 */
export function html (strings, ...values) {
  let out = strings[0]
  values.forEach((value, i) => {
    const parts = Array.isArray(value) ? value : [value]
    for (const part of parts) out += part instanceof Raw ? part.value : (part === undefined || part === null || part === false ? '' : escape(part))
    out += strings[i + 1]
  })
  return raw(out)
}

/** @param {number} ms */
const when = (ms) => new Date(ms).toISOString().replace('T', ' ').slice(0, 19) + ' UTC'

/**
 * The frame of every page.
 * @param {{ title: string, user?: string | null, body: Raw, notice?: string | null, head?: Raw }} page
 */
export function layout ({ title, user, body, notice, head }) {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · Example wiki</title><link rel="stylesheet" href="/assets/wiki.css">${head ?? ''}</head>
<body><header><a href="/" class="brand">Example wiki</a>
${user ? html`<form method="post" action="/logout" class="who">Signed in as <b data-testid="whoami">${user}</b> <button>Sign out</button></form>` : ''}
</header><main>
${notice ? html`<p class="notice" role="status" data-testid="notice">${notice}</p>` : ''}
${body}
</main></body></html>`.value
}

export function loginPage () {
  return layout({
    title: 'Sign in',
    body: html`<h1>Sign in</h1>
<p>This example trusts whatever name you type: put your own sign-in here.</p>
<form method="post" action="/login"><label>User name <input name="user" required pattern="[a-z][a-z0-9_-]{0,31}" autofocus></label>
<button>Sign in</button></form>`
  })
}

/**
 * @param {{ user: string, pages: import('./store.mjs').Page[], notice?: string | null }} options
 */
export function indexPage ({ user, pages, notice }) {
  const rows = pages.map((p) => html`<li data-page="${p.id}"><a href="/pages/${encodeURIComponent(p.id)}">${p.published?.title ?? p.title}</a>
 <span class="meta">${p.published ? `published ${when(p.published.at)} by ${p.published.by}` : 'not published yet'}</span>
 ${p.editing.length ? html`<span class="editing" data-testid="editing">editing now: ${p.editing.join(', ')}</span>` : ''}
 ${p.lastSaved ? html`<span class="meta" data-testid="saved">draft saved ${when(p.lastSaved.at)}</span>` : ''}
 ${p.lastClosed ? html`<span class="meta" data-testid="closed">last session closed ${when(p.lastClosed.at)}, contributors: ${p.lastClosed.contributors.join(', ')}</span>` : ''}</li>`)
  return layout({
    title: 'Pages',
    user,
    notice,
    body: html`<h1>Pages</h1>
<form method="post" action="/pages" class="new"><label>New page <input name="title" required maxlength="200" placeholder="Title"></label> <button>Create</button></form>
${pages.length ? html`<ul class="pages">${rows}</ul>` : html`<p>No pages yet.</p>`}`
  })
}

/**
 * The published version (what readers see).
 * @param {{ user: string, page: import('./store.mjs').Page, notice?: string | null }} options
 */
export function viewPage ({ user, page, notice }) {
  const id = encodeURIComponent(page.id)
  return layout({
    title: page.published?.title ?? page.title,
    user,
    notice,
    body: html`<nav class="actions"><a href="/pages/${id}/edit">Edit</a> <a href="/pages/${id}/history">History</a></nav>
${page.published
  ? html`<article data-testid="published"><h1>${page.published.title}</h1>${raw(page.published.html)}</article>
<p class="meta">Published ${when(page.published.at)} by ${page.published.by}.</p>`
  : html`<h1>${page.title}</h1><p>Not published yet: <a href="/pages/${id}/edit">edit the draft</a> and publish it.</p>`}`
  })
}

/**
 * The editor: a shell the bundle (browser/editor.mjs) fills in. The configuration is
 * JSON in a script element, escaped for that context (no `</script>` can end it).
 * @param {{ user: string, page: import('./store.mjs').Page, config: { readOnly: boolean } & Record<string, unknown> }} options
 */
export function editPage ({ user, page, config }) {
  const id = encodeURIComponent(page.id)
  const json = JSON.stringify(config).replaceAll('<', '\\u003c')
  return layout({
    title: `Editing ${page.title}`,
    user,
    head: html`<script type="application/json" id="wiki-config">${raw(json)}</script><script src="/assets/editor.js" defer></script>`,
    body: html`<nav class="actions"><a href="/pages/${id}">View published</a> <a href="/pages/${id}/publish" data-testid="publish-link">Publish…</a> <a href="/pages/${id}/history">History</a>
<span class="status" data-testid="status">connecting…</span></nav>
<p class="notice" role="status" data-testid="host-action" hidden></p>
<input class="title" data-testid="title" aria-label="Title" disabled>
<div class="toolbar" role="toolbar">
<button type="button" data-command="bold"><b>B</b></button><button type="button" data-command="italic"><i>I</i></button>
<button type="button" data-command="heading">H2</button><button type="button" data-command="bulletList">• List</button>
</div>
<div id="editor" data-testid="editor"></div>
${config.readOnly ? '' : html`<details class="danger"><summary>Discard or delete</summary>
<form method="post" action="/pages/${id}/discard"><button data-testid="discard">Discard unpublished changes</button>
<span class="meta">back to the published version, for everyone editing</span></form>
<form method="post" action="/pages/${id}/delete"><button data-testid="delete">Delete this page</button>
<span class="meta">its draft and history too; everyone editing is closed</span></form></details>`}`
  })
}

/**
 * The publish preview: the draft as Chorus renders it, and its ETag in the form, so
 * what is published is exactly what was reviewed (`conflictPolicy=abort`).
 * @param {{ user: string, page: import('./store.mjs').Page, draft: { title: string, html: string, etag: string }, notice?: string | null }} options
 */
export function publishPage ({ user, page, draft, notice }) {
  const id = encodeURIComponent(page.id)
  return layout({
    title: `Publish ${draft.title}`,
    user,
    notice,
    body: html`<h1>Review before publishing</h1>
<article class="preview" data-testid="preview"><h1>${draft.title}</h1>${raw(draft.html)}</article>
<form method="post" action="/pages/${id}/publish"><input type="hidden" name="etag" value="${draft.etag}">
<button data-testid="publish">Publish this version</button> <a href="/pages/${id}/edit">Back to the editor</a></form>`
  })
}

/**
 * @param {{ user: string, page: import('./store.mjs').Page, points: import('@chorus/host-client').HistoryPoint[] }} options
 */
export function historyPage ({ user, page, points }) {
  const id = encodeURIComponent(page.id)
  const rows = [...points].reverse().map((p) => html`<tr data-point="${p.point}"><td>${p.point}</td><td>${when(p.at)}</td>
<td>${p.kind}${p.restoredFrom ? ` of ${p.restoredFrom}` : ''}</td><td>${p.title}</td><td>${p.sizeBytes} B</td>
<td><a href="/pages/${id}/history/${p.point}">View</a></td></tr>`)
  return layout({
    title: `History of ${page.title}`,
    user,
    body: html`<h1>History</h1><p><a href="/pages/${id}/edit">Back to the editor</a></p>
${points.length
  ? html`<table class="history" data-testid="history"><tr><th>#</th><th>When</th><th>Kind</th><th>Title</th><th>Size</th><th></th></tr>${rows}</table>`
  : html`<p>No history points yet: one is made on every publish and restore, and automatically while people edit.</p>`}`
  })
}

/**
 * @param {{ user: string, page: import('./store.mjs').Page, point: import('@chorus/host-client').HistoryPoint, content: import('@chorus/host-client').HistoryPointHtml }} options
 */
export function pointPage ({ user, page, point, content }) {
  const id = encodeURIComponent(page.id)
  return layout({
    title: `${page.title}, point ${point.point}`,
    user,
    body: html`<h1>Point ${point.point} (${point.kind}, ${when(point.at)})</h1>
<article class="preview" data-testid="point"><h1>${content.title}</h1>${raw(content.html)}</article>
<form method="post" action="/pages/${id}/history/${point.point}/restore"><button data-testid="restore">Restore this version</button>
<a href="/pages/${id}/history">Back to the history</a></form>
<p class="meta">Restoring is an external change: everyone editing sees it appear, and a new history point records it.</p>`
  })
}

/** @param {{ user?: string | null, status: number, message: string }} options */
export function errorPage ({ user, status, message }) {
  return layout({ title: `Error ${status}`, user, body: html`<h1>Error ${status}</h1><p data-testid="error">${message}</p><p><a href="/">All pages</a></p>` })
}
