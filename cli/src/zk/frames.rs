//! The ZooKeeper frame decoders behind `sinew decode zk-request` / `zk-reply`: every field of
//! one frame, printed one per line.

use std::io::{self, Write};

use sinew_proto::zk::{
    Acl, ConnectRequest, ConnectResponse, CreateRequest, ErrorCode, FrameDecoder, FrameStatus,
    MultiOp, MultiResult, OpCode, REPLY_HEADER_LEN, Reply, ReplyBody, ReplyHeader, Request,
    RequestBody, Stat, ZkStr,
};

use super::output::utc;
// ---------------------------------------------------------------------------------------------

/// What a ZooKeeper frame decoder found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes are not one whole frame, or its payload is malformed.
    Malformed(String),
    /// The caller must say more (the op of a reply).
    Usage(String),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Malformed(s) | DecodeError::Usage(s) => f.write_str(s),
        }
    }
}

/// Which request a server frame answers, for [`write_reply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyOp {
    /// Not given: enough for notifications and ping, auth and setWatches replies.
    NotGiven,
    /// The handshake: the frame is a ConnectResponse.
    Connect,
    /// A reply to a request with this op code.
    Op(OpCode),
}

/// The op a reply answers, by the reference's name (`getData`, case ignored) or number;
/// `connect` for the handshake's ConnectResponse.
///
/// # Errors
/// A message naming the known ops when `name` is none of them.
pub fn parse_op(name: &str) -> Result<ReplyOp, String> {
    if name.eq_ignore_ascii_case("connect") {
        return Ok(ReplyOp::Connect);
    }
    if let Ok(n) = name.parse::<i32>() {
        return Ok(ReplyOp::Op(OpCode::from_i32(n)));
    }
    (-11..=200)
        .map(OpCode::from_i32)
        .find(|op| op.is_known() && op.to_string().eq_ignore_ascii_case(name))
        .map(ReplyOp::Op)
        .ok_or_else(|| {
            let known: Vec<String> = (-11..=200)
                .map(OpCode::from_i32)
                .filter(|op| op.is_known())
                .map(|op| op.to_string())
                .collect();
            format!("unknown op {name:?}; known: connect, {}", known.join(", "))
        })
}

/// Splits `bytes` as exactly one frame; returns its payload.
fn one_frame(bytes: &[u8]) -> Result<&[u8], DecodeError> {
    match FrameDecoder::new().decode(bytes) {
        Ok(FrameStatus::Complete { frame, consumed }) if consumed == bytes.len() => Ok(frame),
        Ok(FrameStatus::Complete { consumed, .. }) => Err(DecodeError::Malformed(format!(
            "{} after the {consumed}-byte frame (give one frame)",
            crate::error::plural((bytes.len() - consumed) as u64, "byte", "bytes")
        ))),
        Ok(FrameStatus::Partial { needed }) => Err(DecodeError::Malformed(format!(
            "truncated frame: {} bytes, {needed} more needed (give the whole frame, its 4-byte \
             length first)",
            bytes.len()
        ))),
        Err(e) => Err(DecodeError::Malformed(format!("bad frame length: {e}"))),
    }
}

fn malformed(what: &str, e: sinew_proto::Error) -> DecodeError {
    DecodeError::Malformed(format!("malformed {what}: {e}"))
}

/// Decodes a client frame (a request, or with `connect` the ConnectRequest) and prints every
/// field.
///
/// # Errors
/// The outer `Err` is a write error; the inner one says what is wrong with the bytes.
pub fn write_request(
    bytes: &[u8],
    connect: bool,
    out: &mut dyn Write,
) -> io::Result<Result<(), DecodeError>> {
    let frame = match one_frame(bytes) {
        Ok(frame) => frame,
        Err(e) => return Ok(Err(e)),
    };
    if connect {
        let request = match ConnectRequest::parse(frame) {
            Ok(r) => r,
            Err(e) => return Ok(Err(malformed("ConnectRequest", e))),
        };
        writeln!(
            out,
            "zk ConnectRequest, {} bytes (payload {})",
            bytes.len(),
            frame.len()
        )?;
        writeln!(out, "  protocolVersion  {}", request.protocol_version)?;
        writeln!(
            out,
            "  lastZxidSeen     {:#x} ({})",
            request.last_zxid_seen, request.last_zxid_seen
        )?;
        writeln!(out, "  timeOut          {} ms", request.timeout)?;
        writeln!(out, "  sessionId        {:#x}", request.session_id)?;
        writeln!(out, "  passwd           {}", buffer(request.passwd))?;
        writeln!(out, "  readOnly         {}", option_bool(request.read_only))?;
        return Ok(Ok(()));
    }
    let request = match Request::parse(frame) {
        Ok(r) => r,
        Err(e) => return Ok(Err(malformed("request", e))),
    };
    writeln!(
        out,
        "zk request, {} bytes (payload {})",
        bytes.len(),
        frame.len()
    )?;
    writeln!(
        out,
        "  xid      {}{}",
        request.xid,
        special_xid(request.xid)
    )?;
    let op = request.body.op();
    writeln!(out, "  op       {} {op}", op.to_i32())?;
    write_request_body(&request.body, "  ", out)?;
    Ok(Ok(()))
}

