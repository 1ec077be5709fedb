// Builds the demo bundle: dist/chorus-demo.js, dist/chorus-demo.css and
// dist/index.html (the page `chorus serve --demo` answers at /demo).
// Usage: npm run build   (from web-client/)
import * as esbuild from 'esbuild'
import { copyFile, mkdir } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const dist = path.join(here, 'dist')
await mkdir(dist, { recursive: true })

await esbuild.build({
  entryPoints: { 'chorus-demo': path.join(here, 'src', 'demo.ts') },
  outdir: dist,
  bundle: true,
  format: 'iife',
  target: ['es2020'],
  minify: true,
  sourcemap: true,
  legalComments: 'linked',
  logLevel: 'warning'
})
await copyFile(path.join(here, 'demo', 'chorus-demo.css'), path.join(dist, 'chorus-demo.css'))
await copyFile(path.join(here, 'demo', 'index.html'), path.join(dist, 'index.html'))
console.log(`built ${path.relative(process.cwd(), dist) || '.'}/{chorus-demo.js,chorus-demo.css,index.html}`)
