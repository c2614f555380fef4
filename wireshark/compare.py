#!/usr/bin/env python3
"""Compares what wireshark/sinew.lua shows in tshark with what `sinew decode` prints.

Usage:
  compare.py udp CAPTURE --lua sinew.lua --sinew BIN --ports health=P1,P2 --ports dht=P3,...
  compare.py zk  CAPTURE --lua sinew.lua --sinew BIN --server-port PORT
  compare.py dht-tcp CAPTURE --lua sinew.lua --sinew BIN --server-port PORT
  compare.py sealed CAPTURE --lua sinew.lua --sinew BIN --ports health=P1,P2 --key-file FILE

For every message the comparison covers, the fields tshark shows (PDML of the capture read with
the dissector) are written out in `sinew decode`'s format, and must equal, line for line,
`sinew decode`'s output for the same bytes. The bytes come from a second tshark run without
the dissector (udp.payload / tcp.payload); TCP streams are reassembled and cut into frames
here, independently of Wireshark, and each ZooKeeper reply is decoded with the op of the
request carrying its xid, as found here. Sealed datagrams are not opened by the dissector: its
header fields are compared with the first line `sinew decode --key-file` prints (the seal's). Exits 1 on any mismatch, on a message the dissector
missed or claimed for the wrong protocol, or if nothing was compared. Standard library only.
"""

import argparse
import datetime
import ipaddress
import re
import struct
import subprocess
import sys
import unicodedata
import xml.etree.ElementTree as ET

# ---------------------------------------------------------------------------------------------
# tshark
# ---------------------------------------------------------------------------------------------


def tshark_fields(capture, fields, extra=()):
    """Rows of `-T fields` (tab-separated) without any Lua dissector loaded."""
    cmd = ["tshark", "-n", "-r", capture, "-T", "fields", "-E", "separator=\t", *extra]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [line.split("\t") for line in out.splitlines()]


def tshark_pdml(capture, lua, prefs=()):
    """The PDML packets of the capture read with the dissector, as ElementTree elements."""
    cmd = ["tshark", "-n", "-r", capture, "-X", f"lua_script:{lua}", "-T", "pdml"]
    for p in prefs:
        cmd += ["-o", p]
    out = subprocess.run(cmd, check=True, capture_output=True).stdout
    if b"Lua Error" in out:
        raise SystemExit("the dissector raised a Lua error:\n" + out.decode(errors="replace")[-2000:])
    return ET.fromstring(out).findall("packet")


def packet_field(packet, name):
    for el in packet.iter("field"):
        if el.get("name") == name:
            return el.get("show")
    return None


def sinew_decode(sinew, args):
    run = subprocess.run([sinew, "decode", *args], capture_output=True, text=True)
    return run.returncode, run.stdout, run.stderr


# ---------------------------------------------------------------------------------------------
# Field values as sinew prints them
# ---------------------------------------------------------------------------------------------


