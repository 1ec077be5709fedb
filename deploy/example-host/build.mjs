// Bundles the editor page's script (browser/editor.mjs) into dist/editor.js.
import { build } from 'esbuild'

await build({
  entryPoints: ['browser/editor.mjs'],
  outfile: 'dist/editor.js',
  bundle: true,
  format: 'iife',
  target: 'es2022',
  minify: true,
  sourcemap: true,
  logLevel: 'warning'
})
console.log('built dist/editor.js')
