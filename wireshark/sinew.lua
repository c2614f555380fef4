-- sinew.lua: Wireshark dissectors for sinew's wire formats (proto/PROTOCOL.md,
-- proto/src/zk/PROTOCOL-zk.md).
--
--   sinew_health  UDP health checks and peer tables (nonce header + kind)
--   sinew_dht     DHT messages: UDP datagrams, and TCP frames with a 4-byte length
--   sinew_sealed  sealed UDP datagrams (any protocol): the header and tag, not decrypted
--   sinew_zk      ZooKeeper's jute client protocol on TCP
--
-- Load with `tshark -X lua_script:wireshark/sinew.lua` (or `wireshark -X ...`), or copy this
-- file into ~/.local/lib/wireshark/plugins/. See wireshark/README.md for the preferences.
--
-- Every message is first parsed into a list of items without touching the tree, so that a
-- heuristic can refuse bytes that do not parse exactly as sinew's own decoder would; only a
-- message that parsed is rendered (a malformed one is shown with an expert note instead).

set_plugin_info({
    version = "0.1.0",
    description = "sinew health checks, DHT and ZooKeeper jute dissectors",
    repository = "sinew/wireshark",
})

-----------------------------------------------------------------------------------------------
-- Parsing into items
-----------------------------------------------------------------------------------------------

-- An item: { f = ProtoField, pos, len, value (optional), gen (generated), null (a jute null),
-- text (appended to the label), kids = { items } }.

local Cursor = {}
Cursor.__index = Cursor

local function cursor(tvb, pos, limit)
    return setmetatable({ tvb = tvb, pos = pos, limit = limit, err = nil }, Cursor)
end

function Cursor:fail(msg)
    if not self.err then
        self.err = msg
    end
    return nil
end

function Cursor:left()
    return self.limit - self.pos
end

function Cursor:has(n)
    if self.err then
        return false
    end
    if n < 0 or self.pos + n > self.limit then
        self:fail("truncated")
        return false
    end
    return true
end

