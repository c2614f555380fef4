#!/usr/bin/env bash
# The Wireshark dissector (wireshark/sinew.lua) against `sinew decode`, on captures of real
# loopback traffic:
#   1. `sinew demo` (health checks, then the DHT ring, on UDP);
#   1c. sealed datagrams (`sinew node` and `sinew ping` with a --key-file): the seal's header;
#   2. DHT clients on TCP (`sinew dht node --tcp` and dht_tcp_client.py: a split frame, a batch);
#   3. a ZooKeeper session: `sinew zk` (create, get, a missing node, a watch fired by a set),
#      kazoo transactions when kazoo is installed, and zk_session.py (most ops, multi,
#      multiRead, special xids, a split frame, a batch).
# tshark dissects every message of a capture; `sinew decode` decodes the same bytes; compare.py
# requires the two to agree field for field and fails if nothing was compared. Then mutated
# copies of the dissector must fail the same comparisons (the check can fail).
#
# Usage: wireshark/test.sh
#   SINEW_ZK_SERVER=host:port  use this ZooKeeper server (else one is started, scripts/zookeeper.sh)
#   SINEW_BIN=path             use this sinew binary (else `cargo build -p sinew`, the debug build)
# Needs tshark and dumpcap, and root (or dumpcap's capture capabilities) to capture on lo.
set -euo pipefail
cd "$(dirname "$0")/.."
lua=$PWD/wireshark/sinew.lua
compare=(python3 "$PWD/wireshark/compare.py")

if [ -n "${SINEW_BIN:-}" ]; then
  sinew=$(realpath "$SINEW_BIN")
else
  # The debug build: `cargo test --workspace` has built it already in scripts/test.sh.
  cargo build -p sinew --locked --quiet
  sinew=$(realpath "${CARGO_TARGET_DIR:-target}/debug/sinew")
fi
for tool in tshark dumpcap python3; do
  command -v "$tool" >/dev/null || { echo "wireshark/test.sh: $tool is missing" >&2; exit 1; }
done

work=$(mktemp -d)
capture_pid=
node_pid=
zk_dir=
cleanup() {
  local rc=$?
  [ -n "$capture_pid" ] && kill "$capture_pid" 2>/dev/null || true
  [ -n "$node_pid" ] && kill "$node_pid" 2>/dev/null || true
  [ -n "$zk_dir" ] && bash scripts/zookeeper.sh stop "$zk_dir" >/dev/null 2>&1 || true
  if [ "$rc" -eq 0 ]; then
    rm -rf "$work"
  else
    echo "wireshark/test.sh failed; captures and logs kept in $work" >&2
  fi
}
trap cleanup EXIT

# start_capture FILE FILTER: dumpcap on lo, in the background, until stop_capture.
start_capture() {
  dumpcap -i lo -f "$2" -w "$1" >"$1.log" 2>&1 &
  capture_pid=$!
  for _ in $(seq 100); do
    grep -q "Capturing on" "$1.log" 2>/dev/null && { sleep 0.2; return; }
    kill -0 "$capture_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "dumpcap did not start:" >&2
  cat "$1.log" >&2
  exit 1
}

stop_capture() {
  sleep 0.5 # the last packets reach the capture buffer
  kill -INT "$capture_pid"
  wait "$capture_pid" || true
  capture_pid=
}

# wait_for FILE PATTERN: until a line of FILE matches (10 s at most).
wait_for() {
  for _ in $(seq 100); do
    grep -q "$2" "$1" 2>/dev/null && return
    sleep 0.1
  done
  echo "timed out waiting for '$2' in $1:" >&2
  cat "$1" >&2
  exit 1
}