def rust_debug(text):
    """A str as Rust's `{:?}` writes it (for the characters a test meets)."""
    out = ['"']
    for ch in text:
        if ch in "\"\\":
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\0":
            out.append("\\0")
        elif unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cn", "Co", "Cs"):
            out.append("\\u{%x}" % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def hex64(v):
    return hex(v & 0xFFFFFFFFFFFFFFFF)


def hex32(v):
    return hex(v & 0xFFFFFFFF)


def utc(ms):
    try:
        t = datetime.datetime(1970, 1, 1) + datetime.timedelta(milliseconds=ms)
    except OverflowError:
        return "?"
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (t.microsecond // 1000)


NAME = re.compile(r"^[^:]*: (.*) \((-?\d+)\)$")


def value_name(el):
    """The value-string name of an integer field ("getData"), sinew's `Unknown(n)` if none."""
    m = NAME.match(el.get("showname", ""))
    if not m or m.group(1) == "Unknown":
        return f"Unknown({int(el.get('show'), 0)})"
    return m.group(1)


def num(el):
    return int(el.get("show"), 0)


def raw(el):
    return bytes.fromhex(el.get("value", ""))


def is_null(el):
    return any(k.get("name") == "sinew_zk.null" for k in el)


def zk_buffer(el):
    if is_null(el):
        return "null"
    b = raw(el)
    try:
        text = b.decode("utf-8")
        shown = rust_debug(text) if not any(unicodedata.category(c) == "Cc" for c in text) else b.hex()
    except UnicodeDecodeError:
        shown = b.hex()
    return f"{len(b)} bytes {shown}"


def zk_string(el):
    """A ustring as sinew's `string()` prints it: `{:?}`, or null."""
    if is_null(el):
        return "null"
    return rust_debug(el.get("show"))


def zk_display(el):
    """A ustring as its Display writes it (ACL ids)."""
    return "(null)" if is_null(el) else el.get("show")


def ip_text(el):
    if el.get("name", "").endswith("addr4"):
        return el.get("show")
    return str(ipaddress.IPv6Address(raw(el)))


def sockaddr(kids):
    """`addr:port` (`[v6]:port`) from the address and port items of a subtree."""
    addr = port = None
    v6 = False
    for k in kids:
        n = k.get("name")
        if n.endswith("addr4"):
            addr = ip_text(k)
        elif n.endswith("addr6"):
            addr, v6 = ip_text(k), True
        elif n.endswith("port"):
            port = num(k)
    return (f"[{addr}]" if v6 else addr), port


def normalize(lines):
    """Lines with trailing space dropped and inner runs of spaces made one (alignment differs)."""
    out = []
    for line in lines:
        stripped = line.rstrip()
        if not stripped:
            continue
        indent = len(stripped) - len(stripped.lstrip(" "))
        out.append(" " * indent + " ".join(stripped.split()))
    return out


# ---------------------------------------------------------------------------------------------
# Health and DHT
# ---------------------------------------------------------------------------------------------


def health_lines(proto):
    f = {k.get("name"): k for k in proto.iter("field")}
    type_el = f["sinew_health.type"]
    kind = f["sinew_health.kind"]
    size = int(proto.get("size"))
    lines = [
        f"health datagram, {size} bytes",
        f"  type     0x{num(type_el):02x} (version {num(f['sinew_health.version'])}, "
        f"kind {num(kind)}: {value_name(kind)})",
        f"  nonce    {raw(f['sinew_health.nonce']).hex()}",
    ]
    k = num(kind)
    if k == 3:
        lines.append(f"  start    {num(f['sinew_health.start'])}")
        lines.append(
            f"  padding  {num(f['sinew_health.padding_len'])} zero bytes: room for "
            f"{num(f['sinew_health.entry_budget'])} entries of 19 bytes in the response"
        )
    elif k == 4:
        for name in ("start", "total", "count"):
            lines.append(f"  {name:<8} {num(f['sinew_health.' + name])}")
        entries = [el for el in proto if el.get("name") == "sinew_health.entry"]
        for i, entry in enumerate(entries):
            kids = list(entry)
            addr, port = sockaddr(kids)
            addr = addr.strip("[]")
            lives = next(el for el in kids if el.get("name") == "sinew_health.entry.lives")
            lines.append(
                f"  entry {i:<3} addr {addr}  port {port}  lives {num(lives)}  status {value_name(lives)}"
            )
    return lines


def dht_text(key_el):
    b = raw(key_el) if key_el is not None else b""
    return f"{rust_debug(b.decode('utf-8', 'replace'))} ({len(b)} bytes)"


def dht_node_line(node):
    kids = list(node)
    ident = next(k for k in kids if k.get("name") == "sinew_dht.id")
    addr, port = sockaddr(kids)
    return f"{raw(ident).hex()} at {addr}:{port}"


def dht_lines(proto):
    top = [el for el in proto if el.get("name") != "sinew_dht.frame_len"]
    by = {}
    for el in top:
        by.setdefault(el.get("name"), []).append(el)
    type_el = by["sinew_dht.type"][0]
    kind = next(k for k in type_el if k.get("name") == "sinew_dht.kind")
    version = next(k for k in type_el if k.get("name") == "sinew_dht.version")
    size = int(proto.get("size")) - (4 if "sinew_dht.frame_len" in [e.get("name") for e in proto] else 0)
    sender = by["sinew_dht.sender"][0]
    s_addr, s_port = sockaddr(list(sender))
    s_id = next(k for k in sender if k.get("name") == "sinew_dht.id")
    lines = [
        f"DHT message, {size} bytes",
        f"  type        0x{num(type_el):02x} (version {num(version)}, {value_name(kind)})",
        f"  message id  0x{int(by['sinew_dht.message_id'][0].get('value'), 16):016x}",
        f"  sender id   {raw(s_id).hex()}",
        f"  sender addr {s_addr}:{s_port}",
    ]
    for el in top:
        name = el.get("name")
        if name == "sinew_dht.key":
            lines.append(f"  key         {dht_text(el)}")
        elif name == "sinew_dht.key_len" and num(el) == 0:
            # An empty key has no bytes item.
            if not any(e.get("name") == "sinew_dht.key" for e in top):
                lines.append(f"  key         {dht_text(None)}")
        elif name == "sinew_dht.present" and num(el) == 0:
            lines.append("  value       none")
        elif name == "sinew_dht.value_len" and num(el) == 0:
            if not any(e.get("name") == "sinew_dht.value" for e in top):
                lines.append(f"  value       {dht_text(None)}")
        elif name == "sinew_dht.value":
            lines.append(f"  value       {dht_text(el)}")
        elif name == "sinew_dht.token":
            lines.append(f"  token       {raw(el).hex()}")
        elif name == "sinew_dht.lease_ms":
            lines.append(f"  lease       {num(el)} ms")
        elif name == "sinew_dht.remaining_ms":
            lines.append(f"  remaining   {num(el)} ms")
        elif name == "sinew_dht.joining":
            lines.append(f"  joining     {dht_node_line(el)}")
        elif name == "sinew_dht.side":
            lines.append(f"  side        {value_name(el)}")
        elif name == "sinew_dht.node_count":
            lines.append(f"  nodes       {num(el)}")
        elif name == "sinew_dht.left_count":
            lines.append(f"  left        {num(el)}")
        elif name == "sinew_dht.right_count":
            lines.append(f"  right       {num(el)}")
        elif name == "sinew_dht.node":
            lines.append(f"    {dht_node_line(el)}")
        elif name == "sinew_dht.error":
            lines.append(f"  error       {value_name(el)} ({num(el)})")
        elif name == "sinew_dht.row":
            lines.append(f"  row         {num(el)}")
        elif name == "sinew_dht.columns":
            lines.append(f"  columns     0x{num(el):04x}")
        elif name == "sinew_dht.budget_ms":
            lines.append(f"  budget      {num(el)} ms")
        elif name == "sinew_dht.cookie":
            lines.append(f"  cookie      0x{int(el.get('value'), 16):016x}")
        elif name == "sinew_dht.origin":
            kids = list(el)
            o_id = next(k for k in kids if k.get("name") == "sinew_dht.id")
            o_addr, o_port = sockaddr(kids)
            lines.append(f"  origin id   {raw(o_id).hex()}")
            lines.append(f"  origin addr {o_addr}:{o_port}")
        elif name == "sinew_dht.request_type":
            r_kind = next(k for k in el if k.get("name") == "sinew_dht.request_kind")
            r_version = next(k for k in el if k.get("name") == "sinew_dht.request_version")
            lines.append(
                f"  request     0x{num(el):02x} (version {num(r_version)}, {value_name(r_kind)})"
            )
    return lines


# ---------------------------------------------------------------------------------------------
# ZooKeeper
# ---------------------------------------------------------------------------------------------

SPECIAL = {-1: " (notification)", -2: " (ping)", -4: " (auth)", -8: " (setWatches)"}
WATCH_LISTS = {
    "sinew_zk.data_watches": "dataWatches",
    "sinew_zk.exist_watches": "existWatches",
    "sinew_zk.child_watches": "childWatches",
    "sinew_zk.persistent_watches": "persistentWatches",
    "sinew_zk.persistent_recursive_watches": "persistentRecursiveWatches",
}
HEADER_FIELDS = {
    "sinew_zk.len", "sinew_zk.xid", "sinew_zk.op", "sinew_zk.zxid", "sinew_zk.err",
    "sinew_zk.reply_to", "sinew_zk.request_in", "sinew_zk.response_in",
}
PERMS = [(4, "c"), (8, "d"), (1, "r"), (2, "w"), (16, "a")]
STAT = [
    ("czxid", "czxid", "hex"), ("mzxid", "mzxid", "hex"), ("ctime", "ctime", "time"),
    ("mtime", "mtime", "time"), ("version", "version", "dec"), ("cversion", "cversion", "dec"),
    ("aversion", "aversion", "dec"), ("ephemeral_owner", "ephemeralOwner", "hex"),
    ("data_length", "dataLength", "dec"), ("num_children", "numChildren", "dec"), ("pzxid", "pzxid", "hex"),
]


def perms_text(bits):
    letters = "".join(l for bit, l in PERMS if bits & bit)
    unknown = bits & ~31 & 0xFFFFFFFF
    return letters + (f"+{hex(unknown)}" if unknown else "")


def kid(el, name):
    for k in el:
        if k.get("name") == name:
            return k
    return None


def zk_body(elems, ind, request):
    """Lines of sinew's write_request_body / write_reply_body for the body items `elems`."""
    lines = []
    for el in elems:
        n = el.get("name")
        if n in HEADER_FIELDS or n == "sinew_zk.multi.end" or n.startswith("_ws."):
            continue
        short = n[len("sinew_zk."):]
        if n == "sinew_zk.path":
            lines.append(f"{ind}path     {zk_string(el)}")
        elif n == "sinew_zk.data":
            lines.append(f"{ind}data     {zk_buffer(el)}")
        elif n == "sinew_zk.acl":
            entries = [k for k in el if k.get("name") == "sinew_zk.acl_entry"]
            lines.append(f"{ind}acl      {len(entries)} entries")
            for e in entries:
                perms = num(kid(e, "sinew_zk.perms"))
                lines.append(
                    f"{ind}  {zk_display(kid(e, 'sinew_zk.scheme'))}:{zk_display(kid(e, 'sinew_zk.id'))} "
                    f"perms {perms_text(perms)} ({hex32(perms)})"
                )
        elif n in ("sinew_zk.flags", "sinew_zk.watcher_type", "sinew_zk.add_watch_mode", "sinew_zk.event_type"):
            label = {"flags": "flags", "watcher_type": "type", "add_watch_mode": "mode", "event_type": "type"}[short]
            lines.append(f"{ind}{label:<8} {num(el)} {value_name(el)}")
        elif n == "sinew_zk.state":
            lines.append(f"{ind}state    {num(el)} {value_name(el)}")
        elif n == "sinew_zk.ttl":
            lines.append(f"{ind}ttl      {num(el)} ms")
        elif n == "sinew_zk.version":
            lines.append(f"{ind}version  {num(el)}")
        elif n == "sinew_zk.watch":
            lines.append(f"{ind}watch    {'true' if num(el) else 'false'}")
        elif n in ("sinew_zk.joining_servers", "sinew_zk.leaving_servers", "sinew_zk.new_members"):
            label = {"joining_servers": "joiningServers", "leaving_servers": "leavingServers",
                     "new_members": "newMembers"}[short]
            lines.append(f"{ind}{label}  {zk_string(el)}")
        elif n == "sinew_zk.cur_config_id":
            lines.append(f"{ind}curConfigId  {num(el)}")
        elif n == "sinew_zk.auth_type":
            lines.append(f"{ind}type     {num(el)}")
        elif n == "sinew_zk.scheme":
            lines.append(f"{ind}scheme   {zk_string(el)}")
        elif n == "sinew_zk.auth":
            lines.append(f"{ind}auth     {zk_buffer(el)}")
        elif n == "sinew_zk.relative_zxid":
            lines.append(f"{ind}relativeZxid  {hex64(num(el))}")
        elif n in WATCH_LISTS or n == "sinew_zk.children":
            label = WATCH_LISTS.get(n, "children")
            if is_null(el):
                lines.append(f"{ind}{label}  null")
                continue
            paths = [k for k in el if k.get("name") in ("sinew_zk.watch_path", "sinew_zk.child")]
            lines.append(f"{ind}{label}  {len(paths)}")
            lines += [f"{ind}  {zk_string(p)}" for p in paths]
        elif n == "sinew_zk.token":
            lines.append(f"{ind}token    {zk_buffer(el)}")
        elif n == "sinew_zk.stat":
            lines.append(f"{ind}stat")
            for field, label, form in STAT:
                v = num(kid(el, "sinew_zk.stat." + field))
                text = {"hex": hex64(v), "dec": str(v), "time": f"{v} ({utc(v)})"}[form]
                lines.append(f"{ind}  {label:<15} {text}")
        elif n == "sinew_zk.multi.count":
            lines.append(f"{ind}{'ops' if request else 'results'}  {num(el)}")
        elif n == "sinew_zk.multi.op":
            i = sum(1 for line in lines if re.match(rf"^{ind}(op|result) \d+:", line))
            op_type = kid(el, "sinew_zk.multi.type")
            kids = [k for k in el if k.get("name") not in
                    ("sinew_zk.multi.type", "sinew_zk.multi.done", "sinew_zk.multi.err")]
            if request:
                lines.append(f"{ind}op {i}: {num(op_type)} {value_name(op_type)}")
                lines += zk_body(kids, ind + "    ", request) or [f"{ind}    (no body)"]
            elif num(op_type) == -1:
                code = kid(el, "sinew_zk.multi.result_err")
                lines.append(f"{ind}result {i}: error {num(code)} {value_name(code)}")
            else:
                lines.append(f"{ind}result {i}: {num(op_type)} {value_name(op_type)}")
                lines += zk_body(kids, ind + "    ", request) or [f"{ind}    (no body)"]
        elif n == "sinew_zk.total_number":
            lines.append(f"{ind}totalNumber  {num(el)}")
        elif n == "sinew_zk.status":
            lines.append(f"{ind}err      {num(el)} {value_name(el)}")
        elif n == "sinew_zk.client_info":
            entries = [k for k in el if k.get("name") == "sinew_zk.client_info.entry"]
            lines.append(f"{ind}clientInfo  {len(entries)}")
            for e in entries:
                lines.append(
                    f"{ind}  {zk_string(kid(e, 'sinew_zk.client_info.auth_scheme'))} "
                    f"{zk_string(kid(e, 'sinew_zk.client_info.user'))}"
                )
        elif n == "sinew_zk.body":
            lines.append(f"{ind}body     {zk_buffer(el)}")
        else:
            raise SystemExit(f"compare.py does not know the field {n}")
    return lines


def zk_lines(proto):
    top = list(proto)
    f = {el.get("name"): el for el in top}
    payload = num(f["sinew_zk.len"])
    total = payload + 4
    if "sinew_zk.connect_request" in f or "sinew_zk.connect_response" in f:
        req = "sinew_zk.connect_request" in f
        c = f["sinew_zk.connect_request" if req else "sinew_zk.connect_response"]
        k = {el.get("name"): el for el in c}
        lines = [f"zk {'ConnectRequest' if req else 'ConnectResponse'}, {total} bytes (payload {payload})",
                 f"  protocolVersion  {num(k['sinew_zk.protocol_version'])}"]
        if req:
            z = num(k["sinew_zk.last_zxid_seen"])
            lines.append(f"  lastZxidSeen     {hex64(z)} ({z})")
        t = num(k["sinew_zk.timeout"])
        expired = " (session expired)" if not req and t <= 0 else ""
        lines.append(f"  timeOut          {t} ms{expired}")
        lines.append(f"  sessionId        {hex64(int(k['sinew_zk.session_id'].get('value'), 16))}")
        lines.append(f"  passwd           {zk_buffer(k['sinew_zk.passwd'])}")
        ro = k.get("sinew_zk.read_only")
        lines.append(f"  readOnly         {'(absent)' if ro is None else ('true' if num(ro) else 'false')}")
        return "connect", lines
    xid = num(f["sinew_zk.xid"])
    if "sinew_zk.op" in f:
        op = f["sinew_zk.op"]
        lines = [f"zk request, {total} bytes (payload {payload})",
                 f"  xid      {xid}{SPECIAL.get(xid, '')}",
                 f"  op       {num(op)} {value_name(op)}"]
        lines += zk_body(top, "  ", True) or ["  (no body)"]
        return "request", lines
    what = {-1: "notification", -2: "ping reply", -4: "auth reply", -8: "setWatches reply"}.get(xid)
    if what is None:
        reply_to = f.get("sinew_zk.reply_to")
        what = f"reply to {value_name(reply_to)}" if reply_to is not None else "reply to ?"
    zxid = num(f["sinew_zk.zxid"])
    err = f["sinew_zk.err"]
    lines = [f"zk {what}, {total} bytes (payload {payload})",
             f"  xid      {xid}{SPECIAL.get(xid, '')}",
             f"  zxid     {hex64(zxid)} ({zxid})",
             f"  err      {num(err)} {value_name(err)}"]
    lines += zk_body(top, "  ", False) or ["  (no body)"]
    return "reply", lines


# ---------------------------------------------------------------------------------------------
# Comparison
# ---------------------------------------------------------------------------------------------


class Tally:
    def __init__(self):
        self.messages = 0
        self.lines = 0
        self.failures = []
        self.seen = {}

    def compare(self, what, proto, shown, decode_args, sinew, head=None):
        malformed = [el.get("showname") for el in proto.iter("field") if el.get("name", "").endswith(".malformed")]
        if malformed:
            self.fail(f"{what}: the dissector says {malformed}")
        rc, out, err = sinew_decode(sinew, decode_args)
        expected = normalize(out.splitlines())[:head]
        got = normalize(shown)
        self.messages += 1
        if rc != 0 or expected != got:
            self.failures.append(
                f"{what}: sinew decode {' '.join(decode_args[:-1])} (exit {rc}) {err.strip()}\n"
                + "\n".join(f"    sinew:  {line}" for line in expected)
                + "\n"
                + "\n".join(f"    tshark: {line}" for line in got)
            )
        else:
            self.lines += len(expected)

    def shown(self, what, render, proto):
        """`render(proto)`, or None (a failure) when the dissector's tree lacks what it reads."""
        try:
            return render(proto)
        except (AttributeError, KeyError, StopIteration, TypeError, ValueError) as e:
            self.fail(f"{what}: the dissector's tree does not have the fields expected ({type(e).__name__}: {e})")
            return None

    def fail(self, message):
        self.failures.append(message)

    def count(self, key):
        self.seen[key] = self.seen.get(key, 0) + 1

    def finish(self, label, require):
        missing = [r for r in require if not self.seen.get(r)]
        for r in missing:
            self.fail(f"nothing of kind {r!r} in the capture")
        if self.messages == 0:
            self.fail("no message was compared")
        for f in self.failures[:20]:
            print("FAILED " + f, file=sys.stderr)
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.seen.items()))
        print(f"{label}: {self.messages} messages compared, {self.lines} field lines equal, "
              f"{len(self.failures)} failures; seen: {kinds}")
        return 1 if self.failures else 0


