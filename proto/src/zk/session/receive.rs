//! What comes in: the receive buffer, frames taken one at a time by `poll_event`, the
//! handshake's answer, and replies matched to the oldest pending request.

use heapless::Vec;

use super::chroot::{strip_body, strip_list_in_place};
use super::{DisconnectReason, Event, Replay, ReplyEvent, SessionState, WatchEvent, ZkSession};
use crate::Error;
use crate::time::Instant;
use crate::zk::reply::DetachedBody;
use crate::zk::{
    AUTH_XID, ConnectResponse, ErrorCode, FRAME_HEADER_LEN, FrameDecoder, FrameStatus,
    NOTIFICATION_XID, OpCode, PING_XID, REPLY_HEADER_LEN, Reply, ReplyHeader, SET_WATCHES_XID,
};

impl<B, const PENDING: usize, const WATCHES: usize, const WATCH_BYTES: usize>
    ZkSession<B, PENDING, WATCHES, WATCH_BYTES>
where
    B: AsRef<[u8]> + AsMut<[u8]>,
{
    /// Copies received bytes into the receive buffer; returns how many it took (all of them
    /// unless the buffer is full: call [`poll_event`](Self::poll_event) to make room and feed
    /// the rest). Releases the frame of the last event.
    pub fn handle_bytes(&mut self, now: Instant, bytes: &[u8]) -> usize {
        if !self.receiving() {
            return bytes.len();
        }
        let free = self.receive_buffer();
        let n = free.len().min(bytes.len());
        if let (Some(dst), Some(src)) = (free.get_mut(..n), bytes.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.handle_received(now, n);
        n
    }

    /// The free end of the receive buffer, for the transport to read the socket into
    /// directly; then [`handle_received`](Self::handle_received) with the count. Releases the
    /// frame of the last event. Empty when the buffer is full of frames not yet polled.
    pub fn receive_buffer(&mut self) -> &mut [u8] {
        self.release();
        if self.fanout.is_none() && self.rx_head > 0 {
            let (head, tail) = (self.rx_head, self.rx_tail);
            self.rx.as_mut().copy_within(head..tail, 0);
            self.rx_tail = tail - head;
            self.rx_head = 0;
        }
        let tail = self.rx_tail;
        self.rx.as_mut().get_mut(tail..).unwrap_or_default()
    }

    /// `n` bytes were written into [`receive_buffer`](Self::receive_buffer).
    pub fn handle_received(&mut self, now: Instant, n: usize) {
        if n == 0 {
            return;
        }
        self.stats.bytes_received += n as u64;
        if !self.receiving() {
            return;
        }
        self.rx_tail = (self.rx_tail + n).min(self.rx.as_ref().len());
        self.last_recv = now;
    }

    fn receiving(&self) -> bool {
        matches!(
            self.state,
            SessionState::Handshaking | SessionState::Connected | SessionState::Closing
        )
    }

    fn release(&mut self) {
        self.rx_head += self.rx_release;
        self.rx_release = 0;
        if self.rx_head >= self.rx_tail && self.fanout.is_none() {
            self.rx_head = 0;
            self.rx_tail = 0;
        }
    }

    /// The frame decoder for this session: the configured maximum, bounded by what the
    /// receive buffer can hold.
    fn decoder(&self) -> FrameDecoder {
        let room = self.rx.as_ref().len().saturating_sub(FRAME_HEADER_LEN);
        let room = u32::try_from(room).unwrap_or(u32::MAX);
        FrameDecoder::with_max_frame_len(self.config.max_frame_len.min(room))
    }

    /// The next event: state changes, failed requests, watch notifications (once per watch
    /// fired) and replies, in the order they happened. `None` when nothing is left until more
    /// bytes arrive or time passes.
    ///
    /// The event borrows the receive buffer; its frame is released at the next call (see the
    /// type's documentation).
    pub fn poll_event(&mut self) -> Option<Event<'_>> {
        self.release();
        if let Some(event) = self.state_events.pop_front() {
            return Some(event);
        }
        if let Some(front) = self.pending.front()
            && let Some(code) = front.fail
        {
            let (xid, op) = (front.xid, front.op);
            self.pending.pop_front();
            self.stats.failed_locally += 1;
            return Some(Event::Reply(ReplyEvent {
                xid,
                op,
                zxid: 0,
                result: Err(code),
            }));
        }
        loop {
            if let Some((fanout, consumed)) = self.fanout {
                if fanout.unmatched {
                    self.fanout = None;
                    self.rx_release = consumed;
                    return Some(Event::Watch(WatchEvent {
                        watcher: None,
                        kind: None,
                        event_type: fanout.event_type,
                        path: self.fanout_path(fanout),
                        zxid: fanout.zxid,
                    }));
                }
                if let Some(i) = self.watches.entries.iter().position(|w| w.firing) {
                    let w = self.watches.entries[i];
                    if w.kind.is_one_shot() {
                        self.remove_watch(i);
                    } else {
                        self.watches.entries[i].firing = false;
                    }
                    return Some(Event::Watch(WatchEvent {
                        watcher: Some(w.watcher),
                        kind: Some(w.kind),
                        event_type: fanout.event_type,
                        path: self.fanout_path(fanout),
                        zxid: fanout.zxid,
                    }));
                }
                self.fanout = None;
                self.rx_head += consumed;
                self.release();
            }
            match self.step() {
                Step::Nothing => return None,
                Step::Skip | Step::Fanout => {}
                Step::StateEvent => return self.state_events.pop_front(),
                Step::Owned(event) => return Some(event),
                Step::Reply {
                    start,
                    end,
                    consumed,
                    header,
                    body,
                } => return Some(self.reply_event(start, end, consumed, header, body)),
            }
        }
    }

    /// Looks at the next frame in the receive buffer.
    fn step(&mut self) -> Step {
        if !self.receiving() {
            return Step::Nothing;
        }
        let decoder = self.decoder();
        let bytes = self
            .rx
            .as_ref()
            .get(self.rx_head..self.rx_tail)
            .unwrap_or_default();
        let (start, end, consumed) = match decoder.decode(bytes) {
            Ok(FrameStatus::Partial { .. }) => return Step::Nothing,
            Ok(FrameStatus::Complete { frame, consumed }) => {
                let start = self.rx_head + FRAME_HEADER_LEN;
                (start, start + frame.len(), consumed)
            }
            Err(e) => return self.protocol_error(DisconnectReason::Protocol(e)),
        };
        if self.state == SessionState::Handshaking {
            self.rx_head += consumed;
            return self.on_connect_response(start, end);
        }
        self.on_frame(start, end, consumed)
    }

    pub(super) fn protocol_error(&mut self, reason: DisconnectReason) -> Step {
        let now = self.last_recv;
        self.teardown(now, reason);
        Step::StateEvent
    }

    fn on_connect_response(&mut self, start: usize, end: usize) -> Step {
        let parsed = self
            .rx
            .as_ref()
            .get(start..end)
            .map_or(Err(Error::Truncated), ConnectResponse::parse);
        let response = match parsed {
            Ok(response) => response,
            Err(e) => return self.protocol_error(DisconnectReason::Protocol(e)),
        };
        if response.is_expired() {
            self.state = SessionState::Expired;
            self.stats.disconnects += 1;
            self.fail_all(ErrorCode::SessionExpired);
            self.clear_connection();
            return Step::Owned(Event::Expired);
        }
        let mut passwd = Vec::new();
        if passwd
            .extend_from_slice(response.passwd.unwrap_or_default())
            .is_err()
        {
            return self.protocol_error(DisconnectReason::Protocol(Error::TooLarge));
        }
        let reattached = self.session_id != 0 && self.session_id == response.session_id;
        self.session_id = response.session_id;
        self.negotiated_ms = response.timeout;
        self.read_only = response.read_only.unwrap_or(false);
        self.passwd = passwd;
        self.state = SessionState::Connected;
        self.attempts = 0;
        self.deadline = Instant::MAX;
        self.replay = Replay {
            auth: 0,
            watch: 0,
            active: true,
        };
        self.stats.handshakes += 1;
        // A closeSession queued before the connection came up is still to be answered.
        if self
            .pending
            .iter()
            .any(|p| p.op == OpCode::CloseSession && p.fail.is_none())
        {
            self.state = SessionState::Closing;
        }
        Step::Owned(Event::Connected {
            session_id: self.session_id,
            timeout_ms: self.negotiated_ms,
            read_only: self.read_only,
            reattached,
        })
    }

    /// Handles the frame at `start..end` while connected: what makes no event is done here; a
    /// reply is parsed (and its path lists stripped of the chroot in place) and left at
    /// `rx_head` for [`reply_event`](Self::reply_event), which hands out the body parsed here;
    /// a notification starts a fan-out.
    fn on_frame(&mut self, start: usize, end: usize, consumed: usize) -> Step {
        let header = match self
            .rx
            .as_ref()
            .get(start..end)
            .and_then(|f| f.first_chunk::<REPLY_HEADER_LEN>())
        {
            Some(h) => ReplyHeader::from_bytes(h),
            None => return self.protocol_error(DisconnectReason::Protocol(Error::Truncated)),
        };
        match header.xid {
            PING_XID | SET_WATCHES_XID => {
                self.rx_head += consumed;
                Step::Skip
            }
            AUTH_XID => {
                self.rx_head += consumed;
                if header.err.is_ok() {
                    return Step::Skip;
                }
                self.state = SessionState::AuthFailed;
                self.stats.disconnects += 1;
                self.fail_all(ErrorCode::AuthFailed);
                self.clear_connection();
                Step::Owned(Event::AuthFailed)
            }
            NOTIFICATION_XID => self.on_notification(start, end, consumed, header.zxid),
            xid => {
                let expected = self.pending.front().map(|p| p.xid);
                if expected != Some(xid) {
                    return self
                        .protocol_error(DisconnectReason::UnexpectedXid { expected, got: xid });
                }
                let op = self.pending.front().map_or(OpCode::Error, |p| p.op);
                let frame = self.rx.as_mut().get_mut(start..end).unwrap_or_default();
                let mut body = match Reply::parse(op, frame) {
                    Ok(reply) => DetachedBody::new(reply.body, frame),
                    Err(e) => return self.protocol_error(DisconnectReason::Protocol(e)),
                };
                let mut len = end - start;
                if !self.chroot.is_empty()
                    && header.err.is_ok()
                    && matches!(
                        op,
                        OpCode::Multi | OpCode::MultiRead | OpCode::GetEphemerals
                    )
                {
                    let list = frame.get_mut(REPLY_HEADER_LEN..).unwrap_or_default();
                    match strip_list_in_place(list, op, &self.chroot) {
                        Some(n) => {
                            body.shorten(len - (REPLY_HEADER_LEN + n));
                            len = REPLY_HEADER_LEN + n;
                        }
                        None => {
                            return self
                                .protocol_error(DisconnectReason::Protocol(Error::BadLength));
                        }
                    }
                }
                Step::Reply {
                    start,
                    end: start + len,
                    consumed,
                    header,
                    body,
                }
            }
        }
    }

    /// The reply at `start..end` (parsed by [`on_frame`](Self::on_frame) into `header` and
    /// `body`) to the oldest pending request, as an event.
    fn reply_event(
        &mut self,
        start: usize,
        end: usize,
        consumed: usize,
        header: ReplyHeader,
        body: DetachedBody,
    ) -> Event<'_> {
        let pending = self.pending.pop_front();
        let (xid, op, watch) =
            pending.map_or((header.xid, OpCode::Error, 0), |p| (p.xid, p.op, p.watch));
        self.rx_release = consumed;
        self.stats.replies += 1;
        if header.zxid > 0 {
            self.last_zxid = header.zxid;
        }
        if watch != 0 {
            self.watches.settle(watch, header.err);
        }
        if op == OpCode::CloseSession && header.err.is_ok() {
            self.state = SessionState::Closed;
            self.fail_all(ErrorCode::SessionExpired);
            self.clear_connection();
            self.push_state_event(Event::Closed);
        }
        let frame = self.rx.as_ref().get(start..end).unwrap_or_default();
        let result = if header.err.is_ok() {
            Ok(strip_body(body.attach(frame), &self.chroot))
        } else {
            Err(header.err)
        };
        Event::Reply(ReplyEvent {
            xid,
            op,
            zxid: header.zxid,
            result,
        })
    }
}

/// What the next frame made.
#[derive(Clone, Copy, Debug)]
pub(super) enum Step {
    /// No whole frame.
    Nothing,
    /// A frame that makes no event (ping reply, successful auth or setWatches).
    Skip,
    /// A state event was queued.
    StateEvent,
    /// An event that borrows nothing.
    Owned(Event<'static>),
    /// A notification whose fan-out starts.
    Fanout,
    /// A parsed reply to the oldest pending request.
    Reply {
        start: usize,
        end: usize,
        consumed: usize,
        header: ReplyHeader,
        body: DetachedBody,
    },
}
