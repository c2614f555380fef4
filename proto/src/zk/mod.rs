//! Apache ZooKeeper's client protocol ("jute" frames), as a zero-copy codec.
//!
//! Every message travels in a frame: a 4-byte big-endian length, then the payload
//! ([`FrameDecoder`] splits a byte stream into frames, [`encode_frame`] and the
//! `encode_framed` methods write them). The first frame each way is the handshake
//! ([`ConnectRequest`], [`ConnectResponse`]); every later request is a [`RequestHeader`] and a
//! body ([`Request`]), every later reply a [`ReplyHeader`] and, when its `err` is 0, a body
//! ([`Reply`]). The byte layouts are in `PROTOCOL-zk.md` beside this module.
//!
//! * **Decoding borrows.** Paths, data and children are slices of the frame. Strings are
//!   [`ZkStr`]: bytes with a lazily validated [`as_str`](ZkStr::as_str), because the Java
//!   client writes CESU-8 outside the BMP. Vectors are [`List`]s, validated once at parse so
//!   that walking them cannot fail. Null buffers are `None`, distinct from empty ones; null
//!   strings and vectors are distinct from empty ones too ([`ZkStr::is_null`],
//!   [`List::is_null`]).
//! * **Fixed-size parts at fixed offsets.** [`RequestHeader`] (8 bytes), [`ReplyHeader`] (16)
//!   and [`Stat`] (68) are read and written whole after one length check, and have zero-copy
//!   views ([`StatView`], …); nom combinators parse only the variable parts.
//! * **Replies are decoded with the op code of the request they answer**
//!   ([`Reply::parse`]), since a reply does not name its operation.
//! * **Codes are open enums** ([`ErrorCode`], [`OpCode`], [`EventType`], [`KeeperState`],
//!   [`CreateMode`], [`WatcherType`], [`AddWatchMode`]): a value this crate does not know
//!   decodes to `Unknown(i32)`, never to an error or a panic.
//! * **Encoding** writes into the caller's buffer, sized exactly by `encoded_len()`; nothing
//!   allocates.
//! * **Paths are checked** before a request is queued, with ZooKeeper's client's rules and
//!   words ([`path::validate_path`]).
//! * **The session** — handshake, xids, pending replies, pings, timeouts, watches, reconnect,
//!   expiry, chroot — is a sans-IO state machine on top of the codec: [`session::ZkSession`].
//!
//! Every length is checked against [`MAX_LEN`] and against the bytes present before anything is
//! sliced; a negative length other than -1 is [`Error::BadLength`](crate::Error::BadLength).
//!
//! ```
//! use sinew_proto::zk::{
//!     ConnectRequest, FrameStatus, OpCode, PathWatchRequest, Reply, ReplyBody, Request,
//!     RequestBody, FrameDecoder, ZkStr,
//! };
//!
//! // Client side: the handshake, then a getData.
//! let mut out = [0u8; 128];
//! let mut len = ConnectRequest::new_session(10_000).encode_framed(&mut out)?;
//! let get = Request {
//!     xid: 1,
//!     body: RequestBody::GetData(PathWatchRequest { path: ZkStr::new("/config"), watch: true }),
//! };
//! len += get.encode_framed(&mut out[len..])?;
//! assert_eq!(len, 49 + 24);
//!
//! // Reading the server's byte stream: one frame, then the reply it holds.
//! let stream = [
//!     0, 0, 0, 16, // frame length
//!     0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9, 0xff, 0xff, 0xff, 0x9b, // xid 1, zxid 9, NoNode
//! ];
//! let decoder = FrameDecoder::new();
//! if let FrameStatus::Complete { frame, consumed } = decoder.decode(&stream)? {
//!     let reply = Reply::parse(OpCode::GetData, frame)?;
//!     assert_eq!(reply.header.err.to_string(), "NoNode");
//!     assert_eq!(reply.body, ReplyBody::Empty);
//!     assert_eq!(consumed, stream.len());
//! }
//! # Ok::<(), sinew_proto::Error>(())
//! ```

mod codes;
mod frame;
pub mod path;
mod primitives;
mod records;
mod reply;
mod request;
pub mod session;

pub use crate::frame::{FRAME_HEADER_LEN, FrameDecoder, FrameStatus, encode_frame};
pub use codes::{
    AddWatchMode, CreateMode, ErrorCode, EventType, KeeperState, OpCode, Perms, WatcherType,
};
pub use primitives::{List, ListItem, ListIter, ZkStr};
pub use records::{
    Acl, AuthPacket, ClientInfo, ConnectRequest, ConnectResponse, Id, MULTI_HEADER_LEN,
    MultiHeader, PASSWD_LEN, REPLY_HEADER_LEN, REQUEST_HEADER_LEN, ReplyHeader, ReplyHeaderView,
    RequestHeader, RequestHeaderView, STAT_LEN, SetWatches, SetWatches2, Stat, StatView,
    WatcherEvent,
};
pub use reply::{
    Create2Response, GetAclResponse, GetChildren2Response, GetDataResponse, MultiResult, Reply,
    ReplyBody,
};
pub use request::{
    AddWatchRequest, CreateRequest, CreateTtlRequest, MultiOp, PathRequest, PathVersionRequest,
    PathWatchRequest, ReconfigRequest, Request, RequestBody, SetAclRequest, SetDataRequest,
    WatchesRequest,
};

/// ZooKeeper's default `jute.maxbuffer`: the largest frame payload a server accepts and the Java
/// client reads (1,048,575 bytes).
pub const DEFAULT_MAX_FRAME_LEN: usize = 0xfffff;

/// The largest length or count any single buffer, string or vector may state.
///
/// A field can never be longer than the frame that holds it, so this is
/// [`DEFAULT_MAX_FRAME_LEN`]; a larger value is refused with
/// [`Error::TooLarge`](crate::Error::TooLarge) before the bytes present are even looked at.
pub const MAX_LEN: usize = DEFAULT_MAX_FRAME_LEN;

/// The xid of a watch notification (a reply nobody asked for).
pub const NOTIFICATION_XID: i32 = -1;
/// The xid of a ping and its reply.
pub const PING_XID: i32 = -2;
/// The xid of an auth request and its reply.
pub const AUTH_XID: i32 = -4;
/// The xid of a setWatches / setWatches2 request and its reply.
pub const SET_WATCHES_XID: i32 = -8;

#[cfg(test)]
mod tests;