-- Adds a fixed-size item of `n` bytes read by `read` (a TvbRange method name); returns its
-- value, or nil when the bytes are missing.
function Cursor:fixed(into, f, n, read)
    if not self:has(n) then
        return nil
    end
    local range = self.tvb(self.pos, n)
    local value = read and range[read](range) or nil
    local item = { f = f, pos = self.pos, len = n }
    if into then
        into[#into + 1] = item
    end
    self.pos = self.pos + n
    return value, item
end

function Cursor:u8(into, f) return self:fixed(into, f, 1, "uint") end
function Cursor:u16(into, f) return self:fixed(into, f, 2, "uint") end
function Cursor:u32(into, f) return self:fixed(into, f, 4, "uint") end
function Cursor:i32(into, f) return self:fixed(into, f, 4, "int") end
function Cursor:i64(into, f) return self:fixed(into, f, 8, "int64") end
function Cursor:raw(into, f, n) return self:fixed(into, f, n, "bytes") end

-- A subtree item covering the bytes its children take; `fill(kids)` adds them.
function Cursor:subtree(into, f, fill)
    local item = { f = f, pos = self.pos, len = 0, kids = {} }
    into[#into + 1] = item
    local result = fill(item.kids, item)
    item.len = self.pos - item.pos
    return result, item
end

-- A generated item (a value derived from the bytes, not on the wire as such).
local function generated(into, f, pos, len, value, text)
    local item = { f = f, pos = pos, len = len, value = value, gen = true, text = text }
    into[#into + 1] = item
    return item
end

local function render(tree, tvb, items)
    for _, it in ipairs(items) do
        local range = tvb(it.pos, it.len)
        local ti
        if it.value ~= nil then
            ti = tree:add(it.f, range, it.value)
        else
            ti = tree:add(it.f, range)
        end
        if it.gen then
            ti:set_generated()
        end
        if it.text then
            ti:append_text(it.text)
        end
        if it.label then
            ti:set_text(it.label)
        end
        if it.kids then
            render(ti, tvb, it.kids)
        end
    end
end

-- IPv6 address bytes (16) as text, the way sinew prints them: IPv4-mapped ones as IPv4.
local MAPPED_PREFIX = "00000000000000000000ffff"

local function is_mapped(tvb, pos)
    return tvb(pos, 12):bytes():tohex():lower() == MAPPED_PREFIX
end

-- Whether 16 address bytes name a host (neither :: nor ::ffff:0.0.0.0), as sinew requires.
local function is_host(tvb, pos)
    local hex = tvb(pos, 16):bytes():tohex():lower()
    return hex ~= string.rep("0", 32) and hex ~= MAPPED_PREFIX .. "00000000"
end

-- Adds an address (16 bytes) and port (2 bytes): an IPv4 item for a mapped address, else an
-- IPv6 one. Fails on an address sinew refuses (:: or port 0).
local function read_sockaddr(c, into, f_ip4, f_ip6, f_port)
    if not c:has(18) then
        return
    end
    local pos = c.pos
    if not is_host(c.tvb, pos) or c.tvb(pos + 16, 2):uint() == 0 then
        return c:fail("bad address")
    end
    if is_mapped(c.tvb, pos) then
        into[#into + 1] = { f = f_ip4, pos = pos + 12, len = 4 }
    else
        into[#into + 1] = { f = f_ip6, pos = pos, len = 16 }
    end
    c.pos = pos + 16
    c:u16(into, f_port)
end

-----------------------------------------------------------------------------------------------
-- Health checks and peer tables (UDP)
-----------------------------------------------------------------------------------------------

local health = Proto("sinew_health", "sinew health check")

local HEALTH_KINDS = {
    [1] = "health request",
    [2] = "health response",
    [3] = "peer-table request",
    [4] = "peer-table response",
}
local LIVES = { [0] = "Unhealthy", [1] = "AtRisk", [2] = "AtRisk", [3] = "Healthy" }
local HEALTH_MAX_LEN = 508
local ENTRY_LEN = 19
local TABLE_HEADER_LEN = 22
local MAX_ENTRIES = 25

local hf = {
    type = ProtoField.uint8("sinew_health.type", "Type", base.HEX),
    version = ProtoField.uint8("sinew_health.version", "Version", base.DEC, nil, 0xe0),
    kind = ProtoField.uint8("sinew_health.kind", "Kind", base.DEC, HEALTH_KINDS, 0x1f),
    nonce = ProtoField.bytes("sinew_health.nonce", "Nonce"),
    start = ProtoField.uint16("sinew_health.start", "Start"),
    padding = ProtoField.bytes("sinew_health.padding", "Padding"),
    padding_len = ProtoField.uint16("sinew_health.padding_len", "Padding length"),
    budget = ProtoField.uint16("sinew_health.entry_budget", "Entries the response may carry"),
    total = ProtoField.uint16("sinew_health.total", "Total"),
    count = ProtoField.uint8("sinew_health.count", "Count"),
    entry = ProtoField.none("sinew_health.entry", "Entry"),
    addr4 = ProtoField.ipv4("sinew_health.entry.addr4", "Address"),
    addr6 = ProtoField.ipv6("sinew_health.entry.addr6", "Address"),
    port = ProtoField.uint16("sinew_health.entry.port", "Port"),
    lives = ProtoField.uint8("sinew_health.entry.lives", "Lives", base.DEC, LIVES),
}
health.fields = { hf.type, hf.version, hf.kind, hf.nonce, hf.start, hf.padding, hf.padding_len,
    hf.budget, hf.total, hf.count, hf.entry, hf.addr4, hf.addr6, hf.port, hf.lives }

local ef_health_malformed = ProtoExpert.new("sinew_health.malformed", "Malformed sinew health datagram",
    expert.group.MALFORMED, expert.severity.ERROR)
health.experts = { ef_health_malformed }

health.prefs.udp_ports = Pref.range("UDP ports", "", "UDP ports always decoded as sinew health checks", 65535)
health.prefs.heuristic = Pref.bool("Heuristic on UDP", true,
    "Try every UDP datagram: claim those that parse exactly as a health message")

-- Parses a health datagram; returns items, kind name, or nil and an error.
local function parse_health(tvb)
    local len = tvb:len()
    if len > HEALTH_MAX_LEN then
        return nil, "too large"
    end
    local c = cursor(tvb, 0, len)
    local items = {}
    local type_byte = c:u8(items, hf.type)
    if not type_byte then
        return nil, c.err
    end
    local version, kind = bit.rshift(type_byte, 5), bit.band(type_byte, 0x1f)
    if version ~= 0 then
        return nil, "unsupported version " .. version
    end
    if not HEALTH_KINDS[kind] then
        return nil, "unknown type"
    end
    items[1].kids = { { f = hf.version, pos = 0, len = 1 }, { f = hf.kind, pos = 0, len = 1 } }
    c:raw(items, hf.nonce, 16)
    if kind == 1 or kind == 2 then
        if len > 17 then
            return nil, "trailing bytes"
        end
    elseif kind == 3 then
        c:u16(items, hf.start)
        local pad = len - 19
        if pad < 3 then
            return nil, "truncated"
        end
        for i = 19, len - 1 do
            if tvb(i, 1):uint() ~= 0 then
                return nil, "non-zero padding"
            end
        end
        local padding = c:raw(items, hf.padding, pad)
        generated(items, hf.padding_len, 19, pad, pad)
        generated(items, hf.budget, 19, pad, math.floor((len - TABLE_HEADER_LEN) / ENTRY_LEN))
    else
        local start = c:u16(items, hf.start)
        local total = c:u16(items, hf.total)
        local count = c:u8(items, hf.count)
        if c.err then
            return nil, c.err
        end
        if count > MAX_ENTRIES then
            return nil, "too large"
        end
        local want = TABLE_HEADER_LEN + ENTRY_LEN * count
        if len < want then
            return nil, "truncated"
        elseif len > want then
            return nil, "trailing bytes"
        end
        if start + count > total then
            return nil, "bad length"
        end
        for i = 0, count - 1 do
            c:subtree(items, hf.entry, function(kids, item)
                item.text = " " .. i
                read_sockaddr(c, kids, hf.addr4, hf.addr6, hf.port)
                local lives = c:u8(kids, hf.lives)
                if lives and lives > 3 then
                    c:fail("bad status")
                end
            end)
        end
    end
    if c.err then
        return nil, c.err
    end
    return items, HEALTH_KINDS[kind]
end

local function show_health(tvb, pinfo, tree, items, kind)
    pinfo.cols.protocol = "sinew health"
    pinfo.cols.info = kind
    local t = tree:add(health, tvb())
    render(t, tvb, items)
    return tvb:len()
end

function health.dissector(tvb, pinfo, tree)
    local items, what = parse_health(tvb)
    if not items then
        pinfo.cols.protocol = "sinew health"
        pinfo.cols.info = "malformed: " .. what
        local t = tree:add(health, tvb())
        t:add_proto_expert_info(ef_health_malformed, "Malformed: " .. what)
        return tvb:len()
    end
    return show_health(tvb, pinfo, tree, items, what)
end

local function health_heuristic(tvb, pinfo, tree)
    if not health.prefs.heuristic then
        return false
    end
    local items, what = parse_health(tvb)
    if not items then
        return false
    end
    show_health(tvb, pinfo, tree, items, what)
    return true
end

-----------------------------------------------------------------------------------------------
-- DHT messages (UDP datagrams, TCP frames)
-----------------------------------------------------------------------------------------------

local dht = Proto("sinew_dht", "sinew DHT")

local DHT_KINDS = {
    [1] = "Get", [2] = "Value", [3] = "Put", [4] = "PutAck", [5] = "Lock", [6] = "Locked",
    [7] = "LockDenied", [8] = "Unlock", [9] = "Unlocked", [10] = "InitConnect",
    [11] = "RequestInsertion", [12] = "Join", [13] = "Leave", [14] = "Replicate", [15] = "Error",
    [16] = "Challenge", [17] = "Echo", [18] = "RouteRequest", [19] = "Route", [20] = "Relayed",
    [21] = "ViewRequest", [22] = "View", [23] = "Withheld",
}
-- The requests a Relayed (kind 20) may carry.
local DHT_RELAYABLE = { [1] = true, [3] = true, [5] = true, [8] = true }
-- Each kind has one version (bits 7..5 of the type byte): 1 for the lock kinds 5..9, else 0.
local function dht_kind_version(kind)
    if kind >= 5 and kind <= 9 then
        return 1
    end
    return 0
end
local DHT_ERRORS = {
    [1] = "NotOwner", [2] = "NotHolder", [3] = "JoinSelf", [4] = "Malformed", [5] = "Full",
    [6] = "Unsupported", [7] = "Expired",
}
local DHT_SIDES = { [0] = "Left", [1] = "Right" }
local DHT_HEADER_LEN = 43
local DHT_MAX_NODES = 32
local DHT_VIEW_SIDE = 6
-- The longest message: a Relayed put (budget, origin, inner type byte) of the longest key and value.
local DHT_MAX_MESSAGE_LEN = DHT_HEADER_LEN + 2 + 34 + 1 + 1 + 255 + 2 + 65535

local df = {
    len = ProtoField.uint32("sinew_dht.frame_len", "Frame length"),
    type = ProtoField.uint8("sinew_dht.type", "Type", base.HEX),
    version = ProtoField.uint8("sinew_dht.version", "Version", base.DEC, nil, 0xe0),
    kind = ProtoField.uint8("sinew_dht.kind", "Kind", base.DEC, DHT_KINDS, 0x1f),
    message_id = ProtoField.uint64("sinew_dht.message_id", "Message id", base.HEX),
    sender = ProtoField.none("sinew_dht.sender", "Sender"),
    node = ProtoField.none("sinew_dht.node", "Node"),
    id = ProtoField.bytes("sinew_dht.id", "Id"),
    addr4 = ProtoField.ipv4("sinew_dht.addr4", "Address"),
    addr6 = ProtoField.ipv6("sinew_dht.addr6", "Address"),
    port = ProtoField.uint16("sinew_dht.port", "Port"),
    key_len = ProtoField.uint8("sinew_dht.key_len", "Key length"),
    key = ProtoField.bytes("sinew_dht.key", "Key"),
    present = ProtoField.uint8("sinew_dht.present", "Value present", base.DEC, { [0] = "no", [1] = "yes" }),
    value_len = ProtoField.uint16("sinew_dht.value_len", "Value length"),
    value = ProtoField.bytes("sinew_dht.value", "Value"),
    token = ProtoField.bytes("sinew_dht.token", "Lock token"),
    lease = ProtoField.uint32("sinew_dht.lease_ms", "Lease (ms)"),
    remaining = ProtoField.uint32("sinew_dht.remaining_ms", "Remaining lease (ms)"),
    joining = ProtoField.none("sinew_dht.joining", "Joining node"),
    side = ProtoField.uint8("sinew_dht.side", "Side", base.DEC, DHT_SIDES),
    node_count = ProtoField.uint8("sinew_dht.node_count", "Nodes"),
    error = ProtoField.uint16("sinew_dht.error", "Error", base.DEC, DHT_ERRORS),
    row = ProtoField.uint8("sinew_dht.row", "Routing row"),
    columns = ProtoField.uint16("sinew_dht.columns", "Columns asked", base.HEX),
    left_count = ProtoField.uint8("sinew_dht.left_count", "Left side nodes"),
    right_count = ProtoField.uint8("sinew_dht.right_count", "Right side nodes"),
    budget = ProtoField.uint16("sinew_dht.budget_ms", "Budget left (ms)"),
    origin = ProtoField.none("sinew_dht.origin", "Accountable origin"),
    request_type = ProtoField.uint8("sinew_dht.request_type", "Relayed request type", base.HEX),
    request_version = ProtoField.uint8("sinew_dht.request_version", "Version", base.DEC, nil, 0xe0),
    request_kind = ProtoField.uint8("sinew_dht.request_kind", "Kind", base.DEC, DHT_KINDS, 0x1f),
    cookie = ProtoField.uint64("sinew_dht.cookie", "Cookie (the Echo's message id)", base.HEX),
}
dht.fields = { df.len, df.type, df.version, df.kind, df.message_id, df.sender, df.node, df.id,
    df.addr4, df.addr6, df.port, df.key_len, df.key, df.present, df.value_len, df.value,
    df.token, df.lease, df.remaining, df.joining, df.side, df.node_count, df.error, df.row,
    df.columns, df.left_count, df.right_count, df.budget, df.origin, df.request_type,
    df.request_version, df.request_kind, df.cookie }

local ef_dht_malformed = ProtoExpert.new("sinew_dht.malformed", "Malformed sinew DHT message",
    expert.group.MALFORMED, expert.severity.ERROR)
dht.experts = { ef_dht_malformed }

dht.prefs.udp_ports = Pref.range("UDP ports", "", "UDP ports always decoded as sinew DHT", 65535)
dht.prefs.tcp_ports = Pref.range("TCP ports", "", "TCP ports decoded as sinew DHT frames", 65535)
dht.prefs.heuristic = Pref.bool("Heuristic on UDP", true,
    "Try every UDP datagram: claim those that parse exactly as a DHT message")

-- A node: 16-byte id, address, port.
local function dht_node(c, into, f)
    c:subtree(into, f, function(kids)
        c:raw(kids, df.id, 16)
        read_sockaddr(c, kids, df.addr4, df.addr6, df.port)
    end)
end

local function dht_key(c, into)
    local n = c:u8(into, df.key_len)
    if n then
        c:raw(into, df.key, n)
    end
end

local function dht_value(c, into)
    local n = c:u16(into, df.value_len)
    if n then
        c:raw(into, df.value, n)
    end
end

-- A node list: its count (in `count_field`, df.node_count unless given) and at most `max`
-- (DHT_MAX_NODES unless given) nodes.
local function dht_nodes(c, into, count_field, max)
    local n = c:u8(into, count_field or df.node_count)
    if not n then
        return
    end
    if n > (max or DHT_MAX_NODES) then
        return c:fail("too many nodes")
    end
    for _ = 1, n do
        dht_node(c, into, df.node)
    end
end

local dht_body

-- Parses one DHT message filling tvb(pos, len); returns items and kind name, or nil and an error.
local function parse_dht(tvb, pos, len)
    if len > DHT_MAX_MESSAGE_LEN then
        return nil, "too large"
    end
    if len < DHT_HEADER_LEN then
        return nil, "truncated"
    end
    local c = cursor(tvb, pos, pos + len)
    local items = {}
    local type_byte, type_item = c:u8(items, df.type)
    local version, kind = bit.rshift(type_byte, 5), bit.band(type_byte, 0x1f)
    if not DHT_KINDS[kind] then
        return nil, "unknown type"
    end
    if version ~= dht_kind_version(kind) then
        return nil, "unsupported version " .. version
    end
    type_item.kids = { { f = df.version, pos = pos, len = 1 }, { f = df.kind, pos = pos, len = 1 } }
    c:fixed(items, df.message_id, 8)
    dht_node(c, items, df.sender)
    dht_body(c, items, kind)
    if not c.err and c:left() > 0 then
        c:fail("trailing bytes")
    end
    if c.err then
        return nil, c.err
    end
    return items, DHT_KINDS[kind]
end

-- The body of a message of `kind` (also the request inside a Relayed).
function dht_body(c, items, kind)
    if kind == 1 or kind == 4 or kind == 9 then
        dht_key(c, items)
    elseif kind == 2 then
        dht_key(c, items)
        local present = c:u8(items, df.present)
        if present == 1 then
            dht_value(c, items)
        elseif present and present ~= 0 then
            c:fail("bad value")
        end
    elseif kind == 3 or kind == 14 then
        dht_key(c, items)
        dht_value(c, items)
    elseif kind == 5 or kind == 6 then
        dht_key(c, items)
        c:raw(items, df.token, 16)
        c:u32(items, df.lease)
    elseif kind == 7 then
        dht_key(c, items)
        c:u32(items, df.remaining)
    elseif kind == 8 then
        dht_key(c, items)
        c:raw(items, df.token, 16)
    elseif kind == 11 then
        dht_node(c, items, df.joining)
    elseif kind == 12 then
        local side = c:u8(items, df.side)
        if side and side > 1 then
            c:fail("bad value")
        end
        dht_nodes(c, items)
    elseif kind == 13 then
        dht_nodes(c, items)
    elseif kind == 15 then
        c:u16(items, df.error)
    elseif kind == 18 then
        c:u8(items, df.row)
        c:u16(items, df.columns)
    elseif kind == 19 then
        c:u8(items, df.row)
        dht_nodes(c, items)
    elseif kind == 23 then
        -- A Withheld: the header names the withheld request; the body is the cookie.
        c:fixed(items, df.cookie, 8)
    elseif kind == 22 then
        -- A View: the left side, then the right side, at most DHT_VIEW_SIDE nodes each.
        dht_nodes(c, items, df.left_count, DHT_VIEW_SIDE)
        if not c.err then
            dht_nodes(c, items, df.right_count, DHT_VIEW_SIDE)
        end
    elseif kind == 20 then
        c:u16(items, df.budget)
        dht_node(c, items, df.origin)
        local at = c.pos
        local inner, inner_item = c:u8(items, df.request_type)
        if not inner then
            return
        end
        local inner_version, inner_kind = bit.rshift(inner, 5), bit.band(inner, 0x1f)
        if not DHT_RELAYABLE[inner_kind] then
            return c:fail("bad value")
        end
        if inner_version ~= dht_kind_version(inner_kind) then
            return c:fail("unsupported version " .. inner_version)
        end
        inner_item.kids = { { f = df.request_version, pos = at, len = 1 },
            { f = df.request_kind, pos = at, len = 1 } }
        dht_body(c, items, inner_kind)
    end
end

local function show_dht(tvb, pinfo, tree, pos, len, prefix_items)
    local items, what = parse_dht(tvb, pos, len)
    local t = tree:add(dht, tvb(pos - (prefix_items and 4 or 0), len + (prefix_items and 4 or 0)))
    if prefix_items then
        render(t, tvb, prefix_items)
    end
    if not items then
        t:add_proto_expert_info(ef_dht_malformed, "Malformed: " .. what)
        pinfo.cols.info:append(" [malformed]")
        return
    end
    render(t, tvb, items)
    pinfo.cols.info:append(" " .. what)
end

function dht.dissector(tvb, pinfo, tree)
    pinfo.cols.protocol = "sinew DHT"
    pinfo.cols.info = "DHT"
    show_dht(tvb, pinfo, tree, 0, tvb:len())
    return tvb:len()
end

local function dht_heuristic(tvb, pinfo, tree)
    if not dht.prefs.heuristic then
        return false
    end
    if not parse_dht(tvb, 0, tvb:len()) then
        return false
    end
    dht.dissector(tvb, pinfo, tree)
    return true
end

-- TCP: frames of a 4-byte big-endian length and a message, reassembled by Wireshark.
local dht_tcp = Proto("sinew_dht_tcp", "sinew DHT over TCP")

local function dht_frame_len(tvb, pinfo, offset)
    local n = tvb(offset, 4):uint()
    if n > DHT_MAX_MESSAGE_LEN then
        -- Not a frame sinew would read: show what is left as one malformed frame.
        return tvb:len() - offset
    end
    return n + 4
end

local function dht_frame(tvb, pinfo, tree)
    local n = tvb(0, 4):uint()
    local prefix = { { f = df.len, pos = 0, len = 4 } }
    if n + 4 ~= tvb:len() then
        local t = tree:add(dht, tvb())
        render(t, tvb, prefix)
        t:add_proto_expert_info(ef_dht_malformed, "Malformed: frame length " .. n)
        return tvb:len()
    end
    show_dht(tvb, pinfo, tree, 4, n, prefix)
    return tvb:len()
end

function dht_tcp.dissector(tvb, pinfo, tree)
    pinfo.cols.protocol = "sinew DHT"
    pinfo.cols.info = "DHT/TCP"
    dissect_tcp_pdus(tvb, tree, 4, dht_frame_len, dht_frame, true)
    return tvb:len()
end

-----------------------------------------------------------------------------------------------
-- Sealed datagrams (keyring): the 14-byte header and the tag; the ciphertext is not opened
-----------------------------------------------------------------------------------------------

local sealed = Proto("sinew_sealed", "sinew sealed datagram")

local SEALED_TYPE = 0xe0 -- version 7, kind 0 = AES-256-GCM
local SEALED_HEADER_LEN = 14
local SEALED_TAG_LEN = 16
local SEALED_MIN_LEN = SEALED_HEADER_LEN + SEALED_TAG_LEN
local SEALED_MAX_LEN = 508

local sf = {
    type = ProtoField.uint8("sinew_sealed.type", "Type", base.HEX),
    version = ProtoField.uint8("sinew_sealed.version", "Version", base.DEC, nil, 0xe0),
    kind = ProtoField.uint8("sinew_sealed.kind", "Kind", base.DEC, { [0] = "AES-256-GCM" }, 0x1f),
    key_id = ProtoField.uint8("sinew_sealed.key_id", "Key id", base.HEX),
    sender = ProtoField.uint64("sinew_sealed.sender", "Sender", base.HEX),
    counter = ProtoField.uint32("sinew_sealed.counter", "Counter"),
    ciphertext = ProtoField.bytes("sinew_sealed.ciphertext", "Ciphertext"),
    inner_len = ProtoField.uint32("sinew_sealed.inner_len", "Inner datagram length"),
    tag = ProtoField.bytes("sinew_sealed.tag", "Tag"),
}
sealed.fields = { sf.type, sf.version, sf.kind, sf.key_id, sf.sender, sf.counter, sf.ciphertext,
    sf.inner_len, sf.tag }

sealed.prefs.udp_ports = Pref.range("UDP ports", "", "UDP ports always decoded as sinew sealed datagrams", 65535)
sealed.prefs.heuristic = Pref.bool("Heuristic on UDP", false,
    "Try every UDP datagram: claim those of 30..508 bytes starting with 0xE0 (a weak signature: " ..
    "one random datagram in 256 has it)")

-- Parses a sealed datagram's header and tag; returns items, or nil and an error.
local function parse_sealed(tvb)
    local len = tvb:len()
    if len < SEALED_MIN_LEN then
        return nil, "truncated"
    end
    if len > SEALED_MAX_LEN then
        return nil, "too large"
    end
    local c = cursor(tvb, 0, len)
    local items = {}
    local type_byte, type_item = c:u8(items, sf.type)
    if type_byte ~= SEALED_TYPE then
        return nil, "unknown type"
    end
    type_item.kids = { { f = sf.version, pos = 0, len = 1 }, { f = sf.kind, pos = 0, len = 1 } }
    c:u8(items, sf.key_id)
    c:fixed(items, sf.sender, 8)
    c:u32(items, sf.counter)
    local n = len - SEALED_MIN_LEN
    if n > 0 then
        c:raw(items, sf.ciphertext, n)
    end
    generated(items, sf.inner_len, SEALED_HEADER_LEN, n, n)
    c:raw(items, sf.tag, SEALED_TAG_LEN)
    if c.err then
        return nil, c.err
    end
    return items
end

function sealed.dissector(tvb, pinfo, tree)
    local items, err = parse_sealed(tvb)
    if not items then
        return 0
    end
    pinfo.cols.protocol = "sinew sealed"
    pinfo.cols.info = string.format("Sealed, key id 0x%02x, counter %d, %d bytes inside",
        tvb(1, 1):uint(), tvb(10, 4):uint(), tvb:len() - SEALED_MIN_LEN)
    render(tree:add(sealed, tvb()), tvb, items)
    return tvb:len()
end

local function sealed_heuristic(tvb, pinfo, tree)
    if not sealed.prefs.heuristic or not parse_sealed(tvb) then
        return false
    end
    sealed.dissector(tvb, pinfo, tree)
    return true
end

-----------------------------------------------------------------------------------------------
-- ZooKeeper jute client protocol (TCP)
-----------------------------------------------------------------------------------------------

local zk = Proto("sinew_zk", "ZooKeeper client protocol (sinew)")

local ZK_MAX_LEN = 0xfffff

local ZK_OPS = {
    [0] = "notification", [1] = "create", [2] = "delete", [3] = "exists", [4] = "getData",
    [5] = "setData", [6] = "getACL", [7] = "setACL", [8] = "getChildren", [9] = "sync",
    [11] = "ping", [12] = "getChildren2", [13] = "check", [14] = "multi", [15] = "create2",
    [16] = "reconfig", [17] = "checkWatches", [18] = "removeWatches", [19] = "createContainer",
    [20] = "deleteContainer", [21] = "createTTL", [22] = "multiRead", [100] = "auth",
    [101] = "setWatches", [102] = "sasl", [103] = "getEphemerals", [104] = "getAllChildrenNumber",
    [105] = "setWatches2", [106] = "addWatch", [107] = "whoAmI", [-10] = "createSession",
    [-11] = "closeSession", [-1] = "error",
}
local ZK_ERRORS = {
    [0] = "Ok", [-1] = "SystemError", [-2] = "RuntimeInconsistency", [-3] = "DataInconsistency",
    [-4] = "ConnectionLoss", [-5] = "MarshallingError", [-6] = "Unimplemented",
    [-7] = "OperationTimeout", [-8] = "BadArguments", [-12] = "UnknownSession",
    [-13] = "NewConfigNoQuorum", [-14] = "ReconfigInProgress", [-100] = "APIError",
    [-101] = "NoNode", [-102] = "NoAuth", [-103] = "BadVersion", [-108] = "NoChildrenForEphemerals",
    [-110] = "NodeExists", [-111] = "NotEmpty", [-112] = "SessionExpired",
    [-113] = "InvalidCallback", [-114] = "InvalidACL", [-115] = "AuthFailed",
    [-118] = "SessionMoved", [-119] = "NotReadOnly", [-120] = "EphemeralOnLocalSession",
    [-121] = "NoWatcher", [-122] = "RequestTimeout", [-123] = "ReconfigDisabled",
    [-124] = "SessionClosedRequireSaslAuth", [-125] = "QuotaExceeded", [-127] = "ThrottledOp",
}
local ZK_EVENTS = {
    [-1] = "None", [1] = "NodeCreated", [2] = "NodeDeleted", [3] = "NodeDataChanged",
    [4] = "NodeChildrenChanged", [5] = "DataWatchRemoved", [6] = "ChildWatchRemoved",
    [7] = "PersistentWatchRemoved",
}
local ZK_STATES = {
    [0] = "Disconnected", [1] = "NoSyncConnected", [3] = "SyncConnected", [4] = "AuthFailed",
    [5] = "ConnectedReadOnly", [6] = "SaslAuthenticated", [-112] = "Expired", [7] = "Closed",
}
local ZK_CREATE_MODES = {
    [0] = "persistent", [1] = "ephemeral", [2] = "persistent sequential",
    [3] = "ephemeral sequential", [4] = "container", [5] = "persistent with TTL",
    [6] = "persistent sequential with TTL",
}
local ZK_WATCHER_TYPES = {
    [1] = "children", [2] = "data", [3] = "any", [4] = "persistent", [5] = "persistent recursive",
}
local ZK_ADD_WATCH_MODES = { [0] = "persistent", [1] = "persistent recursive" }
local ZK_SPECIAL_XIDS = { [-1] = "notification", [-2] = "ping", [-4] = "auth", [-8] = "setWatches" }

-- Names of the string and bytes fields, for the label of a null one.
local zk_names = {}
local function zstr(abbr, name)
    local f = ProtoField.string("sinew_zk." .. abbr, name, base.UNICODE)
    zk_names[f] = name
    return f
end
local function zint(abbr, name, vs) return ProtoField.int32("sinew_zk." .. abbr, name, base.DEC, vs) end
local function zlong(abbr, name) return ProtoField.int64("sinew_zk." .. abbr, name) end
local function zbuf(abbr, name)
    local f = ProtoField.bytes("sinew_zk." .. abbr, name)
    zk_names[f] = name
    return f
end
local function znone(abbr, name) return ProtoField.none("sinew_zk." .. abbr, name) end

local zf = {
    len = ProtoField.uint32("sinew_zk.len", "Frame length"),
    null = ProtoField.bool("sinew_zk.null", "Null"),
    -- handshake
    connect_request = znone("connect_request", "ConnectRequest"),
    connect_response = znone("connect_response", "ConnectResponse"),
    protocol_version = zint("protocol_version", "Protocol version"),
    last_zxid_seen = zlong("last_zxid_seen", "Last zxid seen"),
    timeout = zint("timeout", "Timeout (ms)"),
    session_id = ProtoField.uint64("sinew_zk.session_id", "Session id", base.HEX),
    passwd = zbuf("passwd", "Password"),
    read_only = ProtoField.bool("sinew_zk.read_only", "Read-only"),
    -- headers
    xid = zint("xid", "Xid"),
    op = zint("op", "Op", ZK_OPS),
    zxid = zlong("zxid", "Zxid"),
    err = zint("err", "Error", ZK_ERRORS),
    reply_to = zint("reply_to", "Reply to", ZK_OPS),
    request_in = ProtoField.framenum("sinew_zk.request_in", "Request in", base.NONE, frametype.REQUEST),
    response_in = ProtoField.framenum("sinew_zk.response_in", "Response in", base.NONE, frametype.RESPONSE),
    -- records
    path = zstr("path", "Path"),
    data = zbuf("data", "Data"),
    acl = zint("acl", "ACL entries"),
    acl_entry = znone("acl_entry", "ACL"),
    perms = ProtoField.uint32("sinew_zk.perms", "Permissions", base.HEX),
    scheme = zstr("scheme", "Scheme"),
    id = zstr("id", "Id"),
    flags = zint("flags", "Flags", ZK_CREATE_MODES),
    ttl = zlong("ttl", "TTL (ms)"),
    version = zint("version", "Version"),
    watch = ProtoField.bool("sinew_zk.watch", "Watch"),
    joining_servers = zstr("joining_servers", "Joining servers"),
    leaving_servers = zstr("leaving_servers", "Leaving servers"),
    new_members = zstr("new_members", "New members"),
    cur_config_id = zlong("cur_config_id", "Current config id"),
    watcher_type = zint("watcher_type", "Watcher type", ZK_WATCHER_TYPES),
    auth_type = zint("auth_type", "Auth type"),
    auth = zbuf("auth", "Auth"),
    relative_zxid = zlong("relative_zxid", "Relative zxid"),
    data_watches = zint("data_watches", "Data watches"),
    exist_watches = zint("exist_watches", "Exist watches"),
    child_watches = zint("child_watches", "Child watches"),
    persistent_watches = zint("persistent_watches", "Persistent watches"),
    persistent_recursive_watches = zint("persistent_recursive_watches", "Persistent recursive watches"),
    watch_path = zstr("watch_path", "Watched path"),
    token = zbuf("token", "Token"),
    add_watch_mode = zint("add_watch_mode", "Mode", ZK_ADD_WATCH_MODES),
    event_type = zint("event_type", "Event type", ZK_EVENTS),
    state = zint("state", "State", ZK_STATES),
    stat = znone("stat", "Stat"),
    czxid = zlong("stat.czxid", "czxid"),
    mzxid = zlong("stat.mzxid", "mzxid"),
    ctime = zlong("stat.ctime", "ctime"),
    mtime = zlong("stat.mtime", "mtime"),
    stat_version = zint("stat.version", "version"),
    cversion = zint("stat.cversion", "cversion"),
    aversion = zint("stat.aversion", "aversion"),
    ephemeral_owner = ProtoField.uint64("sinew_zk.stat.ephemeral_owner", "ephemeralOwner", base.HEX),
    data_length = zint("stat.data_length", "dataLength"),
    num_children = zint("stat.num_children", "numChildren"),
    pzxid = zlong("stat.pzxid", "pzxid"),
    children = zint("children", "Children"),
    child = zstr("child", "Child"),
    multi_count = ProtoField.uint32("sinew_zk.multi.count", "Operations"),
    multi_op = znone("multi.op", "Operation"),
    multi_type = zint("multi.type", "Type", ZK_OPS),
    multi_done = ProtoField.bool("sinew_zk.multi.done", "Done"),
    multi_err = zint("multi.err", "Error", ZK_ERRORS),
    multi_end = znone("multi.end", "End of operations"),
    result_err = zint("multi.result_err", "Result error", ZK_ERRORS),
    total_number = zint("total_number", "Total number"),
    status = zint("status", "Status", ZK_ERRORS),
    client_info = zint("client_info", "Client infos"),
    client_entry = znone("client_info.entry", "ClientInfo"),
    auth_scheme = zstr("client_info.auth_scheme", "Auth scheme"),
    user = zstr("client_info.user", "User"),
    body = zbuf("body", "Body"),
}
do
    local list = {}
    for _, f in pairs(zf) do
        list[#list + 1] = f
    end
    zk.fields = list
end

local ef_zk_malformed = ProtoExpert.new("sinew_zk.malformed", "Malformed ZooKeeper frame",
    expert.group.MALFORMED, expert.severity.ERROR)
local ef_zk_error = ProtoExpert.new("sinew_zk.error_reply", "ZooKeeper error reply",
    expert.group.RESPONSE_CODE, expert.severity.NOTE)
local ef_zk_unmatched = ProtoExpert.new("sinew_zk.unmatched", "Reply to a request not in the capture",
    expert.group.SEQUENCE, expert.severity.WARN)
zk.experts = { ef_zk_malformed, ef_zk_error, ef_zk_unmatched }

zk.prefs.tcp_ports = Pref.range("TCP ports", "2181", "TCP ports of ZooKeeper servers", 65535)

-- jute primitives. A length of -1 is null; any other negative one, one above the maximum or
-- one beyond the bytes present is an error.
function Cursor:jute_len()
    local n = self:i32(nil)
    if not n then
        return nil
    end
    if n < -1 then
        return self:fail("bad length")
    end
    if n > ZK_MAX_LEN then
        return self:fail("too large")
    end
    return n
end

-- A ustring (`text` true) or buffer: one item over its bytes, or a null item over its length.
function Cursor:jute_bytes(into, f, text)
    local start = self.pos
    local n = self:jute_len()
    if not n then
        return nil
    end
    if n == -1 then
        -- A zero-length item (a bytes item cannot be given a value over the 4 length bytes).
        local item = { f = f, pos = start, len = 0, value = text and "" or nil,
            label = (zk_names[f] or "Value") .. ": null",
            kids = { { f = zf.null, pos = start, len = 4, value = true, gen = true } } }
        into[#into + 1] = item
        return nil
    end
    if not self:has(n) then
        return nil
    end
    local item = { f = f, pos = self.pos, len = n }
    if text then
        item.value = self.tvb(self.pos, n):string(ENC_UTF_8)
    end
    into[#into + 1] = item
    self.pos = self.pos + n
    return item
end

function Cursor:ustring(into, f) return self:jute_bytes(into, f, true) end
function Cursor:buffer(into, f) return self:jute_bytes(into, f, false) end
function Cursor:bool(into, f) return self:fixed(into, f, 1, "uint") end

-- A vector: an i32 count item (-1: null), then `count` elements read by `element` (each at
-- least `min` bytes).
function Cursor:vector(into, f, min, element)
    local start = self.pos
    local n = self:jute_len()
    if not n then
        return
    end
    local item = { f = f, pos = start, len = 4, kids = {} }
    into[#into + 1] = item
    if n == -1 then
        item.text = " (null)"
        item.kids[1] = { f = zf.null, pos = start, len = 4, value = true, gen = true }
        return
    end
    if n * min > self:left() then
        return self:fail("truncated")
    end
    for _ = 1, n do
        element(item.kids)
        if self.err then
            return
        end
    end
end

-- Milliseconds since the epoch as an RFC 3339 UTC time.
local function utc(ms)
    local secs = math.floor(ms / 1000)
    local ok, text = pcall(os.date, "!%Y-%m-%dT%H:%M:%S", secs)
    if not ok or not text then
        return "?"
    end
    return string.format("%s.%03dZ", text, ms - secs * 1000)
end

local function read_stat(c, into)
    c:subtree(into, zf.stat, function(kids)
        c:i64(kids, zf.czxid)
        c:i64(kids, zf.mzxid)
        for _, f in ipairs({ zf.ctime, zf.mtime }) do
            local ms, item = c:i64(kids, f)
            if ms then
                item.text = " (" .. utc(ms:tonumber()) .. ")"
            end
        end
        c:i32(kids, zf.stat_version)
        c:i32(kids, zf.cversion)
        c:i32(kids, zf.aversion)
        c:i64(kids, zf.ephemeral_owner)
        c:i32(kids, zf.data_length)
        c:i32(kids, zf.num_children)
        c:i64(kids, zf.pzxid)
    end)
end

local function read_acl(c, into)
    c:vector(into, zf.acl, 12, function(kids)
        c:subtree(kids, zf.acl_entry, function(e)
            c:u32(e, zf.perms)
            c:ustring(e, zf.scheme)
            c:ustring(e, zf.id)
        end)
    end)
end

local function read_paths(c, into, f, element_field)
    c:vector(into, f, 4, function(kids)
        c:ustring(kids, element_field or zf.watch_path)
    end)
end

local function read_create(c, into)
    c:ustring(into, zf.path)
    c:buffer(into, zf.data)
    read_acl(c, into)
    c:i32(into, zf.flags)
end

local function read_path_watch(c, into)
    c:ustring(into, zf.path)
    c:bool(into, zf.watch)
end

local function read_path_version(c, into)
    c:ustring(into, zf.path)
    c:i32(into, zf.version)
end

local REQUEST_BODY = {}
REQUEST_BODY[1] = read_create
REQUEST_BODY[15] = read_create
REQUEST_BODY[19] = read_create
REQUEST_BODY[21] = function(c, into)
    read_create(c, into)
    c:i64(into, zf.ttl)
end
REQUEST_BODY[2] = read_path_version
REQUEST_BODY[13] = read_path_version
REQUEST_BODY[3] = read_path_watch
REQUEST_BODY[4] = read_path_watch
REQUEST_BODY[8] = read_path_watch
REQUEST_BODY[12] = read_path_watch
REQUEST_BODY[5] = function(c, into)
    c:ustring(into, zf.path)
    c:buffer(into, zf.data)
    c:i32(into, zf.version)
end
local function read_path(c, into) c:ustring(into, zf.path) end
REQUEST_BODY[6] = read_path
REQUEST_BODY[9] = read_path
REQUEST_BODY[20] = read_path
REQUEST_BODY[103] = read_path
REQUEST_BODY[104] = read_path
REQUEST_BODY[7] = function(c, into)
    c:ustring(into, zf.path)
    read_acl(c, into)
    c:i32(into, zf.version)
end
local function no_body() end
REQUEST_BODY[11] = no_body
REQUEST_BODY[107] = no_body
REQUEST_BODY[-11] = no_body
REQUEST_BODY[16] = function(c, into)
    c:ustring(into, zf.joining_servers)
    c:ustring(into, zf.leaving_servers)
    c:ustring(into, zf.new_members)
    c:i64(into, zf.cur_config_id)
end
local function read_watches(c, into)
    c:ustring(into, zf.path)
    c:i32(into, zf.watcher_type)
end
REQUEST_BODY[17] = read_watches
REQUEST_BODY[18] = read_watches
REQUEST_BODY[100] = function(c, into)
    c:i32(into, zf.auth_type)
    c:ustring(into, zf.scheme)
    c:buffer(into, zf.auth)
end
local function read_set_watches(c, into, two)
    c:i64(into, zf.relative_zxid)
    read_paths(c, into, zf.data_watches)
    read_paths(c, into, zf.exist_watches)
    read_paths(c, into, zf.child_watches)
    if two then
        read_paths(c, into, zf.persistent_watches)
        read_paths(c, into, zf.persistent_recursive_watches)
    end
end
REQUEST_BODY[101] = function(c, into) read_set_watches(c, into, false) end
REQUEST_BODY[105] = function(c, into) read_set_watches(c, into, true) end
REQUEST_BODY[102] = function(c, into) c:buffer(into, zf.token) end
REQUEST_BODY[106] = function(c, into)
    c:ustring(into, zf.path)
    c:i32(into, zf.add_watch_mode)
end

local MULTI_WRITES = { [1] = true, [15] = true, [19] = true, [21] = true, [2] = true, [5] = true, [13] = true }
local MULTI_READS = { [8] = true, [4] = true }

-- The operations of a multi (op 14) or multiRead (22): a MultiHeader and a record each, ended
-- by a header with `done` set. `element(c, kids, type)` reads one operation's record.
local function read_multi(c, into, element)
    local count_item = generated(into, zf.multi_count, c.pos, 0, 0)
    local count = 0
    while not c.err do
        if not c:has(9) then
            return
        end
        local done = c.tvb(c.pos + 4, 1):uint() ~= 0
        local f = done and zf.multi_end or zf.multi_op
        c:subtree(into, f, function(kids, item)
            local type = c:i32(kids, zf.multi_type)
            c:bool(kids, zf.multi_done)
            c:i32(kids, zf.multi_err)
            if not done then
                item.text = " " .. count .. ": " .. (ZK_OPS[type] or ("Unknown(" .. type .. ")"))
                element(c, kids, type)
            end
        end)
        if done then
            break
        end
        count = count + 1
    end
    count_item.value = count
    count_item.len = c.pos - count_item.pos
end

REQUEST_BODY[14] = function(c, into)
    read_multi(c, into, function(c, kids, type)
        if not MULTI_WRITES[type] then
            return c:fail("unexpected op " .. type .. " in multi")
        end
        REQUEST_BODY[type](c, kids)
    end)
end
REQUEST_BODY[22] = function(c, into)
    read_multi(c, into, function(c, kids, type)
        if not MULTI_READS[type] then
            return c:fail("unexpected op " .. type .. " in multiRead")
        end
        REQUEST_BODY[type](c, kids)
    end)
end

local function read_data_stat(c, into)
    c:buffer(into, zf.data)
    read_stat(c, into)
end

local function read_path_stat(c, into)
    c:ustring(into, zf.path)
    read_stat(c, into)
end

local function read_children(c, into)
    read_paths(c, into, zf.children, zf.child)
end

local REPLY_BODY = {}
REPLY_BODY[4] = read_data_stat
REPLY_BODY[16] = read_data_stat
REPLY_BODY[1] = read_path
REPLY_BODY[9] = read_path
REPLY_BODY[15] = read_path_stat
REPLY_BODY[21] = read_path_stat
REPLY_BODY[19] = read_path_stat
REPLY_BODY[3] = read_stat
REPLY_BODY[5] = read_stat
REPLY_BODY[7] = read_stat
REPLY_BODY[13] = function(c, into)
    if c:left() > 0 then
        read_stat(c, into)
    end
end
REPLY_BODY[6] = function(c, into)
    read_acl(c, into)
    read_stat(c, into)
end
REPLY_BODY[8] = read_children
REPLY_BODY[103] = read_children
REPLY_BODY[12] = function(c, into)
    read_children(c, into)
    read_stat(c, into)
end
local MULTI_RESULT = {
    [1] = read_path,
    [15] = read_path_stat,
    [2] = no_body,
    [5] = read_stat,
    [13] = no_body,
    [8] = read_children,
    [4] = read_data_stat,
    [-1] = function(c, kids) c:i32(kids, zf.result_err) end,
}
local function read_multi_results(c, into)
    read_multi(c, into, function(c, kids, type)
        local read = MULTI_RESULT[type]
        if not read then
            return c:fail("unexpected result type " .. type)
        end
        read(c, kids)
    end)
end
REPLY_BODY[14] = read_multi_results
REPLY_BODY[22] = read_multi_results
REPLY_BODY[102] = function(c, into) c:buffer(into, zf.token) end
REPLY_BODY[104] = function(c, into) c:i32(into, zf.total_number) end
REPLY_BODY[106] = function(c, into) c:i32(into, zf.status) end
REPLY_BODY[107] = function(c, into)
    c:vector(into, zf.client_info, 8, function(kids)
        c:subtree(kids, zf.client_entry, function(e)
            c:ustring(e, zf.auth_scheme)
            c:ustring(e, zf.user)
        end)
    end)
end
for _, op in ipairs({ 2, 20, 11, 100, 101, 105, 17, 18, -11 }) do
    REPLY_BODY[op] = no_body
end

-- The rest of the frame as an opaque body (an op this dissector does not know).
local function read_other(c, into)
    if c:left() > 0 then
        c:raw(into, zf.body, c:left())
    else
        into[#into + 1] = { f = zf.body, pos = c.pos, len = 0 }
    end
end

local function parse_connect_request(tvb, pos, limit)
    local c = cursor(tvb, pos, limit)
    local items = {}
    c:subtree(items, zf.connect_request, function(kids)
        c:i32(kids, zf.protocol_version)
        c:i64(kids, zf.last_zxid_seen)
        c:i32(kids, zf.timeout)
        c:fixed(kids, zf.session_id, 8)
        c:buffer(kids, zf.passwd)
        if c:left() > 0 then
            c:bool(kids, zf.read_only)
        end
    end)
    if not c.err and c:left() > 0 then
        c:fail("trailing bytes")
    end
    return items, c.err
end

local function parse_connect_response(tvb, pos, limit)
    local c = cursor(tvb, pos, limit)
    local items = {}
    c:subtree(items, zf.connect_response, function(kids)
        c:i32(kids, zf.protocol_version)
        local timeout, item = c:i32(kids, zf.timeout)
        if timeout and timeout <= 0 then
            item.text = " (session expired)"
        end
        c:fixed(kids, zf.session_id, 8)
        c:buffer(kids, zf.passwd)
        if c:left() > 0 then
            c:bool(kids, zf.read_only)
        end
    end)
    if not c.err and c:left() > 0 then
        c:fail("trailing bytes")
    end
    return items, c.err
end

-- Returns items, the op, an error.
-- Reads the xid, naming the special ones.
local function read_xid(c, into)
    local xid, item = c:i32(into, zf.xid)
    if xid and ZK_SPECIAL_XIDS[xid] then
        item.text = " (" .. ZK_SPECIAL_XIDS[xid] .. ")"
    end
    return xid
end

local function parse_request(tvb, pos, limit)
    local c = cursor(tvb, pos, limit)
    local items = {}
    read_xid(c, items)
    local op = c:i32(items, zf.op)
    if c.err then
        return items, nil, c.err
    end
    local read = REQUEST_BODY[op] or read_other
    read(c, items)
    if not c.err and c:left() > 0 then
        c:fail("trailing bytes")
    end
    return items, op, c.err
end

-- `op` is the op of the request answered (nil: not known). Returns items, an error.
local function parse_reply(tvb, pos, limit, op)
    local c = cursor(tvb, pos, limit)
    local items = {}
    local xid = read_xid(c, items)
    c:i64(items, zf.zxid)
    local err = c:i32(items, zf.err)
    if c.err then
        return items, c.err
    end
    if xid == -1 then
        c:i32(items, zf.event_type)
        c:i32(items, zf.state)
        c:ustring(items, zf.path)
    elseif err ~= 0 then
        -- No body after an error; bytes some servers send along are ignored, as by clients.
        return items, nil
    elseif xid == -2 or xid == -4 or xid == -8 then
        -- No body.
    elseif op == nil then
        return items, nil
    else
        local read = REPLY_BODY[op] or read_other
        read(c, items)
        if op == 19 then
            return items, c.err
        end
    end
    if not c.err and c:left() > 0 then
        c:fail("trailing bytes")
    end
    return items, c.err
end

-- Conversation state, built on the first pass over the frames (in order) and kept per frame, so
-- that a later random-access pass shows the same thing.
local zk_streams = {}    -- tcp.stream -> { server_port, client_connect, server_seen, pending = {xid -> req} }
local zk_pdus = {}       -- "frame:index" -> { kind, op, request_in, stream }
local zk_responses = {}  -- "frame:index" of a request -> frame of its reply
local zk_pdu_index = 0
local zk_frame = -1

local tcp_stream_field = Field.new("tcp.stream")

function zk.init()
    zk_streams, zk_pdus, zk_responses = {}, {}, {}
    zk_frame = -1
end

local function zk_is_server_port(port)
    local ranges = tostring(zk.prefs.tcp_ports)
    for part in ranges:gmatch("[^,%s]+") do
        local lo, hi = part:match("^(%d+)-(%d+)$")
        if lo then
            if port >= tonumber(lo) and port <= tonumber(hi) then
                return true
            end
        elseif tonumber(part) == port then
            return true
        end
    end
    return false
end

local function zk_frame_len(tvb, pinfo, offset)
    local n = tvb(offset, 4):int()
    if n < 0 or n > ZK_MAX_LEN then
        return tvb:len() - offset
    end
    return n + 4
end

-- What a frame is, decided once (on the first pass) from the conversation so far.
local function zk_classify(tvb, pinfo, key)
    local known = zk_pdus[key]
    if known then
        return known
    end
    local stream = tostring(tcp_stream_field() or "?")
    local st = zk_streams[stream]
    if not st then
        local server_port = pinfo.match_uint
        if server_port ~= pinfo.src_port and server_port ~= pinfo.dst_port then
            server_port = zk_is_server_port(pinfo.dst_port) and pinfo.dst_port or pinfo.src_port
        end
        st = { server_port = server_port, pending = {}, client_seen = false, server_seen = false }
        zk_streams[stream] = st
    end
    local info = { stream = stream }
    local limit = tvb:len()
    if pinfo.dst_port == st.server_port then
        info.dir = "request"
        if not st.client_seen then
            st.client_seen = true
            local _, err = parse_connect_request(tvb, 4, limit)
            if not err then
                info.kind = "connect_request"
                st.client_connect = true
            end
        end
        if not info.kind then
            info.kind = "request"
            if limit >= 12 then
                local xid, op = tvb(4, 4):int(), tvb(8, 4):int()
                info.xid, info.op = xid, op
                st.pending[xid] = { op = op, frame = pinfo.number, key = key }
            end
        end
    else
        info.dir = "reply"
        if not st.server_seen then
            st.server_seen = true
            if st.client_connect then
                local _, err = parse_connect_response(tvb, 4, limit)
                if not err then
                    info.kind = "connect_response"
                end
            end
        end
        if not info.kind then
            info.kind = "reply"
            if limit >= 8 then
                local xid = tvb(4, 4):int()
                info.xid = xid
                local req = st.pending[xid]
                if req then
                    st.pending[xid] = nil
                    info.op = req.op
                    info.request_in = req.frame
                    zk_responses[req.key] = pinfo.number
                end
            end
        end
    end
    zk_pdus[key] = info
    return info
end

local function zk_pdu(tvb, pinfo, tree)
    -- The Info column lists the frames a segment completes.
    if zk_frame ~= pinfo.number then
        zk_frame = pinfo.number
        zk_pdu_index = 0
    end
    zk_pdu_index = zk_pdu_index + 1
    -- A frame's classification is kept under its packet, length and first bytes (xid and op,
    -- or the reply header), which tell apart the frames one segment carries, however often and
    -- in whatever order Wireshark dissects them again.
    local key = pinfo.number .. ":" .. tvb:len() .. ":" .. tvb(0, math.min(tvb:len(), 24)):bytes():tohex()
    local t = tree:add(zk, tvb())
    t:add(zf.len, tvb(0, 4))
    local n = tvb(0, 4):int()
    if n < 0 or n > ZK_MAX_LEN or n + 4 ~= tvb:len() then
        t:add_proto_expert_info(ef_zk_malformed, "Malformed: frame length " .. n)
        return tvb:len()
    end
    local info = zk_classify(tvb, pinfo, key)
    local limit = tvb:len()
    local items, err, summary
    if info.kind == "connect_request" then
        items, err = parse_connect_request(tvb, 4, limit)
        summary = "ConnectRequest"
    elseif info.kind == "connect_response" then
        items, err = parse_connect_response(tvb, 4, limit)
        summary = "ConnectResponse"
    elseif info.kind == "request" then
        local op
        items, op, err = parse_request(tvb, 4, limit)
        summary = "Request " .. (op and (ZK_OPS[op] or tostring(op)) or "?")
        local reply = zk_responses[key]
        if reply then
            generated(items, zf.response_in, 0, 0, reply)
        end
    else
        items, err = parse_reply(tvb, 4, limit, info.op)
        local xid = info.xid
        if xid == -1 then
            summary = "Notification"
        elseif ZK_SPECIAL_XIDS[xid] then
            summary = "Reply " .. ZK_SPECIAL_XIDS[xid]
        elseif info.op then
            summary = "Reply " .. (ZK_OPS[info.op] or tostring(info.op))
        else
            summary = "Reply (request not captured)"
        end
        if info.op and xid ~= -1 then
            generated(items, zf.reply_to, 0, 0, info.op)
        end
        if info.request_in then
            generated(items, zf.request_in, 0, 0, info.request_in)
        end
    end
    render(t, tvb, items)
    t:append_text(", " .. summary)
    if err then
        t:add_proto_expert_info(ef_zk_malformed, "Malformed: " .. err)
        summary = summary .. " [malformed]"
    elseif info.kind == "reply" then
        local code = tvb(16, 4):int()
        if code ~= 0 then
            t:add_proto_expert_info(ef_zk_error, "Error " .. (ZK_ERRORS[code] or tostring(code)))
            summary = summary .. " " .. (ZK_ERRORS[code] or tostring(code))
        elseif info.op == nil and not ZK_SPECIAL_XIDS[info.xid] then
            t:add_proto_expert_info(ef_zk_unmatched)
        end
    end
    if zk_pdu_index == 1 then
        pinfo.cols.info = summary
    else
        pinfo.cols.info:append("; " .. summary)
    end
    return tvb:len()
end

function zk.dissector(tvb, pinfo, tree)
    pinfo.cols.protocol = "ZooKeeper"
    dissect_tcp_pdus(tvb, tree, 4, zk_frame_len, zk_pdu, true)
    return tvb:len()
end

-----------------------------------------------------------------------------------------------
-- Registration
-----------------------------------------------------------------------------------------------

local udp_table = DissectorTable.get("udp.port")
local tcp_table = DissectorTable.get("tcp.port")
local registered = { health_udp = "", dht_udp = "", sealed_udp = "", dht_tcp = "", zk_tcp = "" }

local function reregister(table, name, proto, ranges)
    local old = registered[name]
    if old ~= "" then
        table:remove(old, proto)
    end
    local new = tostring(ranges)
    if new ~= "" then
        table:add(new, proto)
    end
    registered[name] = new
end

local function apply_prefs()
    reregister(udp_table, "health_udp", health, health.prefs.udp_ports)
    reregister(udp_table, "dht_udp", dht, dht.prefs.udp_ports)
    reregister(udp_table, "sealed_udp", sealed, sealed.prefs.udp_ports)
    reregister(tcp_table, "dht_tcp", dht_tcp, dht.prefs.tcp_ports)
    reregister(tcp_table, "zk_tcp", zk, zk.prefs.tcp_ports)
end

-- Offered in Decode As (and to `-d udp.port==N,sinew_health`) whatever the port preferences.
udp_table:add_for_decode_as(health)
udp_table:add_for_decode_as(dht)
udp_table:add_for_decode_as(sealed)
tcp_table:add_for_decode_as(dht_tcp)
tcp_table:add_for_decode_as(zk)

health.prefs_changed = apply_prefs
dht.prefs_changed = apply_prefs
sealed.prefs_changed = apply_prefs
zk.prefs_changed = apply_prefs
apply_prefs()

health:register_heuristic("udp", health_heuristic)
dht:register_heuristic("udp", dht_heuristic)
sealed:register_heuristic("udp", sealed_heuristic)
