//! The records shared by requests and replies: the fixed-size headers and `Stat` (read at fixed
//! offsets), ACLs, the session handshake, authentication, watch re-registration and watch
//! notifications.

use nom::Parser;
use nom::combinator::opt;

use super::codes::{ErrorCode, EventType, KeeperState, OpCode, Perms};
use super::primitives::{
    List, ListItem, PResult, Record, Writer, ZkStr, boolean, buffer, buffer_len, fixed, int, long,
    record_api, ustring,
};
use crate::{Error, Result};

/// The `M` bytes at `at` of a fixed-size record.
#[inline(always)]
fn read_at<const N: usize, const M: usize>(bytes: &[u8; N], at: usize) -> [u8; M] {
    let mut out = [0; M];
    // Offsets are constants inside the record, so this check folds away.
    if let Some(src) = bytes.get(at..at + M) {
        out.copy_from_slice(src);
    }
    out
}

#[inline(always)]
fn write_at<const N: usize, const M: usize>(out: &mut [u8; N], at: usize, src: [u8; M]) {
    if let Some(dst) = out.get_mut(at..at + M) {
        dst.copy_from_slice(&src);
    }
}

/// A fixed-size record: an owned `Copy` struct read and written at fixed offsets, and a
/// zero-copy view over a buffer that reads the same offsets after one length check.
macro_rules! fixed_record {
    (
        $(#[$meta:meta])*
        pub struct $name:ident / $view:ident, $len:ident = $total:literal {
            $( $(#[$fmeta:meta])* $field:ident: $ty:ty = $raw:ident @ $at:literal, )*
        }
    ) => {
        #[doc = concat!("Length of an encoded [`", stringify!($name), "`].")]
        pub const $len: usize = $total;

        // The offsets in the table must add up to the length.
        const _: () = assert!(0 $( + core::mem::size_of::<$raw>() )* == $total);

        $(#[$meta])*
        ///
        /// Exhaustive on purpose: the fields mirror the record's fixed wire layout.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        #[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl $name {
            /// Reads the record at its fixed offsets.
            #[inline]
            pub fn from_bytes(bytes: &[u8; $total]) -> $name {
                $name { $( $field: <$ty>::from($raw::from_be_bytes(read_at(bytes, $at))), )* }
            }

            /// Writes the record at its fixed offsets.
            #[inline]
            pub fn write_to(&self, out: &mut [u8; $total]) {
                $( write_at(out, $at, $raw::from(self.$field).to_be_bytes()); )*
            }

            /// The encoded record.
            pub fn to_bytes(&self) -> [u8; $total] {
                let mut out = [0; $total];
                self.write_to(&mut out);
                out
            }

            #[doc = concat!("Parses a record that must be exactly [`", stringify!($len), "`] bytes.")]
            ///
            /// # Errors
            /// [`Error::Truncated`] if shorter, [`Error::TrailingBytes`] if longer.
            pub fn parse(bytes: &[u8]) -> Result<$name> {
                match bytes.first_chunk::<$total>() {
                    Some(chunk) if bytes.len() == $total => Ok($name::from_bytes(chunk)),
                    Some(_) => Err(Error::TrailingBytes),
                    None => Err(Error::Truncated),
                }
            }

            #[doc = concat!("The encoded length: always [`", stringify!($len), "`].")]
            pub const fn encoded_len(&self) -> usize {
                $total
            }

            /// Writes the record into the front of `buf`; returns the bytes written.
            ///
            /// # Errors
            /// [`Error::BufferTooSmall`] if `buf` is too short.
            pub fn encode(&self, buf: &mut [u8]) -> Result<usize> {
                let out = buf.first_chunk_mut::<$total>().ok_or(Error::BufferTooSmall)?;
                self.write_to(out);
                Ok($total)
            }
        }

        impl<'a> Record<'a> for $name {
            const MIN_LEN: usize = $total;

            #[inline]
            fn read(input: &'a [u8]) -> PResult<'a, $name> {
                let (rest, bytes) = fixed::<$total>(input)?;
                Ok((rest, $name::from_bytes(bytes)))
            }

            fn wire_len(&self) -> usize {
                $total
            }

            #[inline]
            fn write(&self, w: &mut Writer<'_>) -> Result<()> {
                self.write_to(w.fixed::<$total>()?);
                Ok(())
            }
        }

        #[doc = concat!("A zero-copy view of a [`", stringify!($name), "`] at the start of a buffer.")]
        ///
        /// After [`new_checked`](Self::new_checked) has succeeded no accessor can fail or panic;
        /// each reads its field at a fixed offset.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $view<T: AsRef<[u8]>> {
            buffer: T,
        }

        impl<T: AsRef<[u8]>> $view<T> {
            #[doc = concat!("Checks that `buffer` holds at least [`", stringify!($len), "`] bytes and wraps it.")]
            ///
            /// # Errors
            /// [`Error::Truncated`] if it is shorter.
            pub fn new_checked(buffer: T) -> Result<$view<T>> {
                if buffer.as_ref().len() < $total {
                    return Err(Error::Truncated);
                }
                Ok($view { buffer })
            }

            #[inline]
            fn bytes(&self) -> &[u8; $total] {
                // Infallible after `new_checked`; the fallback keeps the accessors panic-free.
                self.buffer.as_ref().first_chunk::<$total>().unwrap_or(&[0; $total])
            }

            $(
                $(#[$fmeta])*
                #[inline]
                pub fn $field(&self) -> $ty {
                    <$ty>::from($raw::from_be_bytes(read_at(self.bytes(), $at)))
                }
            )*

            /// All fields, copied out.
            pub fn to_record(&self) -> $name {
                $name::from_bytes(self.bytes())
            }

            /// The bytes after the record.
            pub fn rest(&self) -> &[u8] {
                self.buffer.as_ref().get($total..).unwrap_or(&[])
            }

            /// The wrapped buffer.
            pub fn into_inner(self) -> T {
                self.buffer
            }
        }
    };
}

fixed_record! {
    /// A node's metadata (68 bytes), as getData, exists, setData and others return it.
    #[derive(Default)]
    pub struct Stat / StatView, STAT_LEN = 68 {
        /// The zxid of the change that created the node.
        czxid: i64 = i64 @ 0,
        /// The zxid of the change that last modified the node.
        mzxid: i64 = i64 @ 8,
        /// Creation time, milliseconds since the epoch.
        ctime: i64 = i64 @ 16,
        /// Last modification time, milliseconds since the epoch.
        mtime: i64 = i64 @ 24,
        /// The number of changes to the data.
        version: i32 = i32 @ 32,
        /// The number of changes to the children.
        cversion: i32 = i32 @ 36,
        /// The number of changes to the ACL.
        aversion: i32 = i32 @ 40,
        /// The session id of the owner if the node is ephemeral, else 0.
        ephemeral_owner: i64 = i64 @ 44,
        /// The length of the data.
        data_length: i32 = i32 @ 52,
        /// The number of children.
        num_children: i32 = i32 @ 56,
        /// The zxid of the change that last modified the children.
        pzxid: i64 = i64 @ 60,
    }
}

fixed_record! {
    /// The header of every request after the handshake (8 bytes).
    pub struct RequestHeader / RequestHeaderView, REQUEST_HEADER_LEN = 8 {
        /// The request's id, echoed by the reply: 1, 2, … for ordinary requests, or one of the
        /// special xids ([`PING_XID`](super::PING_XID), [`AUTH_XID`](super::AUTH_XID),
        /// [`SET_WATCHES_XID`](super::SET_WATCHES_XID)).
        xid: i32 = i32 @ 0,
        /// The operation.
        op: OpCode = i32 @ 4,
    }
}

fixed_record! {
    /// The header of every reply after the handshake (16 bytes).
    pub struct ReplyHeader / ReplyHeaderView, REPLY_HEADER_LEN = 16 {
        /// The xid of the request answered, or [`NOTIFICATION_XID`](super::NOTIFICATION_XID).
        xid: i32 = i32 @ 0,
        /// The last zxid the server had processed (-1 in notifications before ZooKeeper 3.9).
        zxid: i64 = i64 @ 4,
        /// The outcome; a reply whose `err` is not [`ErrorCode::Ok`] has no body.
        err: ErrorCode = i32 @ 12,
    }
}

impl ReplyHeader {
    /// The header, if its `err` is 0 and its xid is not negative (not one of the special
    /// xids): the common reply, read without looking its error code up.
    #[inline]
    pub(crate) fn from_bytes_ok(bytes: &[u8; REPLY_HEADER_LEN]) -> Option<ReplyHeader> {
        let xid = i32::from_be_bytes(read_at(bytes, 0));
        let err = i32::from_be_bytes(read_at(bytes, 12));
        (err == 0 && xid >= 0).then(|| ReplyHeader {
            xid,
            zxid: i64::from_be_bytes(read_at(bytes, 4)),
            err: ErrorCode::Ok,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// MultiHeader
// ---------------------------------------------------------------------------------------------

/// Length of an encoded [`MultiHeader`].
pub const MULTI_HEADER_LEN: usize = 9;

/// The header before each operation of a multi request and each result of a multi reply; a
/// header with `done` set ends the sequence (9 bytes).
///
/// Exhaustive on purpose: the fields mirror the jute record of ZooKeeper 3.8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct MultiHeader {
    /// The operation, or [`OpCode::Error`] for a failed result and the end header.
    pub op: OpCode,
    /// Set only in the header that ends the sequence.
    pub done: bool,
    /// -1 in requests; in replies 0, or the error code of a failed result.
    pub err: i32,
}

impl MultiHeader {
    /// The header that ends every multi request and reply: `{-1, true, -1}`.
    pub const END: MultiHeader = MultiHeader {
        op: OpCode::Error,
        done: true,
        err: -1,
    };

    /// Reads the header at its fixed offsets (type 0..4, done 4, err 5..9).
    #[inline]
    pub fn from_bytes(bytes: &[u8; MULTI_HEADER_LEN]) -> MultiHeader {
        MultiHeader {
            op: OpCode::from_i32(i32::from_be_bytes(read_at(bytes, 0))),
            done: bytes[4] != 0,
            err: i32::from_be_bytes(read_at(bytes, 5)),
        }
    }

    /// Writes the header at its fixed offsets.
    #[inline]
    pub fn write_to(&self, out: &mut [u8; MULTI_HEADER_LEN]) {
        write_at(out, 0, self.op.to_i32().to_be_bytes());
        out[4] = u8::from(self.done);
        write_at(out, 5, self.err.to_be_bytes());
    }
}

impl<'a> Record<'a> for MultiHeader {
    const MIN_LEN: usize = MULTI_HEADER_LEN;

    fn read(input: &'a [u8]) -> PResult<'a, MultiHeader> {
        let (rest, bytes) = fixed::<MULTI_HEADER_LEN>(input)?;
        Ok((rest, MultiHeader::from_bytes(bytes)))
    }

    fn wire_len(&self) -> usize {
        MULTI_HEADER_LEN
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        self.write_to(w.fixed::<MULTI_HEADER_LEN>()?);
        Ok(())
    }
}

impl MultiHeader {
    /// Parses a header that must be exactly [`MULTI_HEADER_LEN`] bytes.
    ///
    /// # Errors
    /// [`Error::Truncated`] if shorter, [`Error::TrailingBytes`] if longer.
    pub fn parse(bytes: &[u8]) -> Result<MultiHeader> {
        super::primitives::parse_exact(bytes)
    }

    /// The encoded length: always [`MULTI_HEADER_LEN`].
    pub const fn encoded_len(&self) -> usize {
        MULTI_HEADER_LEN
    }

    /// Writes the header into the front of `buf`; returns the bytes written.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] if `buf` is too short.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize> {
        super::primitives::encode_record(self, buf)
    }
}

// ---------------------------------------------------------------------------------------------
// ACLs and identities
// ---------------------------------------------------------------------------------------------

/// An identity: `{ustring scheme; ustring id}`, e.g. `world:anyone`, `digest:user:hash`,
/// `ip:10.0.0.0/8`.
///
/// Exhaustive on purpose: the fields mirror the jute record of ZooKeeper 3.8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Id<'a> {
    /// The authentication scheme.
    pub scheme: ZkStr<'a>,
    /// The identity within the scheme.
    pub id: ZkStr<'a>,
}

impl Id<'_> {
    /// `world:anyone`: everybody.
    pub const ANYONE: Id<'static> = Id {
        scheme: ZkStr::new("world"),
        id: ZkStr::new("anyone"),
    };
    /// `auth:`: whoever the creating session authenticated as.
    pub const AUTH: Id<'static> = Id {
        scheme: ZkStr::new("auth"),
        id: ZkStr::new(""),
    };
}

impl<'a> Record<'a> for Id<'a> {
    const MIN_LEN: usize = 8;

    fn read(input: &'a [u8]) -> PResult<'a, Id<'a>> {
        (ustring, ustring)
            .map(|(scheme, id)| Id { scheme, id })
            .parse(input)
    }

    #[inline]
    fn wire_len(&self) -> usize {
        self.scheme.encoded_len() + self.id.encoded_len()
    }

    #[inline]
    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.ustring(self.scheme)?;
        w.ustring(self.id)
    }
}

record_api!(Id<'a>);

/// One entry of a node's access control list: `{int perms; Id id}`.
///
/// Exhaustive on purpose: the fields mirror the jute record of ZooKeeper 3.8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Acl<'a> {
    /// What the identity may do.
    pub perms: Perms,
    /// Who.
    pub id: Id<'a>,
}

impl Acl<'_> {
    /// Everybody may do everything (ZooKeeper's `Ids.OPEN_ACL_UNSAFE`).
    pub const OPEN_ACL_UNSAFE: &'static [Acl<'static>] = &[Acl {
        perms: Perms::ALL,
        id: Id::ANYONE,
    }];
    /// Everybody may read (ZooKeeper's `Ids.READ_ACL_UNSAFE`).
    pub const READ_ACL_UNSAFE: &'static [Acl<'static>] = &[Acl {
        perms: Perms::READ,
        id: Id::ANYONE,
    }];
    /// The creator's authenticated identities may do everything (ZooKeeper's
    /// `Ids.CREATOR_ALL_ACL`).
    pub const CREATOR_ALL_ACL: &'static [Acl<'static>] = &[Acl {
        perms: Perms::ALL,
        id: Id::AUTH,
    }];
}

