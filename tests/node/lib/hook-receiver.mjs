// A webhook receiver for tests: a real HTTP server on a free port that records every
// request the service makes to an app's callback URL and answers as the test decides.
import http from 'node:http'

/** A callback receiver: records every request; `respond(req, body)` decides the answer. */
export async function receiver (respond = () => ({ status: 200, body: '{"error":0}' })) {
  const requests = []
  const srv = http.createServer((req, res) => {
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', () => {
      const raw = Buffer.concat(chunks)
      let body = null
      try { body = JSON.parse(raw.toString('utf8')) } catch {}
      const entry = { headers: req.headers, raw, body }
      const answer = respond(entry, requests.filter((r) => r.body?.id === body?.id).length)
      entry.status = answer.status
      // What the service must count as success: 2xx, unless the body says {"error": non-zero}.
      let error = 0
      try { error = JSON.parse(answer.body ?? '{}').error ?? 0 } catch {}
      entry.ok = !answer.destroy && answer.status >= 200 && answer.status < 300 && !(typeof error === 'number' && error !== 0)
      requests.push(entry)
      if (answer.destroy) { req.socket.destroy(); return }
      res.writeHead(answer.status, { 'content-type': 'application/json' })
      res.end(answer.body ?? '')
    })
  })
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${srv.address().port}/chorus/callback`,
    requests,
    accepted: () => requests.filter((r) => r.ok),
    close: () => new Promise((resolve) => { srv.closeAllConnections?.(); srv.close(resolve) })
  }
}

