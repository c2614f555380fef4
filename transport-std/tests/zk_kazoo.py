#!/usr/bin/env python3
"""The kazoo side of sinew's ZooKeeper cross-check (driven by zk_kazoo.rs).

Usage: zk_kazoo.py HOST:PORT ROOT

1. Walks ROOT (written by sinew) and prints one line per node:
       node PATH DATA VERSION CZXID MZXID DATALENGTH NUMCHILDREN EPHEMERALOWNER CHILDREN
   DATA is the hex of the data ("-" when empty), CHILDREN the sorted names joined by "/"
   ("-" when none).
2. Writes ROOT/kazoo and nodes below it for sinew to read back, then prints "done".

Needs kazoo: pip install kazoo (or Debian's python3-kazoo).
"""

import sys

from kazoo.client import KazooClient
from kazoo.security import make_digest_acl


def walk(zk, path):
    data, stat = zk.get(path)
    children = sorted(zk.get_children(path))
    print(
        "node",
        path,
        data.hex() if data else "-",
        stat.version,
        stat.czxid,
        stat.mzxid,
        stat.dataLength,
        stat.numChildren,
        stat.ephemeralOwner,
        "/".join(children) if children else "-",
    )
    for child in children:
        walk(zk, path + "/" + child)


def main():
    server, root = sys.argv[1], sys.argv[2]
    zk = KazooClient(hosts=server, timeout=10)
    zk.start(timeout=10)
    try:
        walk(zk, root)
        base = root + "/kazoo"
        zk.create(base, b"from kazoo")
        zk.create(base + "/text", "grüße ✓ 𝄞".encode())
        zk.set(base + "/text", "grüße ✓ 𝄞 v2".encode())
        zk.create(base + "/binary", bytes(range(256)))
        zk.create(base + "/empty", b"")
        zk.create(base + "/seq-", b"s", sequence=True)
        zk.create(base + "/knöten", b"umlaut path")
        zk.create(base + "/secret", b"s3cret", acl=[make_digest_acl("carol", "pw", all=True)])
        print("done")
    finally:
        zk.stop()
        zk.close()


if __name__ == "__main__":
    main()
