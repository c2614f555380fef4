//! The socket side of a [`ZkClient`](super::ZkClient): connecting to the servers in turn,
//! reading replies straight into the session's receive buffer, writing what the session has to
//! send, and reply batching's naps.

use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant as StdInstant};

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use sinew_proto::time::Instant;
use sinew_proto::zk::session::SessionState;

use super::{Batching, ClientSession, IoStats, Outcomes, WRITE_BUFFER};
use crate::adapter::{Registration, earliest};
use crate::{Clock, ConnectError};

/// The transport: socket, registration, write buffer, server list, and the session they drive.
pub(super) struct Core {
    pub(super) session: Box<ClientSession>,
    pub(super) servers: Vec<SocketAddr>,
    next_server: usize,
    /// The server of the socket, while there is one.
    pub(super) current: Option<SocketAddr>,
    stream: Option<TcpStream>,
    tcp_connecting: bool,
    /// Whether `stream` is in the registry (it is not during a nap).
    watched: bool,
    /// The last read found the socket empty (a short read, or `WouldBlock`): until the poll
    /// says the socket is readable again, a standalone step need not try another read.
    drained: bool,
    pub(super) registration: Registration,
    pub(super) clock: Clock,
    out: Vec<u8>,
    out_start: usize,
    out_end: usize,
    pub(super) io: IoStats,
    batching: Option<Batching>,
    pace: ReplyPace,
    /// Until when replies are left to gather ([`Batching`]); the socket is out of the registry
    /// meanwhile, so that arriving replies wake nobody.
    nap_until: Option<Instant>,
    /// The last nap ended with nothing to read (a slow server): the next step reads at once
    /// instead of napping again, as a read that waits for the socket would.
    idle_nap: bool,
    /// How many servers the session's current connection attempt has tried.
    round: usize,
    /// How the connection attempts to each server ended.
    pub(super) attempts: ConnectLog,
}

impl Core {
    pub(super) fn new(
        session: Box<ClientSession>,
        servers: Vec<SocketAddr>,
        batching: Option<Batching>,
    ) -> Core {
        Core {
            session,
            servers,
            next_server: 0,
            current: None,
            stream: None,
            tcp_connecting: false,
            watched: false,
            drained: false,
            registration: Registration::default(),
            clock: Clock::new(),
            out: vec![0; WRITE_BUFFER],
            out_start: 0,
            out_end: 0,
            io: IoStats::default(),
            batching,
            pace: ReplyPace::default(),
            nap_until: None,
            idle_nap: false,
            round: 0,
            attempts: ConnectLog::default(),
        }
    }