def compare_udp(args):
    protos = {}
    for spec in args.ports:
        proto, ports = spec.split("=", 1)
        for p in ports.split(","):
            protos[int(p)] = proto
    raw_rows = tshark_fields(args.capture, ["frame.number", "udp.srcport", "udp.dstport", "udp.payload"], ["-Y", "udp"])
    packets = {int(p.find("proto[@name='geninfo']/field[@name='num']").get("show")): p
               for p in tshark_pdml(args.capture, args.lua)}
    t = Tally()
    for number, src, dst, payload in raw_rows:
        number, src, dst = int(number), int(src), int(dst)
        want = protos.get(src) or protos.get(dst)
        if want is None:
            continue
        packet = packets[number]
        found = [p for p in packet.findall("proto") if p.get("name") in ("sinew_health", "sinew_dht")]
        if len(found) != 1 or found[0].get("name") != "sinew_" + want:
            t.fail(f"frame {number} ({src} -> {dst}): expected sinew_{want}, dissected as "
                   f"{[p.get('name') for p in found] or 'nothing'}")
            continue
        proto = found[0]
        shown = t.shown(f"frame {number}", health_lines if want == "health" else dht_lines, proto)
        if shown is None:
            continue
        t.count(("" if want == "health" else "dht ") + shown[1].split(": " if want == "health" else ", ")[-1].rstrip(")"))
        t.compare(f"frame {number}", proto, shown, [want, payload], args.sinew)
    return t.finish(f"UDP capture {args.capture}", args.require)