impl<'a> Record<'a> for Acl<'a> {
    const MIN_LEN: usize = 12;

    fn read(input: &'a [u8]) -> PResult<'a, Acl<'a>> {
        (int, Id::read)
            .map(|(perms, id)| Acl {
                perms: Perms(perms),
                id,
            })
            .parse(input)
    }

    #[inline]
    fn wire_len(&self) -> usize {
        4 + self.id.wire_len()
    }

    #[inline]
    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.int(self.perms.0)?;
        self.id.write(w)
    }
}

impl<'a> ListItem<'a> for Acl<'a> {}

record_api!(Acl<'a>);

/// One identity of a session, as whoAmI returns it: `{ustring authScheme; ustring user}`.
///
/// Exhaustive on purpose: the fields mirror the jute record of ZooKeeper 3.8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct ClientInfo<'a> {
    /// The authentication scheme.
    pub auth_scheme: ZkStr<'a>,
    /// The user name, or another identity (for example the client's address).
    pub user: ZkStr<'a>,
}

impl<'a> Record<'a> for ClientInfo<'a> {
    const MIN_LEN: usize = 8;

    fn read(input: &'a [u8]) -> PResult<'a, ClientInfo<'a>> {
        (ustring, ustring)
            .map(|(auth_scheme, user)| ClientInfo { auth_scheme, user })
            .parse(input)
    }

    fn wire_len(&self) -> usize {
        self.auth_scheme.encoded_len() + self.user.encoded_len()
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.ustring(self.auth_scheme)?;
        w.ustring(self.user)
    }
}

