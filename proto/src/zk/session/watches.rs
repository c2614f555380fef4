//! The watch registry: registration when a request leaves a watch, notifications fanned out
//! to the watches they fire, re-registration (setWatches) after a reconnect.

use heapless::Vec;

use super::chroot::{chroot_shift, strip_span};
use super::receive::Step;
use super::{DisconnectReason, MAX_WATCH_PATH_LEN, SET_WATCHES_OVERHEAD, ZkSession};
use crate::zk::{
    AddWatchMode, ErrorCode, EventType, FRAME_HEADER_LEN, OpCode, REPLY_HEADER_LEN, RequestBody,
    RequestHeader, SET_WATCHES_XID, WatcherEvent, WatcherType, ZkStr,
};
use crate::{Error, Result};

/// An application's name for a watcher: notifications that fire a watch carry the id given
/// when the watch was left ([`ZkSession::submit_watched`]; [`WatcherId::DEFAULT`] otherwise).
///
/// Exhaustive on purpose: a plain number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct WatcherId(pub u32);

impl WatcherId {
    /// The watcher of requests submitted with [`ZkSession::submit`].
    pub const DEFAULT: WatcherId = WatcherId(0);
}

/// The kinds of watch, as ZooKeeper keeps them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum WatchKind {
    /// One-shot, left by getData or by exists on an existing node: fires on data change and
    /// deletion.
    Data,
    /// One-shot, left by exists on a missing node: fires on creation.
    Exist,
    /// One-shot, left by getChildren: fires on a change of the children and on deletion.
    Child,
    /// Left by addWatch (persistent): fires on every change of the node, until removed.
    Persistent,
    /// Left by addWatch (persistent recursive): fires on data changes, creations and
    /// deletions of the node and every node below it.
    PersistentRecursive,
}

impl WatchKind {
    /// Whether the watch is gone once it fired.
    pub const fn is_one_shot(self) -> bool {
        matches!(self, WatchKind::Data | WatchKind::Exist | WatchKind::Child)
    }

    /// Whether a notification of `event_type` for `event_path` fires a watch of this kind on
    /// `watch_path` (the Java client's `ZKWatchManager.materialize`).
    pub fn fires(self, event_type: EventType, watch_path: &[u8], event_path: &[u8]) -> bool {
        use EventType as E;
        match self {
            WatchKind::Data | WatchKind::Exist => {
                matches!(
                    event_type,
                    E::NodeCreated | E::NodeDataChanged | E::NodeDeleted
                ) && watch_path == event_path
            }
            WatchKind::Child => {
                matches!(event_type, E::NodeChildrenChanged | E::NodeDeleted)
                    && watch_path == event_path
            }
            WatchKind::Persistent => {
                matches!(
                    event_type,
                    E::NodeCreated | E::NodeDataChanged | E::NodeDeleted | E::NodeChildrenChanged
                ) && watch_path == event_path
            }
            WatchKind::PersistentRecursive => {
                matches!(
                    event_type,
                    E::NodeCreated | E::NodeDataChanged | E::NodeDeleted
                ) && is_self_or_ancestor(watch_path, event_path)
            }
        }
    }
}

/// Whether `ancestor` is `path` or one of its ancestors.
fn is_self_or_ancestor(ancestor: &[u8], path: &[u8]) -> bool {
    if ancestor == path || ancestor == b"/" {
        return path.first() == Some(&b'/') || ancestor == path;
    }
    path.len() > ancestor.len() && path.starts_with(ancestor) && path[ancestor.len()] == b'/'
}

/// One registered watch, as [`ZkSession::watches`] lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WatchInfo<'a> {
    /// The watch's kind.
    pub kind: WatchKind,
    /// The application's watcher.
    pub watcher: WatcherId,
    /// The watched path (client side, without chroot).
    pub path: &'a [u8],
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Watch {
    pub(super) kind: WatchKind,
    pub(super) watcher: WatcherId,
    start: u32,
    len: u32,
    /// 0 once active; else the token of the request whose reply activates it.
    pub(super) token: u32,
    /// Left by an exists request: Data if the node exists, Exist if not.
    from_exists: bool,
    /// Fired by the notification being reported.
    pub(super) firing: bool,
}

