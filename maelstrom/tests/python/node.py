#!/usr/bin/env python3
"""A Maelstrom node for the echo and broadcast workloads, written from Maelstrom's protocol
document (doc/protocol.md) with the standard library only: a node that is not sinew's, for
sinew's harness and checkers to judge.

Messages are JSON objects, one per line, on stdin; replies go to stdout, one per line,
flushed; logs go to stderr. A broadcast value is sent to every other node and resent every
RETRY seconds until that node acknowledges it, so values cross a partition once it heals.
"""

import json
import sys
import threading

RETRY = 0.5

lock = threading.Lock()
node_id = None
node_ids = []
next_msg_id = 0
values = []
seen = set()
# peer -> values it has not acknowledged yet
unacked = {}


def log(text):
    print(text, file=sys.stderr, flush=True)


def send(dest, body):
    """Writes one message; the caller holds the lock."""
    global next_msg_id
    next_msg_id += 1
    body = dict(body, msg_id=next_msg_id)
    sys.stdout.write(json.dumps({"src": node_id, "dest": dest, "body": body}) + "\n")
    sys.stdout.flush()


def reply(request, body):
    in_reply_to = request["body"].get("msg_id")
    if in_reply_to is None:
        return
    send(request["src"], dict(body, in_reply_to=in_reply_to))


def error(request, code, text):
    reply(request, {"type": "error", "code": code, "text": text})


def add(value, origin):
    """Records a new value and queues it for every other node but the one it came from."""
    key = json.dumps(value, sort_keys=True)
    if key in seen:
        return
    seen.add(key)
    values.append(value)
    for peer in node_ids:
        if peer != node_id and peer != origin:
            unacked.setdefault(peer, {})[key] = value


def gossip():
    for peer, pending in unacked.items():
        if pending:
            send(peer, {"type": "gossip", "messages": list(pending.values())})


def handle(message):
    global node_id, node_ids
    body = message["body"]
    kind = body.get("type")
    if kind == "init":
        node_id = body["node_id"]
        node_ids = list(body["node_ids"])
        reply(message, {"type": "init_ok"})
    elif node_id is None:
        error(message, 11, "not initialised yet")
    elif kind == "echo":
        reply(message, {"type": "echo_ok", "echo": body["echo"]})
    elif kind == "topology":
        # Every value goes straight to every node: the suggested topology is not needed.
        reply(message, {"type": "topology_ok"})
    elif kind == "broadcast":
        add(body["message"], None)
        reply(message, {"type": "broadcast_ok"})
        gossip()
    elif kind == "read":
        reply(message, {"type": "read_ok", "messages": list(values)})
    elif kind == "gossip":
        for value in body["messages"]:
            add(value, message["src"])
        reply(message, {"type": "gossip_ok", "messages": body["messages"]})
    elif kind == "gossip_ok":
        pending = unacked.get(message["src"], {})
        for value in body.get("messages", []):
            pending.pop(json.dumps(value, sort_keys=True), None)
    else:
        error(message, 10, "unsupported message type %r" % (kind,))


def retry_loop(stop):
    while not stop.wait(RETRY):
        with lock:
            if node_id is not None:
                gossip()


def main():
    stop = threading.Event()
    threading.Thread(target=retry_loop, args=(stop,), daemon=True).start()
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            message = json.loads(line)
            message["body"]["type"]
        except (ValueError, KeyError, TypeError) as e:
            log("dropped a line that is not a message: %s" % e)
            continue
        with lock:
            try:
                handle(message)
            except (KeyError, TypeError, AttributeError) as e:
                error(message, 12, "malformed request: %s" % e)
    stop.set()


if __name__ == "__main__":
    main()
