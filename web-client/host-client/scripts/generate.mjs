// Generates src/schema.d.ts from proto/openapi.yaml with openapi-typescript (the
// pinned devDependency), or with `--check` regenerates into a temp file and fails if
// it differs from the committed one (a spec change without `npm run generate`).
//
//   node scripts/generate.mjs            # npm run generate
//   node scripts/generate.mjs --check    # npm run check-generated
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const SPEC = path.resolve(root, '..', '..', 'proto', 'openapi.yaml')
const OUT = path.join(root, 'src', 'schema.d.ts')
// `attrs` / `marks` of a Node are `{type: object}` without properties: the default,
// `Record<string, never>`, would say they are always empty.
const FLAGS = ['--empty-objects-unknown']

const require = createRequire(import.meta.url)
const pkgDir = path.dirname(require.resolve('openapi-typescript/package.json'))
const bin = require('openapi-typescript/package.json').bin
const cli = path.join(pkgDir, typeof bin === 'string' ? bin : bin['openapi-typescript'])

function generate (output) {
  // The spec path is given relative to the package dir so the generated file does not
  // depend on where the repository is checked out.
  execFileSync(process.execPath, [cli, path.relative(root, SPEC), ...FLAGS, '--output', output], {
    cwd: root,
    stdio: ['ignore', 'ignore', 'inherit']
  })
}

if (!process.argv.includes('--check')) {
  generate(OUT)
  console.log(`wrote ${path.relative(root, OUT)} from ${path.relative(root, SPEC)}`)
} else {
  const dir = mkdtempSync(path.join(tmpdir(), 'chorus-host-client-schema-'))
  try {
    const fresh = path.join(dir, 'schema.d.ts')
    generate(fresh)
    const want = readFileSync(fresh, 'utf8')
    let have
    try { have = readFileSync(OUT, 'utf8') } catch { have = null }
    if (have !== want) {
      const a = (have ?? '').split('\n')
      const b = want.split('\n')
      let line = 0
      while (line < a.length && line < b.length && a[line] === b[line]) line++
      console.error(`${path.relative(root, OUT)} is out of date with ${path.relative(root, SPEC)}` +
        (have === null ? ' (missing)' : ` (first difference at line ${line + 1}:\n  committed: ${JSON.stringify(a[line] ?? '<end of file>')}\n  generated: ${JSON.stringify(b[line] ?? '<end of file>')})`) +
        '\nrun `npm run generate` in web-client/host-client and commit the result')
      process.exitCode = 1
    } else {
      console.log(`${path.relative(root, OUT)} is up to date with ${path.relative(root, SPEC)}`)
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