    /// Moves the socket (now and after every reconnect) to `registry` under `token`.
    pub(super) fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        self.unwatch()?;
        self.registration.set(registry, token)?;
        if self.nap_until.is_none() {
            self.watch()?;
        }
        Ok(())
    }

    /// One step, never blocking: reads everything that came (unless replies are being left to
    /// gather), lets time pass, writes what is queued; every event goes to `out`.
    ///
    /// With [`Batching`], a step that wrote everything, found nothing to deliver and has enough
    /// requests in flight reads nothing: it takes the socket out of the registry and sets a nap
    /// that [`poll_timeout`](Self::poll_timeout) reports. Steps during the nap only write and
    /// let time pass; the first step after it reads everything that gathered.
    pub(super) fn process(&mut self, out: &mut Outcomes) -> io::Result<()> {
        let now = self.clock.now();
        let napped = match self.nap_until {
            Some(until) if now < until => return self.advance(now, out),
            Some(_) => {
                self.nap_until = None;
                self.watch()?;
                true
            }
            None => {
                let delivered = out.delivered();
                self.advance(now, out)?;
                // Something happened already: the caller looks at it before any nap.
                if out.delivered() != delivered {
                    false
                } else {
                    match self.start_nap(now)? {
                        Nap::Deferred => return Ok(()),
                        Nap::Slept => true,
                        Nap::None => false,
                    }
                }
            }
        };
        // Standalone, the run loop knows whether the socket woke it: a step it took for another
        // reason (a timer, the caller's new requests) skips the read that would find nothing.
        let skip_read = !napped
            && self.drained
            && self.registration.is_own()
            && !self.registration.take_woken();
        let last_read = if skip_read { None } else { self.read(out)? };
        if napped || last_read.is_some() {
            self.idle_nap = last_read.is_none();
        }
        let now = last_read.unwrap_or_else(|| self.clock.now());
        if self.batching.is_some() {
            let pending = self.session.pending();
            self.pace.sample(self.session.stats().replies, pending, now);
        }
        self.advance(now, out)
    }

    /// When [`process`](Self::process) next has work without the socket: a session timer or
    /// the end of a nap.
    pub(super) fn poll_timeout(&self) -> Option<StdInstant> {
        let session = self.session.poll_timeout();
        earliest(
            session.and_then(|t| self.clock.to_std(t)),
            self.nap_until.and_then(|t| self.clock.to_std(t)),
        )
    }

    /// Lets time pass in the session (it is `now`), opens or closes the socket as the session
    /// wants, and writes what it has to send; every event goes to `out`.
    pub(super) fn advance(&mut self, now: Instant, out: &mut Outcomes) -> io::Result<()> {
        if self.session.poll_timeout().is_some_and(|t| t <= now) {
            let before = self.session.state();
            self.session.handle_timeout(now);
            if self.session.state() == SessionState::Disconnected {
                self.note_attempt_timeout(before);
            }
        }
        out.drain(&mut self.session);
        if self.tcp_connecting {
            self.finish_connect(now)?;
        }
        self.sync_socket(now)?;
        if self.tcp_connecting {
            self.finish_connect(now)?;
        }
        self.write(now);
        out.drain(&mut self.session);
        // A failure while writing closes the socket; open the next one at once.
        if self.stream.is_none() || !self.session.state().has_connection() {
            self.sync_socket(now)?;
            self.write(now);
            out.drain(&mut self.session);
        }
        Ok(())
    }

    /// Starts a nap if [`Batching`] wants one now; whether it did.
    fn start_nap(&mut self, now: Instant) -> io::Result<Nap> {
        let Some(batching) = self.batching else {
            return Ok(Nap::None);
        };
        let pending = self.session.pending();
        // Only with everything written: unsent requests are work the server lacks.
        if self.idle_nap
            || self.stream.is_none()
            || self.session.state() != SessionState::Connected
            || pending < batching.min_in_flight
            || self.out_start != self.out_end
            || self.session.has_transmit()
        {
            return Ok(Nap::None);
        }
        let nap = self
            .pace
            .nap(pending)
            .unwrap_or_default()
            .min(batching.wait);
        if nap.is_zero() {
            return Ok(Nap::None);
        }
        self.io.batch_waits += 1;
        if !self.registration.is_shared() {
            // Standalone, the thread is the client's own: sleep here and read at once, with
            // no registry calls (taking the socket out of the Poll and back costs two system
            // calls per nap).
            std::thread::sleep(nap);
            return Ok(Nap::Slept);
        }
        self.unwatch()?;
        self.nap_until = Some(now + nap);
        Ok(Nap::Deferred)
    }

    /// Registers the socket, if there is one and it is not registered.
    fn watch(&mut self) -> io::Result<()> {
        if let Some(stream) = self.stream.as_mut()
            && !self.watched
        {
            let interest = Interest::READABLE | Interest::WRITABLE;
            self.registration.add(stream, 0, interest)?;
            self.watched = true;
        }
        Ok(())
    }

    /// Takes the socket out of the registry, if it is there.
    fn unwatch(&mut self) -> io::Result<()> {
        if let Some(stream) = self.stream.as_mut()
            && self.watched
        {
            self.watched = false;
            self.registration.remove(stream)?;
        }
        Ok(())
    }

    /// Closes a socket the session no longer wants; opens one when the session wants it.
    fn sync_socket(&mut self, now: Instant) -> io::Result<()> {
        if !self.session.state().has_connection() && self.stream.is_some() {
            self.close_socket();
        }
        if self.stream.is_none() && self.session.wants_connect(now) {
            self.session.handle_connecting(now);
            self.round = 0;
            self.open_next(now)?;
        }
        Ok(())
    }

    /// Opens a connection to the next server. One that fails at once (refused, unreachable)
    /// is noted and the one after it tried, until every server has failed in this attempt:
    /// only then does the session hear of it (and wait before the next attempt).
    fn open_next(&mut self, now: Instant) -> io::Result<()> {
        while self.round < self.servers.len() {
            let addr = self.servers[self.next_server];
            self.next_server = (self.next_server + 1) % self.servers.len();
            self.round += 1;
            self.io.connects += 1;
            match TcpStream::connect(addr) {
                Ok(stream) => {
                    self.stream = Some(stream);
                    self.drained = false;
                    self.tcp_connecting = true;
                    self.current = Some(addr);
                    return self.watch();
                }
                Err(e) => {
                    self.io.connect_failures += 1;
                    self.attempts.record(addr, e);
                }
            }
        }
        self.session.handle_disconnected(now);
        Ok(())
    }

    /// Checks whether a non-blocking connect has completed; a failed one is noted and the next
    /// server tried.
    fn finish_connect(&mut self, now: Instant) -> io::Result<()> {
        let Some(stream) = self.stream.as_ref() else {
            self.tcp_connecting = false;
            return Ok(());
        };
        let failure = match stream.take_error() {
            Ok(Some(e)) | Err(e) => Some(e),
            Ok(None) => match stream.peer_addr() {
                Ok(_) => None,
                Err(e) if e.kind() == ErrorKind::NotConnected => return Ok(()),
                Err(e) => Some(e),
            },
        };
        self.tcp_connecting = false;
        let Some(e) = failure else {
            // As the Java client: no Nagle delay for small requests.
            let _ = stream.set_nodelay(true);
            self.session.handle_connected(now);
            return Ok(());
        };
        self.io.connect_failures += 1;
        if let Some(addr) = self.current {
            self.attempts.record(addr, e);
        }
        self.close_socket();
        if self.session.state() == SessionState::Connecting {
            self.open_next(now)?;
        }
        Ok(())
    }

    /// Notes a connect timeout against the server, if the session just gave up an attempt
    /// that was in state `before`.
    fn note_attempt_timeout(&mut self, before: SessionState) {
        let Some(addr) = self.current else { return };
        let limit = self.session.config().connect_timeout;
        let what = match before {
            SessionState::Connecting => format!("no connection within {limit:?}"),
            SessionState::Handshaking => {
                format!("connected, but no answer to the handshake within {limit:?}")
            }
            _ => return,
        };
        self.attempts
            .record(addr, io::Error::new(ErrorKind::TimedOut, what));
    }

    /// The connection broke with `cause`: noted against the server if the session was not
    /// established there yet; the session hears of it; the socket is closed.
    fn lose_connection(&mut self, cause: io::Error) {
        if matches!(
            self.session.state(),
            SessionState::Connecting | SessionState::Handshaking
        ) && let Some(addr) = self.current
        {
            self.attempts.record(addr, cause);
        }
        let now = self.clock.now();
        self.session.handle_disconnected(now);
        self.close_socket();
    }

    fn close_socket(&mut self) {
        // Closing the socket takes it out of the registry anyway.
        let _ = self.unwatch();
        self.stream = None;
        self.tcp_connecting = false;
        self.current = None;
        self.out_start = 0;
        self.out_end = 0;
        self.nap_until = None;
        self.idle_nap = false;
    }

    /// Reads everything the socket has, straight into the session's receive buffer, and
    /// hands each event to `out` as soon as its frame is complete. Returns the time of the
    /// last read that brought bytes, if one did.
    fn read(&mut self, out: &mut Outcomes) -> io::Result<Option<Instant>> {
        let mut last = None;
        if self.tcp_connecting {
            let now = self.clock.now();
            self.finish_connect(now)?;
        }
        self.drained = false;
        loop {
            if self.tcp_connecting {
                return Ok(last);
            }
            let Some(stream) = self.stream.as_mut() else {
                return Ok(last);
            };
            let buf = self.session.receive_buffer();
            if buf.is_empty() {
                // Full of whole frames: hand them out to make room, or (a frame larger than
                // the buffer) the session gives the connection up.
                out.drain(&mut self.session);
                if self.session.receive_buffer().is_empty()
                    || !self.session.state().has_connection()
                {
                    return Ok(last);
                }
                continue;
            }
            let room = buf.len();
            match stream.read(buf) {
                Ok(0) => {
                    self.lose_connection(io::Error::new(
                        ErrorKind::UnexpectedEof,
                        "the server closed the connection",
                    ));
                    out.drain(&mut self.session);
                    return Ok(last);
                }
                Ok(n) => {
                    self.io.reads += 1;
                    self.io.bytes_read += n as u64;
                    let now = self.clock.now();
                    last = Some(now);
                    let before = self.session.state();
                    self.session.handle_received(now, n);
                    out.drain(&mut self.session);
                    if !self.session.state().has_connection() {
                        if before == SessionState::Handshaking {
                            self.note_bad_handshake();
                        }
                        self.close_socket();
                        return Ok(last);
                    }
                    if n < room {
                        // A short read emptied the socket's buffer; data arriving later
                        // wakes the poll again, so the read that would say WouldBlock is
                        // saved.
                        self.drained = true;
                        return Ok(last);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.drained = true;
                    return Ok(last);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    self.lose_connection(e);
                    out.drain(&mut self.session);
                    return Ok(last);
                }
            }
        }
    }

    /// Notes a handshake the session refused (not an expiry: the answer was not a
    /// ZooKeeper handshake reply).
    fn note_bad_handshake(&mut self) {
        if self.session.state() != SessionState::Disconnected {
            return;
        }
        if let Some(addr) = self.current {
            let e = io::Error::new(
                ErrorKind::InvalidData,
                "answered the handshake with something that is not a ZooKeeper reply",
            );
            self.attempts.record(addr, e);
        }
    }

    /// Writes what the session has to send (it is `now`): as many frames as fit the write
    /// buffer per `write`, until the socket would block.
    fn write(&mut self, now: Instant) {
        loop {
            if self.tcp_connecting {
                return;
            }
            let Some(stream) = self.stream.as_mut() else {
                return;
            };
            if self.out_start == self.out_end {
                self.out_start = 0;
                self.out_end = self.session.poll_transmit_all(now, &mut self.out);
                if self.out_end == 0 {
                    return;
                }
            }
            match stream.write(&self.out[self.out_start..self.out_end]) {
                Ok(n) => {
                    self.io.writes += 1;
                    self.io.bytes_written += n as u64;
                    self.out_start += n;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    self.lose_connection(e);
                    return;
                }
            }
        }
    }
}

