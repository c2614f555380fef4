//! Replies: the response records, multi results, and [`Reply`] (header + body).

use nom::Parser;

use super::codes::{ErrorCode, OpCode};
use super::primitives::{
    List, ListItem, PResult, Record, Writer, ZkStr, buffer, buffer_len, fail, finish, int,
    record_api, split_buffer, ustring,
};
use super::records::{
    Acl, ClientInfo, MULTI_HEADER_LEN, MultiHeader, REPLY_HEADER_LEN, ReplyHeader, STAT_LEN, Stat,
    WatcherEvent,
};
use super::{AUTH_XID, NOTIFICATION_XID, PING_XID, SET_WATCHES_XID};
use crate::{Error, Result};

/// `{ustring path; Stat stat}`: the reply to create2, createTTL and createContainer.
///
/// Exhaustive on purpose: the fields mirror the jute record of ZooKeeper 3.8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Create2Response<'a> {
    /// The created node's path (with its sequence number, if sequential).
    pub path: ZkStr<'a>,
    /// The created node's `Stat`.
    pub stat: Stat,
}

impl<'a> Record<'a> for Create2Response<'a> {
    fn read(input: &'a [u8]) -> PResult<'a, Create2Response<'a>> {
        (ustring, Stat::read)
            .map(|(path, stat)| Create2Response { path, stat })
            .parse(input)
    }

    fn wire_len(&self) -> usize {
        self.path.encoded_len().saturating_add(STAT_LEN)
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.ustring(self.path)?;
        self.stat.write(w)
    }
}

record_api!(Create2Response<'a>);

/// `{buffer data; Stat stat}`: the reply to getData and reconfig.
///
/// Exhaustive on purpose: the fields mirror the jute record of ZooKeeper 3.8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct GetDataResponse<'a> {
    /// The node's data, borrowed from the frame (`None` is jute's null buffer).
    pub data: Option<&'a [u8]>,
    /// The node's `Stat`.
    pub stat: Stat,
}

impl<'a> GetDataResponse<'a> {
    /// Splits the record off the front of `input`: the buffer by its length, then the `Stat`
    /// taken whole. The hottest reply, so read without nom's result plumbing.
    #[inline]
    fn split(input: &'a [u8]) -> Result<(GetDataResponse<'a>, &'a [u8])> {
        let (data, rest) = split_buffer(input)?;
        let (stat, rest) = rest
            .split_first_chunk::<STAT_LEN>()
            .ok_or(Error::Truncated)?;
        let stat = Stat::from_bytes(stat);
        Ok((GetDataResponse { data, stat }, rest))
    }
}

impl<'a> Record<'a> for GetDataResponse<'a> {
    #[inline]
    fn read(input: &'a [u8]) -> PResult<'a, GetDataResponse<'a>> {
        match GetDataResponse::split(input) {
            Ok((response, rest)) => Ok((rest, response)),
            Err(error) => fail(error),
        }
    }

    fn wire_len(&self) -> usize {
        buffer_len(self.data).saturating_add(STAT_LEN)
    }

    #[inline]
    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.buffer(self.data)?;
        self.stat.write(w)
    }
}

record_api!(GetDataResponse<'a>);

/// `{vector<ACL> acl; Stat stat}`: the reply to getACL.
///
/// Exhaustive on purpose: the fields mirror the jute record of ZooKeeper 3.8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct GetAclResponse<'a> {
    /// The node's ACL.
    pub acl: List<'a, Acl<'a>>,
    /// The node's `Stat`.
    pub stat: Stat,
}

impl<'a> Record<'a> for GetAclResponse<'a> {
    fn read(input: &'a [u8]) -> PResult<'a, GetAclResponse<'a>> {
        (List::read, Stat::read)
            .map(|(acl, stat)| GetAclResponse { acl, stat })
            .parse(input)
    }

    fn wire_len(&self) -> usize {
        self.acl.wire_len().saturating_add(STAT_LEN)
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        self.acl.write(w)?;
        self.stat.write(w)
    }
}

record_api!(GetAclResponse<'a>);

/// `{vector<ustring> children; Stat stat}`: the reply to getChildren2.
///
/// Exhaustive on purpose: the fields mirror the jute record of ZooKeeper 3.8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct GetChildren2Response<'a> {
    /// The children's names (not paths).
    pub children: List<'a, ZkStr<'a>>,
    /// The node's `Stat`.
    pub stat: Stat,
}

