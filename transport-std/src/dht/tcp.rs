//! The TCP side of a [`UdpDhtNode`](super::UdpDhtNode): clients send their requests as
//! length-prefixed frames (the crate-wide [`FrameDecoder`]) and get their answers on the same
//! connection.

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;

use mio::Interest;
use mio::net::{TcpListener, TcpStream};
use sinew_proto::dht::{Body, MAX_MESSAGE_LEN, Message};
use sinew_proto::frame::{FRAME_HEADER_LEN, FrameDecoder, FrameStatus, encode_frame};

use crate::Result;
use crate::adapter::Registration;

/// Most TCP connections a [`UdpDhtNode`](super::UdpDhtNode) keeps open; one more is closed as
/// soon as accepted.
pub const MAX_TCP_CONNECTIONS: usize = 64;
/// A connection whose unsent frames exceed this many bytes is closed (a peer that does not
/// read what it asked for).
const TCP_WRITE_LIMIT: usize = 256 * 1024;
/// The listener's token, after the node's UDP socket; connection `i` has `LISTENER + 1 + i`.
const LISTENER: usize = 1;

/// What the TCP side of a [`UdpDhtNode`](super::UdpDhtNode) did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TcpStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections closed at once because [`MAX_TCP_CONNECTIONS`] were open.
    pub refused: u64,
    /// Connections closed: by the peer, on an error, for a bad frame or an overrun.
    pub closed: u64,
    /// Frames received and handed to the core.
    pub frames_received: u64,
    /// Frames queued for sending.
    pub frames_sent: u64,
    /// Connections closed for a frame length over [`MAX_MESSAGE_LEN`].
    pub bad_frames: u64,
    /// Connections closed because the peer did not read what it was sent.
    pub overrun: u64,
    /// Frames dropped because they were no get, put, lock or unlock request nor an Echo (or did
    /// not parse): ring members talk UDP.
    pub not_requests: u64,
}

/// A client request that came on a TCP connection from `peer`, rewritten with `peer` as its
/// sender address (a TCP client need not know its own address: answers go back on the
/// connection) into `out`; `None` for anything but a well-formed get, put, lock or unlock, or
/// the Echo of a node's Challenge (which proves the connection's address, as on UDP).
pub(super) fn as_client_request(frame: &[u8], peer: SocketAddr, out: &mut [u8]) -> Option<usize> {
    let mut message = Message::parse(frame).ok()?;
    if !matches!(
        message.body,
        Body::Get { .. } | Body::Put { .. } | Body::Lock { .. } | Body::Unlock { .. } | Body::Echo
    ) {
        return None;
    }
    message.header.sender.addr = peer;
    message.encode(out).ok()
}

/// One accepted connection: frames in, frames out.
struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    open: bool,
}

/// The listener and its connections.
pub(super) struct Tcp {
    listener: TcpListener,
    conns: Vec<Option<Conn>>,
    decoder: FrameDecoder,
    pub(super) stats: TcpStats,
}

impl Tcp {
    pub(super) fn bind(addr: SocketAddr) -> Result<Tcp> {
        Ok(Tcp {
            listener: TcpListener::bind(addr)?,
            conns: Vec::new(),
            // The largest DHT message, far below u32::MAX.
            decoder: FrameDecoder::with_max_frame_len(MAX_MESSAGE_LEN as u32),
            stats: TcpStats::default(),
        })
    }

    pub(super) fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Registers the listener and every connection where `registration` says.
    pub(super) fn register(&mut self, registration: &Registration) -> Result<()> {
        registration.add(&mut self.listener, LISTENER, Interest::READABLE)?;
        for (i, slot) in self.conns.iter_mut().enumerate() {
            if let Some(conn) = slot {
                registration.add(
                    &mut conn.stream,
                    LISTENER + 1 + i,
                    Interest::READABLE | Interest::WRITABLE,
                )?;
            }
        }
        Ok(())
    }