impl<'a> ListItem<'a> for ClientInfo<'a> {}

record_api!(ClientInfo<'a>);

// ---------------------------------------------------------------------------------------------
// Session handshake
// ---------------------------------------------------------------------------------------------

/// Length of a session password.
pub const PASSWD_LEN: usize = 16;

/// The first frame a client sends: no request header, just this record.
///
/// The trailing `readOnly` byte is optional on the wire (clients before ZooKeeper 3.4 omit it);
/// `None` means absent. A server answers a request without it with a
/// [`ConnectResponse`] without it.
///
/// Exhaustive on purpose: the fields mirror the jute record of ZooKeeper 3.8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct ConnectRequest<'a> {
    /// Always 0.
    pub protocol_version: i32,
    /// The last zxid the client saw (0 for a new session); a server that has not seen it yet
    /// refuses the client.
    pub last_zxid_seen: i64,
    /// The session timeout wanted, in milliseconds; the server clamps it to 2–20 ticks.
    pub timeout: i32,
    /// 0 for a new session, else the session to re-attach to.
    pub session_id: i64,
    /// 16 zero bytes for a new session, else the session's password.
    pub passwd: Option<&'a [u8]>,
    /// Whether the client accepts a read-only server; `None` omits the byte.
    pub read_only: Option<bool>,
}