/// Decodes a server frame and prints every field: the ConnectResponse, a reply to `op`, or a
/// notification / ping / auth / setWatches reply (whose xid decides, whatever `op` is).
///
/// # Errors
/// The outer `Err` is a write error; the inner one says what is wrong with the bytes or that
/// `--op` is needed.
pub fn write_reply(
    bytes: &[u8],
    op: ReplyOp,
    out: &mut dyn Write,
) -> io::Result<Result<(), DecodeError>> {
    let frame = match one_frame(bytes) {
        Ok(frame) => frame,
        Err(e) => return Ok(Err(e)),
    };
    if op == ReplyOp::Connect {
        let response = match ConnectResponse::parse(frame) {
            Ok(r) => r,
            Err(e) => return Ok(Err(malformed("ConnectResponse", e))),
        };
        writeln!(
            out,
            "zk ConnectResponse, {} bytes (payload {})",
            bytes.len(),
            frame.len()
        )?;
        writeln!(out, "  protocolVersion  {}", response.protocol_version)?;
        writeln!(
            out,
            "  timeOut          {} ms{}",
            response.timeout,
            if response.is_expired() {
                " (session expired)"
            } else {
                ""
            }
        )?;
        writeln!(out, "  sessionId        {:#x}", response.session_id)?;
        writeln!(out, "  passwd           {}", buffer(response.passwd))?;
        writeln!(
            out,
            "  readOnly         {}",
            option_bool(response.read_only)
        )?;
        return Ok(Ok(()));
    }
    let given = op;
    let xid = frame
        .first_chunk::<4>()
        .map(|b| i32::from_be_bytes(*b))
        .unwrap_or(0);
    // An error reply is a bare header, whatever the op: no need to be told it.
    let error_reply = frame.len() == REPLY_HEADER_LEN
        && ReplyHeader::parse(frame).is_ok_and(|h| h.err != ErrorCode::Ok);
    let op = match op {
        ReplyOp::Op(op) => op,
        // The special xids decide the shape themselves.
        _ if matches!(xid, -1 | -2 | -4 | -8) => OpCode::Ping,
        _ if error_reply => OpCode::GetData,
        // No reply has xid 0 (xids start at 1), but a ConnectResponse starts with protocol
        // version 0.
        _ if xid == 0 && ConnectResponse::parse(frame).is_ok() => {
            return Ok(Err(DecodeError::Usage(format!(
                "a {}-byte frame with xid 0 that parses as a ConnectResponse (the server's \
                 first frame): decode it with --op connect",
                bytes.len()
            ))));
        }
        _ => {
            return Ok(Err(DecodeError::Usage(format!(
                "reply with xid {xid}: say which request it answers with --op (getData, 4, …)"
            ))));
        }
    };
    let reply = match Reply::parse(op, frame) {
        Ok(r) => r,
        Err(e) => return Ok(Err(malformed(&format!("reply to {op}"), e))),
    };
    let h = reply.header;
    let what = match h.xid {
        -1 => "notification".to_string(),
        -2 => "ping reply".to_string(),
        -4 => "auth reply".to_string(),
        -8 => "setWatches reply".to_string(),
        _ if error_reply && matches!(given, ReplyOp::NotGiven) => "error reply".to_string(),
        _ => format!("reply to {op}"),
    };
    writeln!(
        out,
        "zk {what}, {} bytes (payload {})",
        bytes.len(),
        frame.len()
    )?;
    writeln!(out, "  xid      {}{}", h.xid, special_xid(h.xid))?;
    writeln!(out, "  zxid     {:#x} ({})", h.zxid, h.zxid)?;
    writeln!(out, "  err      {} {}", h.err.to_i32(), h.err)?;
    write_reply_body(&reply.body, "  ", out)?;
    Ok(Ok(()))
}