def plural(n, one, many):
    return f"{n} {one if n == 1 else many}"


def sealed_lines(proto):
    """The seal's line of `sinew decode --key-file` (`unseal` in cli/src/decode.rs)."""
    f = {el.get("name"): el for el in proto.iter("field")}
    size = int(proto.get("size"))
    if num(f["sinew_sealed.type"]) != 0xE0:
        raise ValueError("type")
    inner = num(f["sinew_sealed.inner_len"])
    if "sinew_sealed.tag" not in f:
        raise KeyError("sinew_sealed.tag")
    return [
        f"sealed datagram ({plural(size, 'byte', 'bytes')}): key id 0x{num(f['sinew_sealed.key_id']):02x}, "
        f"sender {int(f['sinew_sealed.sender'].get('value'), 16):016x}, "
        f"counter {num(f['sinew_sealed.counter'])}, {plural(inner, 'byte', 'bytes')} inside"
    ]


def compare_sealed(args):
    protos = {}
    for spec in args.ports:
        proto, ports = spec.split("=", 1)
        for p in ports.split(","):
            protos[int(p)] = proto
    raw_rows = tshark_fields(args.capture, ["frame.number", "udp.srcport", "udp.dstport", "udp.payload"], ["-Y", "udp"])
    prefs = ["sinew_sealed.udp_ports:" + ",".join(str(p) for p in sorted(protos))]
    packets = {int(p.find("proto[@name='geninfo']/field[@name='num']").get("show")): p
               for p in tshark_pdml(args.capture, args.lua, prefs)}
    t = Tally()
    for number, src, dst, payload in raw_rows:
        number, src, dst = int(number), int(src), int(dst)
        inner = protos.get(src) or protos.get(dst)
        if inner is None:
            continue
        found = [p for p in packets[number].findall("proto")
                 if p.get("name") in ("sinew_health", "sinew_dht", "sinew_sealed")]
        if len(found) != 1 or found[0].get("name") != "sinew_sealed":
            t.fail(f"frame {number} ({src} -> {dst}): expected sinew_sealed, dissected as "
                   f"{[p.get('name') for p in found] or 'nothing'}")
            continue
        shown = t.shown(f"frame {number}", sealed_lines, found[0])
        if shown is None:
            continue
        t.count(f"sealed {inner} " + shown[0].split(", ")[-1])
        t.count("sealed")
        t.compare(f"frame {number}", found[0], shown, [inner, "--key-file", args.key_file, payload],
                  args.sinew, head=1)
    return t.finish(f"sealed UDP capture {args.capture}", args.require)


