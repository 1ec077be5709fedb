// @hocuspocus/server 4.7.0 (pinned in package.json): default settings, no
// extensions (so in memory), no start screen. Binds 127.0.0.1, reads PORT.
// Usage: PORT=1235 node hocuspocus-server.mjs
import { Server } from '@hocuspocus/server'

const address = process.env.HOST || '127.0.0.1'
const port = Number(process.env.PORT || 1235)
const server = new Server({ port, address, quiet: true })
await server.listen()
console.log(`hocuspocus listening on ${address}:${port}`)
