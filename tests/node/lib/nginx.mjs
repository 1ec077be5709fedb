// Debian's nginx in front of chorus servers (round-robin), as the proxy of a
// network that refuses websockets: it strips the upgrade (Chorus then answers the
// handshake 400, which a browser reports as close 1006). Started on a fixed port
// so it can be killed and started again (cutting every connection through it) at
// the same address.
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import net from 'node:net'
import path from 'node:path'
import { sleep } from '../harness.mjs'

const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => existsSync(p))

function freePort () {
  return new Promise((resolve) => {
    const probe = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address()
      probe.close(() => resolve(port))
    })
  })
}

function config (dir, port, upstreams, { allowUpgrades }) {
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
    .map((t) => `${t}_temp_path ${dir}/${t};`).join('\n  ')
  return `daemon off;
master_process off;
error_log ${dir}/error.log warn;
pid ${dir}/nginx.pid;
events { worker_connections 1024; }
http {
  access_log ${dir}/access.log;
  ${temp}
  upstream chorus {
    ${upstreams.map((u) => `server ${u};`).join('\n    ')}
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://chorus;
      proxy_http_version 1.1;
      ${allowUpgrades
        ? 'proxy_set_header Upgrade $http_upgrade;\n      proxy_set_header Connection "upgrade";'
        : '# The point: no websocket gets through.\n      proxy_set_header Upgrade "";\n      proxy_set_header Connection "";'}
      proxy_read_timeout 120s;
    }
  }
}
`
}

/** nginx on a free port proxying to `upstreams` (host:port, round-robin) with upgrades refused. */
export async function startBlockingProxy (upstreams) {
  if (NGINX === undefined) throw new Error('Debian\'s nginx is needed (tests/run installs nginx-light)')
  const dir = await mkdtemp(path.join(tmpdir(), 'chorus-nginx-'))
  for (const t of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) await mkdir(path.join(dir, t))
  const port = await freePort()
  const conf = path.join(dir, 'nginx.conf')
  const write = (allowUpgrades) => writeFile(conf, config(dir, port, upstreams, { allowUpgrades }))
  await write(false)
  let child = null
  const start = async () => {
    child = spawn(NGINX, ['-c', conf, '-p', dir], { stdio: ['ignore', 'ignore', 'pipe'] })
    let err = ''
    child.stderr.on('data', (c) => { err += c })
    for (let i = 0; i < 100; i++) {
      const up = await fetch(`http://127.0.0.1:${port}/v1/heartbeat`).then((r) => r.ok, () => false)
      if (up) return
      if (child.exitCode !== null) throw new Error(`nginx exited: ${err}`)
      await sleep(50)
    }
    throw new Error(`nginx did not come up: ${err}`)
  }
  const stop = async () => {
    if (child === null || child.exitCode !== null) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGKILL')
    await exited
  }
  await start()
  return {
    url: `http://127.0.0.1:${port}`,
    /** Kill nginx (every connection through it is cut) and start it again on the same port. */
    async restart () { await stop(); await start() },
    /** Restart letting websocket upgrades through (`true`) or not. */
    async allowUpgrades (allow) { await stop(); await write(allow); await start() },
    stop,
    async close () { await stop(); await rm(dir, { recursive: true, force: true }) }
  }
}