TCP_FIELDS = ["frame.number", "tcp.stream", "tcp.srcport", "tcp.dstport", "tcp.payload", "tcp.seq"]


def zk_frames(rows, server_port):
    """Cuts each stream's bytes, per direction, into frames: (stream, dir) -> [(frame no, bytes)].

    Bytes are placed by their sequence number (relative, as tshark shows it): a retransmitted
    segment's bytes, already had, are dropped (a loopback TCP retransmits now and then), and a
    gap (bytes the capture lacks) is an error.
    """
    buffers, frames, next_seq = {}, {}, {}
    segments = {}  # (stream, dir) -> the packets that brought new bytes
    for number, stream, src, dst, payload, seq in rows:
        if not payload:
            continue
        key = (int(stream), "request" if int(dst) == server_port else "reply")
        data, seq = bytes.fromhex(payload), int(seq)
        expected = next_seq.get(key, seq)
        if seq > expected:
            raise SystemExit(f"stream {key[0]} {key[1]}s: the capture lacks bytes {expected}..{seq}")
        data = data[expected - seq :]
        if not data:
            continue
        next_seq[key] = expected + len(data)
        segments.setdefault(key, []).append(int(number))
        buf = buffers.get(key, b"") + data
        while len(buf) >= 4:
            (n,) = struct.unpack(">i", buf[:4])
            if n < 0 or len(buf) < 4 + n:
                break
            frames.setdefault(key, []).append((int(number), buf[: 4 + n]))
            buf = buf[4 + n :]
        buffers[key] = buf
    return frames, {k: v for k, v in buffers.items() if v}, segments