impl<'a> Record<'a> for GetChildren2Response<'a> {
    fn read(input: &'a [u8]) -> PResult<'a, GetChildren2Response<'a>> {
        (List::read, Stat::read)
            .map(|(children, stat)| GetChildren2Response { children, stat })
            .parse(input)
    }

    fn wire_len(&self) -> usize {
        self.children.wire_len().saturating_add(STAT_LEN)
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        self.children.write(w)?;
        self.stat.write(w)
    }
}

record_api!(GetChildren2Response<'a>);

// ---------------------------------------------------------------------------------------------
// Multi results
// ---------------------------------------------------------------------------------------------

/// One result of a multi or multiRead reply.
///
/// On the wire each is a [`MultiHeader`] `{type, false, err}` and the result's record; a
/// `{-1, true, -1}` header ends the list. When a multi is aborted, every result is an
/// [`MultiResult::Error`]: [`ErrorCode::Ok`] for the operations before the failing one, the
/// failure's code for it, [`ErrorCode::RuntimeInconsistency`] for those after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[non_exhaustive]
pub enum MultiResult<'a> {
    /// create (1): the created path.
    Create(ZkStr<'a>),
    /// create2 (15), also for createTTL and createContainer: path and `Stat`.
    Create2(Create2Response<'a>),
    /// delete (2): no record.
    Delete,
    /// setData (5): the new `Stat`.
    SetData(Stat),
    /// check (13): no record.
    Check,
    /// getChildren (8), in a multiRead: the children.
    GetChildren(List<'a, ZkStr<'a>>),
    /// getData (4), in a multiRead: data and `Stat`.
    GetData(GetDataResponse<'a>),
    /// error (-1): `ErrorResponse{int err}`.
    Error(ErrorCode),
}

impl MultiResult<'_> {
    /// The op code in the result's header.
    pub const fn op(&self) -> OpCode {
        match self {
            MultiResult::Create(_) => OpCode::Create,
            MultiResult::Create2(_) => OpCode::Create2,
            MultiResult::Delete => OpCode::Delete,
            MultiResult::SetData(_) => OpCode::SetData,
            MultiResult::Check => OpCode::Check,
            MultiResult::GetChildren(_) => OpCode::GetChildren,
            MultiResult::GetData(_) => OpCode::GetData,
            MultiResult::Error(_) => OpCode::Error,
        }
    }

    /// The error of an error result, `None` for a success.
    pub const fn error(&self) -> Option<ErrorCode> {
        match self {
            MultiResult::Error(err) => Some(*err),
            _ => None,
        }
    }
}

impl<'a> Record<'a> for MultiResult<'a> {
    const MIN_LEN: usize = MULTI_HEADER_LEN;
    const MULTI: bool = true;

    fn read(input: &'a [u8]) -> PResult<'a, MultiResult<'a>> {
        let (rest, header) = MultiHeader::read(input)?;
        // Like ZooKeeper's own reader, any result type is taken in either kind of multi, and
        // the error result's code is the one of its ErrorResponse, not of its header.
        match header.op {
            OpCode::Create => ustring.map(MultiResult::Create).parse(rest),
            OpCode::Create2 => Create2Response::read.map(MultiResult::Create2).parse(rest),
            OpCode::Delete => Ok((rest, MultiResult::Delete)),
            OpCode::SetData => Stat::read.map(MultiResult::SetData).parse(rest),
            OpCode::Check => Ok((rest, MultiResult::Check)),
            OpCode::GetChildren => List::read.map(MultiResult::GetChildren).parse(rest),
            OpCode::GetData => GetDataResponse::read.map(MultiResult::GetData).parse(rest),
            OpCode::Error => int
                .map(|err| MultiResult::Error(ErrorCode::from_i32(err)))
                .parse(rest),
            other => fail(other.unexpected()),
        }
    }

    fn wire_len(&self) -> usize {
        let body = match self {
            MultiResult::Create(path) => path.encoded_len(),
            MultiResult::Create2(r) => r.wire_len(),
            MultiResult::Delete | MultiResult::Check => 0,
            MultiResult::SetData(_) => STAT_LEN,
            MultiResult::GetChildren(children) => children.wire_len(),
            MultiResult::GetData(r) => r.wire_len(),
            MultiResult::Error(_) => 4,
        };
        MULTI_HEADER_LEN.saturating_add(body)
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        MultiHeader {
            op: self.op(),
            done: false,
            err: self.error().map_or(0, ErrorCode::to_i32),
        }
        .write(w)?;
        match self {
            MultiResult::Create(path) => w.ustring(*path),
            MultiResult::Create2(r) => r.write(w),
            MultiResult::Delete | MultiResult::Check => Ok(()),
            MultiResult::SetData(stat) => stat.write(w),
            MultiResult::GetChildren(children) => children.write(w),
            MultiResult::GetData(r) => r.write(w),
            MultiResult::Error(err) => w.int(err.to_i32()),
        }
    }
}

impl<'a> ListItem<'a> for MultiResult<'a> {}

record_api!(MultiResult<'a>);

// ---------------------------------------------------------------------------------------------
// Reply
// ---------------------------------------------------------------------------------------------

/// The body of a reply, by shape; which shape comes back is fixed by the op code of the
/// request answered (see [`Reply::parse`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[non_exhaustive]
pub enum ReplyBody<'a> {
    /// No body: every reply whose `err` is not [`ErrorCode::Ok`]; ping, auth and setWatches
    /// replies; delete, deleteContainer, checkWatches, removeWatches, setWatches(2),
    /// closeSession.
    Empty,
    /// A watch notification (xid -1).
    Notification(WatcherEvent<'a>),
    /// `{ustring path}`: create, sync.
    Path(ZkStr<'a>),
    /// `{ustring path; Stat stat}`: create2, createTTL, createContainer.
    Created(Create2Response<'a>),
    /// `Stat`: exists, setData, setACL (and check, should a server answer one).
    Stat(Stat),
    /// `{buffer data; Stat stat}`: getData, reconfig (the new configuration).
    Data(GetDataResponse<'a>),
    /// `{vector<ACL> acl; Stat stat}`: getACL.
    Acl(GetAclResponse<'a>),
    /// `{vector<ustring>}`: getChildren (names), getEphemerals (paths).
    Children(List<'a, ZkStr<'a>>),
    /// `{vector<ustring> children; Stat stat}`: getChildren2.
    Children2(GetChildren2Response<'a>),
    /// The results of a multi or multiRead.
    Multi(List<'a, MultiResult<'a>>),
    /// `{buffer token}`: sasl.
    Sasl(Option<&'a [u8]>),
    /// `{int totalNumber}`: getAllChildrenNumber.
    Count(i32),
    /// `ErrorResponse{int err}`: addWatch (always 0 from ZooKeeper).
    Status(ErrorCode),
    /// `{vector<ClientInfo>}`: whoAmI.
    WhoAmI(List<'a, ClientInfo<'a>>),
    /// The reply to a request of an op code this crate does not parse: the body, unparsed.
    Other {
        /// The op code of the request answered.
        #[cfg_attr(
            feature = "arbitrary",
            arbitrary(with = super::request::arbitrary_other_op)
        )]
        op: OpCode,
        /// The body.
        body: &'a [u8],
    },
}

impl<'a> ReplyBody<'a> {
    /// Parses the body of a successful reply (`err` 0, an ordinary xid) to a request with op
    /// code `op`.
    ///
    /// The body must fill `body` exactly, except after createContainer, whose reply may carry
    /// trailing bytes (they are ignored). A check reply may be empty or a `Stat`.
    ///
    /// # Errors
    /// [`Error::Truncated`], [`Error::TrailingBytes`], [`Error::BadLength`],
    /// [`Error::TooLarge`], and [`Error::UnexpectedOp`] for a multi result of a type no multi
    /// returns.
    #[inline]
    pub fn parse(op: OpCode, body: &'a [u8]) -> Result<ReplyBody<'a>> {
        let (rest, parsed) = read_body(op, body)?;
        if rest.is_empty() || op == OpCode::CreateContainer {
            Ok(parsed)
        } else {
            Err(Error::TrailingBytes)
        }
    }

    /// An op code whose reply has this shape: an `op` for which [`Reply::parse`] gives this
    /// body back (used to round-trip replies). For a notification any op does, as its xid
    /// decides.
    pub const fn reply_to(&self) -> OpCode {
        match self {
            ReplyBody::Empty | ReplyBody::Notification(_) => OpCode::Delete,
            ReplyBody::Path(_) => OpCode::Create,
            ReplyBody::Created(_) => OpCode::Create2,
            ReplyBody::Stat(_) => OpCode::Exists,
            ReplyBody::Data(_) => OpCode::GetData,
            ReplyBody::Acl(_) => OpCode::GetAcl,
            ReplyBody::Children(_) => OpCode::GetChildren,
            ReplyBody::Children2(_) => OpCode::GetChildren2,
            ReplyBody::Multi(_) => OpCode::Multi,
            ReplyBody::Sasl(_) => OpCode::Sasl,
            ReplyBody::Count(_) => OpCode::GetAllChildrenNumber,
            ReplyBody::Status(_) => OpCode::AddWatch,
            ReplyBody::WhoAmI(_) => OpCode::WhoAmI,
            ReplyBody::Other { op, .. } => *op,
        }
    }

    /// The exact encoded length of the body.
    #[inline]
    pub fn encoded_len(&self) -> usize {
        match self {
            ReplyBody::Empty => 0,
            ReplyBody::Notification(r) => r.wire_len(),
            ReplyBody::Path(path) => path.encoded_len(),
            ReplyBody::Created(r) => r.wire_len(),
            ReplyBody::Stat(_) => STAT_LEN,
            ReplyBody::Data(r) => r.wire_len(),
            ReplyBody::Acl(r) => r.wire_len(),
            ReplyBody::Children(children) => children.wire_len(),
            ReplyBody::Children2(r) => r.wire_len(),
            ReplyBody::Multi(results) => results.wire_len(),
            ReplyBody::Sasl(token) => buffer_len(*token),
            ReplyBody::Count(_) | ReplyBody::Status(_) => 4,
            ReplyBody::WhoAmI(infos) => infos.wire_len(),
            ReplyBody::Other { body, .. } => body.len(),
        }
    }

    #[inline]
    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        match self {
            ReplyBody::Empty => Ok(()),
            ReplyBody::Notification(r) => r.write(w),
            ReplyBody::Path(path) => w.ustring(*path),
            ReplyBody::Created(r) => r.write(w),
            ReplyBody::Stat(stat) => stat.write(w),
            ReplyBody::Data(r) => r.write(w),
            ReplyBody::Acl(r) => r.write(w),
            ReplyBody::Children(children) => children.write(w),
            ReplyBody::Children2(r) => r.write(w),
            ReplyBody::Multi(results) => results.write(w),
            ReplyBody::Sasl(token) => w.buffer(*token),
            ReplyBody::Count(count) => w.int(*count),
            ReplyBody::Status(err) => w.int(err.to_i32()),
            ReplyBody::WhoAmI(infos) => infos.write(w),
            ReplyBody::Other { body, .. } => w.bytes(body),
        }
    }
}

/// Reads the body of a successful reply to `op`; returns the bytes after it.
///
/// Each arm converts its parser's result on the spot (rather than through nom's `map`), so that
/// the hot replies are built in place instead of being moved through nested results.
#[inline]
fn read_body(op: OpCode, input: &[u8]) -> Result<(&[u8], ReplyBody<'_>)> {
    use ReplyBody as B;
    macro_rules! body {
        ($read:expr, $variant:expr) => {{
            let (rest, value) = finish($read(input))?;
            (rest, $variant(value))
        }};
    }
    Ok(match op {
        OpCode::GetData | OpCode::Reconfig => {
            // The Stat must end the frame, which is checked before it is read so that it is
            // read straight into place (a well-formed reply took `Reply::parse_data` instead).
            let (data, stat) = split_buffer(input)?;
            let stat: &[u8; STAT_LEN] = match stat.try_into() {
                Ok(stat) => stat,
                Err(_) if stat.len() < STAT_LEN => return Err(Error::Truncated),
                Err(_) => return Err(Error::TrailingBytes),
            };
            let stat = Stat::from_bytes(stat);
            (&[][..], B::Data(GetDataResponse { data, stat }))
        }
        OpCode::Create | OpCode::Sync => body!(ustring, B::Path),
        OpCode::Create2 | OpCode::CreateTtl | OpCode::CreateContainer => {
            body!(Create2Response::read, B::Created)
        }
        OpCode::Exists | OpCode::SetData | OpCode::SetAcl => body!(Stat::read, B::Stat),
        OpCode::Check if input.is_empty() => (input, B::Empty),
        OpCode::Check => body!(Stat::read, B::Stat),
        OpCode::GetAcl => body!(GetAclResponse::read, B::Acl),
        OpCode::GetChildren | OpCode::GetEphemerals => body!(List::read, B::Children),
        OpCode::GetChildren2 => body!(GetChildren2Response::read, B::Children2),
        OpCode::Multi | OpCode::MultiRead => body!(List::read, B::Multi),
        OpCode::Sasl => body!(buffer, B::Sasl),
        OpCode::GetAllChildrenNumber => body!(int, B::Count),
        OpCode::AddWatch => body!(int, |err| B::Status(ErrorCode::from_i32(err))),
        OpCode::WhoAmI => body!(List::read, B::WhoAmI),
        OpCode::Delete
        | OpCode::DeleteContainer
        | OpCode::Ping
        | OpCode::Auth
        | OpCode::SetWatches
        | OpCode::SetWatches2
        | OpCode::CheckWatches
        | OpCode::RemoveWatches
        | OpCode::CloseSession => (input, B::Empty),
        OpCode::Notification | OpCode::CreateSession | OpCode::Error | OpCode::Unknown(_) => {
            (&[], B::Other { op, body: input })
        }
    })
}

/// A reply after the handshake: [`ReplyHeader`] `{int xid; long zxid; int err}` and a body.
///
/// ```
/// use sinew_proto::zk::{ErrorCode, OpCode, Reply, ReplyBody};
///
/// // The reply to a getData (xid 7) for a node that does not exist: a bare header.
/// let payload = [0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0x2a, 0xff, 0xff, 0xff, 0x9b];
/// let reply = Reply::parse(OpCode::GetData, &payload)?;
/// assert_eq!(reply.header.err, ErrorCode::NoNode);
/// assert_eq!(reply.body, ReplyBody::Empty);
/// # Ok::<(), sinew_proto::Error>(())
/// ```
///
/// Exhaustive on purpose: a reply is a header and a body, as on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Reply<'a> {
    /// xid, zxid and outcome.
    pub header: ReplyHeader,
    /// The body ([`ReplyBody::Empty`] when `header.err` is not [`ErrorCode::Ok`]).
    pub body: ReplyBody<'a>,
}

impl<'a> Reply<'a> {
    /// Parses a reply frame's payload (the bytes after the 4-byte length), given the op code of
    /// the request it answers.
    ///
    /// Replies to ordinary requests arrive in request order, so `op` is the op of the oldest
    /// request still waiting. The special xids decide before `op` does: xid -1 is a
    /// notification ([`ReplyBody::Notification`]), xids -2 (ping), -4 (auth) and -8
    /// (setWatches) have no body. A reply whose `err` is not 0 has no body either; bytes after
    /// its header are ignored, as ZooKeeper's Java client ignores them (the server can send a
    /// body along with an error for some writes).
    ///
    /// # Errors
    /// [`Error::Truncated`] if the payload ends early, [`Error::TrailingBytes`] if bytes are
    /// left over (except after createContainer), [`Error::BadLength`] for a negative length
    /// other than -1, [`Error::TooLarge`] for a length or count above
    /// [`MAX_LEN`](super::MAX_LEN), [`Error::UnexpectedOp`] for a multi result of a type no
    /// multi returns. An unknown op code is not an error: it gives [`ReplyBody::Other`].
    #[inline]
    pub fn parse(op: OpCode, payload: &'a [u8]) -> Result<Reply<'a>> {
        if matches!(op, OpCode::GetData | OpCode::Reconfig)
            && let Some(reply) = Reply::parse_data(payload)
        {
            return Ok(reply);
        }
        Reply::parse_any(op, payload)
    }

    /// The hottest reply, a successful getData, when it is well formed: the fixed parts (header
    /// and data length, then the `Stat` that must end the frame right after the data) are
    /// located by one length comparison and read at fixed offsets. `None` for anything else
    /// (an error, a special xid, null data, a bad length, a short or long frame), which
    /// [`parse_any`](Self::parse_any) then reads, telling the errors apart.
    #[inline]
    fn parse_data(payload: &'a [u8]) -> Option<Reply<'a>> {
        const HEAD: usize = REPLY_HEADER_LEN + 4;
        let (head, rest) = payload.split_first_chunk::<HEAD>()?;
        let (header, len) = head.split_first_chunk::<REPLY_HEADER_LEN>()?;
        let header = ReplyHeader::from_bytes_ok(header)?;
        // A negative length is above MAX_LEN as unsigned; MAX_LEN + STAT_LEN cannot overflow.
        let len = i32::from_be_bytes(len.first_chunk::<4>().copied()?) as u32 as usize;
        if len > super::MAX_LEN || rest.len() != len + STAT_LEN {
            return None;
        }
        let (data, stat) = rest.split_at_checked(len)?;
        let stat = Stat::from_bytes(stat.first_chunk::<STAT_LEN>()?);
        Some(Reply {
            header,
            body: ReplyBody::Data(GetDataResponse {
                data: Some(data),
                stat,
            }),
        })
    }

    /// [`parse`](Self::parse) of every reply.
    #[inline]
    fn parse_any(op: OpCode, payload: &'a [u8]) -> Result<Reply<'a>> {
        let Some((header, body)) = payload.split_first_chunk::<REPLY_HEADER_LEN>() else {
            return Err(Error::Truncated);
        };
        let header = ReplyHeader::from_bytes(header);
        let body = match header.xid {
            NOTIFICATION_XID => ReplyBody::Notification(WatcherEvent::parse(body)?),
            _ if !header.err.is_ok() => ReplyBody::Empty,
            PING_XID | AUTH_XID | SET_WATCHES_XID if body.is_empty() => ReplyBody::Empty,
            PING_XID | AUTH_XID | SET_WATCHES_XID => return Err(Error::TrailingBytes),
            _ => ReplyBody::parse(op, body)?,
        };
        Ok(Reply { header, body })
    }

    /// A reply that is only a header: an error, or a reply without a body.
    pub const fn header_only(xid: i32, zxid: i64, err: ErrorCode) -> Reply<'static> {
        Reply {
            header: ReplyHeader { xid, zxid, err },
            body: ReplyBody::Empty,
        }
    }

    /// Whether this is a watch notification.
    pub const fn is_notification(&self) -> bool {
        self.header.xid == NOTIFICATION_XID
    }

    /// The exact length of [`encode`](Self::encode)'s output (without the frame length).
    #[inline]
    pub fn encoded_len(&self) -> usize {
        REPLY_HEADER_LEN.saturating_add(self.body.encoded_len())
    }

    /// Writes the header and body (no frame length) into the front of `buf`; returns the bytes
    /// written. The body is written as it is, even with an error in the header.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] if `buf` is shorter than [`encoded_len`](Self::encoded_len),
    /// [`Error::TooLarge`] if a string, buffer or vector is longer than jute can say.
    #[inline]
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize> {
        match &self.body {
            ReplyBody::Data(response) => self.encode_data(response, buf),
            _ => self.encode_any(buf),
        }
    }

    /// [`encode`](Self::encode) of every reply; out of line, so that the getData reply's
    /// fast path stays small enough to be inlined.
    fn encode_any(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.encoded_len();
        let out = buf.get_mut(..len).ok_or(Error::BufferTooSmall)?;
        let mut w = Writer::new(out);
        self.header.write_to(w.fixed::<REPLY_HEADER_LEN>()?);
        self.body.write(&mut w)?;
        Ok(len)
    }

    /// The hottest reply (getData), written at offsets computed once: header and data length
    /// at fixed offsets, the data, then the `Stat` that ends the frame.
    #[inline]
    fn encode_data(&self, response: &GetDataResponse<'_>, buf: &mut [u8]) -> Result<usize> {
        const HEAD: usize = REPLY_HEADER_LEN + 4;
        let data = response.data.unwrap_or(&[]);
        let data_len = match response.data {
            Some(data) => i32::try_from(data.len()).map_err(|_| Error::TooLarge)?,
            None => -1,
        };
        let len = HEAD + data.len() + STAT_LEN;
        let out = buf.get_mut(..len).ok_or(Error::BufferTooSmall)?;
        let (head, rest) = out
            .split_first_chunk_mut::<HEAD>()
            .ok_or(Error::BufferTooSmall)?;
        let (header, length) = head.split_at_mut(REPLY_HEADER_LEN);
        if let Some(header) = header.first_chunk_mut::<REPLY_HEADER_LEN>() {
            self.header.write_to(header);
        }
        length.copy_from_slice(&data_len.to_be_bytes());
        let (out_data, stat) = rest.split_at_mut(data.len());
        out_data.copy_from_slice(data);
        let stat = stat
            .first_chunk_mut::<STAT_LEN>()
            .ok_or(Error::BufferTooSmall)?;
        response.stat.write_to(stat);
        Ok(len)
    }
}

super::frame::framed_api!(Reply<'a>);

// ---------------------------------------------------------------------------------------------
// A parsed body kept without its borrow
// ---------------------------------------------------------------------------------------------

/// A parsed [`ReplyBody`] that no longer borrows its payload: the body with its one borrowed
/// part (path, data, list, token or raw body) emptied, and where that part lies in the payload.
///
/// The session checks a reply when it looks at the frame and hands the body out later, with
/// state changes between that must not hold a borrow of the receive buffer; this is how it keeps
/// the first parse instead of parsing again. [`attach`](Self::attach) gives the body back over
/// the same bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DetachedBody {
    /// The body, its borrowed part null or empty.
    shape: ReplyBody<'static>,
    /// The borrowed part's place in the payload and, for a list, its count; `None` when the
    /// part is null (or the body has none).
    part: Option<(usize, usize, u32)>,
}

impl DetachedBody {
    /// Detaches `body`, parsed from `payload`.
    pub(crate) fn new(body: ReplyBody<'_>, payload: &[u8]) -> DetachedBody {
        use ReplyBody as B;
        // Every borrowed part of a parsed body is a subslice of its payload.
        let span = |part: &[u8], count: u32| {
            let start = part.as_ptr().addr().checked_sub(payload.as_ptr().addr())?;
            let end = start.checked_add(part.len())?;
            (end <= payload.len()).then_some((start, end, count))
        };
        let string = |s: ZkStr<'_>| s.to_wire().and_then(|bytes| span(bytes, 0));
        let bytes = |b: Option<&[u8]>| b.and_then(|bytes| span(bytes, 0));
        macro_rules! list {
            ($list:expr) => {
                $list
                    .wire_parts()
                    .and_then(|(count, bytes)| span(bytes, count))
            };
        }
        let (shape, part) = match body {
            B::Empty => (B::Empty, None),
            B::Stat(stat) => (B::Stat(stat), None),
            B::Count(count) => (B::Count(count), None),
            B::Status(err) => (B::Status(err), None),
            B::Notification(event) => (
                B::Notification(WatcherEvent {
                    path: ZkStr::NULL,
                    ..event
                }),
                string(event.path),
            ),
            B::Path(path) => (B::Path(ZkStr::NULL), string(path)),
            B::Created(r) => (
                B::Created(Create2Response {
                    path: ZkStr::NULL,
                    stat: r.stat,
                }),
                string(r.path),
            ),
            B::Data(r) => (
                B::Data(GetDataResponse {
                    data: None,
                    stat: r.stat,
                }),
                bytes(r.data),
            ),
            B::Acl(r) => (
                B::Acl(GetAclResponse {
                    acl: List::null(),
                    stat: r.stat,
                }),
                list!(r.acl),
            ),
            B::Children(children) => (B::Children(List::null()), list!(children)),
            B::Children2(r) => (
                B::Children2(GetChildren2Response {
                    children: List::null(),
                    stat: r.stat,
                }),
                list!(r.children),
            ),
            B::Multi(results) => (B::Multi(List::null()), list!(results)),
            B::Sasl(token) => (B::Sasl(None), bytes(token)),
            B::WhoAmI(infos) => (B::WhoAmI(List::null()), list!(infos)),
            B::Other { op, body } => (B::Other { op, body: &[] }, span(body, 0)),
        };
        DetachedBody { shape, part }
    }

    /// The borrowed part lost its last `n` bytes: its elements were rewritten shorter in place
    /// (the session strips the chroot from the paths of a list so).
    pub(crate) fn shorten(&mut self, n: usize) {
        if let Some((start, end, count)) = self.part {
            self.part = Some((start, end.saturating_sub(n).max(start), count));
        }
    }

    /// The body again, over `payload`: the bytes it was parsed from (or rewritten as
    /// [`shorten`](Self::shorten) says).
    pub(crate) fn attach(self, payload: &[u8]) -> ReplyBody<'_> {
        use ReplyBody as B;
        let Some((start, end, count)) = self.part else {
            return self.shape;
        };
        let part = payload.get(start..end).unwrap_or_default();
        match self.shape {
            B::Notification(event) => B::Notification(WatcherEvent {
                path: ZkStr::from_bytes(part),
                ..event
            }),
            B::Path(_) => B::Path(ZkStr::from_bytes(part)),
            B::Created(r) => B::Created(Create2Response {
                path: ZkStr::from_bytes(part),
                stat: r.stat,
            }),
            B::Data(r) => B::Data(GetDataResponse {
                data: Some(part),
                stat: r.stat,
            }),
            B::Acl(r) => B::Acl(GetAclResponse {
                acl: List::from_wire_parts(count, part),
                stat: r.stat,
            }),
            B::Children(_) => B::Children(List::from_wire_parts(count, part)),
            B::Children2(r) => B::Children2(GetChildren2Response {
                children: List::from_wire_parts(count, part),
                stat: r.stat,
            }),
            B::Multi(_) => B::Multi(List::from_wire_parts(count, part)),
            B::Sasl(_) => B::Sasl(Some(part)),
            B::WhoAmI(_) => B::WhoAmI(List::from_wire_parts(count, part)),
            B::Other { op, .. } => B::Other { op, body: part },
            shape @ (B::Empty | B::Stat(_) | B::Count(_) | B::Status(_)) => shape,
        }
    }
}

#[cfg(feature = "arbitrary")]
impl<'a> arbitrary::Arbitrary<'a> for Reply<'a> {
    /// A consistent reply: one that [`Reply::parse`] with `body.reply_to()` gives back.
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Reply<'a>> {
        let body: ReplyBody<'a> = u.arbitrary()?;
        let mut header: ReplyHeader = u.arbitrary()?;
        let special = matches!(
            header.xid,
            NOTIFICATION_XID | PING_XID | AUTH_XID | SET_WATCHES_XID
        );
        match body {
            ReplyBody::Notification(_) => header.xid = NOTIFICATION_XID,
            ReplyBody::Empty if header.xid == NOTIFICATION_XID => header.xid = 1,
            ReplyBody::Empty => {}
            _ => {
                header.err = ErrorCode::Ok;
                if special {
                    header.xid = 1;
                }
            }
        }
        Ok(Reply { header, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    proptest! {
        /// The getData fast path reads exactly what the general path reads, and leaves
        /// everything else (errors, special xids, null or bad lengths, short or long frames)
        /// to it.
        #[test]
        fn get_data_fast_path_agrees_with_the_general_one(
            xid in prop_oneof![Just(-8i32), Just(-2), Just(-1), Just(0), any::<i32>()],
            zxid: i64,
            err in prop_oneof![Just(0i32), Just(-101), any::<i32>()],
            len in prop_oneof![Just(-1i32), Just(-2), 0i32..8, Just(i32::MAX)],
            data_delta in prop_oneof![Just(0usize), 0usize..3],
            stat_len in prop_oneof![Just(STAT_LEN), 60usize..76],
            byte: u8,
            reconfig: bool,
        ) {
            // Mostly as much data as the length says (when it says something small).
            let data = std::vec![byte; usize::try_from(len).unwrap_or(0).min(8) + data_delta];
            let stat = std::vec![byte.wrapping_add(1); stat_len];
            let mut payload = Vec::new();
            payload.extend_from_slice(&xid.to_be_bytes());
            payload.extend_from_slice(&zxid.to_be_bytes());
            payload.extend_from_slice(&err.to_be_bytes());
            payload.extend_from_slice(&len.to_be_bytes());
            payload.extend_from_slice(&data);
            payload.extend_from_slice(&stat);
            let op = if reconfig { OpCode::Reconfig } else { OpCode::GetData };
            for end in [payload.len(), 20, 19, 16, 0] {
                let bytes = &payload[..end.min(payload.len())];
                let general = Reply::parse_any(op, bytes);
                if let Some(fast) = Reply::parse_data(bytes) {
                    prop_assert_eq!(Ok(fast), general);
                }
                prop_assert_eq!(Reply::parse(op, bytes), general);
            }
        }

        /// A body detached from the payload it was parsed from and attached again is the body.
        #[cfg(feature = "arbitrary")]
        #[test]
        fn detached_body_attaches_to_what_was_parsed(seed in proptest::collection::vec(any::<u8>(), 0..600)) {
            use arbitrary::Arbitrary;
            let mut u = arbitrary::Unstructured::new(&seed);
            let Ok(reply) = Reply::arbitrary(&mut u) else { return Ok(()) };
            let mut buf = std::vec![0xa5; reply.encoded_len()];
            let n = reply.encode(&mut buf).unwrap();
            let payload = &buf[..n];
            let parsed = Reply::parse(reply.body.reply_to(), payload).unwrap();
            let back = DetachedBody::new(parsed.body, payload).attach(payload);
            prop_assert_eq!(back, parsed.body);
            // The same bytes, not a copy that happens to be equal.
            if let (ReplyBody::Data(a), ReplyBody::Data(b)) = (back, parsed.body) {
                prop_assert_eq!(a.data.map(<[u8]>::as_ptr), b.data.map(<[u8]>::as_ptr));
            }
        }
    }
}
