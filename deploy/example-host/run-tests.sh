#!/usr/bin/env bash
# The example wiki's checks in one command, for the project's test runner:
#
#   deploy/example-host/run-tests.sh           # CHORUS_BIN defaults to target/debug/chorus
#   CHORUS_BIN=/path/to/chorus deploy/example-host/run-tests.sh
#
# Builds the host client it uses (web-client/host-client: npm ci, build), npm ci here
# (when node_modules is missing or older than the lock file), typechecks the server
# (tsc, checkJs), bundles the editor, then runs the browser test: the real chorus,
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

hc="$repo/web-client/host-client"
if [ ! -f "$hc/node_modules/.package-lock.json" ] || [ "$hc/package-lock.json" -nt "$hc/node_modules/.package-lock.json" ]; then
  echo "== example-host: npm ci in web-client/host-client"
  (cd "$hc" && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "== example-host: build web-client/host-client"
(cd "$hc" && npm run --silent build)

cd "$here"
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "== example-host: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi
echo "== example-host: typecheck (tsc, checkJs)"
npm run --silent typecheck
echo "== example-host: bundle the editor"
npm run --silent build
echo "== example-host: browser test against $CHORUS_BIN"
npm test --silent