def started_streams(capture):
    """The TCP streams whose opening SYN is in the capture (only those have their handshake)."""
    rows = tshark_fields(capture, ["tcp.stream"], ["-Y", "tcp.flags.syn == 1 && tcp.flags.ack == 0"])
    return {int(r[0]) for r in rows if r and r[0]}


def compare_zk(args):
    rows = tshark_fields(args.capture, TCP_FIELDS, ["-Y", "tcp"])
    started = started_streams(args.capture)
    skipped = {int(r[1]) for r in rows} - started
    if skipped:
        print(f"streams {sorted(skipped)} began before the capture: not compared")
    rows = [r for r in rows if int(r[1]) in started]
    frames, leftover, segments = zk_frames(rows, args.server_port)
    t = Tally()
    for key, rest in leftover.items():
        t.fail(f"stream {key[0]} {key[1]}s: {len(rest)} bytes after the last whole frame")
    shown = {}
    for packet in tshark_pdml(args.capture, args.lua, [f"sinew_zk.tcp_ports:{args.server_port}"]):
        number = int(packet.find("proto[@name='geninfo']/field[@name='num']").get("show"))
        pdus = packet.findall("proto[@name='sinew_zk']")
        if not pdus:
            continue
        stream = int(packet_field(packet, "tcp.stream"))
        if stream not in started:
            continue
        direction = "request" if int(packet_field(packet, "tcp.dstport")) == args.server_port else "reply"
        for pdu in pdus:
            shown.setdefault((stream, direction), []).append((number, pdu))
    for key in sorted(set(frames) | set(shown)):
        ours, theirs = frames.get(key, []), shown.get(key, [])
        if len(ours) != len(theirs):
            t.fail(f"stream {key[0]} {key[1]}s: {len(ours)} frames in the bytes, {len(theirs)} dissected")
    for stream in sorted({s for s, _ in frames}):
        ops = {}
        requests = list(zip(frames.get((stream, "request"), []), shown.get((stream, "request"), [])))
        replies = list(zip(frames.get((stream, "reply"), []), shown.get((stream, "reply"), [])))
        # Requests first, so every reply finds its request's op (replies follow their requests).
        for i, ((number, data), (shown_number, pdu)) in enumerate(requests):
            if number != shown_number:
                t.fail(f"stream {stream}: request frame ends in frame {number}, dissected in {shown_number}")
            shown_lines = t.shown(f"stream {stream} frame {number}", zk_lines, pdu)
            if shown_lines is None:
                continue
            _, lines = shown_lines
            if i == 0:
                t.count("ConnectRequest")
                t.compare(f"stream {stream} frame {number}", pdu, lines, ["zk-request", "--connect", data.hex()], args.sinew)
                continue
            xid, op = struct.unpack(">ii", data[4:12])
            ops.setdefault(xid, []).append(op)
            t.count("request " + lines[2].split()[-1])
            t.compare(f"stream {stream} frame {number}", pdu, lines, ["zk-request", data.hex()], args.sinew)
        for i, ((number, data), (shown_number, pdu)) in enumerate(replies):
            if number != shown_number:
                t.fail(f"stream {stream}: reply frame ends in frame {number}, dissected in {shown_number}")
            shown_lines = t.shown(f"stream {stream} frame {number}", zk_lines, pdu)
            if shown_lines is None:
                continue
            _, lines = shown_lines
            if i == 0:
                t.count("ConnectResponse")
                t.compare(f"stream {stream} frame {number}", pdu, lines, ["zk-reply", "--op", "connect", data.hex()], args.sinew)
                continue
            xid, err = struct.unpack(">i", data[4:8])[0], struct.unpack(">i", data[16:20])[0]
            decode = ["zk-reply"]
            if xid in (-1, -2, -4, -8):
                t.count({-1: "notification", -2: "ping reply", -4: "auth reply", -8: "setWatches reply"}[xid])
            else:
                pending = ops.get(xid)
                if not pending:
                    t.fail(f"stream {stream} frame {number}: reply xid {xid} answers no request seen")
                    continue
                op = pending.pop(0)
                decode.append(f"--op={op}")
                t.count(f"reply op {op}")
            if err != 0:
                t.count("error reply")
            t.compare(f"stream {stream} frame {number}", pdu, lines, decode + [data.hex()], args.sinew)
    for key, fr in frames.items():
        ends = [n for n, _ in fr]
        if len(ends) != len(set(ends)):
            t.count("segment with several frames")
            break
    for key, fr in frames.items():
        ends = {n for n, _ in fr}
        if any(n not in ends for n in segments.get(key, [])):
            t.count("frame split across segments")
            break
    return t.finish(f"ZooKeeper capture {args.capture}", args.require)


