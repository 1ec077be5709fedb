#!/usr/bin/env bash
# A fuzz campaign: every target (or those named) for SECONDS each, two at a time
# (this machine has two cores). Needs the nightly toolchain and cargo-fuzz, which
# it installs if missing. The working corpus grows in target/fuzz-corpus/<target>
# (seeded from tests/fuzz/corpus/<target>); a crash stops its target and is saved
# in tests/fuzz/libfuzzer/artifacts/<target>/. See docs/FUZZING.md.
#
#   tests/fuzz/run.sh 720                       # all six targets, 12 min each
#   tests/fuzz/run.sh 60 html_import token_verify
#
# FUZZ_KEEP_GOING=1 (a campaign): a crash, timeout or out-of-memory does not stop
# its target (libFuzzer's fork mode); every input that failed is saved, and the
# target's log counts them.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(frame_decode room_receive_raw room_receive_structured room_receive_blocks html_import token_verify)
jobs="${FUZZ_JOBS:-2}"

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cargo +nightly fuzz build --fuzz-dir tests/fuzz/libfuzzer -O

mkdir -p target/fuzz-logs
run_one() {
  local t="$1"
  mkdir -p "target/fuzz-corpus/$t"
  # yrs reserves what a message declares with try_reserve, which fails cleanly once
  # the allocator refuses; let ASan refuse (return null) instead of reporting, and
  # let the RSS limit, not the size of one reservation, decide what is too much.
  local keep_going=()
  [ -z "${FUZZ_KEEP_GOING:-}" ] || keep_going=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
  local rc=0
  ASAN_OPTIONS="allocator_may_return_null=1:${ASAN_OPTIONS:-}" \
  cargo +nightly fuzz run --fuzz-dir tests/fuzz/libfuzzer -O "$t" \
    "target/fuzz-corpus/$t" "tests/fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
    -malloc_limit_mb=262144 -print_final_stats=1 "${keep_going[@]}" \
    >"target/fuzz-logs/$t.log" 2>&1 || rc=$?
  local runs
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "target/fuzz-logs/$t.log" | grep -o '[0-9]*$' \
    || grep -o '^#[0-9]*' "target/fuzz-logs/$t.log" | tail -1 | tr -d '#' || echo '?')
  echo "$t: exit $rc, $runs executions in ${seconds}s, corpus $(ls "target/fuzz-corpus/$t" | wc -l) inputs"
  return $rc
}
failed=0
pids=()
for t in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do sleep 1; done
  run_one "$t" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || failed=1; done
[ $failed -eq 0 ] || { echo "a target crashed: see target/fuzz-logs/ and tests/fuzz/libfuzzer/artifacts/"; exit 1; }
