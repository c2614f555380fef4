#!/usr/bin/env python3
"""kazoo's pipelined getData rate, for examples/zk_e2e.rs: keeps DEPTH get_async calls in
flight for SECONDS (each reply's callback sends its replacement) and prints
"OPS SECONDS CPU_SECONDS" (CPU: this process's user + system time over the timed phase).

    zk_e2e_kazoo.py HOST:PORT PATH DEPTH SECONDS
"""
import sys
import threading
import time

from kazoo.client import KazooClient


def main():
    server, path, depth, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    zk = KazooClient(hosts=server)
    zk.start(timeout=10)
    try:
        lock = threading.Lock()
        finished = threading.Event()
        state = {"done": 0, "in_flight": 0, "end": None, "error": None}
        cpu_start = time.process_time()
        start = time.monotonic()

        def on_reply(result):
            try:
                data, _ = result.get_nowait()
                assert len(data) == 100
            except Exception as e:  # noqa: BLE001 - reported below
                state["error"] = e
            with lock:
                state["done"] += 1
                state["in_flight"] -= 1
                if state["end"] is None:
                    elapsed = time.monotonic() - start
                    if elapsed >= seconds:
                        state["end"] = (state["done"], elapsed, time.process_time() - cpu_start)
                    else:
                        state["in_flight"] += 1
                        zk.get_async(path).rawlink(on_reply)
                if state["in_flight"] == 0:
                    finished.set()

        with lock:
            for _ in range(depth):
                state["in_flight"] += 1
                zk.get_async(path).rawlink(on_reply)
        if not finished.wait(timeout=seconds + 30):
            raise SystemExit("kazoo: replies stopped coming")
        if state["error"] is not None:
            raise state["error"]
        done, elapsed, cpu = state["end"]
        print(done, elapsed, cpu)
    finally:
        zk.stop()
        zk.close()


if __name__ == "__main__":
    main()