/// How the connection attempts to each server ended, for [`ConnectError`].
#[derive(Debug, Default)]
pub(super) struct ConnectLog {
    /// Each server that failed, with what its last attempt ended with, in the order they
    /// first failed.
    failures: Vec<(SocketAddr, io::Error)>,
}

impl ConnectLog {
    fn record(&mut self, addr: SocketAddr, error: io::Error) {
        match self.failures.iter_mut().find(|(a, _)| *a == addr) {
            Some(entry) => entry.1 = error,
            None => self.failures.push((addr, error)),
        }
    }

    /// Forgets what happened so far.
    pub(super) fn clear(&mut self) {
        self.failures.clear();
    }

    /// Whether every one of `servers` failed since the last [`clear`](Self::clear).
    pub(super) fn covers(&self, servers: &[SocketAddr]) -> bool {
        servers
            .iter()
            .all(|s| self.failures.iter().any(|(a, _)| a == s))
    }

    /// What happened at every one of `servers`, for the caller, after `waited`: a server whose
    /// attempt was under way (`current`) or that was never tried gets a timeout.
    pub(super) fn take(
        &mut self,
        servers: &[SocketAddr],
        current: Option<SocketAddr>,
        waited: Duration,
    ) -> ConnectError {
        let mut attempts = std::mem::take(&mut self.failures);
        for &addr in servers {
            if attempts.iter().any(|(a, _)| *a == addr) {
                continue;
            }
            let what = if current == Some(addr) {
                format!("no session within {waited:?}")
            } else {
                format!("not tried within {waited:?}")
            };
            attempts.push((addr, io::Error::new(ErrorKind::TimedOut, what)));
        }
        ConnectError { attempts }
    }
}

