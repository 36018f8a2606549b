#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for a given time each, one after the other:
#   scripts/fuzz.sh [seconds-per-target] [target...]
# Needs the nightly toolchain (fuzzing only; the product builds on stable); installs
# cargo-fuzz when missing. New corpus entries are written to fuzz/corpus/<target>
# (minimize before committing: `cargo +nightly fuzz cmin <target>`); crashes go to
# fuzz/artifacts/<target> and fail the script. Each run's libFuzzer log is kept in
# fuzz/logs/<target>.log (its last lines give executions and coverage).
set -euo pipefail

seconds="${1:-300}"
shift || true
cd "$(dirname "$0")/../fuzz"

if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
# Fuzz builds have their own target directory (nightly, sanitizer flags).
unset CARGO_TARGET_DIR

targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

mkdir -p logs
failed=0
for t in "${targets[@]}"; do
    echo "== $t: ${seconds}s"
    if ! cargo +nightly fuzz run "$t" -- -max_total_time="$seconds" -print_final_stats=1 \
        >"logs/$t.log" 2>&1; then
        echo "!! $t failed (crash or build error): see fuzz/logs/$t.log and fuzz/artifacts/$t"
        failed=1
    fi
    grep -E '^(#[0-9]+|stat::)' "logs/$t.log" | tail -8 || true
done
exit "$failed"