fn special_xid(xid: i32) -> &'static str {
    match xid {
        -1 => " (notification)",
        -2 => " (ping)",
        -4 => " (auth)",
        -8 => " (setWatches)",
        _ => "",
    }
}

fn option_bool(b: Option<bool>) -> String {
    b.map_or_else(|| "(absent)".to_string(), |b| b.to_string())
}

/// A buffer: length and contents (text when printable, else hex); `null` for the null one.
fn buffer(b: Option<&[u8]>) -> String {
    match b {
        None => "null".to_string(),
        Some(bytes) => {
            let shown = match std::str::from_utf8(bytes) {
                Ok(text) if !text.chars().any(char::is_control) => format!("{text:?}"),
                _ => hex::encode(bytes),
            };
            format!("{} bytes {shown}", bytes.len())
        }
    }
}

fn string(s: ZkStr<'_>) -> String {
    if s.is_null() {
        "null".to_string()
    } else {
        format!("{:?}", s.to_string())
    }
}

fn write_acl(
    acl: &sinew_proto::zk::List<'_, Acl<'_>>,
    indent: &str,
    out: &mut dyn Write,
) -> io::Result<()> {
    writeln!(out, "{indent}acl      {} entries", acl.len())?;
    for entry in acl.iter() {
        writeln!(
            out,
            "{indent}  {}:{} perms {} ({:#x})",
            entry.id.scheme,
            entry.id.id,
            entry.perms,
            entry.perms.bits()
        )?;
    }
    Ok(())
}

fn write_create(r: &CreateRequest<'_>, indent: &str, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "{indent}path     {}", string(r.path))?;
    writeln!(out, "{indent}data     {}", buffer(r.data))?;
    write_acl(&r.acl, indent, out)?;
    writeln!(out, "{indent}flags    {} {}", r.mode.to_i32(), r.mode)
}

