//! What goes out: requests encoded into the transmit FIFO at submit, and the bytes
//! `poll_transmit` hands over (handshake, auth replay, watch re-registration, pings, requests).

use heapless::Vec;

use super::chroot::{check_paths, encode_request, request_len};
use super::watches::{encode_set_watches, watch_request};
use super::{
    Auth, Event, MIN_TRANSMIT_LEN, Pending, SET_WATCHES_BATCH_LEN, SET_WATCHES_OVERHEAD,
    SessionState, WatcherId, Xid, ZkSession,
};
#[cfg(doc)]
use super::{Config, MAX_AUTH_DATA_LEN, MAX_AUTH_SCHEME_LEN, MAX_AUTHS, MAX_WATCH_PATH_LEN};
use crate::time::Instant;
use crate::zk::{
    AuthPacket, ConnectRequest, ErrorCode, FRAME_HEADER_LEN, OpCode, PASSWD_LEN, Request,
    RequestBody, ZkStr,
};
use crate::{Error, Result};

impl<B, const PENDING: usize, const WATCHES: usize, const WATCH_BYTES: usize>
    ZkSession<B, PENDING, WATCHES, WATCH_BYTES>
where
    B: AsRef<[u8]> + AsMut<[u8]>,
{
    // -----------------------------------------------------------------------------------------
    // Requests
    // -----------------------------------------------------------------------------------------

    /// Submits a request; its outcome comes back as exactly one [`Event::Reply`] with the
    /// returned xid. A watch it asks for (getData, exists, getChildren with `watch`, addWatch)
    /// is registered for [`WatcherId::DEFAULT`].
    ///
    /// The request is encoded at once (paths prefixed with the chroot) into the transmit
    /// buffer; nothing of `body` is kept. Before the session is connected, requests wait there
    /// and are sent after the handshake (and fail with ConnectionLoss if that connection
    /// attempt fails). After expiry, close or an auth failure the request is not sent and
    /// fails with the state's error.
    ///
    /// # Errors
    /// [`Error::InvalidPath`] for a path ZooKeeper's client would refuse
    /// ([`validate_path`](crate::zk::path::validate_path); the client's path, before the
    /// chroot is prefixed), whatever the session's state: nothing is queued, no xid used;
    /// [`Error::UnexpectedOp`] for ping, auth, setWatches and setWatches2, which the session
    /// sends itself; [`Error::Capacity`] when `PENDING` requests are waiting, the transmit
    /// buffer has no room now, or the watch registry is full; [`Error::TooLarge`] for a frame
    /// above [`Config::max_frame_len`] or a watch on a path longer than
    /// [`MAX_WATCH_PATH_LEN`]; [`Error::BufferTooSmall`] for a frame that can never fit the
    /// transmit buffer.
    pub fn submit(&mut self, now: Instant, body: RequestBody<'_>) -> Result<Xid> {
        self.submit_watched(now, body, WatcherId::DEFAULT)
    }

    /// As [`submit`](Self::submit), registering the watch it asks for (if any) for `watcher`.
    ///
    /// # Errors
    /// As [`submit`](Self::submit).
    pub fn submit_watched(
        &mut self,
        now: Instant,
        body: RequestBody<'_>,
        watcher: WatcherId,
    ) -> Result<Xid> {
        let op = body.op();
        if matches!(
            op,
            OpCode::Ping | OpCode::Auth | OpCode::SetWatches | OpCode::SetWatches2
        ) {
            return Err(op_error(op));
        }
        check_paths(&body)?;
        if self.pending.is_full() {
            return Err(Error::Capacity);
        }
        let (xid, next) = self.allocate_xid();
        if let Some(code) = self.state.doom() {
            self.push_pending(xid, op, 0, Some(code))?;
            self.next_xid = next;
            self.stats.submitted += 1;
            return Ok(xid);
        }
        let token = match watch_request(&body) {
            Some((kind, from_exists, path)) => {
                self.watches
                    .reserve(kind, from_exists, path.as_bytes(), watcher)?
            }
            None => 0,
        };
        if let Err(e) = self.enqueue_request(xid, &body) {
            if token != 0
                && let Some(i) = self.watches.position_token(token)
            {
                self.watches.remove(i);
            }
            return Err(e);
        }
        if let RequestBody::RemoveWatches(r) = &body {
            self.forget_watches(r.path.as_bytes(), r.watcher_type);
        }
        self.push_pending(xid, op, token, None)?;
        self.next_xid = next;
        self.stats.submitted += 1;
        if op == OpCode::CloseSession && self.state == SessionState::Connected {
            self.state = SessionState::Closing;
        }
        let _ = now;
        Ok(xid)
    }

    /// Closes the session: sends closeSession after everything queued. The server answers it
    /// after the requests before it; then the session is [`SessionState::Closed`] and
    /// [`Event::Closed`] follows the reply. Requests submitted after this fail with
    /// [`ErrorCode::SessionExpired`], as in the Java client.
    ///
    /// A session no server knows yet (no handshake ever completed, none under way) is closed
    /// at once, without sending anything; a disconnected session that has an id sends
    /// closeSession after the next handshake. The close request's own [`Event::Reply`] is
    /// `Ok` when a server answered it, a local error otherwise.
    ///
    /// # Errors
    /// As [`submit`](Self::submit).
    pub fn close(&mut self, now: Instant) -> Result<Xid> {
        if self.session_id == 0
            && !self.state.is_terminal()
            && self.state != SessionState::Handshaking
        {
            // No server knows this session yet: nothing to tell one.
            self.state = SessionState::Closed;
            self.fail_all(ErrorCode::ConnectionLoss);
            self.clear_connection();
            self.push_state_event(Event::Closed);
        }
        self.submit(now, RequestBody::CloseSession)
    }

    /// Adds an authentication (`digest` with `user:password`, say): sent now if connected,
    /// and again after every reconnect, before any request.
    ///
    /// # Errors
    /// [`Error::Capacity`] beyond [`MAX_AUTHS`]; [`Error::TooLarge`] for a scheme longer
    /// than [`MAX_AUTH_SCHEME_LEN`] or data longer than [`MAX_AUTH_DATA_LEN`]; as
    /// [`submit`](Self::submit) if the transmit buffer has no room.
    pub fn add_auth(&mut self, now: Instant, scheme: &str, auth: &[u8]) -> Result<()> {
        let _ = now;
        if self.auths.is_full() {
            return Err(Error::Capacity);
        }
        let mut entry = Auth {
            scheme: Vec::new(),
            data: Vec::new(),
        };
        entry
            .scheme
            .extend_from_slice(scheme.as_bytes())
            .map_err(|_| Error::TooLarge)?;
        entry
            .data
            .extend_from_slice(auth)
            .map_err(|_| Error::TooLarge)?;
        // Once the replay is done, a new auth goes in order with the requests; before, the
        // replay (or the next one) picks it up.
        if matches!(self.state, SessionState::Connected | SessionState::Closing)
            && !self.replay.active
        {
            let request = Request::auth(AuthPacket {
                auth_type: 0,
                scheme: ZkStr::new(scheme),
                auth: Some(auth),
            });
            self.enqueue_frame(|buf| request.encode_framed(buf))?;
            self.stats.auths_sent += 1;
        }
        self.auths.push(entry).map_err(|_| Error::Capacity)?;
        Ok(())
    }

    fn push_pending(
        &mut self,
        xid: Xid,
        op: OpCode,
        watch: u32,
        fail: Option<ErrorCode>,
    ) -> Result<()> {
        self.pending
            .push_back(Pending {
                xid,
                op,
                watch,
                fail,
            })
            .map_err(|_| Error::Capacity)
    }

    /// The next free xid and the counter after it. Replies come in order, so the pending
    /// xids are one run of the sequence: an xid is busy exactly when it lies in the cyclic
    /// interval from the oldest to the newest pending one.
    fn allocate_xid(&self) -> (Xid, Xid) {
        let step = |x: Xid| if (1..i32::MAX).contains(&x) { x + 1 } else { 1 };
        let mut xid = if self.next_xid < 1 { 1 } else { self.next_xid };
        if let (Some(front), Some(back)) = (self.pending.front(), self.pending.back()) {
            let (lo, hi) = (front.xid, back.xid);
            let busy = |x: Xid| {
                if lo <= hi {
                    lo <= x && x <= hi
                } else {
                    x >= lo || x <= hi
                }
            };
            // At most PENDING xids are busy, so this ends.
            let mut tries = 0;
            while busy(xid) && tries <= PENDING {
                xid = step(xid);
                tries += 1;
            }
        }
        (xid, step(xid))
    }

    /// Encodes a request frame into the transmit FIFO.
    fn enqueue_request(&mut self, xid: Xid, body: &RequestBody<'_>) -> Result<()> {
        let chroot_len = self.chroot.len();
        let payload = request_len(xid, body, &self.chroot);
        if payload > self.config.max_frame_len as usize {
            return Err(Error::TooLarge);
        }
        let frame = payload + FRAME_HEADER_LEN;
        let at = self.reserve_tx(frame)?;
        let chroot = &self.chroot;
        let out = self
            .tx
            .as_mut()
            .get_mut(at..at + frame)
            .ok_or(Error::BufferTooSmall)?;
        let (prefix, rest) = out
            .split_first_chunk_mut::<FRAME_HEADER_LEN>()
            .ok_or(Error::BufferTooSmall)?;
        let written = encode_request(rest, xid, body, chroot)?;
        debug_assert_eq!(written, payload, "request_len disagrees ({chroot_len})");
        *prefix = i32::try_from(written)
            .map_err(|_| Error::TooLarge)?
            .to_be_bytes();
        self.tx_tail = at + FRAME_HEADER_LEN + written;
        Ok(())
    }

    /// Encodes a whole frame with `encode` into the transmit FIFO.
    fn enqueue_frame(&mut self, encode: impl FnOnce(&mut [u8]) -> Result<usize>) -> Result<()> {
        let free = self.tx.as_ref().len() - self.tx_tail;
        if free < MIN_TRANSMIT_LEN {
            self.compact_tx();
        }
        let out = self
            .tx
            .as_mut()
            .get_mut(self.tx_tail..)
            .ok_or(Error::Capacity)?;
        let n = encode(out).map_err(|e| match e {
            Error::BufferTooSmall => Error::Capacity,
            e => e,
        })?;
        self.tx_tail += n;
        Ok(())
    }

    /// Makes room for `len` bytes at the FIFO's tail; returns where they go.
    fn reserve_tx(&mut self, len: usize) -> Result<usize> {
        let cap = self.tx.as_ref().len();
        if len > cap {
            return Err(Error::BufferTooSmall);
        }
        if cap - self.tx_tail < len {
            self.compact_tx();
        }
        if cap - self.tx_tail < len {
            return Err(Error::Capacity);
        }
        Ok(self.tx_tail)
    }

    fn compact_tx(&mut self) {
        if self.tx_head > 0 {
            let (head, tail) = (self.tx_head, self.tx_tail);
            self.tx.as_mut().copy_within(head..tail, 0);
            self.tx_tail = tail - head;
            self.tx_head = 0;
        }
    }

    // -----------------------------------------------------------------------------------------
    // Transmit
    // -----------------------------------------------------------------------------------------

    /// Whether [`poll_transmit`](Self::poll_transmit) has bytes to write.
    pub fn has_transmit(&self) -> bool {
        match self.state {
            SessionState::Handshaking => !self.connect_sent,
            SessionState::Connected | SessionState::Closing => {
                self.replay_pending() || self.ping_wanted || self.tx_tail > self.tx_head
            }
            _ => false,
        }
    }

    /// Whether auths or watches remain to be replayed on this connection.
    fn replay_pending(&self) -> bool {
        self.replay.active
            && (self.replay.auth < self.auths.len()
                || self
                    .watches
                    .entries
                    .get(self.replay.watch..)
                    .is_some_and(|rest| rest.iter().any(|w| w.token == 0)))
    }

    /// Writes the bytes to send next into `buf` and returns how many (0: nothing to send).
    /// The bytes are the session's from then on: the transport must write all of them, in
    /// order, before the bytes of the next call.
    ///
    /// During the handshake only the ConnectRequest goes out (as the Java client does, so
    /// that an expired session's answer is not lost to a reset). After it: the auth replay,
    /// the watch re-registration (setWatches, or setWatches2 when persistent watches are
    /// among them, in batches of at most [`SET_WATCHES_BATCH_LEN`] path bytes), a ping when
    /// one is due, and then as many queued requests as fit — many frames in one call.
    ///
    /// Frames the session makes up itself are written whole: give a buffer of at least
    /// [`MIN_TRANSMIT_LEN`] bytes. Queued requests are copied in pieces if need be.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> usize {
        let n = match self.state {
            SessionState::Handshaking if !self.connect_sent => {
                match self.connect_request().encode_framed(buf) {
                    Ok(n) => {
                        self.connect_sent = true;
                        n
                    }
                    Err(_) => 0,
                }
            }
            SessionState::Connected | SessionState::Closing => self.transmit_connected(buf),
            _ => 0,
        };
        if n > 0 {
            self.last_send = now;
            self.stats.bytes_sent += n as u64;
        }
        n
    }

    /// [`poll_transmit`](Self::poll_transmit) call after call into `buf`, until the session has
    /// nothing more to send or the rest of `buf` is too short for its next frame; returns the
    /// bytes written. For a transport that writes one buffer per system call.
    pub fn poll_transmit_all(&mut self, now: Instant, buf: &mut [u8]) -> usize {
        let mut written = 0;
        while let Some(rest) = buf.get_mut(written..).filter(|rest| !rest.is_empty()) {
            match self.poll_transmit(now, rest) {
                0 => break,
                n => written += n,
            }
        }
        written
    }

    fn connect_request(&self) -> ConnectRequest<'_> {
        const ZEROS: [u8; PASSWD_LEN] = [0; PASSWD_LEN];
        let timeout = i32::try_from(self.config.session_timeout.as_millis()).unwrap_or(i32::MAX);
        ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: self.last_zxid,
            timeout,
            session_id: self.session_id,
            passwd: Some(if self.passwd.is_empty() {
                &ZEROS[..]
            } else {
                &self.passwd
            }),
            read_only: Some(self.config.read_only),
        }
    }

    fn transmit_connected(&mut self, buf: &mut [u8]) -> usize {
        let mut n = 0;
        while self.replay.active {
            let Some(out) = buf.get_mut(n..) else { break };
            match self.next_replay_frame(out) {
                Some(len) => n += len,
                None => return n,
            }
        }
        if self.ping_wanted
            && self.tx_partial == 0
            && let Some(out) = buf.get_mut(n..)
            && let Ok(len) = Request::PING.encode_framed(out)
        {
            n += len;
            self.ping_wanted = false;
            self.stats.pings += 1;
        }
        if n > 0 {
            // Something goes out: the server hears from us, no ping needed.
            self.ping_wanted = false;
        }
        let queued = self.tx_tail - self.tx_head;
        let room = buf.len().saturating_sub(n);
        let take = queued.min(room);
        if take > 0 {
            let (head, partial) = self.advance_tx(take);
            let src = self.tx.as_ref().get(self.tx_head..self.tx_head + take);
            if let (Some(src), Some(dst)) = (src, buf.get_mut(n..n + take)) {
                dst.copy_from_slice(src);
                n += take;
            }
            self.tx_head = head;
            self.tx_partial = partial;
            self.ping_wanted = false;
            if self.tx_head == self.tx_tail {
                self.tx_head = 0;
                self.tx_tail = 0;
            }
        }
        n
    }

    /// Where the FIFO's head and the partial-frame count go after handing out `take` bytes.
    fn advance_tx(&self, take: usize) -> (usize, usize) {
        let tx = self.tx.as_ref();
        let mut pos = self.tx_head;
        let mut partial = self.tx_partial;
        let mut left = take;
        while left > 0 {
            if partial == 0 {
                let len = tx
                    .get(pos..pos + FRAME_HEADER_LEN)
                    .and_then(|b| <[u8; 4]>::try_from(b).ok())
                    .map_or(0, |b| u32::from_be_bytes(b) as usize);
                partial = FRAME_HEADER_LEN + len;
            }
            let step = left.min(partial);
            partial -= step;
            left -= step;
            pos += step;
        }
        (pos, partial)
    }

    /// Writes the next auth or watch re-registration frame into `out`; `None` when it does
    /// not fit. Ends the replay when nothing is left.
    fn next_replay_frame(&mut self, out: &mut [u8]) -> Option<usize> {
        if let Some(auth) = self.auths.get(self.replay.auth) {
            let request = Request::auth(AuthPacket {
                auth_type: 0,
                scheme: ZkStr::from_bytes(&auth.scheme),
                auth: Some(&auth.data),
            });
            let n = request.encode_framed(out).ok()?;
            self.replay.auth += 1;
            self.stats.auths_sent += 1;
            return Some(n);
        }
        // Skip what is not to be re-registered.
        while let Some(w) = self.watches.entries.get(self.replay.watch) {
            if w.token == 0 {
                break;
            }
            self.replay.watch += 1;
        }
        if self.replay.watch >= self.watches.entries.len() {
            self.replay.active = false;
            return Some(0);
        }
        let limit = out
            .len()
            .min(SET_WATCHES_BATCH_LEN + SET_WATCHES_OVERHEAD)
            .min(self.config.max_frame_len as usize + FRAME_HEADER_LEN);
        let (end, n) = encode_set_watches(
            out,
            limit,
            self.last_zxid,
            &self.watches,
            self.replay.watch,
            &self.chroot,
        )?;
        self.replay.watch = end;
        self.stats.set_watches_sent += 1;
        Some(n)
    }
}

fn op_error(op: OpCode) -> Error {
    op.unexpected()
}
