// `npm run build`: compile src/ to dist/ with tsc (tsconfig.build.json), then copy the
// generated src/schema.d.ts next to the output (tsc does not emit or copy .d.ts
// sources, and dist/index.d.ts imports it).
import { execFileSync } from 'node:child_process'
import { copyFileSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const dist = path.join(root, 'dist')
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')

rmSync(dist, { recursive: true, force: true })
execFileSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.build.json')], { cwd: root, stdio: 'inherit' })
copyFileSync(path.join(root, 'src', 'schema.d.ts'), path.join(dist, 'schema.d.ts'))
console.log('built dist/')
