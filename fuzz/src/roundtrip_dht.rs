//! `roundtrip_dht`: arbitrary DHT messages → encode → parse → the same value.
//!
//! [`Body`] borrows its keys, values and node lists, so bodies are built from arbitrary parts
//! (keys and values borrowed from the input, [`NodeAddr`]s from their `Arbitrary` impl, which
//! makes only addresses the wire can carry). Keys, values and lists may exceed what the wire
//! can say: encoding must then refuse with `TooLarge` and leave the buffer untouched. Otherwise
//! it writes exactly `encoded_len()` bytes into a 0xa5-filled buffer (nothing after them, a
//! buffer one byte short refused) and `Message::parse` gives the value back.

use arbitrary::{Arbitrary, Result, Unstructured};
use sinew_proto::Error;
use sinew_proto::dht::{
    Body, ErrorCode, Header, LockToken, MAX_KEY_LEN, MAX_NODE_LIST, MAX_VALUE_LEN, Message,
    NodeAddr, NodeSet, RelayedRequest, Side, VIEW_SIDE,
};

use crate::parse_health::FILL;
use crate::zk_check::encode_exact;

/// What one input exercised, for choosing seeds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Messages round-tripped.
    pub messages: u32,
    /// Messages refused as too large.
    pub too_large: u32,
    /// Node lists round-tripped.
    pub lists: u32,
    /// Header-only messages (Challenge, Echo, ViewRequest) round-tripped.
    pub header_only: u32,
    /// Views round-tripped.
    pub views: u32,
}

/// Runs the round trips decoded from one input.
pub fn check(data: &[u8]) -> Summary {
    let mut u = Unstructured::new(data);
    let mut summary = Summary::default();
    // Stops quietly when the input runs out.
    let _ = run(&mut u, &mut summary);
    summary
}

/// Bytes for keys and values over the limits.
static LONG: [u8; MAX_VALUE_LEN + 1] = [0x5a; MAX_VALUE_LEN + 1];

/// A key: usually short, sometimes over the limit (made of repeated input bytes).
fn key<'a>(u: &mut Unstructured<'a>) -> Result<&'a [u8]> {
    if u.ratio(1, 32)? {
        let len = MAX_KEY_LEN + usize::from(u.arbitrary::<bool>()?);
        return Ok(&LONG[..len]);
    }
    let len = u.int_in_range(0..=MAX_KEY_LEN)?;
    u.bytes(len.min(u.len()))
}

fn value<'a>(u: &mut Unstructured<'a>) -> Result<&'a [u8]> {
    if u.ratio(1, 32)? {
        let len = MAX_VALUE_LEN + usize::from(u.arbitrary::<bool>()?);
        return Ok(&LONG[..len]);
    }
    let len = u.arbitrary_len::<u8>()?;
    u.bytes(len)
}

