//! The DHT client against a scripted TCP stack, byte by byte: every request leaves as one frame
//! (a 4-byte big-endian length, then the message), answers are taken in whatever pieces the stack
//! gives them, and a frame longer than the receive buffer or with a negative length ends the
//! connection loudly. A proto `DhtNode` alone in its ring plays the ring member.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use embedded_nal::{TcpClientStack, TcpError, TcpErrorKind, nb};
use getrandom::SysRng;
use rand_core::UnwrapErr;
use sinew_proto::datagram::MAX_DATAGRAM_LEN;
use sinew_proto::dht::{
    ClientConfig, Config, DhtClient, DhtNode, Event, NodeAddr, NodeId, Op, RequestError,
};
use sinew_proto::time::Instant;
use sinew_transport_embedded::dht::{DhtBuffers, DhtTcpClient, RX_BUFFER_LEN};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MockError;

impl TcpError for MockError {
    fn kind(&self) -> TcpErrorKind {
        TcpErrorKind::Other
    }
}

/// One connection's worth of stack: what the client wrote, what it is yet to read.
struct MockStack {
    /// Bytes the client sent, in order.
    sent: Vec<u8>,
    /// Bytes waiting for the client's `receive`.
    inbox: VecDeque<u8>,
    /// The most bytes one `send` takes.
    send_chunk: usize,
    /// The most bytes one `receive` gives.
    receive_chunk: usize,
    sockets: usize,
    closed: usize,
}

impl MockStack {
    fn new() -> MockStack {
        MockStack {
            sent: Vec::new(),
            inbox: VecDeque::new(),
            send_chunk: usize::MAX,
            receive_chunk: usize::MAX,
            sockets: 0,
            closed: 0,
        }
    }
}

struct MockSocket;

impl TcpClientStack for MockStack {
    type TcpSocket = MockSocket;
    type Error = MockError;

    fn socket(&mut self) -> Result<MockSocket, MockError> {
        self.sockets += 1;
        Ok(MockSocket)
    }
    fn connect(&mut self, _: &mut MockSocket, _: SocketAddr) -> nb::Result<(), MockError> {
        Ok(())
    }
    fn send(&mut self, _: &mut MockSocket, buffer: &[u8]) -> nb::Result<usize, MockError> {
        let n = buffer.len().min(self.send_chunk);
        self.sent.extend_from_slice(&buffer[..n]);
        Ok(n)
    }
    fn receive(&mut self, _: &mut MockSocket, buffer: &mut [u8]) -> nb::Result<usize, MockError> {
        if self.inbox.is_empty() {
            return Err(nb::Error::WouldBlock);
        }
        let n = buffer.len().min(self.receive_chunk).min(self.inbox.len());
        for (to, from) in buffer.iter_mut().zip(self.inbox.drain(..n)) {
            *to = from;
        }
        Ok(n)
    }
    fn close(&mut self, _: MockSocket) -> Result<(), MockError> {
        self.closed += 1;
        Ok(())
    }
}

const NODE: &str = "192.0.2.7:4000";

type Client<'b> = DhtTcpClient<'b, MockStack, UnwrapErr<SysRng>>;

fn client(buffers: &mut DhtBuffers) -> Client<'_> {
    let me = NodeAddr {
        id: NodeId::from_name(b"client"),
        addr: "192.0.2.1:1".parse().unwrap(),
    };
    let core = DhtClient::new(ClientConfig::new(me), UnwrapErr(SysRng));
    DhtTcpClient::new(core, NODE.parse().unwrap(), buffers)
}

fn ring_member() -> DhtNode<UnwrapErr<SysRng>> {
    let me = NodeAddr {
        id: NodeId::from_name(b"member"),
        addr: NODE.parse().unwrap(),
    };
    DhtNode::new(Config::new(me), UnwrapErr(SysRng))
}

/// Splits the bytes the client sent into frames, checking each prefix; leaves a partial frame.
fn take_frames(sent: &mut Vec<u8>) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    while let Some(prefix) = sent.first_chunk::<4>() {
        let len = u32::from_be_bytes(*prefix) as usize;
        assert!(len <= MAX_DATAGRAM_LEN, "a frame of {len} bytes");
        if sent.len() < 4 + len {
            break;
        }
        frames.push(sent[4..4 + len].to_vec());
        sent.drain(..4 + len);
    }
    frames
}