echo "--- 1. sinew demo (UDP)"
start_capture "$work/demo.pcapng" udp
"$sinew" demo >"$work/demo.out"
stop_capture
health_ports=$(sed -n '/^sinew demo:/,/^sinew demo dht:/ s/^  node [0-9]*: 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$work/demo.out" | paste -sd,)
dht_ports=$(sed -n '/^sinew demo dht:/,$ s/^  \(node [0-9]*\|client\): [0-9a-f]*@127\.0\.0\.1:\([0-9]*\) .*/\2/p' "$work/demo.out" | paste -sd,)
if [ -z "$health_ports" ] || [ -z "$dht_ports" ]; then
  echo "could not read the demo's ports from its output:" >&2
  cat "$work/demo.out" >&2
  exit 1
fi
echo "health nodes on ports $health_ports; DHT nodes and client on $dht_ports"
demo_args=(udp "$work/demo.pcapng" --sinew "$sinew" --ports "health=$health_ports" --ports "dht=$dht_ports")
require=()
for kind in "health request" "health response" "peer-table request" "peer-table response" \
  Get Value Put PutAck Lock Locked LockDenied Unlock Unlocked InitConnect Join Leave Replicate Error Challenge Echo RouteRequest Route \
  Relayed ViewRequest View Withheld; do
  case $kind in
    health* | peer*) require+=(--require "$kind") ;;
    *) require+=(--require "dht $kind") ;;
  esac
done
"${compare[@]}" "${demo_args[@]}" --lua "$lua" "${require[@]}"

