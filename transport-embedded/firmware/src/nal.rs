//! An embedded-nal [`UdpFullStack`] and [`TcpClientStack`] over smoltcp: a fixed set of UDP and
//! TCP sockets on one interface.
//!
//! Unlike `smoltcp-nal`, an empty receive queue is `WouldBlock` (not an error), and a full send
//! buffer is `WouldBlock` too: the caller tries again after the next [`SmolStack::poll`].
//! A TCP `connect` starts the handshake and says `WouldBlock` until it is established (or
//! [`NetError::ConnectionRefused`] once smoltcp gave it up); a connection the peer closed is
//! [`NetError::ConnectionClosed`] on `receive` once its bytes are read, and on `send`.
//! The stack never reads a clock: [`SmolStack::poll`] takes `now` like everything else.

use core::net::{IpAddr, SocketAddr};

use sinew_transport_embedded::embedded_nal::{
    TcpClientStack, TcpError, TcpErrorKind, UdpClientStack, UdpFullStack, nb,
};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet, SocketStorage};
use smoltcp::phy::Device;
use smoltcp::socket::{tcp, udp};
use smoltcp::wire::{EthernetAddress, IpCidr, IpEndpoint, Ipv4Address};

/// Datagrams a socket can hold in each direction.
const PACKETS: usize = 4;
/// Payload bytes a socket can hold in each direction.
const PAYLOAD: usize = 2048;
/// First port of the range connected-but-unbound sockets are bound to.
const EPHEMERAL_START: u16 = 49152;
/// Ports in that range.
const EPHEMERAL_PORTS: u16 = 16384;
/// Bytes a TCP socket buffers in each direction (its receive window).
const TCP_BUFFER: usize = 2048;

/// The buffers of one UDP socket, owned by the caller.
pub struct UdpBuffers {
    rx_meta: [udp::PacketMetadata; PACKETS],
    rx: [u8; PAYLOAD],
    tx_meta: [udp::PacketMetadata; PACKETS],
    tx: [u8; PAYLOAD],
}

impl UdpBuffers {
    /// Empty buffers.
    pub const fn new() -> UdpBuffers {
        UdpBuffers {
            rx_meta: [udp::PacketMetadata::EMPTY; PACKETS],
            rx: [0; PAYLOAD],
            tx_meta: [udp::PacketMetadata::EMPTY; PACKETS],
            tx: [0; PAYLOAD],
        }
    }
}

/// The buffers of one TCP socket, owned by the caller.
pub struct TcpBuffers {
    rx: [u8; TCP_BUFFER],
    tx: [u8; TCP_BUFFER],
}

impl TcpBuffers {
    /// Empty buffers.
    pub const fn new() -> TcpBuffers {
        TcpBuffers {
            rx: [0; TCP_BUFFER],
            tx: [0; TCP_BUFFER],
        }
    }
}

/// The interface's addresses.
#[derive(Clone, Copy, Debug)]
pub struct Ipv4Config {
    /// The Ethernet address.
    pub mac: [u8; 6],
    /// The IPv4 address.
    pub ip: Ipv4Address,
    /// Its prefix length.
    pub prefix_len: u8,
    /// The default gateway.
    pub gateway: Ipv4Address,
}

/// What the stack refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub enum NetError {
    /// Every socket is open already.
    NoSocket,
    /// The socket is not open (closed, or never given out by this stack).
    BadSocket,
    /// An IPv6 destination (this stack speaks IPv4), or sending before bind/connect.
    Unaddressable,
    /// The port is 0 or the socket is bound already.
    Bind,
    /// `send` on a socket that was not connected.
    NotConnected,
    /// TCP: the connection attempt failed (reset by the peer, or given up).
    ConnectionRefused,
    /// TCP: the connection is closed (by the peer, or reset) in the direction used.
    ConnectionClosed,
}

impl TcpError for NetError {
    fn kind(&self) -> TcpErrorKind {
        match self {
            NetError::ConnectionClosed => TcpErrorKind::PipeClosed,
            _ => TcpErrorKind::Other,
        }
    }
}

/// A UDP socket of a [`SmolStack`].
#[derive(Debug)]
pub struct SmolSocket(usize);

/// A TCP socket of a [`SmolStack`].
#[derive(Debug)]
pub struct SmolTcpSocket(usize);