    /// Removes the listener and every connection from the registry they are registered with.
    pub(super) fn deregister(&mut self, registration: &Registration) -> Result<()> {
        registration.remove(&mut self.listener)?;
        for conn in self.conns.iter_mut().flatten() {
            registration.remove(&mut conn.stream)?;
        }
        Ok(())
    }

    /// Queues `message` as a frame to `to` if a connection from `to` is open.
    pub(super) fn queue(&mut self, to: SocketAddr, message: &[u8]) -> bool {
        let Some(conn) = self
            .conns
            .iter_mut()
            .flatten()
            .find(|c| c.open && c.peer == to)
        else {
            return false;
        };
        let start = conn.outbuf.len();
        conn.outbuf
            .resize(start + FRAME_HEADER_LEN + message.len(), 0);
        let framed = encode_frame(&mut conn.outbuf[start..], |payload| {
            let room = payload
                .get_mut(..message.len())
                .ok_or(sinew_proto::Error::BufferTooSmall)?;
            room.copy_from_slice(message);
            Ok(message.len())
        });
        if framed.is_err() {
            // Not a DHT message: no frame of it.
            conn.outbuf.truncate(start);
            return true;
        }
        self.stats.frames_sent += 1;
        if conn.outbuf.len() > TCP_WRITE_LIMIT {
            conn.open = false;
            self.stats.overrun += 1;
        }
        true
    }

    /// Accepts every waiting connection, up to [`MAX_TCP_CONNECTIONS`].
    pub(super) fn accept(&mut self, registration: &Registration) -> Result<()> {
        loop {
            let (mut stream, peer) = match self.listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // The connection went away before it was accepted; the listener is fine.
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
                    ) =>
                {
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            self.stats.accepted += 1;
            let slot = match self.conns.iter().position(Option::is_none) {
                Some(i) => i,
                None if self.conns.len() < MAX_TCP_CONNECTIONS => {
                    self.conns.push(None);
                    self.conns.len() - 1
                }
                None => {
                    self.stats.refused += 1;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            registration.add(
                &mut stream,
                LISTENER + 1 + slot,
                Interest::READABLE | Interest::WRITABLE,
            )?;
            self.conns[slot] = Some(Conn {
                stream,
                peer,
                inbuf: Vec::new(),
                outbuf: Vec::new(),
                open: true,
            });
        }
    }

    /// Reads every open connection and takes out its whole frames, in order.
    pub(super) fn read_frames(&mut self) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut frames = Vec::new();
        let mut chunk = [0u8; 4096];
        for conn in self.conns.iter_mut().flatten().filter(|c| c.open) {
            loop {
                match conn.stream.read(&mut chunk) {
                    Ok(0) => {
                        conn.open = false;
                        break;
                    }
                    Ok(n) => conn.inbuf.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => {
                        conn.open = false;
                        break;
                    }
                }
            }
            let mut at = 0;
            loop {
                match self
                    .decoder
                    .decode(conn.inbuf.get(at..).unwrap_or_default())
                {
                    Ok(FrameStatus::Complete { frame, consumed }) => {
                        frames.push((conn.peer, frame.to_vec()));
                        at += consumed;
                    }
                    Ok(FrameStatus::Partial { .. }) => break,
                    Err(_) => {
                        // A length over the maximum: the stream cannot be resynchronised.
                        self.stats.bad_frames += 1;
                        conn.open = false;
                        break;
                    }
                }
            }
            conn.inbuf.drain(..at);
        }
        self.stats.frames_received += frames.len() as u64;
        frames
    }

    /// Writes what is queued on every connection, and drops the closed ones.
    pub(super) fn write_all(&mut self, registration: &Registration) {
        for slot in &mut self.conns {
            let Some(conn) = slot else { continue };
            while conn.open && !conn.outbuf.is_empty() {
                match conn.stream.write(&conn.outbuf) {
                    Ok(0) => conn.open = false,
                    Ok(n) => {
                        conn.outbuf.drain(..n);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => conn.open = false,
                }
            }
            if !conn.open {
                let _ = registration.remove(&mut conn.stream);
                self.stats.closed += 1;
                *slot = None;
            }
        }
    }
}
