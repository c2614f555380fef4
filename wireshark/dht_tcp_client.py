#!/usr/bin/env python3
"""A DHT client on TCP for the dissector test (wireshark/test.sh).

Usage: dht_tcp_client.py HOST:PORT

Talks to `sinew dht node --tcp`: a Put sent in two pieces a little apart (a frame split across
TCP segments), then a Get, a Lock and an Unlock in one send (several frames in one segment);
reads an answer to each. Standard library only; exits 0 if every answer has the kind expected.
"""

import os
import socket
import struct
import sys
import time

KINDS = {2: "Value", 4: "PutAck", 6: "Locked", 9: "Unlocked", 15: "Error"}


def message(type_byte, message_id, sender_id, port, body):
    addr = bytes(10) + b"\xff\xff" + socket.inet_aton("127.0.0.1")
    header = struct.pack(">BQ", type_byte, message_id) + sender_id + addr + struct.pack(">H", port)
    msg = header + body
    return struct.pack(">I", len(msg)) + msg


def key(k):
    return struct.pack(">B", len(k)) + k


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    me, local_port = os.urandom(16), sock.getsockname()[1]
    token = os.urandom(16)  # the lock's secret (LockToken)
    put = message(3, 1, me, local_port, key(b"wireshark") + struct.pack(">H", 3) + b"tcp")
    sock.sendall(put[:10])
    time.sleep(0.05)
    sock.sendall(put[10:])
    time.sleep(0.05)
    batch = (
        message(1, 2, me, local_port, key(b"wireshark"))
        + message(0x25, 3, me, local_port, key(b"door") + token + struct.pack(">I", 500))
        + message(0x28, 4, me, local_port, key(b"door") + token)
    )
    sock.sendall(batch)
    want = ["PutAck", "Value", "Locked", "Unlocked"]
    got = []
    buf = b""
    while len(got) < len(want):
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
        while len(buf) >= 4 and len(buf) >= 4 + struct.unpack(">I", buf[:4])[0]:
            n = struct.unpack(">I", buf[:4])[0]
            msg, buf = buf[4 : 4 + n], buf[4 + n :]
            got.append(KINDS.get(msg[0] & 0x1F, f"kind {msg[0]}"))
    sock.close()
    print("answers:", ", ".join(got))
    return 0 if got == want else 1


if __name__ == "__main__":
    sys.exit(main())
