#!/usr/bin/env python3
"""A ZooKeeper session of hand-built jute frames, for the dissector test (wireshark/test.sh).

Usage: zk_session.py HOST:PORT PREFIX

Sends, on one connection, requests of most ops sinew's codec knows (under the node PREFIX,
which must not exist), and shapes the TCP segments on purpose: two requests in one send
(several frames in one segment) and one request in three sends a little apart (a frame split
across segments). Standard library only; prints one line per reply and exits 0 if every
reply came back with the error code expected.
"""

import socket
import struct
import sys
import time

OPEN_ACL = [(31, b"world", b"anyone")]
# What ZooKeeper 3.8 answers the ops a standalone server refuses: NoWatcher (no data watch on
# the node by then), BadArguments (clients may not delete containers), ReconfigDisabled.
EXPECT = {17: -121, 20: -8, 16: -123}


def ustring(s):
    if s is None:
        return struct.pack(">i", -1)
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">i", len(b)) + b


buffer = ustring


def boolean(b):
    return b"\x01" if b else b"\x00"


def acl(entries):
    out = struct.pack(">i", len(entries))
    for perms, scheme, ident in entries:
        out += struct.pack(">i", perms) + ustring(scheme) + ustring(ident)
    return out


def create(path, data, flags=0):
    return ustring(path) + buffer(data) + acl(OPEN_ACL) + struct.pack(">i", flags)


def path_watch(path, watch=False):
    return ustring(path) + boolean(watch)


def path_version(path, version=-1):
    return ustring(path) + struct.pack(">i", version)


def multi_header(op, done=False, err=-1):
    return struct.pack(">i", op) + boolean(done) + struct.pack(">i", err)


def multi(ops):
    out = b""
    for op, body in ops:
        out += multi_header(op) + body
    return out + multi_header(-1, True, -1)


def frame(payload):
    return struct.pack(">i", len(payload)) + payload


class Session:
    def __init__(self, addr):
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.xid = 0
        self.failures = 0
        connect = struct.pack(">iqiq", 0, 0, 10000, 0) + buffer(bytes(16)) + b"\x00"
        self.sock.sendall(frame(connect))
        reply = self.read_frame()
        timeout, session = struct.unpack(">iq", reply[4:16])
        print(f"connected: session {session:#x}, timeout {timeout} ms")

    def read_frame(self):
        while True:
            if len(self.buf) >= 4:
                (n,) = struct.unpack(">i", self.buf[:4])
                if len(self.buf) >= 4 + n:
                    payload, self.buf = self.buf[4 : 4 + n], self.buf[4 + n :]
                    return payload
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk

    def request(self, op, body, xid=None):
        if xid is None:
            self.xid += 1
            xid = self.xid
        return xid, frame(struct.pack(">ii", xid, op) + body)

    def reply(self, xid, what, expect_err=0):
        """Reads frames up to the reply with `xid` (notifications on the way are printed)."""
        while True:
            payload = self.read_frame()
            rxid, zxid, err = struct.unpack(">iqi", payload[:16])
            if rxid == -1:
                print("  notification")
                continue
            if rxid != xid:
                raise RuntimeError(f"reply xid {rxid}, expected {xid}")
            ok = err == expect_err
            self.failures += not ok
            print(f"  {what}: err {err}{'' if ok else f' (expected {expect_err})'}")
            return payload

    def call(self, op, body, what, expect_err=0, xid=None):
        xid, data = self.request(op, body, xid)
        self.sock.sendall(data)
        return self.reply(xid, what, expect_err)


