#!/usr/bin/env bash
# The host client's checks in one command, for the project's test runner:
#
#   web-client/host-client/run-tests.sh            # CHORUS_BIN defaults to target/debug/chorus
#   CHORUS_BIN=/path/to/chorus web-client/host-client/run-tests.sh
#
# npm ci (when node_modules is missing or older than the lock file), then: the
# generated src/schema.d.ts is up to date with proto/openapi.yaml, tsc --strict
# typecheck, build to dist/, and the node:test suite against the real binary.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
# A relative CHORUS_BIN is taken from where the script was called; the default from here.
if [ -n "${CHORUS_BIN:-}" ]; then
  case "$CHORUS_BIN" in
    /*) ;;
    *) CHORUS_BIN="$(pwd)/$CHORUS_BIN" ;;
  esac
else
  CHORUS_BIN="$here/../../target/debug/chorus"
fi
export CHORUS_BIN
cd "$here"

if [ ! -x "$CHORUS_BIN" ]; then
  echo "run-tests.sh: no chorus binary at $CHORUS_BIN (cargo build -p chorus, or set CHORUS_BIN)" >&2
  exit 1
fi

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "== host-client: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi

echo "== host-client: src/schema.d.ts up to date with proto/openapi.yaml"
npm run --silent check-generated
echo "== host-client: typecheck (tsc --strict)"
npm run --silent typecheck
echo "== host-client: build"
npm run --silent build
echo "== host-client: tests against $CHORUS_BIN"
npm test --silent
