#!/usr/bin/env bash
# Runs every cargo-fuzz target under fuzz/ for a bounded time each: the v1 and v2 socket frames,
# REST bodies as JSON and as form data, and uploads (multipart). Fails on the first finding,
# whose input libFuzzer leaves under fuzz/artifacts/<target>/.
#
#   scripts/fuzz.sh [SECONDS-PER-TARGET] [TARGET…]     (default 20 s, every target)
#
# The build is `--dev --sanitizer none` in fuzz/target: the parsers are safe Rust, so a finding
# is a panic (debug assertions on, so overflows too), which needs no AddressSanitizer; a release
# build of the server's dependencies takes several times longer to compile (docs/security.md).
# The checked-in seeds in fuzz/corpus/<target> are read, never written: what a run finds goes to
# a corpus under fuzz/target that later runs start from.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${1:-20}
shift || true
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
flags=(--dev --sanitizer none)
cargo +nightly fuzz build "${flags[@]}"
for target in "${targets[@]}"; do
  echo "fuzz: $target ($seconds s)"
  corpus="target/corpus/$target"
  mkdir -p "$corpus"
  log="target/$target.log"
  if ! cargo +nightly fuzz run "${flags[@]}" "$target" "$corpus" "corpus/$target" -- \
    -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "fuzz: $target found a crash (its input is under fuzz/artifacts/$target/)" >&2
    exit 1
  fi
  grep -E '^(#[0-9]+ *DONE|stat::number_of_executed_units)' "$log" || true
done