/// The watch registry: entries in registration order, their paths in one byte arena.
#[derive(Debug)]
pub(super) struct Watches<const N: usize, const BYTES: usize> {
    pub(super) entries: Vec<Watch, N>,
    paths: Vec<u8, BYTES>,
    next_token: u32,
}

impl<const N: usize, const BYTES: usize> Watches<N, BYTES> {
    pub(super) const fn new() -> Self {
        Watches {
            entries: Vec::new(),
            paths: Vec::new(),
            next_token: 1,
        }
    }

    pub(super) fn path(&self, w: &Watch) -> &[u8] {
        let start = w.start as usize;
        self.paths
            .get(start..start + w.len as usize)
            .unwrap_or_default()
    }

    /// Reserves a pending entry; returns its token.
    pub(super) fn reserve(
        &mut self,
        kind: WatchKind,
        from_exists: bool,
        path: &[u8],
        watcher: WatcherId,
    ) -> Result<u32> {
        if path.len() > MAX_WATCH_PATH_LEN {
            return Err(Error::TooLarge);
        }
        if self.entries.is_full() || BYTES - self.paths.len() < path.len() {
            return Err(Error::Capacity);
        }
        let token = self.next_token;
        self.next_token = self.next_token.checked_add(1).unwrap_or(1);
        let start = self.paths.len() as u32;
        self.paths
            .extend_from_slice(path)
            .map_err(|_| Error::Capacity)?;
        let entry = Watch {
            kind,
            watcher,
            start,
            len: path.len() as u32,
            token,
            from_exists,
            firing: false,
        };
        if self.entries.push(entry).is_err() {
            self.paths.truncate(start as usize);
            return Err(Error::Capacity);
        }
        Ok(token)
    }

    /// Removes entry `i` (which must exist) and its path bytes; returns it.
    pub(super) fn remove(&mut self, i: usize) -> Watch {
        let w = self.entries.remove(i);
        let (start, len) = (w.start as usize, w.len as usize);
        let end = start + len;
        let total = self.paths.len();
        if end <= total {
            self.paths.copy_within(end..total, start);
            self.paths.truncate(total - len);
            for other in self.entries.iter_mut() {
                if other.start as usize >= end {
                    other.start -= w.len;
                }
            }
        }
        w
    }

    pub(super) fn position_token(&self, token: u32) -> Option<usize> {
        self.entries.iter().position(|w| w.token == token)
    }

    /// Settles the watch a request reserved, given the reply's error: activated, turned into
    /// an exist watch, dropped as a duplicate, or removed.
    pub(super) fn settle(&mut self, token: u32, err: ErrorCode) {
        let Some(i) = self.position_token(token) else {
            return;
        };
        let w = self.entries[i];
        let kind = match (err, w.from_exists) {
            (ErrorCode::Ok, _) => w.kind,
            (ErrorCode::NoNode, true) => WatchKind::Exist,
            _ => {
                self.remove(i);
                return;
            }
        };
        let path = self.path(&w);
        let duplicate = self.entries.iter().enumerate().any(|(j, o)| {
            j != i
                && o.token == 0
                && o.kind == kind
                && o.watcher == w.watcher
                && self.path(o) == path
        });
        if duplicate {
            self.remove(i);
        } else {
            let entry = &mut self.entries[i];
            entry.kind = kind;
            entry.token = 0;
        }
    }

    /// Drops every reservation whose request will not be answered.
    pub(super) fn drop_reservations(&mut self) {
        while let Some(i) = self.entries.iter().position(|w| w.token != 0) {
            self.remove(i);
        }
    }

    pub(super) fn clear_firing(&mut self) {
        for w in self.entries.iter_mut() {
            w.firing = false;
        }
    }
}

/// A notification being reported, once per watch it fired.
#[derive(Clone, Copy, Debug)]
pub(super) struct Fanout {
    pub(super) event_type: EventType,
    pub(super) zxid: i64,
    /// The (stripped) path's place in the receive buffer; `None` for a null path.
    path: Option<(usize, usize)>,
    /// Matched no watch: reported once, without a watcher.
    pub(super) unmatched: bool,
}

