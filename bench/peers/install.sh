#!/usr/bin/env bash
# Installs the peer servers bench/compare.sh measures Chorus against:
#   - @y/websocket-server and @hocuspocus/server: `npm ci` here (versions pinned in
#     package.json / package-lock.json);
#   - y-sweet 0.9.1: `cargo install` into bench/.peers/y-sweet (gitignored).
# Idempotent: each step is skipped when its result is already there.
# Usage: install.sh [y-websocket] [hocuspocus] [y-sweet]  (no argument: all three)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
peers="$here/../.peers"
YSWEET_VERSION=0.9.1
want=" ${*:-y-websocket hocuspocus y-sweet} "

if [[ $want != *" y-websocket "* && $want != *" hocuspocus "* ]]; then
  : # no npm peer wanted
elif node -e "
  const want = { '@y/websocket-server': '0.1.1', '@hocuspocus/server': '4.7.0' }
  for (const [n, v] of Object.entries(want)) {
    const got = require('$here/node_modules/' + n + '/package.json').version
    if (got !== v) process.exit(1)
  }" 2>/dev/null; then
  echo "npm peers: present" >&2
else
  echo "npm peers: npm ci" >&2
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi

ysweet="$peers/y-sweet/bin/y-sweet"
if [[ $want != *" y-sweet "* ]]; then
  : # not wanted
elif [ -x "$ysweet" ] && "$ysweet" version 2>/dev/null | grep -q "$YSWEET_VERSION"; then
  echo "y-sweet $YSWEET_VERSION: present" >&2
else
  echo "y-sweet $YSWEET_VERSION: cargo install (several minutes)" >&2
  mkdir -p "$peers"
  cargo install y-sweet --version "$YSWEET_VERSION" --locked --root "$peers/y-sweet"
fi