/// An IPv4 interface on `D` with `N` UDP sockets and `T` TCP sockets.
pub struct SmolStack<'a, D: Device, const N: usize, const T: usize> {
    device: D,
    iface: Interface,
    sockets: SocketSet<'a>,
    handles: [SocketHandle; N],
    open: [bool; N],
    remote: [Option<IpEndpoint>; N],
    tcp_handles: [SocketHandle; T],
    tcp_open: [bool; T],
    /// `connect` has started the handshake of this socket.
    tcp_started: [bool; T],
    next_ephemeral: u16,
    loopback_alias: Option<Ipv4Address>,
}

fn to_smol(instant: sinew_proto::time::Instant) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros(i64::try_from(instant.as_micros()).unwrap_or(i64::MAX))
}

/// The smoltcp endpoint of an IPv4 (or IPv4-mapped) address; loopback never goes on the wire.
fn endpoint(addr: SocketAddr) -> Result<IpEndpoint, NetError> {
    match addr.ip().to_canonical() {
        IpAddr::V4(ip) if !ip.is_loopback() => Ok(IpEndpoint::new(ip.into(), addr.port())),
        _ => Err(NetError::Unaddressable),
    }
}

impl<'a, D: Device, const N: usize, const T: usize> SmolStack<'a, D, N, T> {
    /// The interface `net` on `device`, `N` UDP sockets in `udp_buffers` and `T` TCP sockets in
    /// `tcp_buffers`, registered in `storage` (`S` = `N + T` entries, checked at compile time).
    pub fn new<const S: usize>(
        mut device: D,
        net: Ipv4Config,
        storage: &'a mut [SocketStorage<'a>; S],
        udp_buffers: &'a mut [UdpBuffers; N],
        tcp_buffers: &'a mut [TcpBuffers; T],
        now: sinew_proto::time::Instant,
    ) -> Self {
        const { assert!(S == N + T, "one socket storage per UDP and TCP socket") };
        let config = Config::new(EthernetAddress(net.mac).into());
        let mut iface = Interface::new(config, &mut device, to_smol(now));
        iface.update_ip_addrs(|addrs| {
            // N addresses fit: the interface holds at least one.
            let _ = addrs.push(IpCidr::new(net.ip.into(), net.prefix_len));
        });
        // Only fails when the route table is full, and it is empty.
        let _ = iface.routes_mut().add_default_ipv4_route(net.gateway);
        let mut sockets = SocketSet::new(&mut storage[..]);
        let handles = udp_buffers.each_mut().map(|b| {
            let rx = udp::PacketBuffer::new(&mut b.rx_meta[..], &mut b.rx[..]);
            let tx = udp::PacketBuffer::new(&mut b.tx_meta[..], &mut b.tx[..]);
            sockets.add(udp::Socket::new(rx, tx))
        });
        let tcp_handles = tcp_buffers.each_mut().map(|b| {
            let rx = tcp::SocketBuffer::new(&mut b.rx[..]);
            let tx = tcp::SocketBuffer::new(&mut b.tx[..]);
            sockets.add(tcp::Socket::new(rx, tx))
        });
        SmolStack {
            device,
            iface,
            sockets,
            handles,
            open: [false; N],
            remote: [None; N],
            tcp_handles,
            tcp_open: [false; T],
            tcp_started: [false; T],
            next_ephemeral: EPHEMERAL_START,
            loopback_alias: None,
        }
    }

    /// Starts the local ports of connections at a point of the ephemeral range chosen by `seed`
    /// (random at boot), so that a rebooted device does not reuse the ports of its last
    /// connections, which a server may still hold.
    pub fn with_port_seed(mut self, seed: u16) -> Self {
        self.next_ephemeral = EPHEMERAL_START + seed % EPHEMERAL_PORTS;
        self
    }

    /// The next local port of the ephemeral range.
    fn ephemeral_port(&mut self) -> u16 {
        let port = self.next_ephemeral;
        self.next_ephemeral = port.checked_add(1).unwrap_or(EPHEMERAL_START);
        port
    }

    /// Reports datagrams that arrive with a loopback source (127.0.0.0/8, which no real peer
    /// can have) as coming from `alias` instead.
    ///
    /// QEMU's user network needs this: it forwards the host's loopback traffic to the guest and
    /// rewrites the source 127.0.0.1 to its gateway only once the guest has sent through the same
    /// forwarding socket, so the first datagrams of a peer (and any after the guest wrote to
    /// another address) would otherwise come from an address the guest cannot answer, and
    /// responses would not match the address the guest's checks went to.
    pub fn with_loopback_alias(mut self, alias: Ipv4Address) -> Self {
        self.loopback_alias = Some(alias);
        self
    }

    /// Moves frames between the device and the sockets (ARP, IP, UDP). Call before and after
    /// driving the sockets.
    pub fn poll(&mut self, now: sinew_proto::time::Instant) {
        let _ = self
            .iface
            .poll(to_smol(now), &mut self.device, &mut self.sockets);
    }

    /// The device, for its statistics.
    pub fn device(&self) -> &D {
        &self.device
    }

    fn tcp(&mut self, socket: &SmolTcpSocket) -> Result<&mut tcp::Socket<'a>, NetError> {
        if !self.tcp_open.get(socket.0).copied().unwrap_or(false) {
            return Err(NetError::BadSocket);
        }
        Ok(self
            .sockets
            .get_mut::<tcp::Socket<'a>>(self.tcp_handles[socket.0]))
    }

    fn udp(&mut self, socket: &SmolSocket) -> Result<&mut udp::Socket<'a>, NetError> {
        if !self.open.get(socket.0).copied().unwrap_or(false) {
            return Err(NetError::BadSocket);
        }
        Ok(self
            .sockets
            .get_mut::<udp::Socket<'a>>(self.handles[socket.0]))
    }

    fn send_to_endpoint(
        &mut self,
        socket: &SmolSocket,
        remote: IpEndpoint,
        buffer: &[u8],
    ) -> nb::Result<(), NetError> {
        let udp = self.udp(socket)?;
        match udp.send_slice(buffer, remote) {
            Ok(()) => Ok(()),
            Err(udp::SendError::BufferFull) => Err(nb::Error::WouldBlock),
            Err(udp::SendError::Unaddressable) => Err(NetError::Unaddressable.into()),
        }
    }
}