impl ConnectRequest<'static> {
    /// A request for a new session, as the Java client sends it: protocol 0, session 0, a
    /// password of 16 zero bytes, `readOnly` false.
    pub const fn new_session(timeout_ms: i32) -> ConnectRequest<'static> {
        ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout: timeout_ms,
            session_id: 0,
            passwd: Some(&[0; PASSWD_LEN]),
            read_only: Some(false),
        }
    }
}

/// Encoded length of a connect request up to its password.
const CONNECT_REQUEST_FIXED: usize = 24;

impl<'a> Record<'a> for ConnectRequest<'a> {
    fn read(input: &'a [u8]) -> PResult<'a, ConnectRequest<'a>> {
        let (rest, head) = fixed::<CONNECT_REQUEST_FIXED>(input)?;
        let (rest, (passwd, read_only)) = (buffer, opt(boolean)).parse(rest)?;
        Ok((
            rest,
            ConnectRequest {
                protocol_version: i32::from_be_bytes(read_at(head, 0)),
                last_zxid_seen: i64::from_be_bytes(read_at(head, 4)),
                timeout: i32::from_be_bytes(read_at(head, 12)),
                session_id: i64::from_be_bytes(read_at(head, 16)),
                passwd,
                read_only,
            },
        ))
    }

    fn wire_len(&self) -> usize {
        CONNECT_REQUEST_FIXED + buffer_len(self.passwd) + usize::from(self.read_only.is_some())
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        let head = w.fixed::<CONNECT_REQUEST_FIXED>()?;
        write_at(head, 0, self.protocol_version.to_be_bytes());
        write_at(head, 4, self.last_zxid_seen.to_be_bytes());
        write_at(head, 12, self.timeout.to_be_bytes());
        write_at(head, 16, self.session_id.to_be_bytes());
        w.buffer(self.passwd)?;
        if let Some(read_only) = self.read_only {
            w.boolean(read_only)?;
        }
        Ok(())
    }
}

