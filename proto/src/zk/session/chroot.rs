//! The chroot: prefixed to the paths of requests as they are encoded, stripped from the paths
//! of replies and notifications.

use heapless::Vec;

#[cfg(doc)]
use super::MAX_CHROOT_LEN;
use super::{Xid, ZkSession};
use crate::zk::path::validate_path;
use crate::zk::{
    MULTI_HEADER_LEN, MultiHeader, MultiOp, OpCode, REQUEST_HEADER_LEN, ReplyBody, Request,
    RequestBody, RequestHeader, STAT_LEN, ZkStr,
};
use crate::{Error, Result};

impl<B, const PENDING: usize, const WATCHES: usize, const WATCH_BYTES: usize>
    ZkSession<B, PENDING, WATCHES, WATCH_BYTES>
where
    B: AsRef<[u8]> + AsMut<[u8]>,
{
    /// Sets the chroot: every path sent is prefixed with it, every path received has it
    /// stripped (`/` on the client side is the chroot itself). `""` or `"/"` removes it.
    ///
    /// Set it before submitting requests: the paths of requests already queued are not
    /// changed.
    ///
    /// # Errors
    /// [`Error::InvalidPath`] unless it is a valid path
    /// ([`validate_path`], as ZooKeeper's client checks a connect string's chroot);
    /// [`Error::TooLarge`] beyond [`MAX_CHROOT_LEN`] bytes.
    pub fn set_chroot(&mut self, chroot: &str) -> Result<()> {
        let bytes = chroot.as_bytes();
        if bytes.is_empty() || bytes == b"/" {
            self.chroot.clear();
            return Ok(());
        }
        validate_path(bytes, false)?;
        let mut new = Vec::new();
        new.extend_from_slice(bytes).map_err(|_| Error::TooLarge)?;
        self.chroot = new;
        Ok(())
    }

    /// The chroot (empty when none).
    pub fn chroot(&self) -> &[u8] {
        &self.chroot
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding with a chroot
// ---------------------------------------------------------------------------------------------

/// The path that starts the body's record, for the bodies whose record starts with one.
fn leading_path<'b>(body: &RequestBody<'b>) -> Option<ZkStr<'b>> {
    use RequestBody as B;
    match body {
        B::Create(r) | B::Create2(r) | B::CreateContainer(r) => Some(r.path),
        B::CreateTtl(r) => Some(r.create.path),
        B::Delete(r) | B::Check(r) => Some(r.path),
        B::Exists(r) | B::GetData(r) | B::GetChildren(r) | B::GetChildren2(r) => Some(r.path),
        B::SetData(r) => Some(r.path),
        B::GetAcl(r)
        | B::Sync(r)
        | B::DeleteContainer(r)
        | B::GetEphemerals(r)
        | B::GetAllChildrenNumber(r) => Some(r.path),
        B::SetAcl(r) => Some(r.path),
        B::CheckWatches(r) | B::RemoveWatches(r) => Some(r.path),
        B::AddWatch(r) => Some(r.path),
        _ => None,
    }
}

fn multi_op_path<'b>(op: &MultiOp<'b>) -> ZkStr<'b> {
    match op {
        MultiOp::Create(r) | MultiOp::Create2(r) | MultiOp::CreateContainer(r) => r.path,
        MultiOp::CreateTtl(r) => r.create.path,
        MultiOp::Delete(r) | MultiOp::Check(r) => r.path,
        MultiOp::SetData(r) => r.path,
        MultiOp::GetChildren(r) | MultiOp::GetData(r) => r.path,
    }
}

/// Checks every path of a request as ZooKeeper's client does (a sequential create's may end
/// with `/`), before anything is queued.
pub(super) fn check_paths(body: &RequestBody<'_>) -> Result<()> {
    let check = |path: ZkStr<'_>, sequential: bool| {
        validate_path(path.to_wire().unwrap_or_default(), sequential).map_err(Error::InvalidPath)
    };
    let create_mode = |body: &RequestBody<'_>| match body {
        RequestBody::Create(r) | RequestBody::Create2(r) | RequestBody::CreateContainer(r) => {
            r.mode.is_sequential()
        }
        RequestBody::CreateTtl(r) => r.create.mode.is_sequential(),
        _ => false,
    };
    match body {
        RequestBody::Multi(ops) | RequestBody::MultiRead(ops) => {
            for op in ops.iter() {
                let sequential = match &op {
                    MultiOp::Create(r) | MultiOp::Create2(r) | MultiOp::CreateContainer(r) => {
                        r.mode.is_sequential()
                    }
                    MultiOp::CreateTtl(r) => r.create.mode.is_sequential(),
                    _ => false,
                };
                check(multi_op_path(&op), sequential)?;
            }
            Ok(())
        }
        _ => match leading_path(body) {
            Some(path) => check(path, create_mode(body)),
            None => Ok(()),
        },
    }
}