impl<B, const PENDING: usize, const WATCHES: usize, const WATCH_BYTES: usize>
    ZkSession<B, PENDING, WATCHES, WATCH_BYTES>
where
    B: AsRef<[u8]> + AsMut<[u8]>,
{
    /// Removes the local registrations a removeWatches request is about.
    pub(super) fn forget_watches(&mut self, path: &[u8], watcher_type: WatcherType) {
        let kinds: &[WatchKind] = match watcher_type {
            WatcherType::Children => &[WatchKind::Child],
            WatcherType::Data => &[WatchKind::Data, WatchKind::Exist],
            // ZooKeeper 3.8 removes persistent watches with Any too (it refuses types 4 and 5).
            WatcherType::Any => &[
                WatchKind::Data,
                WatchKind::Exist,
                WatchKind::Child,
                WatchKind::Persistent,
                WatchKind::PersistentRecursive,
            ],
            WatcherType::Persistent => &[WatchKind::Persistent],
            WatcherType::PersistentRecursive => &[WatchKind::PersistentRecursive],
            WatcherType::Unknown(_) => &[],
        };
        while let Some(i) =
            self.watches.entries.iter().position(|w| {
                w.token == 0 && kinds.contains(&w.kind) && self.watches.path(w) == path
            })
        {
            self.remove_watch(i);
        }
    }

    pub(super) fn remove_watch(&mut self, i: usize) {
        self.watches.remove(i);
        if i < self.replay.watch {
            self.replay.watch -= 1;
        }
    }

    pub(super) fn on_notification(
        &mut self,
        start: usize,
        end: usize,
        consumed: usize,
        zxid: i64,
    ) -> Step {
        let body_at = start + REPLY_HEADER_LEN;
        let event = match self
            .rx
            .as_ref()
            .get(body_at..end)
            .map_or(Err(Error::Truncated), WatcherEvent::parse)
        {
            Ok(event) => event,
            Err(e) => return self.protocol_error(DisconnectReason::Protocol(e)),
        };
        self.stats.notifications += 1;
        let event_type = event.event_type;
        // The path's bytes follow type, state and the length: 12 bytes into the body.
        let path = event.path.to_wire().map(|p| {
            let (skip, len) = strip_span(p, &self.chroot);
            let at = body_at + 12 + skip;
            (at, at + len)
        });
        let path_bytes: &[u8] = match path {
            Some((a, b)) => self.rx.as_ref().get(a..b).unwrap_or_default(),
            None => &[],
        };
        let mut matched = false;
        let watches = &mut self.watches;
        for w in watches.entries.iter_mut() {
            let start = w.start as usize;
            let wpath = watches
                .paths
                .get(start..start + w.len as usize)
                .unwrap_or_default();
            if w.token == 0 && path.is_some() && w.kind.fires(event_type, wpath, path_bytes) {
                w.firing = true;
                matched = true;
            }
        }
        if !matched {
            self.stats.unmatched_notifications += 1;
        }
        self.fanout = Some((
            Fanout {
                event_type,
                zxid,
                path,
                unmatched: !matched,
            },
            consumed,
        ));
        Step::Fanout
    }

    pub(super) fn fanout_path(&self, fanout: Fanout) -> ZkStr<'_> {
        match fanout.path {
            None => ZkStr::NULL,
            Some((start, end)) => {
                ZkStr::from_bytes(self.rx.as_ref().get(start..end).unwrap_or_default())
            }
        }
    }
}

/// The watch a request leaves if it succeeds: kind, whether it is an exists watch, path.
pub(super) fn watch_request<'b>(body: &RequestBody<'b>) -> Option<(WatchKind, bool, ZkStr<'b>)> {
    match body {
        RequestBody::GetData(r) if r.watch => Some((WatchKind::Data, false, r.path)),
        RequestBody::Exists(r) if r.watch => Some((WatchKind::Data, true, r.path)),
        RequestBody::GetChildren(r) | RequestBody::GetChildren2(r) if r.watch => {
            Some((WatchKind::Child, false, r.path))
        }
        RequestBody::AddWatch(r) => match r.mode {
            AddWatchMode::Persistent => Some((WatchKind::Persistent, false, r.path)),
            AddWatchMode::PersistentRecursive => {
                Some((WatchKind::PersistentRecursive, false, r.path))
            }
            AddWatchMode::Unknown(_) => None,
        },
        _ => None,
    }
}

