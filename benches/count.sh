#!/usr/bin/env bash
# Instructions per operation of every codec function, by callgrind (repeatable, unlike
# nanoseconds on a shared machine). Prints "operation instructions".
#   benches/count.sh [N]         (N runs of each operation, default 1000)
# Extra cargo settings pass through the environment, e.g. CARGO_PROFILE_RELEASE_LTO=fat.
set -euo pipefail
n="${1:-1000}"
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --quiet --release -p sinew-benches --example instructions
bin="$target/release/examples/instructions"
out="$(mktemp -d)"
for op in health_encode health_decode_view health_decode table_encode table_encode_encoded table_parse table_walk table_decode \
    bincode_health_encode bincode_health_decode postcard_health_encode postcard_health_decode \
    bincode_table_encode bincode_table_decode postcard_table_encode postcard_table_decode \
    zk_data_encode zk_data_decode bincode_zk_data_encode bincode_zk_data_decode \
    limit_zk_data_encode bincode_standard_zk_data_encode bincode_standard_zk_data_decode \
    postcard_zk_data_encode postcard_zk_data_decode; do
    case "$op" in
        bincode_* | postcard_* | limit_*) fn="sinew_benches::$op" ;;
        *) fn="sinew_benches::sinew_$op" ;;
    esac
    valgrind --tool=callgrind --callgrind-out-file="$out/$op" --toggle-collect="$fn" \
        "$bin" "$op" "$n" >/dev/null 2>&1
    total=$(sed -n 's/^summary: *//p' "$out/$op")
    printf '%-24s %s\n' "$op" "$(( total / n ))"
done
rm -r "$out"