/// The ring member answers every frame the client sent; its answers are framed into the inbox.
fn answer(member: &mut DhtNode<UnwrapErr<SysRng>>, stack: &mut MockStack, now: Instant) -> usize {
    let requests = take_frames(&mut stack.sent);
    let from: SocketAddr = "192.0.2.1:1".parse().unwrap();
    // As a TCP listener does: the connection's handshake validated the peer's address.
    member.handle_validated(from);
    for request in &requests {
        let _ = member.handle_datagram(now, from, request);
    }
    let mut buf = [0u8; MAX_DATAGRAM_LEN];
    while let Some(t) = member.poll_transmit(now, &mut buf) {
        stack
            .inbox
            .extend((t.len as u32).to_be_bytes().iter().chain(&buf[..t.len]));
    }
    requests.len()
}

fn events(client: &mut Client<'_>) -> Vec<Event<128>> {
    std::iter::from_fn(|| client.poll_event()).collect()
}

#[test]
fn frames_go_out_whole_and_answers_come_in_any_pieces() {
    let mut stack = MockStack::new();
    let mut member = ring_member();
    let mut buffers = DhtBuffers::new();
    let mut dht = client(&mut buffers);
    let now = Instant::from_millis(1);

    // Three requests, written three bytes per send.
    stack.send_chunk = 3;
    let put = dht.put(now, b"key", b"value").unwrap();
    let get = dht.get(now, b"key").unwrap();
    let absent = dht.get(now, b"absent").unwrap();
    for _ in 0..1000 {
        dht.process(&mut stack, now).unwrap();
    }
    assert!(dht.io_stats().partial_sends > 0);
    assert_eq!(dht.io_stats().frames_sent, 3);

    // The member answers the put first (so the get finds the value); the answer arrives one
    // byte at a time.
    let mut sent = std::mem::take(&mut stack.sent);
    let rest = sent.split_off(4 + u32::from_be_bytes(*sent.first_chunk().unwrap()) as usize);
    stack.sent = sent;
    assert_eq!(answer(&mut member, &mut stack, now), 1);
    let arriving: Vec<u8> = stack.inbox.drain(..).collect();
    for &byte in &arriving[..arriving.len() - 1] {
        stack.inbox.push_back(byte);
        dht.process(&mut stack, now).unwrap();
        assert!(stack.inbox.is_empty());
    }
    assert_eq!(
        dht.io_stats().frames_received,
        0,
        "not before its last byte"
    );
    stack.inbox.extend(arriving.last());
    dht.process(&mut stack, now).unwrap();
    assert_eq!(events(&mut dht), [Event::PutDone { id: put }]);

    // Both gets' answers at once, taken five bytes per receive.
    stack.receive_chunk = 5;
    stack.sent = rest;
    assert_eq!(answer(&mut member, &mut stack, now), 2);
    dht.process(&mut stack, now).unwrap();
    let got = events(&mut dht);
    assert_eq!(got.len(), 2);
    assert!(
        matches!(&got[0], Event::GetDone { id, value: Some(v) } if *id == get && &v[..] == b"value")
    );
    assert_eq!(
        got[1],
        Event::GetDone {
            id: absent,
            value: None
        }
    );

    let io = *dht.io_stats();
    assert_eq!(
        (io.frames_sent, io.frames_received, io.oversized),
        (3, 3, 0)
    );
    assert_eq!((io.connects, io.connections_lost), (1, 0));
    let s = *dht.core().stats();
    assert_eq!((s.received, s.malformed, s.unmatched), (3, 0, 0));
    assert!(dht.is_connected());
}

#[test]
fn a_frame_of_the_largest_length_is_taken() {
    let mut stack = MockStack::new();
    let mut buffers = DhtBuffers::new();
    let mut dht = client(&mut buffers);
    let now = Instant::from_millis(1);
    let _ = dht.get(now, b"key").unwrap();
    dht.process(&mut stack, now).unwrap();

    // As long as the receive buffer holds: handed to the client (which finds it malformed).
    assert_eq!(RX_BUFFER_LEN, 4 + MAX_DATAGRAM_LEN);
    stack.inbox.extend((MAX_DATAGRAM_LEN as u32).to_be_bytes());
    stack.inbox.extend([0xa5; MAX_DATAGRAM_LEN]);
    dht.process(&mut stack, now).unwrap();
    assert_eq!(dht.io_stats().frames_received, 1);
    assert_eq!(dht.io_stats().oversized, 0);
    assert_eq!(dht.core().stats().malformed, 1);
    assert!(dht.is_connected());
}

