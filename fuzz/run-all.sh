#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 30) each, starting from the committed seed corpus;
# exits non-zero if any target crashes (or the seed corpus is stale). Used by CI.
#
#   fuzz/run-all.sh [SECONDS]
#
# Needs cargo-fuzz (installed from crates.io if missing) and a nightly toolchain (or, failing
# that, stable with RUSTC_BOOTSTRAP=1 for the -Z flags).
set -euo pipefail

seconds="${1:-30}"
cd "$(dirname "$0")"

if rustup run nightly rustc --version >/dev/null 2>&1; then
    cargo=(cargo +nightly)
else
    echo "run-all: no nightly toolchain; using stable with RUSTC_BOOTSTRAP=1" >&2
    export RUSTC_BOOTSTRAP=1
    cargo=(cargo)
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "run-all: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

# The committed seeds must be what src/seeds.rs generates, and none may crash.
"${cargo[@]}" test --release --test seeds

# Every target cargo-fuzz finds in Cargo.toml.
mapfile -t targets < <("${cargo[@]}" fuzz list)
if [[ ${#targets[@]} -eq 0 ]]; then
    echo "run-all: cargo fuzz list found no targets" >&2
    exit 1
fi
mkdir -p artifacts logs
failed=()
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    log="logs/$target.log"
    echo "run-all: $target for ${seconds}s"
    status=0
    "${cargo[@]}" fuzz run "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1 || status=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    if [[ $status -ne 0 ]]; then
        echo "run-all: $target FAILED (exit $status); last lines of $log:" >&2
        grep -v -E '^#[0-9]+\s+(NEW|REDUCE|pulse)' "$log" | tail -n 60 >&2
        failed+=("$target")
    else
        echo "run-all: $target ok, ${execs:-?} executions"
    fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "run-all: crashes in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "run-all: ${#targets[@]} passed, 0 failed"