/// How many bytes the chroot adds to `path` (the client's `/` is the chroot itself).
pub(super) fn chroot_shift(path: ZkStr<'_>, chroot: &[u8]) -> usize {
    if chroot.is_empty() || path.is_null() {
        0
    } else if path.as_bytes() == b"/" {
        chroot.len() - 1
    } else {
        chroot.len()
    }
}

/// The exact payload length of a request with the chroot prefixed to its paths.
pub(super) fn request_len(xid: Xid, body: &RequestBody<'_>, chroot: &[u8]) -> usize {
    let base = Request { xid, body: *body }.encoded_len();
    let extra = match body {
        RequestBody::Multi(ops) | RequestBody::MultiRead(ops) => {
            ops.iter().fold(0usize, |sum, op| {
                sum.saturating_add(chroot_shift(multi_op_path(&op), chroot))
            })
        }
        _ => leading_path(body).map_or(0, |p| chroot_shift(p, chroot)),
    };
    base.saturating_add(extra)
}

/// Encodes a request's payload (header and body) with the chroot prefixed to its paths.
pub(super) fn encode_request(
    out: &mut [u8],
    xid: Xid,
    body: &RequestBody<'_>,
    chroot: &[u8],
) -> Result<usize> {
    let request = Request { xid, body: *body };
    if chroot.is_empty() {
        return request.encode(out);
    }
    match body {
        RequestBody::Multi(ops) | RequestBody::MultiRead(ops) => {
            let mut pos = RequestHeader { xid, op: body.op() }.encode(out)?;
            for op in ops.iter() {
                let rest = out.get_mut(pos..).ok_or(Error::BufferTooSmall)?;
                pos += encode_shifted(rest, MULTI_HEADER_LEN, multi_op_path(&op), chroot, |b| {
                    op.encode(b)
                })?;
            }
            let rest = out.get_mut(pos..).ok_or(Error::BufferTooSmall)?;
            pos += MultiHeader::END.encode(rest)?;
            Ok(pos)
        }
        _ => match leading_path(body) {
            Some(path) => {
                encode_shifted(out, REQUEST_HEADER_LEN, path, chroot, |b| request.encode(b))
            }
            None => request.encode(out),
        },
    }
}

/// Encodes a record whose `path` (a ustring at `path_at`) gets the chroot in front, without a
/// scratch buffer: the record is encoded `shift` bytes further on, so that its path bytes land
/// where they belong; what precedes the path moves back, and the new length and the chroot are
/// written in the gap.
fn encode_shifted(
    out: &mut [u8],
    path_at: usize,
    path: ZkStr<'_>,
    chroot: &[u8],
    encode: impl FnOnce(&mut [u8]) -> Result<usize>,
) -> Result<usize> {
    let shift = chroot_shift(path, chroot);
    if shift == 0 {
        return encode(out);
    }
    let n = encode(out.get_mut(shift..).ok_or(Error::BufferTooSmall)?)?;
    let len_at = shift + path_at;
    let old = out
        .get(len_at..len_at + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(i32::from_be_bytes)
        .ok_or(Error::BufferTooSmall)?;
    let new = usize::try_from(old)
        .ok()
        .and_then(|old| old.checked_add(shift))
        .and_then(|new| i32::try_from(new).ok())
        .ok_or(Error::TooLarge)?;
    out.copy_within(shift..shift + path_at, 0);
    out.get_mut(path_at..path_at + 4)
        .ok_or(Error::BufferTooSmall)?
        .copy_from_slice(&new.to_be_bytes());
    out.get_mut(path_at + 4..path_at + 4 + chroot.len())
        .ok_or(Error::BufferTooSmall)?
        .copy_from_slice(chroot);
    Ok(n + shift)
}

// ---------------------------------------------------------------------------------------------
// Stripping the chroot from replies
// ---------------------------------------------------------------------------------------------

/// Where the client's view of a server path starts in it, and its length: the path without
/// the chroot (`/` for the chroot itself); the path unchanged if it is not below the chroot.
pub(super) fn strip_span(path: &[u8], chroot: &[u8]) -> (usize, usize) {
    if chroot.is_empty() || !path.starts_with(chroot) {
        return (0, path.len());
    }
    match path.get(chroot.len()) {
        None => (0, 1),
        Some(b'/') => (chroot.len(), path.len() - chroot.len()),
        Some(_) => (0, path.len()),
    }
}

fn strip_str<'a>(path: ZkStr<'a>, chroot: &[u8]) -> ZkStr<'a> {
    match path.to_wire() {
        None => path,
        Some(bytes) => {
            let (skip, len) = strip_span(bytes, chroot);
            ZkStr::from_bytes(bytes.get(skip..skip + len).unwrap_or(bytes))
        }
    }
}

