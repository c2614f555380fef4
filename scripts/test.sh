#!/usr/bin/env bash
# Runs every test of the workspace on a fresh machine, installing what it needs first.
# Usage: scripts/test.sh            (what CI runs, via .ci/run)
#        FUZZ_SECONDS=60 scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_SECONDS=${FUZZ_SECONDS:-30}

step() { printf '\n==> %s\n' "$*"; }

step "toolchains, targets and tools"
rustup component add clippy rustfmt >/dev/null
rustup target add thumbv7em-none-eabihf thumbv7m-none-eabi >/dev/null
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

step "format"
cargo fmt --all -- --check

step "clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy -p sinew-proto --all-targets --features defmt,arbitrary --locked -- -D warnings

step "proto is no_std: thumbv7em-none-eabihf / thumbv7m-none-eabi, with and without defmt"
for target in thumbv7em-none-eabihf thumbv7m-none-eabi; do
  cargo build -p sinew-proto --no-default-features --target "$target" --locked
  cargo build -p sinew-proto --no-default-features --features defmt --target "$target" --locked
done

step "docs (broken links and missing docs are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc -p sinew-proto -p sinew-transport-std --no-deps --locked

step "tests (ignored ones too: they need real servers or QEMU, which this script provides)"
cargo test --workspace --locked -- --include-ignored

step "benchmarks, once each in test mode"
cargo test -p sinew-benches --benches --locked

step "fuzz every target for ${FUZZ_SECONDS}s"
bash fuzz/run-all.sh "$FUZZ_SECONDS"

step "all tests passed"
