// Compile-time checks of the public types (`npm run typecheck` compiles this file; it
// is never run nor built). Each `@ts-expect-error` must stay an error.
import {
  ChorusHost, ChorusAdmin, ChorusApiError, isNotModified, verifyWebhook,
  type DraftJson, type DraftHtml, type DraftYjs, type NotModified, type PublishResult,
  type HistoryPointJson, type HistoryPointHtml, type ChangeResult, type Session, type DocSummary,
  type AppState, type HistoryPoint, type WebhookEvent, type ErrorCode
} from '../src/index.js'

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false
const assertType = <T extends true>(_: T): void => {}

export async function usage (): Promise<void> {
  const host = new ChorusHost({ baseUrl: 'http://127.0.0.1:10123', appId: 'wiki', secret: 's' })
  new ChorusHost({ baseUrl: 'http://127.0.0.1:10123', appId: 'wiki', token: async ({ doc }) => doc ?? 'app-wide' })
  // @ts-expect-error secret and token are exclusive
  new ChorusHost({ baseUrl: 'http://x', appId: 'wiki', secret: 's', token: 't' })

  const json = await host.getDraft('d')
  assertType<Equal<typeof json, DraftJson>>(true)
  const json2 = await host.getDraft('d', { format: 'json' })
  assertType<Equal<typeof json2, DraftJson>>(true)
  const html = await host.getDraft('d', { format: 'html' })
  assertType<Equal<typeof html, DraftHtml>>(true)
  const yjs = await host.getDraft('d', { format: 'yjs' })
  assertType<Equal<typeof yjs, DraftYjs>>(true)
  const conditional = await host.getDraft('d', { format: 'html', ifNoneMatch: html.etag })
  assertType<Equal<typeof conditional, DraftHtml | NotModified>>(true)
  if (!isNotModified(conditional)) assertType<Equal<typeof conditional, DraftHtml>>(true)
  const maybe: string | undefined = Math.random() > 0.5 ? html.etag : undefined
  const either = await host.getDraft('d', { format: 'yjs', ifNoneMatch: maybe, signal: undefined })
  assertType<Equal<typeof either, DraftYjs | NotModified>>(true)
  // @ts-expect-error no such format
  await host.getDraft('d', { format: 'xml' })

  const changed: ChangeResult = await host.putContent('d', { html: '<p>x</p>', baseEtag: json.etag })
  await host.putContent('d', { title: 'T' })
  // @ts-expect-error a title or an html body is required
  await host.putContent('d', { baseEtag: changed.etag })
  // @ts-expect-error no null fields
  await host.putContent('d', { title: null })

  const published = await host.publish('d', { ifMatch: changed.etag, conflictPolicy: 'abort' })
  assertType<Equal<typeof published, PublishResult>>(true)
  const n: number = published.publishedAt
  // @ts-expect-error the spec has only `abort`
  await host.publish('d', { ifMatch: 'e', conflictPolicy: 'merge' })
  // @ts-expect-error If-Match is required
  await host.publish('d', {})

  const points: HistoryPoint[] = await host.listHistory('d')
  const point = await host.getHistoryPoint('d', points[0]?.point ?? 1)
  assertType<Equal<typeof point, HistoryPointJson>>(true)
  const pointHtml = await host.getHistoryPoint('d', 1, { format: 'html' })
  assertType<Equal<typeof pointHtml, HistoryPointHtml>>(true)
  // @ts-expect-error a point has no yjs format
  await host.getHistoryPoint('d', 1, { format: 'yjs' })
  await host.restore('d', 1)

  const sessions: Session[] = await host.listSessions('d')
  const mode: 'edit' | 'view' = sessions[0]!.mode
  await host.downgradeSession('d', sessions[0]!.id)
  await host.endSession('d', sessions[0]!.id)
  const docs: DocSummary[] = await host.listDocuments()

  const admin = new ChorusAdmin({ baseUrl: 'http://127.0.0.1:10123', adminToken: 'a' })
  const state: AppState = await admin.disableApp('wiki')

  try { await host.listDocuments() } catch (e) {
    if (e instanceof ChorusApiError && e.code === 'conflict') {
      const etag: string | undefined = e.etag
      const retry: number | undefined = e.retryAfter
      void etag; void retry
    }
  }
  const code: ErrorCode = 'base-expired'

  const event: WebhookEvent = verifyWebhook({ secret: 's', appId: 'wiki', authorization: 'Bearer x', rawBody: '{}' })
  verifyWebhook({ secrets: ['new', 'old'], appId: 'wiki', authorization: undefined, rawBody: new Uint8Array() })
  // @ts-expect-error a secret is required
  verifyWebhook({ appId: 'wiki', authorization: 'Bearer x', rawBody: '{}' })
  switch (event.type) {
    case 'editing': { const u: string[] = event.users; void u; break }
    case 'saved': { const e: string = event.etag; void e; break }
    case 'closed': { const c: string[] = event.contributors; const changed: boolean = event.changed; void c; void changed; break }
    case 'external-change': { const f: string[] = event.fields; void f; break }
    case 'published': { const t: number = event.publishedAt; void t; break }
    case 'deleted': { const n: number = event.closedSessions; void n; break }
    case 'evicted': { const h: string = event.html; const at: number = event.lastUsedAt; void h; void at; break }
    default: { const never: never = event; void never }
  }
  void n; void mode; void docs; void state; void code; void yjs
}
