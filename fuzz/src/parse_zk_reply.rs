//! `parse_zk_reply`: the server-to-client decoders of the ZooKeeper codec on the same bytes.
//!
//! The first 4 bytes of the input are an op code (any `i32`, so unknown ones too); the rest is
//! a frame's payload, given to [`Reply::parse`] with that op code and with every op code this
//! crate knows, and to [`ConnectResponse::parse`]; and, when it starts with a whole frame, the
//! same on that frame's payload. Checked, beyond "nothing panics":
//! * whatever parses re-encodes (into a 0xa5-filled buffer, exactly `encoded_len()` bytes, a
//!   buffer one byte short refused) to the same bytes and parses back to the same value;
//!   `encode_framed` is the length prefix then those bytes. The exceptions, where `parse` ignores
//!   bytes by design: a reply whose `err` is not 0 (and is not a notification) keeps only its
//!   header; a createContainer reply may carry trailing bytes; a `readOnly` byte above 1 comes
//!   back as 1; the header ending a multi comes back as `{-1, 1, -1}`;
//! * a reply with a special xid (ping, auth, setWatches) or an error has no body, and a
//!   notification's body does not depend on the op code.

use sinew_proto::zk::{
    AUTH_XID, ConnectResponse, ErrorCode, NOTIFICATION_XID, OpCode, PING_XID, REPLY_HEADER_LEN,
    Reply, ReplyBody, SET_WATCHES_XID,
};

use crate::parse_zk_request::frame;
use crate::zk_check::{Exceptions, assert_reencodes, check_framed, encode_exact};

/// Every op code the crate names.
pub const OPS: [OpCode; 33] = [
    OpCode::Notification,
    OpCode::Create,
    OpCode::Delete,
    OpCode::Exists,
    OpCode::GetData,
    OpCode::SetData,
    OpCode::GetAcl,
    OpCode::SetAcl,
    OpCode::GetChildren,
    OpCode::Sync,
    OpCode::Ping,
    OpCode::GetChildren2,
    OpCode::Check,
    OpCode::Multi,
    OpCode::Create2,
    OpCode::Reconfig,
    OpCode::CheckWatches,
    OpCode::RemoveWatches,
    OpCode::CreateContainer,
    OpCode::DeleteContainer,
    OpCode::CreateTtl,
    OpCode::MultiRead,
    OpCode::Auth,
    OpCode::SetWatches,
    OpCode::Sasl,
    OpCode::GetEphemerals,
    OpCode::GetAllChildrenNumber,
    OpCode::SetWatches2,
    OpCode::AddWatch,
    OpCode::WhoAmI,
    OpCode::CreateSession,
    OpCode::CloseSession,
    OpCode::Error,
];

/// Runs every check on one input.
pub fn check(data: &[u8]) {
    let Some((op, rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let op = OpCode::from_i32(i32::from_be_bytes(*op));
    payload(op, rest);
    if let Some(frame) = frame(rest) {
        payload(op, frame);
    }
}

fn payload(op: OpCode, bytes: &[u8]) {
    let mut notification = None;
    for op in OPS.into_iter().chain([op]) {
        let Ok(reply) = Reply::parse(op, bytes) else {
            continue;
        };
        if reply.is_notification() {
            // The xid decides, not the op code.
            assert!(matches!(reply.body, ReplyBody::Notification(_)));
            assert!(notification.is_none_or(|n| n == reply), "{op:?}");
            notification = Some(reply);
        } else if !reply.header.err.is_ok()
            || matches!(reply.header.xid, PING_XID | AUTH_XID | SET_WATCHES_XID)
        {
            assert_eq!(reply.body, ReplyBody::Empty, "{op:?}");
        }
        check_reply(op, bytes, &reply);
    }
    if let Ok(connect) = ConnectResponse::parse(bytes) {
        let encoded = encode_exact(connect.encoded_len(), |buf| connect.encode(buf));
        let exceptions = Exceptions {
            booleans: true,
            multi_end: false,
        };
        assert_reencodes(bytes, &encoded, exceptions);
        assert_eq!(ConnectResponse::parse(&encoded), Ok(connect));
        check_framed(&encoded, |buf| connect.encode_framed(buf));
    }
}

fn check_reply(op: OpCode, bytes: &[u8], reply: &Reply<'_>) {
    let encoded = encode_exact(reply.encoded_len(), |buf| reply.encode(buf));
    let error = reply.header.err != ErrorCode::Ok && reply.header.xid != NOTIFICATION_XID;
    let original = if error {
        // The body after an error is ignored, as the Java client ignores it.
        &bytes[..REPLY_HEADER_LEN]
    } else if op == OpCode::CreateContainer && encoded.len() < bytes.len() {
        // So are bytes after a createContainer reply.
        &bytes[..encoded.len()]
    } else {
        bytes
    };
    let exceptions = Exceptions {
        booleans: false,
        multi_end: matches!(reply.body, ReplyBody::Multi(_)),
    };
    assert_reencodes(original, &encoded, exceptions);
    assert_eq!(Reply::parse(op, &encoded).as_ref(), Ok(reply), "{op:?}");
    check_framed(&encoded, |buf| reply.encode_framed(buf));
}