/// A length prefix the client cannot take ends the connection: the request in flight fails at
/// once, and the next request connects again.
fn refused_prefix(prefix: [u8; 4]) {
    let mut stack = MockStack::new();
    let mut buffers = DhtBuffers::new();
    let mut dht = client(&mut buffers);
    let now = Instant::from_millis(1);
    let id = dht.get(now, b"key").unwrap();
    dht.process(&mut stack, now).unwrap();
    assert!(dht.is_connected());

    // Only the prefix has come: refused before anything is buffered for it.
    stack.inbox.extend(prefix);
    dht.process(&mut stack, now).unwrap();
    let io = *dht.io_stats();
    assert_eq!((io.oversized, io.frames_received), (1, 0));
    assert_eq!(io.connections_lost, 0, "ended by the client, not lost");
    assert_eq!(dht.take_network_error(), None, "the stack reported nothing");
    assert!(!dht.is_connected());
    assert_eq!(stack.closed, 1);
    assert_eq!(
        events(&mut dht),
        [Event::Failed {
            id,
            op: Op::Get,
            error: RequestError::Disconnected
        }]
    );

    let later = now + Duration::from_millis(1);
    let _ = dht.get(later, b"key").unwrap();
    dht.process(&mut stack, later).unwrap();
    assert_eq!((dht.io_stats().connects, stack.sockets), (2, 2));
    assert!(dht.is_connected());
}

#[test]
fn a_frame_longer_than_the_receive_buffer_ends_the_connection() {
    refused_prefix((MAX_DATAGRAM_LEN as u32 + 1).to_be_bytes());
}

#[test]
fn a_negative_length_ends_the_connection() {
    refused_prefix(i32::MIN.to_be_bytes());
    refused_prefix((-1i32).to_be_bytes());
}

/// The member answers every frame the client sent without vouching for its address (as a ring
/// member does for a datagram): larger answers wait for a round trip.
fn answer_unvalidated(
    member: &mut DhtNode<UnwrapErr<SysRng>>,
    stack: &mut MockStack,
    now: Instant,
) -> Vec<Vec<u8>> {
    let requests = take_frames(&mut stack.sent);
    let from: SocketAddr = "192.0.2.1:1".parse().unwrap();
    for request in &requests {
        let _ = member.handle_datagram(now, from, request);
    }
    let mut buf = [0u8; MAX_DATAGRAM_LEN];
    let mut answers = Vec::new();
    while let Some(t) = member.poll_transmit(now, &mut buf) {
        stack
            .inbox
            .extend((t.len as u32).to_be_bytes().iter().chain(&buf[..t.len]));
        answers.push(buf[..t.len].to_vec());
    }
    answers
}

#[test]
fn a_challenge_on_the_connection_is_echoed_and_the_request_answered_in_full() {
    // Issue 11 in the embedded client: a member that has not seen the client's address prove
    // it receives answers a Get (45 bytes here) whose Value is larger with a 43-byte Challenge
    // only — no more bytes than it received. The client echoes the cookie and asks again; the
    // member then answers in full.
    let mut stack = MockStack::new();
    let mut member = ring_member();
    let now = Instant::from_millis(1);
    member.put(now, b"k", &[7; 100]).unwrap();
    assert!(matches!(member.poll_event(), Some(Event::PutDone { .. })));
    let mut buffers = DhtBuffers::new();
    let mut dht = client(&mut buffers);
    let get = dht.get(now, b"k").unwrap();
    dht.process(&mut stack, now).unwrap();
    let first = answer_unvalidated(&mut member, &mut stack, now);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].len(), sinew_proto::dht::HEADER_LEN);
    assert_eq!(
        sinew_proto::dht::Message::parse(&first[0]).unwrap().body,
        sinew_proto::dht::Body::Challenge
    );
    // The client takes the Challenge, echoes it and sends the Get again, at once.
    dht.process(&mut stack, now).unwrap();
    assert_eq!(dht.core().stats().challenges_answered, 1);
    let second = answer_unvalidated(&mut member, &mut stack, now);
    assert_eq!(second.len(), 1);
    dht.process(&mut stack, now).unwrap();
    match events(&mut dht).as_slice() {
        [Event::GetDone { id, value: Some(v) }] => {
            assert_eq!(*id, get);
            assert_eq!(&v[..], &[7; 100][..]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(dht.io_stats().frames_sent, 3, "Get, Echo, Get");
}
