#!/usr/bin/env bash
# End-to-end test of the example firmware against the host tools, over UDP and TCP through QEMU.
#
# Boots the firmware on QEMU's mps2-an386 (LAN9118 on user-mode networking, a host UDP port
# forwarded to it), runs a host node (`sinew node`) that the firmware checks, `sinew ping`
# against the firmware, and watches a real ZooKeeper server for the firmware's ephemeral node.
# Passes only when all of these were seen:
#   * firmware -> host: the firmware's checks were answered by the host node (the firmware
#     exits QEMU with status 0 only then, only if it answered requests itself, and only if it
#     registered in ZooKeeper and closed its session);
#   * host -> firmware: `sinew ping` got answers from the firmware;
#   * ZooKeeper: the node /sinew/firmware-<MAC> appeared while the firmware ran, holding its
#     address and owned by the firmware's session, and disappeared once it stopped.
# Fails within a deadline otherwise. Installs what it needs when missing (qemu-system-arm,
# the thumbv7em-none-eabihf target, defmt-print).
#
# ZooKeeper: SINEW_ZK_SERVER=127.0.0.1:PORT names the server (QEMU's gateway 10.0.2.2 is the
# host's loopback, so it must listen there; the port is baked into the firmware). Unset, the
# script starts its own server with scripts/zookeeper.sh and stops it afterwards — unless
# SINEW_REQUIRE_ZK_SERVER=1 (scripts/test.sh sets it), when a missing server is a failure.
#
# Environment: SINEW_HOST_PORT, SINEW_HOSTFWD_PORT (host UDP ports; random free ones by
# default), SINEW_RUN_SECS (how long the firmware runs, default 10), CARGO_TARGET_DIR,
# SINEW_FW_KEY (64 hex digits, `sinew keygen`: the firmware, the host node and the ping all seal
# their health datagrams with it; unset, nothing is sealed).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
run_secs="${SINEW_RUN_SECS:-10}"
fw_port=47700
ping_count=5
ping_needed=3
logs="$(mktemp -d "${TMPDIR:-/tmp}/sinew-qemu-test.XXXXXX")"
pids=()
zk_dir=""

say() { printf 'qemu-test: %s\n' "$*" >&2; }
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    if [ -n "$zk_dir" ]; then
        bash "$root/scripts/zookeeper.sh" stop "$zk_dir" >/dev/null 2>&1 || true
        rm -rf "$zk_dir"
    fi
}
trap cleanup EXIT

# --- ZooKeeper --------------------------------------------------------------------------------
if [ -z "${SINEW_ZK_SERVER:-}" ]; then
    if [ "${SINEW_REQUIRE_ZK_SERVER:-0}" = 1 ]; then
        say "FAIL: SINEW_ZK_SERVER is not set (scripts/test.sh starts a server and exports it)"
        exit 1
    fi
    zk_dir="$(mktemp -d "${TMPDIR:-/tmp}/sinew-qemu-zk.XXXXXX")"
    say "SINEW_ZK_SERVER is not set: starting a ZooKeeper server in $zk_dir"
    SINEW_ZK_SERVER="127.0.0.1:$(bash "$root/scripts/zookeeper.sh" start "$zk_dir")"
fi
zk_host="${SINEW_ZK_SERVER%:*}"
zk_port="${SINEW_ZK_SERVER##*:}"
case "$zk_host" in
    127.0.0.1 | localhost) ;;
    *)
        say "FAIL: SINEW_ZK_SERVER=$SINEW_ZK_SERVER: the firmware reaches only the host's loopback (127.0.0.1)"
        exit 1
        ;;
esac
case "$zk_port" in
    '' | *[!0-9]*)
        say "FAIL: SINEW_ZK_SERVER=$SINEW_ZK_SERVER is not 127.0.0.1:PORT"
        exit 1
        ;;
esac
if ! timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$zk_port && printf srvr >&3 && cat <&3" 2>/dev/null |
    grep -q 'Zookeeper version'; then
    say "FAIL: no ZooKeeper server answers at $SINEW_ZK_SERVER"
    exit 1
