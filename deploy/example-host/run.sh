#!/usr/bin/env bash
# Runs the example wiki with Chorus, from this repository, for trying it out:
#
#   deploy/example-host/run.sh        # then open http://127.0.0.1:3000
#
# Builds chorus (cargo, debug) unless CHORUS_BIN names one, builds the host client
# and the editor bundle, starts `chorus serve --config chorus.toml` (data in
# ./chorus-data) and the wiki (./wiki-data.json); Ctrl-C stops both.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
if [ -z "${CHORUS_BIN:-}" ]; then
  (cd "$repo" && cargo build --locked --bin chorus)
  CHORUS_BIN="$repo/target/debug/chorus"
fi

(cd "$repo/web-client/host-client" && { [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error; } && npm run --silent build)
cd "$here"
[ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error
npm run --silent build

secret="$(sed -n 's/^secrets = \["\([^"]*\)".*/\1/p' chorus.toml)"
# (chorus reads every CHORUS_* variable as a config key: not CHORUS_BIN.)
env -u CHORUS_BIN "$CHORUS_BIN" serve --config chorus.toml &
chorus_pid=$!
trap 'kill $chorus_pid 2>/dev/null || true' EXIT
WIKI_APP_SECRET="$secret" node server.mjs