impl<D: Device, const N: usize, const T: usize> UdpClientStack for SmolStack<'_, D, N, T> {
    type UdpSocket = SmolSocket;
    type Error = NetError;

    fn socket(&mut self) -> Result<SmolSocket, NetError> {
        let index = self
            .open
            .iter()
            .position(|open| !open)
            .ok_or(NetError::NoSocket)?;
        self.open[index] = true;
        self.remote[index] = None;
        Ok(SmolSocket(index))
    }

    fn connect(&mut self, socket: &mut SmolSocket, remote: SocketAddr) -> Result<(), NetError> {
        let remote = endpoint(remote)?;
        if !self.udp(socket)?.is_open() {
            let port = self.ephemeral_port();
            self.udp(socket)?.bind(port).map_err(|_| NetError::Bind)?;
        }
        self.remote[socket.0] = Some(remote);
        Ok(())
    }

    fn send(&mut self, socket: &mut SmolSocket, buffer: &[u8]) -> nb::Result<(), NetError> {
        let remote = self
            .remote
            .get(socket.0)
            .copied()
            .flatten()
            .ok_or(NetError::NotConnected)?;
        self.send_to_endpoint(socket, remote, buffer)
    }

    /// Copies the next datagram into `buffer` and returns its full length: longer than `buffer`
    /// when it was truncated (as `recvfrom` with `MSG_TRUNC` does), so the caller can tell.
    fn receive(
        &mut self,
        socket: &mut SmolSocket,
        buffer: &mut [u8],
    ) -> nb::Result<(usize, SocketAddr), NetError> {
        let alias = self.loopback_alias;
        let udp = self.udp(socket)?;
        match udp.recv() {
            Ok((payload, meta)) => {
                let copied = payload.len().min(buffer.len());
                buffer[..copied].copy_from_slice(&payload[..copied]);
                let mut from = SocketAddr::from(meta.endpoint);
                if let (Some(alias), true) = (alias, from.ip().is_loopback()) {
                    from.set_ip(alias.into());
                }
                Ok((payload.len(), from))
            }
            Err(_) => Err(nb::Error::WouldBlock),
        }
    }

    fn close(&mut self, socket: SmolSocket) -> Result<(), NetError> {
        self.udp(&socket)?.close();
        self.open[socket.0] = false;
        self.remote[socket.0] = None;
        Ok(())
    }
}

impl<D: Device, const N: usize, const T: usize> UdpFullStack for SmolStack<'_, D, N, T> {
    fn bind(&mut self, socket: &mut SmolSocket, local_port: u16) -> Result<(), NetError> {
        self.udp(socket)?
            .bind(local_port)
            .map_err(|_| NetError::Bind)
    }

    fn send_to(
        &mut self,
        socket: &mut SmolSocket,
        remote: SocketAddr,
        buffer: &[u8],
    ) -> nb::Result<(), NetError> {
        self.send_to_endpoint(socket, endpoint(remote)?, buffer)
    }
}

