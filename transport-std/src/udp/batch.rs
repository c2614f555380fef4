//! Batched datagram I/O: on Linux `recvmmsg` through nix's safe wrapper and `sendmmsg` through
//! rustix's, so that a wake-up carrying many datagrams costs two system calls, not two per
//! datagram; elsewhere one `recv_from` / `send_to` per datagram through the same interface.

#[cfg(target_os = "linux")]
use std::cell::RefCell;
use std::io::{self, ErrorKind};
#[cfg(target_os = "linux")]
use std::io::{IoSlice, IoSliceMut};
use std::net::SocketAddr;
#[cfg(target_os = "linux")]
use std::os::fd::AsRawFd;

use mio::net::UdpSocket;
#[cfg(target_os = "linux")]
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrIn, SockaddrIn6, SockaddrLike, recvmmsg};
#[cfg(target_os = "linux")]
use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny};
use sinew_proto::datagram::MAX_DATAGRAM_LEN;

use super::SocketStats;

/// Datagrams moved per system call at most (one where there is no `recvmmsg`).
pub(crate) const BATCH: usize = if cfg!(target_os = "linux") { 32 } else { 1 };

// nix's message headers hold raw pointers, so they are neither `Send` nor `Sync` (and a
// node must stay `Send`): each thread keeps its own, allocated once. Receive headers are
// kept per address family because the kernel takes each header's address length, left
// from the last call, as the room for the next source address; every source of a socket is
// of its own family. Sends go through rustix, with headers built at every call.
#[cfg(target_os = "linux")]
thread_local! {
    static RECV_V4: RefCell<Option<MultiHeaders<SockaddrIn>>> = const { RefCell::new(None) };
    static RECV_V6: RefCell<Option<MultiHeaders<SockaddrIn6>>> = const { RefCell::new(None) };
}

/// A node's batch buffers.
pub(crate) struct Batch {
    /// One byte more than any valid datagram, so that an oversized one is seen as oversized.
    recv: [[u8; MAX_DATAGRAM_LEN + 1]; BATCH],
    /// Length and source of each datagram of the last receive.
    received: [(usize, Option<SocketAddr>); BATCH],
    send: [[u8; MAX_DATAGRAM_LEN]; BATCH],
    send_len: [usize; BATCH],
    send_to: [SocketAddr; BATCH],
    /// The same addresses as the kernel takes them, converted once, when queued.
    #[cfg(target_os = "linux")]
    send_addr: [SocketAddrAny; BATCH],
    /// Datagrams waiting in `send` (the first `queued` slots).
    queued: usize,
}

impl Batch {
    /// Empty buffers, on the heap (they take 40 KiB).
    pub(crate) fn new() -> Box<Batch> {
        Box::new(Batch {
            recv: [[0; MAX_DATAGRAM_LEN + 1]; BATCH],
            received: [(0, None); BATCH],
            send: [[0; MAX_DATAGRAM_LEN]; BATCH],
            send_len: [0; BATCH],
            send_to: [SocketAddr::from(([0, 0, 0, 0], 0)); BATCH],
            #[cfg(target_os = "linux")]
            send_addr: std::array::from_fn(|_| {
                SocketAddrAny::from(SocketAddr::from(([0, 0, 0, 0], 0)))
            }),
            queued: 0,
        })
    }

    /// Receives up to `want` waiting datagrams on a socket bound to an IPv6 (`ipv6`) or an
    /// IPv4 address, with one `recvfrom` when `want` is 1 and one `recvmmsg` otherwise: at
    /// least one, or an error (`WouldBlock` when none is waiting).
    pub(crate) fn receive(
        &mut self,
        socket: &UdpSocket,
        ipv6: bool,
        want: usize,
    ) -> io::Result<usize> {
        if want <= 1 || cfg!(not(target_os = "linux")) {
            let (len, from) = socket.recv_from(&mut self.recv[0])?;
            self.received[0] = (len, Some(from));
            return Ok(1);
        }
        #[cfg(not(target_os = "linux"))]
        let _ = ipv6;
        #[cfg(not(target_os = "linux"))]
        return Err(io::ErrorKind::Unsupported.into());
        #[cfg(target_os = "linux")]
        if ipv6 {
            RECV_V6.with_borrow_mut(|headers| self.receive_with(socket, want, headers))
        } else {
            RECV_V4.with_borrow_mut(|headers| self.receive_with(socket, want, headers))
        }
    }

