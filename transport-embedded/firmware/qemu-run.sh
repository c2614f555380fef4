#!/bin/sh
# Cargo runner: boots the firmware ELF ($1) on QEMU's mps2-an386 (Cortex-M4F) with a LAN9118 on
# user-mode networking, and decodes its defmt log (semihosting stdout) with defmt-print.
#
#   SINEW_HOSTFWD_PORT  host UDP port forwarded to the firmware (default 47710)
#   SINEW_FW_PORT       the firmware's UDP port (default 47700; baked in at build time too)
#   SINEW_FW_MAC        the LAN9118's MAC address (default QEMU's 52:54:00:12:34:56); the firmware
#                       names its ZooKeeper node after it
#
# Inside QEMU the firmware is 10.0.2.15/24 with gateway 10.0.2.2; its datagrams to 10.0.2.2:P
# reach the host's 127.0.0.1:P (TCP too: its ZooKeeper session goes to 10.0.2.2:$SINEW_ZK_PORT,
# baked in at build time), and the host reaches it at 127.0.0.1:$SINEW_HOSTFWD_PORT.
# The exit status is the firmware's (semihosting exit): 0 when it saw both directions.
set -eu
elf="$1"
hostfwd="${SINEW_HOSTFWD_PORT:-47710}"
fwport="${SINEW_FW_PORT:-47700}"
mac="${SINEW_FW_MAC:+,mac=$SINEW_FW_MAC}"
set -- qemu-system-arm -cpu cortex-m4 -machine mps2-an386 -nographic \
    -semihosting-config enable=on,target=native \
    -serial none -monitor none \
    -nic "user,model=lan9118${mac},hostfwd=udp:127.0.0.1:${hostfwd}-10.0.2.15:${fwport}" \
    -kernel "$elf"
if command -v defmt-print >/dev/null 2>&1; then
    # pipefail is not POSIX sh: keep QEMU's status by hand.
    { status=0; "$@" || status=$?; echo "$status" > "$elf.qemu-status"; } | defmt-print -e "$elf"
    status=$(cat "$elf.qemu-status")
    rm -f "$elf.qemu-status"
    exit "$status"
else
    echo "defmt-print not found (cargo install defmt-print --locked): showing raw defmt frames" >&2
    exec "$@"
fi