/// The body with the chroot stripped from the paths it holds outside lists.
pub(super) fn strip_body<'a>(body: ReplyBody<'a>, chroot: &[u8]) -> ReplyBody<'a> {
    if chroot.is_empty() {
        return body;
    }
    match body {
        ReplyBody::Path(path) => ReplyBody::Path(strip_str(path, chroot)),
        ReplyBody::Created(mut created) => {
            created.path = strip_str(created.path, chroot);
            ReplyBody::Created(created)
        }
        other => other,
    }
}

/// Rewrites a (checked) multi or getEphemerals reply body with the chroot stripped from the
/// paths in its list, moving the rest forward; returns the new body length.
pub(super) fn strip_list_in_place(body: &mut [u8], op: OpCode, chroot: &[u8]) -> Option<usize> {
    let mut c = Compactor {
        buf: body,
        r: 0,
        w: 0,
    };
    match op {
        OpCode::GetEphemerals => {
            let count = c.peek_int()?;
            c.copy(4)?;
            for _ in 0..count.max(0) {
                c.string(chroot)?;
            }
        }
        _ => loop {
            let ty = c.peek_int()?;
            let done = *c.buf.get(c.r + 4)? != 0;
            c.copy(MULTI_HEADER_LEN)?;
            if done {
                break;
            }
            match OpCode::from_i32(ty) {
                OpCode::Create => c.string(chroot)?,
                OpCode::Create2 => {
                    c.string(chroot)?;
                    c.copy(STAT_LEN)?;
                }
                OpCode::Delete | OpCode::Check => {}
                OpCode::SetData => c.copy(STAT_LEN)?,
                OpCode::GetChildren => {
                    let count = c.peek_int()?;
                    c.copy(4)?;
                    for _ in 0..count.max(0) {
                        let len = c.peek_int()?.max(0) as usize;
                        c.copy(4 + len)?;
                    }
                }
                OpCode::GetData => {
                    let len = c.peek_int()?.max(0) as usize;
                    c.copy(4 + len + STAT_LEN)?;
                }
                OpCode::Error => c.copy(4)?,
                _ => return None,
            }
        },
    }
    let rest = c.buf.len().checked_sub(c.r)?;
    c.copy(rest)?;
    Some(c.w)
}

/// Moves bytes forward within a buffer: reads at `r`, writes at `w <= r`.
struct Compactor<'b> {
    buf: &'b mut [u8],
    r: usize,
    w: usize,
}

impl Compactor<'_> {
    fn peek_int(&self) -> Option<i32> {
        let bytes = self.buf.get(self.r..self.r + 4)?;
        Some(i32::from_be_bytes(bytes.try_into().ok()?))
    }

    fn copy(&mut self, n: usize) -> Option<()> {
        let end = self.r.checked_add(n)?;
        if end > self.buf.len() {
            return None;
        }
        self.buf.copy_within(self.r..end, self.w);
        self.r = end;
        self.w += n;
        Some(())
    }

    /// Copies a ustring with the chroot stripped.
    fn string(&mut self, chroot: &[u8]) -> Option<()> {
        let len = self.peek_int()?;
        let Ok(len) = usize::try_from(len) else {
            return self.copy(4);
        };
        let bytes = self.buf.get(self.r + 4..self.r + 4 + len)?;
        let (skip, new) = strip_span(bytes, chroot);
        let new_len = i32::try_from(new).ok()?.to_be_bytes();
        self.buf
            .get_mut(self.w..self.w + 4)?
            .copy_from_slice(&new_len);
        let from = self.r + 4 + skip;
        self.buf.copy_within(from..from + new, self.w + 4);
        self.r += 4 + len;
        self.w += 4 + new;
        Some(())
    }
}
