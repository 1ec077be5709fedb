// @ts-check
// The wiki's own records, in one JSON file: its pages (what was last published, and
// what the webhooks said about the draft) and the webhook event ids already handled.
//
// The draft itself is not here: Chorus keeps it, durably, and the wiki reads it
// through the host API when it needs it (the publish preview, history).
import { readFile, rename, writeFile } from 'node:fs/promises'

/**
 * @typedef {object} Published
 * @property {string} title
 * @property {string} html   body HTML, cleaned by Chorus's whitelist
 * @property {string} etag   the draft's ETag that was published
 * @property {number} at     ms since the epoch
 * @property {string} by     user id
 *
 * @typedef {object} Page
 * @property {string} id              the Chorus content id
 * @property {string} title           as created (the draft's title may have changed since)
 * @property {string} createdBy
 * @property {number} createdAt
 * @property {Published | null} published
 * @property {string[]} editing       user ids, from the last `editing` webhook (cleared by `closed`)
 * @property {{ etag: string, at: number } | null} lastSaved   from `saved` webhooks
 * @property {{ contributors: string[], at: number, title: string } | null} lastClosed   from `closed`
 * @property {Record<string, number>} [eventAt]   `at` of the last event of each type applied
 *
 * @typedef {object} Data
 * @property {Record<string, Page>} pages
 * @property {string[]} seenEvents    webhook event ids handled, newest last
 */

/** How many webhook ids are remembered for de-duplication (Chorus retries for a day). */
const SEEN_EVENTS_KEPT = 10_000

export class WikiStore {
  /** @type {string} */
  #file
  /** @type {Data} */
  #data
  /** @type {Set<string>} */
  #seen
  /** Writes are chained, so the file always holds a complete, recent state. */
  #writing = Promise.resolve()

  /** @param {string} file @param {Data} data */
  constructor (file, data) {
    this.#file = file
    this.#data = data
    this.#seen = new Set(data.seenEvents)
  }

  /** Opens the file, or starts empty when it does not exist yet. @param {string} file */
  static async open (file) {
    /** @type {Data} */
    let data = { pages: {}, seenEvents: [] }
    try {
      data = JSON.parse(await readFile(file, 'utf8'))
    } catch (err) {
      if (/** @type {NodeJS.ErrnoException} */ (err).code !== 'ENOENT') throw err
    }
    return new WikiStore(file, data)
  }

  /** @returns {Page[]} newest first */
  pages () {
    return Object.values(this.#data.pages).sort((a, b) => b.createdAt - a.createdAt)
  }

  /** @param {string} id @returns {Page | undefined} */
  page (id) {
    return Object.hasOwn(this.#data.pages, id) ? this.#data.pages[id] : undefined
  }

  /** @param {Page} page */
  async addPage (page) {
    this.#data.pages[page.id] = page
    await this.#save()
  }

  /** Changes one page and saves; a page the wiki does not know is ignored. @param {string} id @param {(page: Page) => void} change */
  async updatePage (id, change) {
    const page = this.page(id)
    if (!page) return false
    change(page)
    await this.#save()
    return true
  }

  /** Forgets a page (its draft was deleted in Chorus); false if it was not known. @param {string} id */
  async removePage (id) {
    if (!this.page(id)) return false
    delete this.#data.pages[id]
    await this.#save()
    return true
  }

  /**
   * Applies a webhook event to its page, once: false (and nothing changed) if this
   * event id was handled before, a redelivery after a lost answer. The change and the
   * id are saved together, so a crash between them cannot apply an event twice.
   * @param {string} eventId @param {string} pageId @param {string} type @param {number} at
   * @param {(page: Page) => void} change
   */
  async applyEvent (eventId, pageId, type, at, change) {
    if (this.#seen.has(eventId)) return false
    this.#seen.add(eventId)
    this.#data.seenEvents.push(eventId)
    if (this.#data.seenEvents.length > SEEN_EVENTS_KEPT) {
      for (const old of this.#data.seenEvents.splice(0, this.#data.seenEvents.length - SEEN_EVENTS_KEPT)) this.#seen.delete(old)
    }
    const page = this.page(pageId)
    // An event older than the last one of its type applied to the page (a retry
    // that arrives after a newer event) would put back an older state: skipped.
    if (page) {
      page.eventAt ??= {}
      if (!(page.eventAt[type] > at)) {
        page.eventAt[type] = at
        change(page)
      }
    }
    await this.#save()
    return true
  }

  /** Writes a temporary file and renames it over the old one: a crash leaves one or the other. */
  #save () {
    const snapshot = JSON.stringify(this.#data)
    this.#writing = this.#writing.then(async () => {
      const tmp = `${this.#file}.tmp`
      await writeFile(tmp, snapshot)
      await rename(tmp, this.#file)
    })
    return this.#writing
  }
}