fn write_request_body(body: &RequestBody<'_>, indent: &str, out: &mut dyn Write) -> io::Result<()> {
    use RequestBody as B;
    match body {
        B::Create(r) | B::Create2(r) | B::CreateContainer(r) => write_create(r, indent, out),
        B::CreateTtl(r) => {
            write_create(&r.create, indent, out)?;
            writeln!(out, "{indent}ttl      {} ms", r.ttl)
        }
        B::Delete(r) | B::Check(r) => {
            writeln!(out, "{indent}path     {}", string(r.path))?;
            writeln!(out, "{indent}version  {}", r.version)
        }
        B::Exists(r) | B::GetData(r) | B::GetChildren(r) | B::GetChildren2(r) => {
            writeln!(out, "{indent}path     {}", string(r.path))?;
            writeln!(out, "{indent}watch    {}", r.watch)
        }
        B::SetData(r) => {
            writeln!(out, "{indent}path     {}", string(r.path))?;
            writeln!(out, "{indent}data     {}", buffer(r.data))?;
            writeln!(out, "{indent}version  {}", r.version)
        }
        B::GetAcl(r)
        | B::Sync(r)
        | B::DeleteContainer(r)
        | B::GetEphemerals(r)
        | B::GetAllChildrenNumber(r) => writeln!(out, "{indent}path     {}", string(r.path)),
        B::SetAcl(r) => {
            writeln!(out, "{indent}path     {}", string(r.path))?;
            write_acl(&r.acl, indent, out)?;
            writeln!(out, "{indent}version  {}", r.version)
        }
        B::Ping | B::WhoAmI | B::CloseSession => writeln!(out, "{indent}(no body)"),
        B::Multi(ops) | B::MultiRead(ops) => {
            writeln!(out, "{indent}ops      {}", ops.len())?;
            for (i, op) in ops.iter().enumerate() {
                writeln!(out, "{indent}op {i}: {} {}", op.op().to_i32(), op.op())?;
                let inner = format!("{indent}    ");
                let body = match op {
                    MultiOp::Create(r) => RequestBody::Create(r),
                    MultiOp::Create2(r) => RequestBody::Create2(r),
                    MultiOp::CreateContainer(r) => RequestBody::CreateContainer(r),
                    MultiOp::CreateTtl(r) => RequestBody::CreateTtl(r),
                    MultiOp::Delete(r) => RequestBody::Delete(r),
                    MultiOp::SetData(r) => RequestBody::SetData(r),
                    MultiOp::Check(r) => RequestBody::Check(r),
                    MultiOp::GetChildren(r) => RequestBody::GetChildren(r),
                    MultiOp::GetData(r) => RequestBody::GetData(r),
                    other => {
                        writeln!(out, "{inner}{other:?}")?;
                        continue;
                    }
                };
                write_request_body(&body, &inner, out)?;
            }
            Ok(())
        }
        B::Reconfig(r) => {
            writeln!(out, "{indent}joiningServers  {}", string(r.joining_servers))?;
            writeln!(out, "{indent}leavingServers  {}", string(r.leaving_servers))?;
            writeln!(out, "{indent}newMembers      {}", string(r.new_members))?;
            writeln!(out, "{indent}curConfigId     {}", r.cur_config_id)
        }
        B::CheckWatches(r) | B::RemoveWatches(r) => {
            writeln!(out, "{indent}path     {}", string(r.path))?;
            writeln!(
                out,
                "{indent}type     {} {}",
                r.watcher_type.to_i32(),
                r.watcher_type
            )
        }
        B::Auth(a) => {
            writeln!(out, "{indent}type     {}", a.auth_type)?;
            writeln!(out, "{indent}scheme   {}", string(a.scheme))?;
            writeln!(out, "{indent}auth     {}", buffer(a.auth))
        }
        B::SetWatches(w) => {
            writeln!(out, "{indent}relativeZxid  {:#x}", w.relative_zxid)?;
            write_paths("dataWatches", &w.data_watches, indent, out)?;
            write_paths("existWatches", &w.exist_watches, indent, out)?;
            write_paths("childWatches", &w.child_watches, indent, out)
        }
        B::SetWatches2(w) => {
            writeln!(out, "{indent}relativeZxid  {:#x}", w.relative_zxid)?;
            write_paths("dataWatches", &w.data_watches, indent, out)?;
            write_paths("existWatches", &w.exist_watches, indent, out)?;
            write_paths("childWatches", &w.child_watches, indent, out)?;
            write_paths("persistentWatches", &w.persistent_watches, indent, out)?;
            write_paths(
                "persistentRecursiveWatches",
                &w.persistent_recursive_watches,
                indent,
                out,
            )
        }
        B::Sasl(token) => writeln!(out, "{indent}token    {}", buffer(*token)),
        B::AddWatch(r) => {
            writeln!(out, "{indent}path     {}", string(r.path))?;
            writeln!(out, "{indent}mode     {} {}", r.mode.to_i32(), r.mode)
        }
        B::Other { body, .. } => writeln!(out, "{indent}body     {}", buffer(Some(body))),
        other => writeln!(out, "{indent}{other:?}"),
    }
}

fn write_paths(
    name: &str,
    list: &sinew_proto::zk::List<'_, ZkStr<'_>>,
    indent: &str,
    out: &mut dyn Write,
) -> io::Result<()> {
    if list.is_null() {
        return writeln!(out, "{indent}{name}  null");
    }
    writeln!(out, "{indent}{name}  {}", list.len())?;
    for path in list.iter() {
        writeln!(out, "{indent}  {}", string(path))?;
    }
    Ok(())
}

fn write_stat(stat: &Stat, indent: &str, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "{indent}stat")?;
    writeln!(out, "{indent}  czxid           {:#x}", stat.czxid)?;
    writeln!(out, "{indent}  mzxid           {:#x}", stat.mzxid)?;
    writeln!(
        out,
        "{indent}  ctime           {} ({})",
        stat.ctime,
        utc(stat.ctime)
    )?;
    writeln!(
        out,
        "{indent}  mtime           {} ({})",
        stat.mtime,
        utc(stat.mtime)
    )?;
    writeln!(out, "{indent}  version         {}", stat.version)?;
    writeln!(out, "{indent}  cversion        {}", stat.cversion)?;
    writeln!(out, "{indent}  aversion        {}", stat.aversion)?;
    writeln!(out, "{indent}  ephemeralOwner  {:#x}", stat.ephemeral_owner)?;
    writeln!(out, "{indent}  dataLength      {}", stat.data_length)?;
    writeln!(out, "{indent}  numChildren     {}", stat.num_children)?;
    writeln!(out, "{indent}  pzxid           {:#x}", stat.pzxid)
}