record_api!(ConnectRequest<'a>);

/// The first frame a server sends: no reply header, just this record.
///
/// The trailing `readOnly` byte is present exactly when the request had one (36 bytes without,
/// 37 with). A `timeout` of 0 or less means the session expired (or its password was wrong);
/// the server then closes the connection.
///
/// Exhaustive on purpose: the fields mirror the jute record of ZooKeeper 3.8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct ConnectResponse<'a> {
    /// Always 0.
    pub protocol_version: i32,
    /// The negotiated session timeout in milliseconds; 0 or less when the session expired.
    pub timeout: i32,
    /// The session's id (0 when expired).
    pub session_id: i64,
    /// The session's password, for re-attaching (16 zero bytes when expired).
    pub passwd: Option<&'a [u8]>,
    /// Whether the server is read-only; `None` when the byte is absent.
    pub read_only: Option<bool>,
}

impl ConnectResponse<'_> {
    /// Whether the server refused the session as expired (`timeout <= 0`).
    pub const fn is_expired(&self) -> bool {
        self.timeout <= 0
    }
}

/// Encoded length of a connect response up to its password.
const CONNECT_RESPONSE_FIXED: usize = 16;

impl<'a> Record<'a> for ConnectResponse<'a> {
    fn read(input: &'a [u8]) -> PResult<'a, ConnectResponse<'a>> {
        let (rest, head) = fixed::<CONNECT_RESPONSE_FIXED>(input)?;
        let (rest, (passwd, read_only)) = (buffer, opt(boolean)).parse(rest)?;
        Ok((
            rest,
            ConnectResponse {
                protocol_version: i32::from_be_bytes(read_at(head, 0)),
                timeout: i32::from_be_bytes(read_at(head, 4)),
                session_id: i64::from_be_bytes(read_at(head, 8)),
                passwd,
                read_only,
            },
        ))
    }

    fn wire_len(&self) -> usize {
        CONNECT_RESPONSE_FIXED + buffer_len(self.passwd) + usize::from(self.read_only.is_some())
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        let head = w.fixed::<CONNECT_RESPONSE_FIXED>()?;
        write_at(head, 0, self.protocol_version.to_be_bytes());
        write_at(head, 4, self.timeout.to_be_bytes());
        write_at(head, 8, self.session_id.to_be_bytes());
        w.buffer(self.passwd)?;
        if let Some(read_only) = self.read_only {
            w.boolean(read_only)?;
        }
        Ok(())
    }
}

