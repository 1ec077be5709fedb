#!/usr/bin/env bash
# The example wiki's checks in one command, for the project's test runner:
#
#   deploy/example-host/run-tests.sh           # CHORUS_BIN defaults to target/debug/chorus
#   CHORUS_BIN=/path/to/chorus deploy/example-host/run-tests.sh
#
# Runs the README's `npm ci && npm run build` (npm ci only when node_modules is
# missing or older than the lock file; the build builds the host client it uses,
# web-client/host-client, when that is not built), typechecks the server (tsc,
# checkJs), then runs the tests: the real chorus,
# the wiki in its own process, two people in headless Chromium (CHROMIUM_PATH,
# default Debian's /usr/bin/chromium).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
if [ -n "${CHORUS_BIN:-}" ]; then
  case "$CHORUS_BIN" in
    /*) ;;
    *) CHORUS_BIN="$(pwd)/$CHORUS_BIN" ;;
  esac
else
  CHORUS_BIN="$repo/target/debug/chorus"
fi
export CHORUS_BIN
if [ ! -x "$CHORUS_BIN" ]; then
  echo "run-tests.sh: no chorus binary at $CHORUS_BIN (cargo build -p chorus, or set CHORUS_BIN)" >&2
  exit 1
fi

cd "$here"
# The README's commands, as a fresh clone runs them: `npm ci && npm run build` (the
# build builds web-client/host-client first when its dist/ is missing).
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "== example-host: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi
echo "== example-host: npm run build (the host client too, when not built)"
npm run --silent build
echo "== example-host: typecheck (tsc, checkJs)"
npm run --silent typecheck
echo "== example-host: browser test against $CHORUS_BIN"
npm test --silent
