//! `roundtrip_zk`: arbitrary ZooKeeper messages and records → encode → parse → the same value.
//!
//! Values come from the codec's own `Arbitrary` impls (which make only values that have an
//! encoding: replies consistent with their header, multis of the right kind, open enums in
//! canonical form). Each is encoded into a 0xa5-filled buffer: exactly `encoded_len()` bytes
//! written and nothing after them, a buffer one byte short refused with `BufferTooSmall`, the
//! framed form is the length prefix then the same bytes, and parsing (a reply with
//! `body.reply_to()`) gives the value back, which re-encodes to the same bytes.

use arbitrary::{Result, Unstructured};
use sinew_proto::zk::{
    Acl, AuthPacket, ClientInfo, ConnectRequest, ConnectResponse, Create2Response, GetAclResponse,
    GetChildren2Response, GetDataResponse, Id, MultiHeader, Reply, ReplyHeader, Request,
    RequestHeader, SetWatches, SetWatches2, Stat, WatcherEvent,
};

use crate::zk_check::{check_framed, encode_exact};

/// What one input exercised, for choosing seeds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Requests round-tripped.
    pub requests: u32,
    /// Replies round-tripped.
    pub replies: u32,
    /// Handshake records round-tripped.
    pub handshakes: u32,
    /// Other records round-tripped.
    pub records: u32,
}

/// Runs the round trips decoded from one input.
pub fn check(data: &[u8]) -> Summary {
    let mut u = Unstructured::new(data);
    let mut summary = Summary::default();
    // Stops quietly when the input runs out.
    let _ = run(&mut u, &mut summary);
    summary
}

/// Round-trips a value of a type with `parse(&[u8])`, `encoded_len` and `encode`, framed too
/// when it has `encode_framed`.
macro_rules! record {
    ($value:expr, $ty:ident) => {{
        let value: $ty = $value;
        let encoded = encode_exact(value.encoded_len(), |buf| value.encode(buf));
        assert_eq!($ty::parse(&encoded), Ok(value), "{}", stringify!($ty));
        encoded
    }};
    ($value:expr, $ty:ident, framed) => {{
        let value: $ty = $value;
        let encoded = record!(value, $ty);
        check_framed(&encoded, |buf| value.encode_framed(buf));
    }};
}

fn run(u: &mut Unstructured<'_>, summary: &mut Summary) -> Result<()> {
    while !u.is_empty() {
        match u.int_in_range(0..=15u8)? {
            0..=3 => {
                record!(u.arbitrary()?, Request, framed);
                summary.requests += 1;
            }
            4..=7 => {
                reply(u.arbitrary()?);
                summary.replies += 1;
            }
            8 => {
                record!(u.arbitrary()?, ConnectRequest, framed);
                record!(u.arbitrary()?, ConnectResponse, framed);
                summary.handshakes += 1;
            }
            9 => {
                record!(u.arbitrary()?, Stat);
                record!(u.arbitrary()?, RequestHeader);
                record!(u.arbitrary()?, ReplyHeader);
                record!(u.arbitrary()?, MultiHeader);
                summary.records += 1;
            }
            10 => {
                record!(u.arbitrary()?, Id);
                record!(u.arbitrary()?, Acl);
                record!(u.arbitrary()?, ClientInfo);
                record!(u.arbitrary()?, AuthPacket);
                summary.records += 1;
            }
            11 => {
                record!(u.arbitrary()?, SetWatches);
                record!(u.arbitrary()?, SetWatches2);
                record!(u.arbitrary()?, WatcherEvent);
                summary.records += 1;
            }
            _ => {
                record!(u.arbitrary()?, Create2Response);
                record!(u.arbitrary()?, GetDataResponse);
                record!(u.arbitrary()?, GetAclResponse);
                record!(u.arbitrary()?, GetChildren2Response);
                summary.records += 1;
            }
        }
    }
    Ok(())
}

fn reply(reply: Reply<'_>) {
    let op = reply.body.reply_to();
    let encoded = encode_exact(reply.encoded_len(), |buf| reply.encode(buf));
    let parsed = Reply::parse(op, &encoded);
    assert_eq!(parsed, Ok(reply), "reply to {op:?}");
    check_framed(&encoded, |buf| reply.encode_framed(buf));
}
