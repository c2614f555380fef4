#!/usr/bin/env bash
# A standalone Apache ZooKeeper 3.8 server on a free loopback port, for the interop tests.
#
# Usage: scripts/zookeeper.sh start DIR    installs Debian's zookeeper if missing, starts a server
#                                          whose data, config, log and pid live in DIR, waits
#                                          until it answers `srvr`, prints its port (also in
#                                          DIR/port); a server already running there is reused
#        scripts/zookeeper.sh stop DIR     stops it
#        scripts/zookeeper.sh status DIR   prints pid, port and `srvr`; exit 1 if not running
#
# Then: SINEW_ZK_SERVER=127.0.0.1:$(cat DIR/port) cargo test -p sinew-transport-std \
#         --test zk_interop -- --include-ignored
set -euo pipefail

JAR=/usr/share/java/zookeeper.jar
CLASSPATH="$JAR:/usr/share/java/slf4j-simple.jar"

usage() {
  echo "usage: $0 start|stop|status DIR" >&2
  exit 2
}

[ $# -eq 2 ] || usage
cmd=$1
dir=$2

install_zookeeper() {
  if [ -f "$JAR" ] && command -v java >/dev/null; then
    return
  fi
  echo "installing Debian's zookeeper package" >&2
  local sudo=
  if [ "$(id -u)" != 0 ]; then
    sudo=sudo
  fi
  $sudo apt-get update >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends zookeeper >&2
}

# A loopback port nobody listens on (the kernel picks it; the tiny race until the server binds
# it is acceptable for tests).
free_port() {
  if command -v python3 >/dev/null; then
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
    return
  fi
  local port
  for _ in $(seq 100); do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
  echo "no free port found" >&2
  exit 1
}

# Prints the server's `srvr` answer; fails if it does not answer.
srvr() {
  local port=$1 out
  out=$(timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port && printf srvr >&3 && cat <&3" 2>/dev/null) || true
  case $out in
    *"Zookeeper version"*) printf '%s\n' "$out" ;;
    *) return 1 ;;
  esac
}

pid_alive() {
  [ -f "$dir/server.pid" ] && kill -0 "$(cat "$dir/server.pid")" 2>/dev/null
}

running() {
  pid_alive && [ -f "$dir/port" ] && srvr "$(cat "$dir/port")" >/dev/null
}

start() {
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if running; then
    cat "$dir/port"
    return
  fi
  if pid_alive; then
    kill "$(cat "$dir/server.pid")" 2>/dev/null || true
    sleep 1
  fi
  install_zookeeper
  local port
  port=$(free_port)
  mkdir -p "$dir/data"
  cat >"$dir/zoo.cfg" <<EOF
tickTime=2000
dataDir=$dir/data
clientPort=$port
clientPortAddress=127.0.0.1
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=srvr,ruok,stat,mntr
EOF
  # setsid: the server outlives this script and the shell that ran it.
  setsid java -Xmx256m -cp "$CLASSPATH" org.apache.zookeeper.server.ZooKeeperServerMain \
    "$dir/zoo.cfg" >"$dir/server.log" 2>&1 </dev/null &
  echo $! >"$dir/server.pid"
  for _ in $(seq 300); do
    if srvr "$port" >/dev/null; then
      echo "$port" >"$dir/port"
      echo "$port"
      return
    fi
    if ! pid_alive; then
      echo "zookeeper exited; its log ($dir/server.log):" >&2
      tail -n 30 "$dir/server.log" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "zookeeper did not answer srvr on port $port within 30 s; log: $dir/server.log" >&2
  stop
  exit 1
}

stop() {
  if pid_alive; then
    local pid
    pid=$(cat "$dir/server.pid")
    kill "$pid"
    for _ in $(seq 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      kill -9 "$pid" 2>/dev/null || true
    fi
    echo "stopped zookeeper (pid $pid)"
  else
    echo "zookeeper is not running in $dir"
  fi
  rm -f "$dir/server.pid"
}

status() {
  if running; then
    echo "zookeeper running: pid $(cat "$dir/server.pid"), port $(cat "$dir/port")"
    srvr "$(cat "$dir/port")"
  else
    echo "zookeeper is not running in $dir"
    exit 1
  fi
}

case $cmd in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) usage ;;
esac
