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
need_apt=()
command -v qemu-system-arm >/dev/null || need_apt+=(qemu-system-arm)
command -v ss >/dev/null || need_apt+=(iproute2)
command -v valgrind >/dev/null || need_apt+=(valgrind)
command -v tshark >/dev/null || need_apt+=(tshark)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi
command -v defmt-print >/dev/null || cargo install defmt-print --locked

step "format"
cargo fmt --all -- --check
(cd fuzz && cargo fmt -- --check)
(cd transport-embedded/firmware && cargo fmt -- --check)

step "clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy -p sinew-proto --all-targets --features defmt,arbitrary --locked -- -D warnings
cargo clippy -p sinew-transport-embedded --all-targets --all-features --locked -- -D warnings
(cd transport-embedded/firmware && cargo clippy --release --locked -- -D warnings)

step "no_std: proto and transport-embedded for thumbv7em-none-eabihf / thumbv7m-none-eabi, with and without defmt"
for target in thumbv7em-none-eabihf thumbv7m-none-eabi; do
  for crate in sinew-proto sinew-transport-embedded; do
    cargo build -p "$crate" --no-default-features --target "$target" --locked
    cargo build -p "$crate" --no-default-features --features defmt --target "$target" --locked
  done
done

step "docs (broken links and missing docs are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc -p sinew-proto -p sinew-transport-std -p sinew-transport-embedded -p sinew -p sinew-maelstrom --no-deps --locked
# As docs.rs builds them (package.metadata.docs.rs: every feature, --cfg docsrs, nightly).
RUSTDOCFLAGS="--cfg docsrs -D warnings" cargo +nightly doc -p sinew-proto -p sinew-transport-embedded \
  --all-features --no-deps --locked --target-dir target/docsrs

step "MSRV: the library crates and the command build with the workspace's rust-version"
MSRV=$(sed -n 's/^rust-version = "\(.*\)"$/\1/p' Cargo.toml)
echo "rust-version = $MSRV"
rustup toolchain install "$MSRV" --profile minimal --target thumbv7em-none-eabihf >/dev/null
cargo +"$MSRV" build -p sinew-proto -p sinew-transport-std -p sinew-transport-embedded -p sinew \
  --locked --target-dir target/msrv
cargo +"$MSRV" build -p sinew-proto -p sinew-transport-embedded --no-default-features \
  --target thumbv7em-none-eabihf --locked --target-dir target/msrv

step "packages: every published crate packs and builds from its .crate alone"
# Verifying a crate that depends on another of ours (sinew-maelstrom on sinew-proto) goes through a
# temporary local registry under the target dir; cargo unpacks the freshly packed sinew-proto into
# $CARGO_HOME/registry/src/-<hash of that registry's path>/ and never unpacks a name and version it
# finds there already. CI checks out at the same path each run and keeps its cargo home, so a fixed
# path would verify against the sinew-proto 0.1.0 of an earlier run. A target dir of this run's own
# gives a registry path never seen before; the unpacked copies of our crates go afterwards (and any
# left by older runs before), crates.io's are untouched.
CARGO_HOME_DIR=${CARGO_HOME:-$HOME/.cargo}
forget_our_packages() {
  for c in sinew-proto sinew-transport-std sinew-transport-embedded sinew-maelstrom sinew; do
    rm -rf "$CARGO_HOME_DIR"/registry/src/-*/"$c"-[0-9]* "$CARGO_HOME_DIR"/registry/cache/-*/"$c"-[0-9]*.crate
  done
}
forget_our_packages
PKG_TARGET=$(mktemp -d "$PWD/target/package-run.XXXXXX")
cargo package --workspace --exclude sinew-benches --locked --target-dir "$PKG_TARGET"
rm -rf "$PKG_TARGET"
forget_our_packages
# Library users get no command-line dependencies: the command is its own package.
if cargo tree -p sinew-transport-std -e normal --locked | grep -E ' (clap|hex|signal-hook) '; then
  echo "sinew-transport-std depends on command-line crates" >&2; exit 1
fi

step "a real ZooKeeper 3.8 server on loopback for the interop tests (and kazoo for the cross-check)"
# Into the interpreter the tests run (`python3` on PATH), which need not be Debian's: a Debian
# python3-kazoo package would be invisible to it.
python3 -c 'import kazoo' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check kazoo
python3 -c 'import kazoo'
ZK_DIR=$(mktemp -d)
trap 'bash scripts/zookeeper.sh stop "$ZK_DIR" || true' EXIT
SINEW_ZK_SERVER=127.0.0.1:$(bash scripts/zookeeper.sh start "$ZK_DIR")
export SINEW_ZK_SERVER
echo "ZooKeeper at $SINEW_ZK_SERVER"

step "tests (ignored ones too: they need real servers or QEMU, which this script provides)"
cargo test --workspace --locked -- --include-ignored
cargo test -p sinew-transport-embedded --all-features --locked -- --include-ignored

step "examples: each protocol core driven over plain std sockets (zk against the server above)"
cargo run -p sinew-proto --example health --locked
cargo run -p sinew-proto --example dht --locked
cargo run -p sinew-proto --example zk --locked -- "$SINEW_ZK_SERVER"

step "firmware in QEMU (mps2-an386): health checks with a host node and sinew ping both ways, its ephemeral node in ZooKeeper"
# The server started above: qemu-test.sh fails (rather than starting its own) if it is missing.
SINEW_REQUIRE_ZK_SERVER=1 bash transport-embedded/firmware/qemu-test.sh

step "firmware in QEMU, keyed: the same with every health datagram sealed (AES-256-GCM) both ways"
SINEW_FW_KEY=$(cargo run -q -p sinew --release --locked -- keygen) SINEW_REQUIRE_ZK_SERVER=1 \
    bash transport-embedded/firmware/qemu-test.sh

step "cargo install --path cli gives a working sinew"
SINEW_ROOT=$(mktemp -d)
cargo install --path cli --locked --root "$SINEW_ROOT" --quiet
"$SINEW_ROOT/bin/sinew" --version
"$SINEW_ROOT/bin/sinew" decode health 016b1f283a904c11ee9f5d0242ac120002 | grep -q 'health request'
rm -rf "$SINEW_ROOT"

step "Wireshark dissector: tshark on captures of sinew demo, DHT over TCP and a ZooKeeper session, field for field against sinew decode"
bash wireshark/test.sh

step "benchmarks, once each in test mode"
cargo test -p sinew-benches --benches --locked

step "fuzz every target for ${FUZZ_SECONDS}s"
bash fuzz/run-all.sh "$FUZZ_SECONDS"

step "all tests passed"
