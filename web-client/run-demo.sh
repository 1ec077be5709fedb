#!/usr/bin/env bash
# The service with the demo editor, in one command: builds the web client bundle
# (npm ci + esbuild) when it is missing or older than its sources, then runs
# `chorus serve --demo` on http://127.0.0.1:10123 (extra arguments are passed on).
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -f dist/chorus-demo.js ] || [ -n "$(find src demo build.mjs package-lock.json -newer dist/chorus-demo.js -print -quit)" ]; then
  echo "== building the web client (web-client/dist)"
  [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error
  npm run build --silent
fi
cd ..
exec cargo run --release --bin chorus -- serve --demo "$@"