fn run(u: &mut Unstructured<'_>, summary: &mut Summary) -> Result<()> {
    while !u.is_empty() {
        let mut nodes = Vec::new();
        let n = if u.ratio(1, 16)? {
            MAX_NODE_LIST + usize::from(u.arbitrary::<bool>()?)
        } else {
            u.int_in_range(0..=4)?
        };
        for _ in 0..n {
            nodes.push(NodeAddr::arbitrary(u)?);
        }
        let header = Header {
            message_id: u.arbitrary()?,
            sender: u.arbitrary()?,
        };
        let token = LockToken(u.arbitrary()?);
        let ms: u32 = u.arbitrary()?;
        let body = match u.int_in_range(1..=18u8)? {
            1 => Body::Get { key: key(u)? },
            2 => Body::Value {
                key: key(u)?,
                value: if u.arbitrary()? {
                    Some(value(u)?)
                } else {
                    None
                },
            },
            3 => Body::Put {
                key: key(u)?,
                value: value(u)?,
            },
            4 => Body::PutAck { key: key(u)? },
            5 => Body::Lock {
                key: key(u)?,
                token,
                lease_ms: ms,
            },
            6 => Body::Locked {
                key: key(u)?,
                token,
                lease_ms: ms,
            },
            7 => Body::LockDenied {
                key: key(u)?,
                remaining_ms: ms,
            },
            8 => Body::Unlock {
                key: key(u)?,
                token,
            },
            9 => Body::Unlocked { key: key(u)? },
            10 => Body::InitConnect,
            11 => Body::RequestInsertion {
                joining: u.arbitrary()?,
            },
            12 => Body::Join {
                side: Side::arbitrary(u)?,
                nodes: NodeSet::Slice(&nodes),
            },
            13 => Body::Leave {
                nodes: NodeSet::Slice(&nodes),
            },
            14 => Body::Replicate {
                key: key(u)?,
                value: value(u)?,
            },
            16 => Body::RouteRequest {
                row: u.arbitrary()?,
                columns: u.arbitrary()?,
            },
            17 => Body::Route {
                row: u.arbitrary()?,
                nodes: NodeSet::Slice(&nodes),
            },
            // Kind 20 takes 18, which the header-only arm had (with 15) before.
            18 => Body::Relayed {
                budget_ms: u.arbitrary()?,
                origin: u.arbitrary()?,
                request: match u.int_in_range(0..=3u8)? {
                    0 => RelayedRequest::Get { key: key(u)? },
                    1 => RelayedRequest::Put {
                        key: key(u)?,
                        value: value(u)?,
                    },
                    2 => RelayedRequest::Lock {
                        key: key(u)?,
                        token,
                        lease_ms: ms,
                    },
                    _ => RelayedRequest::Unlock {
                        key: key(u)?,
                        token,
                    },
                },
            },
            // The header-only kinds share the last arm with Error, View and Withheld (which
            // took choice 2, until then an Error).
            _ => match u.int_in_range(0..=4u8)? {
                0 => Body::Challenge,
                1 => Body::Echo,
                2 => Body::Withheld {
                    cookie: u.arbitrary()?,
                },
                3 => Body::ViewRequest,
                4 => {
                    // Two sides cut from the list where the input says: a side may exceed
                    // VIEW_SIDE (then refused) only when the list is long.
                    let split = u.int_in_range(0..=nodes.len())?;
                    let (left, right) = nodes.split_at(split);
                    Body::View {
                        left: NodeSet::Slice(left),
                        right: NodeSet::Slice(right),
                    }
                }
                _ => Body::Error {
                    // Through the wire value, so that `Unknown(1)` (which is `NotOwner`) is
                    // not made.
                    code: ErrorCode::from_u16(u.arbitrary()?),
                },
            },
        };
        let message = Message { header, body };
        message_roundtrip(&message, summary);
    }
    Ok(())
}

fn too_large(message: &Message<'_>) -> bool {
    let key_len = match message.body {
        Body::Get { key }
        | Body::PutAck { key }
        | Body::Unlocked { key }
        | Body::Lock { key, .. }
        | Body::Locked { key, .. }
        | Body::LockDenied { key, .. }
        | Body::Unlock { key, .. }
        | Body::Value { key, .. }
        | Body::Put { key, .. }
        | Body::Replicate { key, .. } => key.len(),
        Body::Relayed { request, .. } => request.key().len(),
        _ => 0,
    };
    let value_len = match message.body {
        Body::Value { value, .. } => value.map_or(0, <[u8]>::len),
        Body::Put { value, .. } | Body::Replicate { value, .. } => value.len(),
        Body::Relayed {
            request: RelayedRequest::Put { value, .. },
            ..
        } => value.len(),
        _ => 0,
    };
    let nodes = match message.body {
        Body::Join { nodes, .. } | Body::Leave { nodes } | Body::Route { nodes, .. } => nodes.len(),
        _ => 0,
    };
    let view_side = match message.body {
        Body::View { left, right } => left.len().max(right.len()),
        _ => 0,
    };
    key_len > MAX_KEY_LEN
        || value_len > MAX_VALUE_LEN
        || nodes > MAX_NODE_LIST
        || view_side > VIEW_SIDE
}

fn message_roundtrip(message: &Message<'_>, summary: &mut Summary) {
    if too_large(message) {
        let mut buf = vec![FILL; message.encoded_len() + 16];
        assert_eq!(message.encode(&mut buf), Err(Error::TooLarge));
        assert!(buf.iter().all(|&b| b == FILL), "a refused encoding wrote");
        summary.too_large += 1;
        return;
    }
    let encoded = encode_exact(message.encoded_len(), |buf| message.encode(buf));
    assert_eq!(Message::parse(&encoded).as_ref(), Ok(message));
    assert_eq!(message.fits_datagram(), encoded.len() <= 508);
    summary.messages += 1;
    if matches!(
        message.body,
        Body::Join { .. } | Body::Leave { .. } | Body::Route { .. } | Body::View { .. }
    ) {
        summary.lists += 1;
    }
    if let Body::View { .. } = message.body {
        summary.views += 1;
    }
    if let Body::Withheld { .. } = message.body {
        assert_eq!(encoded.len(), sinew_proto::dht::HEADER_LEN + 8);
    }
    if matches!(
        message.body,
        Body::Challenge | Body::Echo | Body::ViewRequest
    ) {
        assert_eq!(encoded.len(), sinew_proto::dht::HEADER_LEN);
        summary.header_only += 1;
    }
}
