#!/usr/bin/env bash
# Property-based tests of the host API against proto/openapi.yaml with schemathesis:
# every generated request (valid and invalid) must get an answer the spec describes,
# with every check on (status codes, content types, headers, response schemas,
# negative data rejected, positive data accepted, missing required headers, methods
# a route does not take, ignored auth, ...).
#
# Usage: tests/schemathesis/run.sh [CHORUS_BIN]
#   CHORUS_BIN       the chorus binary (default: target/debug/chorus); nothing is built here
#   SCHEMATHESIS     the schemathesis command (default: schemathesis on PATH)
#   ST_MAX_EXAMPLES  test cases per operation and phase (default 100: ~30 s on 2 cores)
#   ST_SEED          hypothesis seed (default: random; printed by schemathesis)
#   ST_KEEP_TMP      keep the temp dir (config, data, server log)
#   ST_EXTRA_ARGS    more `schemathesis run` arguments (e.g. "--report har")
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${1:-${CHORUS_BIN:-$root/target/debug/chorus}}"
st="${SCHEMATHESIS:-schemathesis}"
[ -x "$bin" ] || { echo "no chorus binary at $bin (build it first: cargo build --bin chorus)" >&2; exit 2; }
command -v "$st" >/dev/null || { echo "schemathesis not found ($st); pip install -r $here/requirements.txt" >&2; exit 2; }
command -v curl >/dev/null || { echo "curl is needed to seed documents" >&2; exit 2; }

tmp="$(mktemp -d)"
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  if [ -n "${ST_KEEP_TMP:-}" ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
secret="schemathesis-secret-0123456789abcdef-$RANDOM$RANDOM"
admin="schemathesis-admin-$RANDOM$RANDOM"
cat >"$tmp/chorus.toml" <<TOML
bind = "127.0.0.1:$port"
data_dir = "$tmp/data"
admin_token = "$admin"

[[apps]]
id = "wiki"
secrets = ["$secret"]

[[apps]]
id = "spare"
secrets = ["spare-$secret"]
TOML

"$bin" serve --config "$tmp/chorus.toml" >"$tmp/server.log" 2>&1 &
server=$!
base="http://127.0.0.1:$port"
for _ in $(seq 100); do
  curl -fsS "$base/healthz" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { cat "$tmp/server.log" >&2; exit 1; }
  sleep 0.1
done
curl -fsS "$base/healthz" >/dev/null

host="$("$bin" token --app wiki --secret "$secret" --scope host --ttl 3600)"
auth=(-H "Authorization: Bearer $host")
api="$base/v1/apps/wiki/docs"

# Seed the documents the dictionaries in schemathesis.toml name: three drafts,
# seed-a published twice (history points 1 and 2), seed-b with a restore point.
etag_of() { curl -fsS -o /dev/null -D - "${auth[@]}" "$api/$1/draft" | tr -d '\r' | sed -n 's/^[Ee][Tt][Aa][Gg]: //p'; }
put() { curl -fsS -o /dev/null "${auth[@]}" -X PUT -H 'content-type: application/json' -d "$2" "$api/$1/content"; }
publish() { curl -fsS -o /dev/null "${auth[@]}" -X POST -H "If-Match: $(etag_of "$1")" "$api/$1/publish"; }
put seed-a '{"title": "Seed A", "html": "<p>alpha <strong>one</strong></p><ul><li><p>two</p></li></ul>"}'
publish seed-a
put seed-a '{"html": "<p>alpha two</p><h2>more</h2>"}'
publish seed-a
put seed-b '{"title": "Seed B", "html": "<p>bravo</p>"}'
publish seed-b
put seed-b '{"html": "<p>bravo 2</p>"}'
curl -fsS -o /dev/null "${auth[@]}" -X POST -d '{"point": 1}' "$api/seed-b/restore"
put seed-c '{"title": "Seed C ✓ 100%"}'

export CHORUS_ST_HOST_TOKEN="$host" CHORUS_ST_ADMIN_TOKEN="$admin" CHORUS_ST_HOOKS="$here/hooks.py"
args=(
  run "$root/proto/openapi.yaml"
  --url "$base"
  --checks all
  --max-examples "${ST_MAX_EXAMPLES:-100}"
  --workers 1
  --generation-database none
  --no-color
)
[ -z "${ST_SEED:-}" ] || args+=(--seed "$ST_SEED")
# shellcheck disable=SC2206 # word splitting wanted
[ -z "${ST_EXTRA_ARGS:-}" ] || args+=(${ST_EXTRA_ARGS})
set +e
(cd "$tmp" && "$st" --config-file "$here/schemathesis.toml" "${args[@]}")
status=$?
set -e
if [ $status -ne 0 ]; then
  echo "== schemathesis failed ($status); last server log lines:" >&2
  tail -n 40 "$tmp/server.log" >&2
fi
exit $status