/// The server's measured reply interval, for [`Batching`].
#[derive(Clone, Copy, Debug, Default)]
struct ReplyPace {
    /// Replies counted so far (the session's count when last sampled).
    replies: u64,
    /// When that count was taken; `None` while nothing was in flight.
    at: Option<Instant>,
    /// Moving average of the time per reply while requests were in flight.
    interval: Option<Duration>,
}

impl ReplyPace {
    /// Takes a sample: `replies` (the session's running count) at `now`, with `pending`
    /// requests still awaiting replies.
    fn sample(&mut self, replies: u64, pending: usize, now: Instant) {
        let got = replies.saturating_sub(self.replies);
        if let (Some(at), Ok(got @ 1..)) = (self.at, u32::try_from(got)) {
            let sample = (now - at) / got;
            // An average over about the last 8 samples.
            self.interval = Some(self.interval.map_or(sample, |i| (i * 7 + sample) / 8));
        }
        if got > 0 || self.at.is_none() {
            self.replies = replies;
            self.at = Some(now);
        }
        // Time with nothing in flight says nothing about the server.
        if pending == 0 {
            self.at = None;
        }
    }

    /// How long to nap so that about half of `pending` replies come.
    fn nap(&self, pending: usize) -> Option<Duration> {
        let half = u32::try_from(pending / 2).unwrap_or(u32::MAX);
        Some(self.interval?.saturating_mul(half))
    }
}

