// A proxy that answers only once the upstream response is complete, as buffering
// proxies (virus scanners, some corporate gateways) do: a stream of server-sent
// events through it delivers nothing until it ends. It also refuses websocket
// upgrades (an Upgrade request is forwarded as a plain GET, which Chorus answers
// 400). nginx cannot stand in here: measured with nginx 1.22, `proxy_buffering
// on` (with `X-Accel-Buffering` ignored), `gzip` and `postpone_output` all pass
// each event through as it comes.
import http from 'node:http'

const HOP = new Set(['connection', 'upgrade', 'keep-alive', 'transfer-encoding', 'content-length', 'content-encoding', 'host'])

export async function startBufferingProxy (upstream) {
  const server = http.createServer(async (req, res) => {
    const chunks = []
    for await (const c of req) chunks.push(c)
    const abort = new AbortController()
    res.on('close', () => abort.abort())
    const headers = Object.fromEntries(Object.entries(req.headers).filter(([k]) => !HOP.has(k)))
    try {
      const answer = await fetch(`${upstream}${req.url}`, {
        method: req.method,
        headers,
        body: chunks.length > 0 ? Buffer.concat(chunks) : undefined,
        signal: abort.signal
      })
      // The whole body first: this is the buffering.
      const body = Buffer.from(await answer.arrayBuffer())
      const out = {}
      answer.headers.forEach((v, k) => { if (!HOP.has(k)) out[k] = v })
      res.writeHead(answer.status, out)
      res.end(body)
    } catch {
      if (!res.headersSent) res.writeHead(502)
      res.end()
    }
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    /** Cut every connection through it (as a restart would), and go on serving. */
    async restart () { server.closeAllConnections() },
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve) })
  }
}
