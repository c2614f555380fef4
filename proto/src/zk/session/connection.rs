//! The connection's life and time: connect, disconnect and reconnect backoff, state events,
//! the connect and read timeouts and when to ping.

use core::time::Duration;

#[cfg(doc)]
use super::Config;
use super::{DisconnectReason, Event, FIRST_BACKOFF, MAX_BACKOFF, Replay, SessionState, ZkSession};
use crate::time::Instant;
use crate::zk::ErrorCode;

impl<B, const PENDING: usize, const WATCHES: usize, const WATCH_BYTES: usize>
    ZkSession<B, PENDING, WATCHES, WATCH_BYTES>
where
    B: AsRef<[u8]> + AsMut<[u8]>,
{
    // -----------------------------------------------------------------------------------------
    // Connection events
    // -----------------------------------------------------------------------------------------

    /// Whether the transport should open a connection now (to the next server of its list).
    pub fn wants_connect(&self, now: Instant) -> bool {
        self.state == SessionState::Disconnected && now >= self.reconnect_at
    }

    /// The transport started opening a connection: [`Config::connect_timeout`] runs from now
    /// (calling this is optional; [`handle_connected`](Self::handle_connected) starts it
    /// otherwise).
    pub fn handle_connecting(&mut self, now: Instant) {
        if self.state == SessionState::Disconnected {
            self.state = SessionState::Connecting;
            self.deadline = now + self.config.connect_timeout;
        }
    }

    /// The transport's connection is up: the handshake starts (the next
    /// [`poll_transmit`](Self::poll_transmit) writes the ConnectRequest).
    pub fn handle_connected(&mut self, now: Instant) {
        match self.state {
            SessionState::Disconnected => self.deadline = now + self.config.connect_timeout,
            SessionState::Connecting => {}
            _ => return,
        }
        self.state = SessionState::Handshaking;
        self.connect_sent = false;
        self.ping_wanted = false;
        self.replay = Replay::default();
        self.rx_head = 0;
        self.rx_tail = 0;
        self.rx_release = 0;
        self.fanout = None;
        self.tx_partial = 0;
        self.last_send = now;
        self.last_recv = now;
    }

    /// The transport's connection is gone (closed by the server, reset, failed to connect):
    /// every request in flight or queued fails with [`ErrorCode::ConnectionLoss`], and the
    /// session waits to reconnect (or, while closing, is closed).
    pub fn handle_disconnected(&mut self, now: Instant) {
        self.teardown(now, DisconnectReason::Transport);
    }

    /// Gives up the current connection.
    pub(super) fn teardown(&mut self, now: Instant, reason: DisconnectReason) {
        if !self.state.has_connection() {
            return;
        }
        let established = self.state == SessionState::Connected;
        let closing = self.state == SessionState::Closing;
        self.state = if closing {
            SessionState::Closed
        } else {
            SessionState::Disconnected
        };
        self.stats.disconnects += 1;
        if matches!(
            reason,
            DisconnectReason::Protocol(_) | DisconnectReason::UnexpectedXid { .. }
        ) {
            self.stats.protocol_errors += 1;
        }
        self.fail_all(ErrorCode::ConnectionLoss);
        self.clear_connection();
        self.attempts = if established {
            0
        } else {
            self.attempts.saturating_add(1)
        };
        let backoff = match self.attempts {
            0 => Duration::ZERO,
            n => FIRST_BACKOFF
                .saturating_mul(1 << (n - 1).min(16))
                .min(MAX_BACKOFF),
        };
        self.reconnect_at = now + backoff;
        self.deadline = Instant::MAX;
        self.push_state_event(Event::Disconnected { reason });
        if closing {
            self.push_state_event(Event::Closed);
        }
    }

    /// Forgets everything tied to one connection: queued bytes, received bytes, fan-out.
    pub(super) fn clear_connection(&mut self) {
        self.tx_head = 0;
        self.tx_tail = 0;
        self.tx_partial = 0;
        self.connect_sent = false;
        self.ping_wanted = false;
        self.replay = Replay::default();
        self.rx_head = 0;
        self.rx_tail = 0;
        self.rx_release = 0;
        self.fanout = None;
        self.watches.clear_firing();
    }

    /// Marks every pending request as failed with `code` (those already failed keep their
    /// error) and drops the watches they would have left.
    pub(super) fn fail_all(&mut self, code: ErrorCode) {
        for p in self.pending.iter_mut() {
            if p.fail.is_none() {
                p.fail = Some(code);
            }
            p.watch = 0;
        }
        self.watches.drop_reservations();
    }

    pub(super) fn push_state_event(&mut self, event: Event<'static>) {
        if self.state_events.is_full() {
            self.state_events.pop_front();
            self.stats.events_dropped += 1;
        }
        let _ = self.state_events.push_back(event);
    }

    // -----------------------------------------------------------------------------------------
    // Time
    // -----------------------------------------------------------------------------------------

    /// When [`handle_timeout`](Self::handle_timeout) next has work: the connect deadline, the
    /// read timeout, the next ping, or the moment to reconnect. `None` when only the
    /// application or the transport can move the session (terminal states).
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            SessionState::Connecting | SessionState::Handshaking => Some(self.deadline),
            SessionState::Connected | SessionState::Closing => {
                let read = self.last_recv + self.read_timeout();
                if self.ping_wanted {
                    Some(read)
                } else {
                    Some(read.min(self.last_send + self.ping_interval()))
                }
            }
            SessionState::Disconnected => Some(self.reconnect_at),
            SessionState::Closed | SessionState::Expired | SessionState::AuthFailed => None,
        }
    }

    /// Lets time pass: gives up a connection whose handshake or reads are late (every
    /// request in flight fails with ConnectionLoss), and decides on a ping after idle
    /// sending.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            SessionState::Connecting | SessionState::Handshaking if now >= self.deadline => {
                self.teardown(now, DisconnectReason::ConnectTimeout);
            }
            SessionState::Connected | SessionState::Closing => {
                if now >= self.last_recv + self.read_timeout() {
                    self.teardown(now, DisconnectReason::ReadTimeout);
                } else if now >= self.last_send + self.ping_interval() {
                    self.ping_wanted = true;
                }
            }
            _ => {}
        }
    }
}