fi
# A MAC address of its own for each run, and so a node name of its own.
fw_mac="52:54:00:$(printf '%02x:%02x:%02x' $((RANDOM % 256)) $((RANDOM % 256)) $((RANDOM % 256)))"
zk_node="/sinew/firmware-${fw_mac//:/}"
fw_addr="10.0.2.15:$fw_port"

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
say "building the host tools (the sinew command, release)"
(cd "$root" && cargo build -p sinew --release --quiet)
host_target="${CARGO_TARGET_DIR:-$root/target}"
case "$host_target" in /*) ;; *) host_target="$root/$host_target" ;; esac
sinew="$host_target/release/sinew"
[ -x "$sinew" ] || { say "FAIL: no sinew binary at $sinew"; exit 1; }

say "building the firmware (host node 10.0.2.2:$host_port, ZooKeeper 10.0.2.2:$zk_port, runs ${run_secs}s)"
(cd "$here" && SINEW_FW_PORT="$fw_port" SINEW_HOST_PORT="$host_port" SINEW_RUN_SECS="$run_secs" \
    SINEW_ZK_PORT="$zk_port" SINEW_FW_KEY="${SINEW_FW_KEY:-}" cargo build --release --quiet)
fw_target="${CARGO_TARGET_DIR:-$here/target}"
case "$fw_target" in /*) ;; *) fw_target="$here/$fw_target" ;; esac
elf="$fw_target/thumbv7em-none-eabihf/release/sinew-firmware"

zk_cli() { timeout 20 "$sinew" zk --server "$SINEW_ZK_SERVER" --timeout 4000 "$@"; }
if zk_cli stat "$zk_node" >/dev/null 2>&1; then
    say "FAIL: $zk_node exists before the firmware runs"
    exit 1
fi

# --- run --------------------------------------------------------------------------------------
say "booting the firmware in QEMU (127.0.0.1:$hostfwd_port -> 10.0.2.15:$fw_port, MAC $fw_mac)"
SINEW_HOSTFWD_PORT="$hostfwd_port" SINEW_FW_PORT="$fw_port" SINEW_FW_MAC="$fw_mac" \
    timeout $((run_secs + 30)) sh "$here/qemu-run.sh" "$elf" >"$logs/firmware.log" 2>&1 &
qemu_pid=$!
pids+=("$qemu_pid")

# Watches for the firmware's node while it runs: its stat and data, the first time it is there.
(
    end=$((SECONDS + run_secs + 10))
    while [ "$SECONDS" -lt "$end" ]; do
        if zk_cli stat "$zk_node" >"$logs/zk-stat.txt" 2>/dev/null; then
            zk_cli get "$zk_node" >"$logs/zk-data.txt" 2>/dev/null || true
            echo "$EPOCHREALTIME" >"$logs/zk-appeared"
            exit 0
        fi
        sleep 0.2
    done
    exit 1
) &
watch_pid=$!
pids+=("$watch_pid")

key_args=()
if [ -n "${SINEW_FW_KEY:-}" ]; then
    printf '%s\n' "$SINEW_FW_KEY" >"$logs/cluster.key"
    key_args=(--key-file "$logs/cluster.key")
    say "keyed: every health datagram sealed"
fi
"$sinew" node --bind "127.0.0.1:$host_port" --check-ms 500 --print-table-s 0 "${key_args[@]}" \
    --exit-after $((run_secs + 1)) >"$logs/host-node.log" 2>&1 &
node_pid=$!
pids+=("$node_pid")

sleep 1
say "sinew ping 127.0.0.1:$hostfwd_port --count $ping_count"
ping_status=0
timeout 30 "$sinew" ping "127.0.0.1:$hostfwd_port" --count "$ping_count" --interval 300 "${key_args[@]}" \
    >"$logs/ping.log" 2>&1 || ping_status=$?
ping_received="$(sed -n 's/.* \([0-9][0-9]*\) received.*/\1/p' "$logs/ping.log" | tail -n 1)"
ping_received="${ping_received:-0}"

appear_status=0
wait "$watch_pid" || appear_status=$?
fw_status=0
wait "$qemu_pid" || fw_status=$?
fw_stopped="$EPOCHREALTIME"
# The host node stops a second after the firmware's deadline, printing its counters.
wait "$node_pid" || true