echo "--- 1b. the UDP heuristics leave other datagrams alone"
# Datagrams that are not sinew's, to a port nobody listens on: random bytes, text, zeros, a DNS
# query, a health request one byte too long, a DHT Get whose sender address is ::.
other_port=$(python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start_capture "$work/other.pcapng" "udp port $other_port"
python3 - "$other_port" <<'PY'
import os, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
dns = bytes.fromhex("123401000001000000000000076578616d706c6503636f6d0000010001")
get = b"\x01" + os.urandom(8) + os.urandom(16) + bytes(16) + b"\x1b\x58" + b"\x01k"
for payload in (os.urandom(40), b"hello, world", bytes(22), dns, b"\x01" + os.urandom(17), get):
    s.sendto(payload, ("127.0.0.1", int(sys.argv[1])))
PY
stop_capture
total=$(tshark -n -r "$work/other.pcapng" -Y udp 2>/dev/null | wc -l)
claimed=$(tshark -n -r "$work/other.pcapng" -X "lua_script:$lua" -Y 'sinew_health || sinew_dht || sinew_sealed' 2>/dev/null | wc -l)
echo "$total foreign datagrams captured, $claimed claimed by the dissectors"
if [ "$total" -ne 6 ] || [ "$claimed" -ne 0 ]; then
  tshark -n -r "$work/other.pcapng" -X "lua_script:$lua" >&2
  exit 1
fi

echo "--- 1c. sealed datagrams (header and tag; not opened)"
"$sinew" keygen >"$work/key"
"$sinew" node --bind 127.0.0.1:0 --key-file "$work/key" --exit-after 30 --print-table-s 0 >"$work/sealed-node.out" 2>&1 &
node_pid=$!
wait_for "$work/sealed-node.out" "^sinew node on "
sealed_port=$(sed -n 's/^sinew node on 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$work/sealed-node.out")
start_capture "$work/sealed.pcapng" "udp port $sealed_port"
"$sinew" ping -c 3 --interval 100 --key-file "$work/key" "127.0.0.1:$sealed_port" >"$work/sealed-ping.out"
stop_capture
kill "$node_pid" 2>/dev/null || true
wait "$node_pid" 2>/dev/null || true
node_pid=
sealed_args=(sealed "$work/sealed.pcapng" --sinew "$sinew" --ports "health=$sealed_port" --key-file "$work/key")
"${compare[@]}" "${sealed_args[@]}" --lua "$lua" --require sealed

echo "--- 2. DHT on TCP"
"$sinew" dht node --bind 127.0.0.1:0 --tcp --exit-after 60 --print-s 0 >"$work/node.out" 2>&1 &
node_pid=$!
wait_for "$work/node.out" "clients also on TCP"
dht_port=$(sed -n 's/^clients also on TCP 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$work/node.out")
start_capture "$work/dht-tcp.pcapng" "tcp port $dht_port"
python3 wireshark/dht_tcp_client.py "127.0.0.1:$dht_port"
stop_capture
kill "$node_pid"
wait "$node_pid" || true
node_pid=
dht_tcp_args=(dht-tcp "$work/dht-tcp.pcapng" --sinew "$sinew" --server-port "$dht_port")
"${compare[@]}" "${dht_tcp_args[@]}" --lua "$lua" \
  --require "frame split across segments" --require "segment with several frames"

echo "--- 3. ZooKeeper"
if [ -n "${SINEW_ZK_SERVER:-}" ]; then
  server=$SINEW_ZK_SERVER
else
  zk_dir="$work/zookeeper"
  mkdir -p "$zk_dir"
  server=127.0.0.1:$(bash scripts/zookeeper.sh start "$zk_dir")
fi
zk_port=${server##*:}
echo "ZooKeeper at $server"
prefix=/sinew-wireshark-$$-$RANDOM
zk=("$sinew" zk --server "$server")
start_capture "$work/zk.pcapng" "tcp port $zk_port"
"${zk[@]}" create "$prefix-cli" hello
"${zk[@]}" get "$prefix-cli"
if "${zk[@]}" get "$prefix-missing"; then
  echo "a get of a missing node succeeded" >&2
  exit 1
fi
"${zk[@]}" watch "$prefix-cli" --count 1 >"$work/watch.out" &
watch_pid=$!
wait_for "$work/watch.out" "^watching"
"${zk[@]}" set "$prefix-cli" changed
wait "$watch_pid"
cat "$work/watch.out"
"${zk[@]}" delete "$prefix-cli"
if python3 -c 'import kazoo' 2>/dev/null; then
  python3 wireshark/zk_kazoo.py "$server" "$prefix-kazoo"
else
  echo "(kazoo not installed: no kazoo session)"
fi
python3 wireshark/zk_session.py "$server" "$prefix-raw" >/dev/null
stop_capture
zk_args=(zk "$work/zk.pcapng" --sinew "$sinew" --server-port "$zk_port")
require=()
for kind in ConnectRequest ConnectResponse "request create" "reply op 1" "request getData" "reply op 4" \
  notification "request multi" "reply op 14" "error reply" "ping reply" "auth reply" "setWatches reply" \
  "frame split across segments" "segment with several frames"; do
  require+=(--require "$kind")
done
"${compare[@]}" "${zk_args[@]}" --lua "$lua" "${require[@]}"

echo "--- 4. the comparisons fail on a dissector that is wrong"
# mutant NAME SED: a copy of the dissector changed by SED (which must change it).
mutant() {
  sed "$2" "$lua" >"$work/$1.lua"
  if cmp -s "$lua" "$work/$1.lua"; then
    echo "the mutation $1 changed nothing" >&2
    exit 1
  fi
  echo "$work/$1.lua"
}
expect_failure() {
  local name=$1
  shift
  if "${compare[@]}" "$@" >"$work/$name.log" 2>&1; then
    echo "the comparison passed with the mutated dissector $name:" >&2
    cat "$work/$name.log" >&2
    exit 1
  fi
  echo "$name: fails as it must ($(grep -o '[0-9]* failures' "$work/$name.log" | paste -sd ' '))"
}
expect_failure lives-name "${demo_args[@]}" --lua "$(mutant lives-name 's/\[3\] = "Healthy" }/[3] = "Hale" }/')"
expect_failure dht-lease "${demo_args[@]}" --lua "$(mutant dht-lease 's/c:u32(items, df.lease)/c:u32(items, df.remaining)/')"
expect_failure dht-lock-version "${demo_args[@]}" --lua "$(mutant dht-lock-version 's/if kind >= 5 and kind <= 9 then/if kind >= 5 and kind <= 8 then/')"
expect_failure sealed-sender "${sealed_args[@]}" --lua "$(mutant sealed-sender 's/c:fixed(items, sf.sender, 8)/c:fixed(items, sf.sender, 4)/')"
expect_failure dht-frame "${dht_tcp_args[@]}" --lua "$(mutant dht-frame 's/return n + 4$/return n + 3/')"
expect_failure stat-order "${zk_args[@]}" --lua "$(mutant stat-order 's/c:i32(kids, zf.data_length)/c:i32(kids, zf.num_children)/')"
expect_failure reply-op "${zk_args[@]}" --lua "$(mutant reply-op 's/info.op = req.op/info.op = 3/')"
echo "wireshark/test.sh: all passed"
