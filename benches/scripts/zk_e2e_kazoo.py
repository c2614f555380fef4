#!/usr/bin/env python3
"""kazoo's pipelined getData rate, for examples/zk_e2e.rs: keeps DEPTH get_async calls in
flight for SECONDS and prints ops/s.

    zk_e2e_kazoo.py HOST:PORT PATH DEPTH SECONDS
"""
import sys
import time

from kazoo.client import KazooClient


def main():
    server, path, depth, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    zk = KazooClient(hosts=server)
    zk.start(timeout=10)
    try:
        done = 0
        start = time.monotonic()
        while True:
            # A batch of DEPTH requests in flight, then wait for all of them.
            results = [zk.get_async(path) for _ in range(depth)]
            for result in results:
                data, _ = result.get(timeout=10)
                assert len(data) == 100
            done += depth
            elapsed = time.monotonic() - start
            if elapsed >= seconds:
                break
        print(done / elapsed)
    finally:
        zk.stop()
        zk.close()


if __name__ == "__main__":
    main()