# The node must go: at once when the firmware closed its session, within the session timeout
# (4 s, plus the server's tick) when it only expired.
gone=0
gone_after=""
end=$((SECONDS + 15))
while [ "$SECONDS" -lt "$end" ]; do
    if out="$(zk_cli stat "$zk_node" 2>&1)"; then
        sleep 0.2
        continue
    fi
    case "$out" in
        *"does not exist"*)
            gone=1
            gone_after="$(awk -v a="$fw_stopped" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')"
            break
            ;;
    esac
    sleep 0.2
done

# --- verdict ----------------------------------------------------------------------------------
echo "--- firmware (defmt, decoded) ---"
grep -v 'INFO  Stats' "$logs/firmware.log" || true
grep 'INFO  Stats' "$logs/firmware.log" | tail -n 1 || true
echo "--- sinew ping ---"
cat "$logs/ping.log"
echo "--- sinew node (host) ---"
cat "$logs/host-node.log"
echo "--- ZooKeeper $SINEW_ZK_SERVER: $zk_node while the firmware ran ---"
cat "$logs/zk-stat.txt" 2>/dev/null || true
echo "data: $(cat "$logs/zk-data.txt" 2>/dev/null || true)"
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
# The seal's counters, from the firmware's last `seal: Stats { … }` line.
seal_stat() { sed -n "s/.*seal: Stats {.* $1: \([0-9]*\).*/\1/p" "$logs/firmware.log" | tail -n 1; }
opened="$(seal_stat opened)"; sealed="$(seal_stat sealed)"; passed="$(seal_stat passed)"
unsealed="$(seal_stat unsealed)"; bad_tag="$(seal_stat bad_tag)"; malformed="$(seal_stat malformed)"
refused=$(( ${unsealed:-0} + ${bad_tag:-0} + ${malformed:-0} ))
if [ -n "${SINEW_FW_KEY:-}" ]; then
    if [ "${opened:-0}" -gt 0 ] && [ "${sealed:-0}" -gt 0 ] && [ "${passed:-1}" -eq 0 ] && [ "$refused" -eq 0 ]; then
        say "keyed: the firmware opened $opened sealed datagrams and sealed $sealed, took none unsealed, refused none"
    else
        say "FAIL: keyed, but the firmware's seal counters are opened=${opened:-?} sealed=${sealed:-?} passed=${passed:-?} refused=$refused"
        pass=0
    fi
elif [ "${opened:-0}" -ne 0 ] || [ "${sealed:-0}" -ne 0 ]; then
    say "FAIL: unkeyed, but the firmware opened ${opened:-?} and sealed ${sealed:-?} datagrams"
    pass=0
fi
fw_session="$(sed -n 's/.*zk: session \(0x[0-9a-f]*\) established.*/\1/p' "$logs/firmware.log" | head -n 1)"
owner="$(sed -n 's/^ephemeralOwner = \(0x[0-9a-f]*\)$/\1/p' "$logs/zk-stat.txt" 2>/dev/null || true)"
data="$(cat "$logs/zk-data.txt" 2>/dev/null || true)"
if [ "$appear_status" -ne 0 ] || [ ! -f "$logs/zk-appeared" ]; then
    say "FAIL: $zk_node never appeared in ZooKeeper while the firmware ran"
    pass=0
elif [ "$data" != "$fw_addr" ]; then
    say "FAIL: $zk_node holds '$data', expected '$fw_addr'"
    pass=0
elif [ -z "$owner" ] || [ "$owner" = 0x0 ] || [ "$owner" != "$fw_session" ]; then
    say "FAIL: $zk_node is owned by session '${owner:-?}', the firmware's is '${fw_session:-?}' (not ephemeral?)"
    pass=0
else
    say "ZooKeeper: $zk_node appeared while the firmware ran: data $data, ephemeral owner $owner (the firmware's session)"
fi
if [ "$gone" -eq 1 ]; then
    if grep -q 'zk: session closed' "$logs/firmware.log"; then
        how="the firmware closed its session"
    else
        how="its session expired"
    fi
    say "ZooKeeper: $zk_node disappeared ${gone_after}s after the firmware stopped ($how)"
else
    say "FAIL: $zk_node was still there (or ZooKeeper did not answer) 15 s after the firmware stopped"
    pass=0
fi
if [ "$pass" -eq 1 ]; then
    say "PASS (logs in $logs)"
    exit 0
fi
say "FAIL (logs in $logs)"
exit 1