/// What [`Core::start_nap`] did.
enum Nap {
    /// No nap: read now.
    None,
    /// Slept in place (standalone): read now.
    Slept,
    /// The socket is out of the caller's `Poll` until the nap ends
    /// ([`poll_timeout`](Core::poll_timeout) says when).
    Deferred,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_pace_measures_time_per_reply_while_requests_are_in_flight() {
        let mut pace = ReplyPace::default();
        // No estimate before two samples with replies between them.
        assert_eq!(pace.nap(64), None);
        pace.sample(0, 64, Instant::from_micros(1_000));
        assert_eq!(pace.nap(64), None);
        // 10 replies in 500 µs: 50 µs each; half of 64 in flight is 1.6 ms.
        pace.sample(10, 64, Instant::from_micros(1_500));
        assert_eq!(pace.interval, Some(Duration::from_micros(50)));
        assert_eq!(pace.nap(64), Some(Duration::from_micros(1_600)));
        assert_eq!(pace.nap(1), Some(Duration::ZERO));
        // A step without replies leaves the estimate and the reference point alone.
        pace.sample(10, 64, Instant::from_micros(1_600));
        assert_eq!(pace.interval, Some(Duration::from_micros(50)));
        // 10 more in 1 ms (100 µs each) moves the average an eighth of the way.
        pace.sample(20, 64, Instant::from_micros(2_500));
        assert_eq!(pace.interval, Some(Duration::from_micros(56_250) / 1_000));
        // Idle time (nothing in flight) is not counted as the server's.
        pace.sample(25, 0, Instant::from_micros(3_000));
        let before = pace.interval;
        pace.sample(25, 16, Instant::from_micros(1_000_000));
        pace.sample(26, 16, Instant::from_micros(1_000_040));
        let after = pace.interval.unwrap();
        assert!(
            after < before.unwrap(),
            "a fast reply after an idle second lowers the estimate: {before:?} → {after:?}"
        );
    }

    #[test]
    fn connect_log_keeps_the_last_failure_per_server_and_fills_in_timeouts() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let c: SocketAddr = "127.0.0.1:3".parse().unwrap();
        let mut log = ConnectLog::default();
        log.record(a, io::Error::from(ErrorKind::ConnectionRefused));
        assert!(!log.covers(&[a, b]));
        log.record(a, io::Error::from(ErrorKind::HostUnreachable));
        log.record(b, io::Error::from(ErrorKind::ConnectionRefused));
        assert!(log.covers(&[a, b]));
        let e = log.take(&[a, b, c], None, Duration::from_secs(1));
        let kinds: Vec<_> = e
            .attempts
            .iter()
            .map(|(addr, e)| (*addr, e.kind()))
            .collect();
        assert_eq!(
            kinds,
            [
                (a, ErrorKind::HostUnreachable),
                (b, ErrorKind::ConnectionRefused),
                (c, ErrorKind::TimedOut),
            ]
        );
        assert!(
            e.to_string().contains("127.0.0.1:3: not tried within 1s"),
            "{e}"
        );
        // Taken: the log starts over.
        assert!(!log.covers(&[a]));
        let e = log.take(&[a], Some(a), Duration::from_millis(1500));
        assert_eq!(
            e.to_string(),
            "could not connect to 127.0.0.1:1: no session within 1.5s"
        );
    }
}