def compare_dht_tcp(args):
    rows = tshark_fields(args.capture, TCP_FIELDS, ["-Y", "tcp"])
    frames, leftover, segments = zk_frames(rows, args.server_port)
    t = Tally()
    for key, rest in leftover.items():
        t.fail(f"stream {key[0]} {key[1]}s: {len(rest)} bytes after the last whole frame")
    shown = {}
    for packet in tshark_pdml(args.capture, args.lua, [f"sinew_dht.tcp_ports:{args.server_port}"]):
        number = int(packet.find("proto[@name='geninfo']/field[@name='num']").get("show"))
        pdus = packet.findall("proto[@name='sinew_dht']")
        stream = packet_field(packet, "tcp.stream")
        if not pdus or stream is None:
            continue
        direction = "request" if int(packet_field(packet, "tcp.dstport")) == args.server_port else "reply"
        for pdu in pdus:
            shown.setdefault((int(stream), direction), []).append((number, pdu))
    for key in sorted(set(frames) | set(shown)):
        ours, theirs = frames.get(key, []), shown.get(key, [])
        if len(ours) != len(theirs):
            t.fail(f"stream {key[0]} {key[1]}s: {len(ours)} frames in the bytes, {len(theirs)} dissected")
        ends = [n for n, _ in ours]
        if len(ends) != len(set(ends)):
            t.count("segment with several frames")
        for (number, data), (shown_number, pdu) in zip(ours, theirs):
            if number != shown_number:
                t.fail(f"stream {key[0]}: frame ends in frame {number}, dissected in {shown_number}")
            lines = t.shown(f"stream {key[0]} frame {number}", dht_lines, pdu)
            if lines is None:
                continue
            t.count("dht/tcp " + lines[1].split()[-1].rstrip(")"))
            frame_len = kid(pdu, "sinew_dht.frame_len")
            if frame_len is None or len(data) - 4 != num(frame_len):
                t.fail(f"frame {number}: the dissector's frame length is not the {len(data) - 4} bytes that follow it")
            t.compare(f"stream {key[0]} frame {number}", pdu, lines, ["dht", data[4:].hex()], args.sinew)
    for key, fr in frames.items():
        if any(n not in {e for e, _ in fr} for n in segments.get(key, [])):
            t.count("frame split across segments")
            break
    return t.finish(f"DHT/TCP capture {args.capture}", args.require)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["udp", "zk", "dht-tcp", "sealed"])
    ap.add_argument("capture")
    ap.add_argument("--lua", required=True)
    ap.add_argument("--sinew", required=True)
    ap.add_argument("--ports", action="append", default=[], help="health=P,P or dht=P,P (udp)")
    ap.add_argument("--server-port", type=int, help="the ZooKeeper server's port (zk)")
    ap.add_argument("--key-file", help="the keys of the sealed datagrams (sealed)")
    ap.add_argument("--require", action="append", default=[], help="a kind of message that must be seen")
    args = ap.parse_args()
    modes = {"udp": compare_udp, "zk": compare_zk, "dht-tcp": compare_dht_tcp, "sealed": compare_sealed}
    return modes[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
