#!/usr/bin/env python3
"""A kazoo session for the dissector test: a committed transaction (a multi of create, setData,
check, delete) and an aborted one, as the Python client sends them.

Usage: zk_kazoo.py HOST:PORT PREFIX (the node PREFIX must not exist)
"""

import sys

from kazoo.client import KazooClient


def main():
    addr, prefix = sys.argv[1], sys.argv[2]
    zk = KazooClient(hosts=addr)
    zk.start(timeout=10)
    try:
        t = zk.transaction()
        t.create(prefix, b"kazoo")
        t.set_data(prefix, b"changed")
        t.check(prefix, 1)
        t.delete(prefix)
        committed = t.commit()
        t = zk.transaction()
        t.create(prefix, b"again")
        t.check(prefix + "/missing", 0)
        aborted = t.commit()
    finally:
        zk.stop()
        zk.close()
    print("committed:", committed)
    print("aborted:", [type(r).__name__ for r in aborted])
    ok = not any(isinstance(r, Exception) for r in committed) and any(isinstance(r, Exception) for r in aborted)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