    #[cfg(target_os = "linux")]
    fn receive_with<S>(
        &mut self,
        socket: &UdpSocket,
        want: usize,
        headers: &mut Option<MultiHeaders<S>>,
    ) -> io::Result<usize>
    where
        S: SockaddrLike + Copy + Into<SocketAddr>,
    {
        let headers = headers.get_or_insert_with(|| MultiHeaders::preallocate(BATCH, None));
        let mut slices = self.recv.each_mut().map(|buf| [IoSliceMut::new(buf)]);
        let results = recvmmsg(
            socket.as_raw_fd(),
            headers,
            slices.iter_mut().take(want),
            MsgFlags::empty(),
            None,
        )?;
        let mut n = 0;
        for (slot, message) in self.received.iter_mut().zip(results) {
            *slot = (message.bytes, message.address.map(Into::into));
            n += 1;
        }
        Ok(n)
    }

    /// Length and source of datagram `i` of the last receive.
    pub(crate) fn received(&self, i: usize) -> (usize, Option<SocketAddr>) {
        self.received.get(i).copied().unwrap_or((0, None))
    }

    /// The first `len` bytes of datagram `i` of the last receive.
    pub(crate) fn datagram(&self, i: usize, len: usize) -> &[u8] {
        self.recv
            .get(i)
            .and_then(|buf| buf.get(..len))
            .unwrap_or_default()
    }

    /// Whether every send slot is taken.
    pub(crate) fn is_full(&self) -> bool {
        self.queued >= BATCH
    }

    /// The next free send slot, to encode a datagram into (then [`push`](Self::push) it);
    /// empty when the batch is full.
    pub(crate) fn next_slot(&mut self) -> &mut [u8] {
        match self.send.get_mut(self.queued) {
            Some(slot) => slot,
            None => &mut [],
        }
    }

    /// Queues the `len` bytes encoded in the next slot for `to`; `false` (nothing queued)
    /// if they do not fit it.
    pub(crate) fn push(&mut self, len: usize, to: SocketAddr) -> bool {
        if self.queued >= BATCH || len > MAX_DATAGRAM_LEN {
            return false;
        }
        self.send_len[self.queued] = len;
        self.send_to[self.queued] = to;
        #[cfg(target_os = "linux")]
        {
            self.send_addr[self.queued] = SocketAddrAny::from(to);
        }
        self.queued += 1;
        true
    }

    /// Sends every queued datagram, a lone one with `sendto`, more in as few `sendmmsg`
    /// calls as the socket allows; a datagram the socket refuses is dropped and counted, as
    /// one `sendto` would be.
    pub(crate) fn flush(&mut self, socket: &UdpSocket, io: &mut SocketStats) {
        let queued = std::mem::take(&mut self.queued);
        match queued {
            0 => {}
            1 => loop {
                let datagram = self.send[0].get(..self.send_len[0]).unwrap_or_default();
                match socket.send_to(datagram, self.send_to[0]) {
                    Ok(sent) => {
                        io.datagrams_sent += 1;
                        io.bytes_sent += sent as u64;
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => count_refused(&e, io),
                }
                break;
            },
            #[cfg(target_os = "linux")]
            _ => self.send_batch(socket, queued, io),
            #[cfg(not(target_os = "linux"))]
            _ => {}
        }
    }

    #[cfg(target_os = "linux")]
    fn send_batch(&mut self, socket: &UdpSocket, queued: usize, io: &mut SocketStats) {
        // rustix's `sendmmsg` reports how many datagrams went out as a plain count (nix's
        // results iterator would read its unwritten receive-address slots to say so).
        let lens = &self.send_len;
        let slices: [[IoSlice<'_>; 1]; BATCH] = std::array::from_fn(|i| {
            [IoSlice::new(
                self.send[i].get(..lens[i]).unwrap_or_default(),
            )]
        });
        let addrs = &self.send_addr;
        let mut controls: [SendAncillaryBuffer<'_, '_, '_>; BATCH] =
            std::array::from_fn(|_| SendAncillaryBuffer::default());
        let mut i = 0;
        let mut messages = controls.each_mut().map(|control| {
            let message = MMsgHdr::new_with_addr(&addrs[i], &slices[i], control);
            i += 1;
            message
        });
        let mut start = 0;
        while start < queued {
            // sendmmsg stops at the first datagram the socket refuses and reports it only
            // if it is the first: try again from there to learn why.
            match rustix::net::sendmmsg(socket, &mut messages[start..queued], SendFlags::empty())
                .map_err(io::Error::from)
            {
                Ok(0) => {
                    io.send_errors += 1;
                    start += 1;
                }
                Ok(sent) => {
                    let sent = sent.min(queued - start);
                    io.datagrams_sent += sent as u64;
                    io.bytes_sent += lens[start..start + sent].iter().sum::<usize>() as u64;
                    start += sent;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    count_refused(&e, io);
                    start += 1;
                }
            }
        }
    }
}

/// Counts a datagram the socket refused to send.
fn count_refused(e: &io::Error, io: &mut SocketStats) {
    if e.kind() == ErrorKind::WouldBlock {
        io.send_would_block += 1;
    } else {
        io.send_errors += 1;
    }
}
