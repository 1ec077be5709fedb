// Builds what the wiki needs from a fresh clone: the host client it imports
// (web-client/host-client: npm ci there when its packages are missing, then its
// build) unless its dist/ is there already, then the editor page's script
// (browser/editor.mjs) bundled into dist/editor.js.
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync, statSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'

const here = path.dirname(fileURLToPath(import.meta.url))
const hostClient = path.resolve(here, '../../web-client/host-client')
/** Whether the host client's dist/ is missing or older than any of its sources. */
function hostClientStale () {
  const built = path.join(hostClient, 'dist', 'index.js')
  if (!existsSync(built)) return true
  const at = statSync(built).mtimeMs
  return readdirSync(path.join(hostClient, 'src')).some((f) => statSync(path.join(hostClient, 'src', f)).mtimeMs > at)
}
if (hostClientStale()) {
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
  if (!existsSync(path.join(hostClient, 'node_modules'))) {
    execFileSync(npm, ['ci', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: hostClient, stdio: 'inherit' })
  }
  execFileSync(npm, ['run', '--silent', 'build'], { cwd: hostClient, stdio: 'inherit' })
}

await build({
  entryPoints: [path.join(here, 'browser/editor.mjs')],
  outfile: path.join(here, 'dist/editor.js'),
  bundle: true,
  format: 'iife',
  target: 'es2022',
  minify: true,
  sourcemap: true,
  logLevel: 'warning'
})
console.log('built dist/editor.js')
