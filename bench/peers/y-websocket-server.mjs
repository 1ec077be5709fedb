// @y/websocket-server 0.1.1 (pinned in package.json), in memory (no YPERSISTENCE).
// The package's own bin does the same but binds HOST (default localhost); this
// binds 127.0.0.1 and reads PORT. Usage: PORT=1234 node y-websocket-server.mjs
import http from 'node:http'
import WebSocket from 'ws'
import { setupWSConnection } from '@y/websocket-server/utils'

const host = process.env.HOST || '127.0.0.1'
const port = Number(process.env.PORT || 1234)
const wss = new WebSocket.Server({ noServer: true })
wss.on('connection', setupWSConnection)
const server = http.createServer((_req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/plain' })
  res.end('okay')
})
server.on('upgrade', (req, socket, head) => {
  wss.handleUpgrade(req, socket, head, ws => wss.emit('connection', ws, req))
})
server.listen(port, host, () => console.log(`y-websocket-server listening on ${host}:${port}`))