fn write_children(
    list: &sinew_proto::zk::List<'_, ZkStr<'_>>,
    indent: &str,
    out: &mut dyn Write,
) -> io::Result<()> {
    write_paths("children", list, indent, out)
}

fn write_reply_body(body: &ReplyBody<'_>, indent: &str, out: &mut dyn Write) -> io::Result<()> {
    match body {
        ReplyBody::Empty => writeln!(out, "{indent}(no body)"),
        ReplyBody::Notification(n) => {
            writeln!(
                out,
                "{indent}type     {} {}",
                n.event_type.to_i32(),
                n.event_type
            )?;
            writeln!(out, "{indent}state    {} {}", n.state.to_i32(), n.state)?;
            writeln!(out, "{indent}path     {}", string(n.path))
        }
        ReplyBody::Path(path) => writeln!(out, "{indent}path     {}", string(*path)),
        ReplyBody::Created(c) => {
            writeln!(out, "{indent}path     {}", string(c.path))?;
            write_stat(&c.stat, indent, out)
        }
        ReplyBody::Stat(stat) => write_stat(stat, indent, out),
        ReplyBody::Data(d) => {
            writeln!(out, "{indent}data     {}", buffer(d.data))?;
            write_stat(&d.stat, indent, out)
        }
        ReplyBody::Acl(a) => {
            write_acl(&a.acl, indent, out)?;
            write_stat(&a.stat, indent, out)
        }
        ReplyBody::Children(list) => write_children(list, indent, out),
        ReplyBody::Children2(c) => {
            write_children(&c.children, indent, out)?;
            write_stat(&c.stat, indent, out)
        }
        ReplyBody::Multi(results) => {
            writeln!(out, "{indent}results  {}", results.len())?;
            for (i, result) in results.iter().enumerate() {
                let inner = format!("{indent}    ");
                match result {
                    MultiResult::Error(code) => {
                        writeln!(out, "{indent}result {i}: error {} {code}", code.to_i32())?;
                    }
                    other => {
                        writeln!(
                            out,
                            "{indent}result {i}: {} {}",
                            other.op().to_i32(),
                            other.op()
                        )?;
                        let body = match other {
                            MultiResult::Create(path) => ReplyBody::Path(path),
                            MultiResult::Create2(c) => ReplyBody::Created(c),
                            MultiResult::SetData(stat) => ReplyBody::Stat(stat),
                            MultiResult::GetChildren(list) => ReplyBody::Children(list),
                            MultiResult::GetData(d) => ReplyBody::Data(d),
                            MultiResult::Delete | MultiResult::Check | MultiResult::Error(_) => {
                                ReplyBody::Empty
                            }
                            other => {
                                writeln!(out, "{inner}{other:?}")?;
                                continue;
                            }
                        };
                        write_reply_body(&body, &inner, out)?;
                    }
                }
            }
            Ok(())
        }
        ReplyBody::Sasl(token) => writeln!(out, "{indent}token    {}", buffer(*token)),
        ReplyBody::Count(n) => writeln!(out, "{indent}totalNumber  {n}"),
        ReplyBody::Status(code) => writeln!(out, "{indent}err      {} {code}", code.to_i32()),
        ReplyBody::WhoAmI(infos) => {
            writeln!(out, "{indent}clientInfo  {}", infos.len())?;
            for info in infos.iter() {
                writeln!(
                    out,
                    "{indent}  {} {}",
                    string(info.auth_scheme),
                    string(info.user)
                )?;
            }
            Ok(())
        }
        ReplyBody::Other { body, .. } => writeln!(out, "{indent}body     {}", buffer(Some(body))),
        other => writeln!(out, "{indent}{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(hex: &str, connect: bool) -> (Result<(), DecodeError>, String) {
        let bytes = crate::decode::parse_hex(&[hex.to_string()]).unwrap();
        let mut out = Vec::new();
        let result = write_request(&bytes, connect, &mut out).unwrap();
        (result, String::from_utf8(out).unwrap())
    }

    fn reply(hex: &str, op: ReplyOp) -> (Result<(), DecodeError>, String) {
        let bytes = crate::decode::parse_hex(&[hex.to_string()]).unwrap();
        let mut out = Vec::new();
        let result = write_reply(&bytes, op, &mut out).unwrap();
        (result, String::from_utf8(out).unwrap())
    }

    #[test]
    fn test_parse_op() {
        assert_eq!(parse_op("getData"), Ok(ReplyOp::Op(OpCode::GetData)));
        assert_eq!(parse_op("GETDATA"), Ok(ReplyOp::Op(OpCode::GetData)));
        assert_eq!(parse_op("4"), Ok(ReplyOp::Op(OpCode::GetData)));
        assert_eq!(parse_op("whoAmI"), Ok(ReplyOp::Op(OpCode::WhoAmI)));
        assert_eq!(
            parse_op("closeSession"),
            Ok(ReplyOp::Op(OpCode::CloseSession))
        );
        assert_eq!(parse_op("connect"), Ok(ReplyOp::Connect));
        assert!(parse_op("getDta").unwrap_err().contains("getData"));
    }

    #[test]
    fn test_decode_get_data_request() {
        let (result, text) = request("0000000f 00000001 00000004 00000002 2f61 01", false);
        assert_eq!(result, Ok(()));
        for needle in [
            "xid      1",
            "op       4 getData",
            "path     \"/a\"",
            "watch    true",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
    }

    #[test]
    fn test_decode_connect_request_and_response() {
        let (result, text) = request(
            "0000002d 00000000 0000000000000000 00007530 0000000000000000 00000010 \
             00000000000000000000000000000000 00",
            true,
        );
        assert_eq!(result, Ok(()));
        assert!(text.contains("timeOut          30000 ms"), "{text}");
        assert!(text.contains("readOnly         false"), "{text}");
        let (result, text) = reply(
            "00000024 00000000 00000000 0000000000000000 00000010 00000000000000000000000000000000",
            ReplyOp::Connect,
        );
        assert_eq!(result, Ok(()));
        assert!(text.contains("(session expired)"), "{text}");
        assert!(text.contains("readOnly         (absent)"), "{text}");
    }

    #[test]
    fn test_decode_notification_needs_no_op() {
        let (result, text) = reply(
            "0000001e ffffffff ffffffffffffffff 00000000 00000003 00000003 00000002 2f61",
            ReplyOp::NotGiven,
        );
        assert_eq!(result, Ok(()));
        for needle in [
            "zk notification",
            "type     3 NodeDataChanged",
            "state    3 SyncConnected",
            "path     \"/a\"",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
    }

    #[test]
    fn test_decode_errors() {
        // An ordinary reply without --op needs one; an error reply does not.
        let (result, _) = reply(
            "00000016 00000001 000000000000002a 00000000 00000002 2f61",
            ReplyOp::NotGiven,
        );
        assert!(matches!(result, Err(DecodeError::Usage(ref m)) if m.contains("--op")));
        let (result, text) = reply(
            "00000010 00000001 000000000000002a ffffff9b",
            ReplyOp::NotGiven,
        );
        assert_eq!(result, Ok(()));
        assert!(text.starts_with("zk error reply, 20 bytes"), "{text}");
        assert!(text.contains("err      -101 NoNode"), "{text}");
        // A ConnectResponse given without --op connect: the hint names it.
        let (result, _) = reply(
            "00000025 00000000 00001770 0000012345678abc 00000010 30313233343536373839616263646566 00",
            ReplyOp::NotGiven,
        );
        assert!(
            matches!(result, Err(DecodeError::Usage(ref m)) if m.contains("--op connect")),
            "{result:?}"
        );
        // The same as a getData reply: NoNode, no body.
        let (result, text) = reply(
            "00000010 00000001 000000000000002a ffffff9b",
            ReplyOp::Op(OpCode::GetData),
        );
        assert_eq!(result, Ok(()));
        assert!(text.contains("err      -101 NoNode"), "{text}");
        // Truncated, trailing, bad length.
        let (result, _) = request("0000000f 00000001 00000004", false);
        assert!(matches!(result, Err(DecodeError::Malformed(ref m)) if m.contains("truncated")));
        let (result, _) = request("00000000 00", false);
        assert!(matches!(result, Err(DecodeError::Malformed(ref m)) if m.contains("after")));
        let (result, _) = request("ffffffff", false);
        assert!(matches!(result, Err(DecodeError::Malformed(ref m)) if m.contains("length")));
        let (result, _) = request("00000009 00000001 00000004 00", false);
        assert!(matches!(result, Err(DecodeError::Malformed(ref m)) if m.contains("request")));
    }
}