/// Encodes one setWatches (or setWatches2) frame with the active watches of `watches` from
/// entry `from` on, as many as `limit` bytes take; returns the entry to continue from and the
/// frame's length. `None` when not even one watch fits.
pub(super) fn encode_set_watches<const N: usize, const BYTES: usize>(
    out: &mut [u8],
    limit: usize,
    zxid: i64,
    watches: &Watches<N, BYTES>,
    from: usize,
    chroot: &[u8],
) -> Option<(usize, usize)> {
    let entries = &watches.entries;
    let wire_len = |w: &Watch| {
        let path = watches.path(w);
        4 + chroot_shift(ZkStr::from_bytes(path), chroot) + path.len()
    };
    // Included: active, and not a repeat of an earlier (kind, path) in the batch.
    let included = |j: usize, end: usize| {
        let Some(w) = entries.get(j) else {
            return false;
        };
        w.token == 0
            && j < end
            && !entries[from..j]
                .iter()
                .any(|o| o.token == 0 && o.kind == w.kind && watches.path(o) == watches.path(w))
    };
    let mut size = SET_WATCHES_OVERHEAD;
    let mut end = from;
    let mut count = 0;
    let mut persistent = false;
    while end < entries.len() {
        let w = &entries[end];
        if !included(end, end + 1) {
            end += 1;
            continue;
        }
        let add = wire_len(w);
        if size + add > limit {
            break;
        }
        size += add;
        count += 1;
        persistent |= !w.kind.is_one_shot();
        end += 1;
    }
    if count == 0 {
        return if end >= entries.len() {
            Some((end, 0))
        } else {
            None
        };
    }
    let (op, kinds): (OpCode, &[WatchKind]) = if persistent {
        (
            OpCode::SetWatches2,
            &[
                WatchKind::Data,
                WatchKind::Exist,
                WatchKind::Child,
                WatchKind::Persistent,
                WatchKind::PersistentRecursive,
            ],
        )
    } else {
        // As the Java client: setWatches (which 3.5 servers know) unless persistent watches
        // need setWatches2.
        size -= 8;
        (
            OpCode::SetWatches,
            &[WatchKind::Data, WatchKind::Exist, WatchKind::Child],
        )
    };
    let frame = out.get_mut(..size)?;
    let mut w = Cursor { buf: frame, at: 0 };
    w.put(&i32::try_from(size - FRAME_HEADER_LEN).ok()?.to_be_bytes())?;
    w.put(
        &RequestHeader {
            xid: SET_WATCHES_XID,
            op,
        }
        .to_bytes(),
    )?;
    w.put(&zxid.to_be_bytes())?;
    for &kind in kinds {
        let n = (from..end)
            .filter(|&j| included(j, end) && entries[j].kind == kind)
            .count();
        w.put(&i32::try_from(n).ok()?.to_be_bytes())?;
        for j in (from..end).filter(|&j| included(j, end) && entries[j].kind == kind) {
            let path = watches.path(&entries[j]);
            let shift = chroot_shift(ZkStr::from_bytes(path), chroot);
            let len = i32::try_from(path.len() + shift).ok()?;
            w.put(&len.to_be_bytes())?;
            if shift == 0 {
                w.put(path)?;
            } else if path == b"/" {
                w.put(chroot)?;
            } else {
                w.put(chroot)?;
                w.put(path)?;
            }
        }
    }
    (w.at == size).then_some((end, size))
}

/// Writes bytes front to back.
struct Cursor<'b> {
    buf: &'b mut [u8],
    at: usize,
}

impl Cursor<'_> {
    fn put(&mut self, bytes: &[u8]) -> Option<()> {
        self.buf
            .get_mut(self.at..self.at + bytes.len())?
            .copy_from_slice(bytes);
        self.at += bytes.len();
        Some(())
    }
}
