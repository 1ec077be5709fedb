// What the Chromium suites share: where Chromium is and how it is started, the
// web client's build, and a page script reading an editor's text.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import path from 'node:path'
import { chromium } from 'playwright-core'
import { REPO_ROOT } from '../harness.mjs'

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync']
export const WEB_CLIENT = path.join(REPO_ROOT, 'web-client')

/** Debian's Chromium, headless, with the suites' flags (and `extraArgs`). */
export function launchChromium (extraArgs = []) {
  return chromium.launch({ executablePath: CHROMIUM, args: [...CHROMIUM_ARGS, ...extraArgs] })
}

/** Page script: `window.plainText(selector)`, an element's text without the telepointer widgets (their labels are text too). */
export function definePlainText () {
  window.plainText = (selector) => {
    const el = document.querySelector(selector)
    if (el === null) return null
    const copy = el.cloneNode(true)
    copy.querySelectorAll('.chorus-cursor').forEach((c) => c.remove())
    return copy.textContent
  }
}

/** Run `cmd` in `cwd`; resolves with its output, rejects with it on a non-zero exit. */
export function run (cmd, args, cwd) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (c) => { output += c })
    child.stderr.on('data', (c) => { output += c })
    child.once('error', reject)
    child.once('exit', (code) => code === 0
      ? resolve(output)
      : reject(new Error(`${cmd} ${args.join(' ')} (in ${cwd}) exited ${code}\n${output}`)))
  })
}

/** npm ci (only when node_modules is missing) and npm run build in web-client/. */
export async function buildWebClient () {
  if (!existsSync(path.join(WEB_CLIENT, 'node_modules'))) {
    await run('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], WEB_CLIENT)
  }
  await run('npm', ['run', 'build', '--silent'], WEB_CLIENT)
  assert.ok(existsSync(path.join(WEB_CLIENT, 'dist', 'chorus-demo.js')), 'the build wrote dist/chorus-demo.js')
}