impl<D: Device, const N: usize, const T: usize> TcpClientStack for SmolStack<'_, D, N, T> {
    type TcpSocket = SmolTcpSocket;
    type Error = NetError;

    fn socket(&mut self) -> Result<SmolTcpSocket, NetError> {
        let index = self
            .tcp_open
            .iter()
            .position(|open| !open)
            .ok_or(NetError::NoSocket)?;
        let tcp = self
            .sockets
            .get_mut::<tcp::Socket<'_>>(self.tcp_handles[index]);
        // A connection closed earlier may still be saying goodbye (FIN-WAIT, TIME-WAIT): the
        // socket is wanted now, so it ends with a reset.
        if tcp.state() != tcp::State::Closed {
            tcp.abort();
        }
        self.tcp_open[index] = true;
        self.tcp_started[index] = false;
        Ok(SmolTcpSocket(index))
    }

    /// Starts the handshake on the first call (`WouldBlock`); later calls say `WouldBlock`
    /// until it is established (`Ok`) or smoltcp has given it up (refused or reset).
    fn connect(
        &mut self,
        socket: &mut SmolTcpSocket,
        remote: SocketAddr,
    ) -> nb::Result<(), NetError> {
        let remote = endpoint(remote)?;
        self.tcp(socket)?;
        if !self.tcp_started[socket.0] {
            let port = self.ephemeral_port();
            let cx = self.iface.context();
            let tcp = self
                .sockets
                .get_mut::<tcp::Socket<'_>>(self.tcp_handles[socket.0]);
            tcp.connect(cx, remote, port).map_err(|error| match error {
                tcp::ConnectError::Unaddressable => NetError::Unaddressable,
                tcp::ConnectError::InvalidState => NetError::BadSocket,
            })?;
            // Small requests and their replies: no Nagle delay (as ZooKeeper's clients do).
            tcp.set_nagle_enabled(false);
            self.tcp_started[socket.0] = true;
            return Err(nb::Error::WouldBlock);
        }
        match self.tcp(socket)?.state() {
            tcp::State::Established | tcp::State::CloseWait => Ok(()),
            tcp::State::SynSent | tcp::State::SynReceived => Err(nb::Error::WouldBlock),
            _ => Err(NetError::ConnectionRefused.into()),
        }
    }

    /// Queues what fits of `buffer` in the socket's transmit buffer (sent at the next
    /// [`SmolStack::poll`]); `WouldBlock` when it is full or the handshake is under way.
    fn send(&mut self, socket: &mut SmolTcpSocket, buffer: &[u8]) -> nb::Result<usize, NetError> {
        let tcp = self.tcp(socket)?;
        if !tcp.may_send() {
            return match tcp.state() {
                tcp::State::SynSent | tcp::State::SynReceived => Err(nb::Error::WouldBlock),
                _ => Err(NetError::ConnectionClosed.into()),
            };
        }
        match tcp.send_slice(buffer) {
            Ok(0) if !buffer.is_empty() => Err(nb::Error::WouldBlock),
            Ok(n) => Ok(n),
            Err(tcp::SendError::InvalidState) => Err(NetError::ConnectionClosed.into()),
        }
    }

    /// Takes what the socket received; `WouldBlock` when nothing is there yet, and
    /// [`NetError::ConnectionClosed`] once the peer has closed and every byte was read.
    fn receive(
        &mut self,
        socket: &mut SmolTcpSocket,
        buffer: &mut [u8],
    ) -> nb::Result<usize, NetError> {
        let tcp = self.tcp(socket)?;
        if tcp.can_recv() {
            return match tcp.recv_slice(buffer) {
                Ok(n) => Ok(n),
                Err(_) => Err(NetError::ConnectionClosed.into()),
            };
        }
        match tcp.state() {
            tcp::State::SynSent | tcp::State::SynReceived => Err(nb::Error::WouldBlock),
            _ if tcp.may_recv() => Err(nb::Error::WouldBlock),
            _ => Err(NetError::ConnectionClosed.into()),
        }
    }

    /// Closes the connection gracefully (a FIN after what is queued); the socket is free for
    /// another `socket()` at once.
    fn close(&mut self, socket: SmolTcpSocket) -> Result<(), NetError> {
        self.tcp(&socket)?.close();
        self.tcp_open[socket.0] = false;
        self.tcp_started[socket.0] = false;
        Ok(())
    }
}