record_api!(ConnectResponse<'a>);

// ---------------------------------------------------------------------------------------------
// Authentication, watches
// ---------------------------------------------------------------------------------------------

/// The body of an auth request (op 100, xid -4): `{int type; ustring scheme; buffer auth}`.
///
/// Exhaustive on purpose: the fields mirror the jute record of ZooKeeper 3.8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct AuthPacket<'a> {
    /// Always 0.
    pub auth_type: i32,
    /// The scheme, e.g. `digest`.
    pub scheme: ZkStr<'a>,
    /// The credentials, e.g. `user:password` for `digest`.
    pub auth: Option<&'a [u8]>,
}

impl<'a> Record<'a> for AuthPacket<'a> {
    fn read(input: &'a [u8]) -> PResult<'a, AuthPacket<'a>> {
        (int, ustring, buffer)
            .map(|(auth_type, scheme, auth)| AuthPacket {
                auth_type,
                scheme,
                auth,
            })
            .parse(input)
    }

    fn wire_len(&self) -> usize {
        4 + self.scheme.encoded_len() + buffer_len(self.auth)
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.int(self.auth_type)?;
        w.ustring(self.scheme)?;
        w.buffer(self.auth)
    }
}

record_api!(AuthPacket<'a>);

/// The body of a setWatches request (op 101, xid -8): the watches to re-register after a
/// reconnect, and the last zxid seen, so that the server fires those that changed meanwhile.
///
/// Exhaustive on purpose: the fields mirror the jute record of ZooKeeper 3.8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct SetWatches<'a> {
    /// The last zxid the client saw.
    pub relative_zxid: i64,
    /// Paths with a data watch (getData).
    pub data_watches: List<'a, ZkStr<'a>>,
    /// Paths with an exist watch (exists on a missing node).
    pub exist_watches: List<'a, ZkStr<'a>>,
    /// Paths with a child watch (getChildren).
    pub child_watches: List<'a, ZkStr<'a>>,
}