def main():
    addr, prefix = sys.argv[1], sys.argv[2]
    s = Session(addr)
    a, b = prefix + "/a", prefix + "/b"
    s.call(1, create(prefix, b"root"), "create")
    s.call(15, create(a, b"alpha"), "create2")
    s.call(1, create(prefix + "/null", None), "create with null data")
    s.call(3, path_watch(a, True), "exists (watch)")
    s.call(4, path_watch(a), "getData")
    s.call(5, ustring(a) + buffer(b"beta") + struct.pack(">i", -1), "setData (fires the watch)")
    s.call(6, ustring(a), "getACL")
    s.call(7, ustring(a) + acl(OPEN_ACL + [(1, b"ip", b"127.0.0.1")]) + struct.pack(">i", -1), "setACL")
    s.call(8, path_watch(prefix), "getChildren")
    s.call(12, path_watch(prefix), "getChildren2")
    s.call(9, ustring(prefix), "sync")
    s.call(104, ustring(prefix), "getAllChildrenNumber")
    s.call(103, ustring(prefix), "getEphemerals")
    s.call(107, b"", "whoAmI")
    s.call(106, ustring(prefix) + struct.pack(">i", 1), "addWatch (persistent recursive)")
    s.call(18, ustring(prefix) + struct.pack(">i", 3), "removeWatches (any)")
    s.call(4, path_watch(prefix + "/missing"), "getData of a missing node", -101)
    s.call(1, create(a, b"again"), "create of an existing node", -110)
    s.call(21, create(prefix + "/ttl", b"t", 5) + struct.pack(">q", 60000), "createTTL", -6)
    s.call(19, create(prefix + "/container", b"c", 4), "createContainer")
    s.call(17, ustring(a) + struct.pack(">i", 2), "checkWatches (data)", EXPECT.get(17, 0))
    s.call(20, ustring(prefix + "/nothing"), "deleteContainer", EXPECT.get(20, 0))
    s.call(16, ustring("") + ustring("") + ustring("server.9=127.0.0.1:1:2") + struct.pack(">q", -1), "reconfig", EXPECT.get(16, 0))
    # A multi that commits, one that aborts on its second op, a multiRead.
    s.call(
        14,
        multi(
            [
                (1, create(b, b"one")),
                (5, ustring(b) + buffer(b"two") + struct.pack(">i", 0)),
                (13, path_version(b, 1)),
                (2, path_version(prefix + "/container", -1)),
            ]
        ),
        "multi",
    )
    s.call(
        14,
        multi([(1, create(prefix + "/c", b"")), (2, path_version(prefix + "/nope")), (13, path_version(b, 7))]),
        "aborted multi",
    )
    s.call(22, multi([(8, path_watch(prefix)), (4, path_watch(b))]), "multiRead")
    s.call(11, b"", "ping", xid=-2)
    s.call(100, struct.pack(">i", 0) + ustring("digest") + buffer(b"user:secret"), "auth", xid=-4)
    s.call(
        101,
        struct.pack(">q", 0) + struct.pack(">i", 1) + ustring(a) + struct.pack(">i", 0) + struct.pack(">i", 0),
        "setWatches",
        xid=-8,
    )
    s.call(
        105,
        struct.pack(">q", 0) + b"".join(struct.pack(">i", 0) for _ in range(4)) + struct.pack(">i", 1) + ustring(prefix),
        "setWatches2",
        xid=-8,
    )
    # Two requests in one send: one TCP segment carries two frames.
    x1, f1 = s.request(4, path_watch(b))
    x2, f2 = s.request(3, path_watch(a))
    s.sock.sendall(f1 + f2)
    s.reply(x1, "getData (pipelined)")
    s.reply(x2, "exists (pipelined)")
    # One request in three sends: a frame split across segments.
    x3, f3 = s.request(5, ustring(b) + buffer(b"x" * 300) + struct.pack(">i", -1))
    for part in (f3[:2], f3[2:20], f3[20:]):
        s.sock.sendall(part)
        time.sleep(0.05)
    s.reply(x3, "setData (split in three sends)")
    for node in (prefix + "/c", b, a, prefix + "/null", prefix):
        s.call(2, path_version(node), f"delete {node}", -101 if node.endswith("/c") else 0)
    s.call(-11, b"", "closeSession")
    s.sock.close()
    if s.failures:
        print(f"{s.failures} replies with an unexpected error code", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
