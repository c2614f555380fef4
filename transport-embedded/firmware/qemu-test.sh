#!/usr/bin/env bash
# End-to-end test of the example firmware against the host tools, over UDP through QEMU.
#
# Boots the firmware on QEMU's mps2-an386 (LAN9118 on user-mode networking, a host UDP port
# forwarded to it), runs a host node (`sinew node`) that the firmware checks, and `sinew ping`
# against the firmware. Passes only when both directions were seen:
#   * firmware -> host: the firmware's checks were answered by the host node (the firmware
#     exits QEMU with status 0 only then, and only if it answered requests itself);
#   * host -> firmware: `sinew ping` got answers from the firmware.
# Fails within a deadline otherwise. Installs what it needs when missing (qemu-system-arm,
# the thumbv7em-none-eabihf target, defmt-print).
#
# Environment: SINEW_HOST_PORT, SINEW_HOSTFWD_PORT (host UDP ports; random free ones by
# default), SINEW_RUN_SECS (how long the firmware runs, default 10), CARGO_TARGET_DIR.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
run_secs="${SINEW_RUN_SECS:-10}"
fw_port=47700
ping_count=5
ping_needed=3
logs="$(mktemp -d "${TMPDIR:-/tmp}/sinew-qemu-test.XXXXXX")"
pids=()

say() { printf 'qemu-test: %s\n' "$*" >&2; }
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT

# --- tools ------------------------------------------------------------------------------------
if ! command -v qemu-system-arm >/dev/null 2>&1; then
    say "installing qemu-system-arm"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-system-arm >/dev/null
fi
if ! rustup target list --installed | grep -qx thumbv7em-none-eabihf; then
    say "adding the thumbv7em-none-eabihf target"
    rustup target add thumbv7em-none-eabihf
fi
if ! command -v defmt-print >/dev/null 2>&1; then
    say "installing defmt-print (about a minute and a half)"
    cargo install defmt-print --locked --quiet
fi

# --- ports: free UDP ports on the host's loopback ---------------------------------------------
free_udp_port() {
    local port
    for _ in $(seq 1 50); do
        port=$((20000 + RANDOM % 30000))
        # bash's /dev/udp cannot tell a bound port; ss can.
        if ! ss -Huln "sport = :$port" 2>/dev/null | grep -q .; then
            echo "$port"
            return
        fi
    done
    echo "no free UDP port found" >&2
    return 1
}
host_port="${SINEW_HOST_PORT:-$(free_udp_port)}"
hostfwd_port="${SINEW_HOSTFWD_PORT:-$(free_udp_port)}"
while [ "$hostfwd_port" = "$host_port" ]; do hostfwd_port="$(free_udp_port)"; done

# --- build ------------------------------------------------------------------------------------
say "building the host tools (sinew-transport-std, release)"
(cd "$root" && cargo build -p sinew-transport-std --release --quiet)
host_target="${CARGO_TARGET_DIR:-$root/target}"
case "$host_target" in /*) ;; *) host_target="$root/$host_target" ;; esac
sinew="$host_target/release/sinew"
[ -x "$sinew" ] || { say "FAIL: no sinew binary at $sinew"; exit 1; }

say "building the firmware (host node 10.0.2.2:$host_port, runs ${run_secs}s)"
(cd "$here" && SINEW_FW_PORT="$fw_port" SINEW_HOST_PORT="$host_port" SINEW_RUN_SECS="$run_secs" \
    cargo build --release --quiet)
fw_target="${CARGO_TARGET_DIR:-$here/target}"
case "$fw_target" in /*) ;; *) fw_target="$here/$fw_target" ;; esac
elf="$fw_target/thumbv7em-none-eabihf/release/sinew-firmware"

# --- run --------------------------------------------------------------------------------------
say "booting the firmware in QEMU (127.0.0.1:$hostfwd_port -> 10.0.2.15:$fw_port)"
SINEW_HOSTFWD_PORT="$hostfwd_port" SINEW_FW_PORT="$fw_port" \
    timeout $((run_secs + 30)) sh "$here/qemu-run.sh" "$elf" >"$logs/firmware.log" 2>&1 &
qemu_pid=$!
pids+=("$qemu_pid")

"$sinew" node --bind "127.0.0.1:$host_port" --check-ms 500 --print-table-s 0 \
    --exit-after $((run_secs + 1)) >"$logs/host-node.log" 2>&1 &
node_pid=$!
pids+=("$node_pid")

sleep 1
say "sinew ping 127.0.0.1:$hostfwd_port --count $ping_count"
ping_status=0
timeout 30 "$sinew" ping "127.0.0.1:$hostfwd_port" --count "$ping_count" --interval 300 \
    >"$logs/ping.log" 2>&1 || ping_status=$?
ping_received="$(sed -n 's/.* \([0-9][0-9]*\) received.*/\1/p' "$logs/ping.log" | tail -n 1)"
ping_received="${ping_received:-0}"

fw_status=0
wait "$qemu_pid" || fw_status=$?
# The host node stops a second after the firmware's deadline, printing its counters.
wait "$node_pid" || true

# --- verdict ----------------------------------------------------------------------------------
echo "--- firmware (defmt, decoded) ---"
grep -v 'INFO  Stats' "$logs/firmware.log" || true
grep 'INFO  Stats' "$logs/firmware.log" | tail -n 1 || true
echo "--- sinew ping ---"
cat "$logs/ping.log"
echo "--- sinew node (host) ---"
cat "$logs/host-node.log"
echo "---"

pass=1
if [ "$fw_status" -eq 0 ]; then
    say "firmware -> host: the host node answered the firmware's checks (firmware exit 0)"
elif [ "$fw_status" -eq 124 ]; then
    say "FAIL: the firmware did not exit before the deadline"
    pass=0
else
    say "FAIL: the firmware exited with $fw_status (1: a direction was not seen)"
    pass=0
fi
if [ "$ping_received" -ge "$ping_needed" ]; then
    say "host -> firmware: sinew ping got $ping_received/$ping_count answers"
else
    say "FAIL: sinew ping got $ping_received/$ping_count answers (exit $ping_status), needs $ping_needed"
    pass=0
fi
if [ "$pass" -eq 1 ]; then
    say "PASS (logs in $logs)"
    exit 0
fi
say "FAIL (logs in $logs)"
exit 1