impl<'a> Record<'a> for SetWatches<'a> {
    fn read(input: &'a [u8]) -> PResult<'a, SetWatches<'a>> {
        (long, List::read, List::read, List::read)
            .map(
                |(relative_zxid, data_watches, exist_watches, child_watches)| SetWatches {
                    relative_zxid,
                    data_watches,
                    exist_watches,
                    child_watches,
                },
            )
            .parse(input)
    }

    fn wire_len(&self) -> usize {
        8usize
            .saturating_add(self.data_watches.wire_len())
            .saturating_add(self.exist_watches.wire_len())
            .saturating_add(self.child_watches.wire_len())
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.long(self.relative_zxid)?;
        self.data_watches.write(w)?;
        self.exist_watches.write(w)?;
        self.child_watches.write(w)
    }
}

record_api!(SetWatches<'a>);

/// The body of a setWatches2 request (op 105, xid -8): [`SetWatches`] plus persistent watches.
///
/// Exhaustive on purpose: the fields mirror the jute record of ZooKeeper 3.8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct SetWatches2<'a> {
    /// The last zxid the client saw.
    pub relative_zxid: i64,
    /// Paths with a data watch (getData).
    pub data_watches: List<'a, ZkStr<'a>>,
    /// Paths with an exist watch (exists on a missing node).
    pub exist_watches: List<'a, ZkStr<'a>>,
    /// Paths with a child watch (getChildren).
    pub child_watches: List<'a, ZkStr<'a>>,
    /// Paths with a persistent watch (addWatch mode 0).
    pub persistent_watches: List<'a, ZkStr<'a>>,
    /// Paths with a persistent recursive watch (addWatch mode 1).
    pub persistent_recursive_watches: List<'a, ZkStr<'a>>,
}

impl<'a> Record<'a> for SetWatches2<'a> {
    fn read(input: &'a [u8]) -> PResult<'a, SetWatches2<'a>> {
        let (rest, (relative_zxid, data_watches, exist_watches, child_watches)) =
            (long, List::read, List::read, List::read).parse(input)?;
        let (rest, (persistent_watches, persistent_recursive_watches)) =
            (List::read, List::read).parse(rest)?;
        Ok((
            rest,
            SetWatches2 {
                relative_zxid,
                data_watches,
                exist_watches,
                child_watches,
                persistent_watches,
                persistent_recursive_watches,
            },
        ))
    }

    fn wire_len(&self) -> usize {
        8usize
            .saturating_add(self.data_watches.wire_len())
            .saturating_add(self.exist_watches.wire_len())
            .saturating_add(self.child_watches.wire_len())
            .saturating_add(self.persistent_watches.wire_len())
            .saturating_add(self.persistent_recursive_watches.wire_len())
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.long(self.relative_zxid)?;
        self.data_watches.write(w)?;
        self.exist_watches.write(w)?;
        self.child_watches.write(w)?;
        self.persistent_watches.write(w)?;
        self.persistent_recursive_watches.write(w)
    }
}

record_api!(SetWatches2<'a>);

/// A watch notification: the body of a reply with xid -1 (`{int type; int state; ustring path}`).
///
/// Exhaustive on purpose: the fields mirror the jute record of ZooKeeper 3.8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct WatcherEvent<'a> {
    /// What happened.
    pub event_type: EventType,
    /// The session's state (the server sends [`KeeperState::SyncConnected`]).
    pub state: KeeperState,
    /// The node it happened to.
    pub path: ZkStr<'a>,
}

impl<'a> Record<'a> for WatcherEvent<'a> {
    fn read(input: &'a [u8]) -> PResult<'a, WatcherEvent<'a>> {
        (int, int, ustring)
            .map(|(event_type, state, path)| WatcherEvent {
                event_type: EventType::from_i32(event_type),
                state: KeeperState::from_i32(state),
                path,
            })
            .parse(input)
    }

    fn wire_len(&self) -> usize {
        8 + self.path.encoded_len()
    }

    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.int(self.event_type.to_i32())?;
        w.int(self.state.to_i32())?;
        w.ustring(self.path)
    }
}

record_api!(WatcherEvent<'a>);
