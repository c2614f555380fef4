//! The endpoint against a scripted stack: `WouldBlock` keeps the datagram for the next `process`,
//! stack errors come back as `Error::Network` and leave the endpoint usable, and a burst of
//! requests is read at most `READ_BURST` at a time.

use std::collections::VecDeque;
use std::net::SocketAddr;

use embedded_nal::{UdpClientStack, UdpFullStack, nb};
use getrandom::SysRng;
use rand_core::UnwrapErr;
use sinew_proto::health::{Config, HealthNode};
use sinew_proto::time::Instant;
use sinew_transport_embedded::health::READ_BURST;
use sinew_transport_embedded::{Error, HealthBuffers, HealthEndpoint};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MockError {
    Receive,
    Send,
}

#[derive(Default)]
struct MockStack {
    inbox: VecDeque<(SocketAddr, Vec<u8>)>,
    /// Length to report for the next datagram instead of the copied one.
    report_len: Option<usize>,
    outbox: Vec<(SocketAddr, Vec<u8>)>,
    block_sends: usize,
    fail_send: bool,
    fail_receive: bool,
    bound: Option<u16>,
}

struct MockSocket;

impl UdpClientStack for MockStack {
    type UdpSocket = MockSocket;
    type Error = MockError;

    fn socket(&mut self) -> Result<MockSocket, MockError> {
        Ok(MockSocket)
    }
    fn connect(&mut self, _: &mut MockSocket, _: SocketAddr) -> Result<(), MockError> {
        unreachable!("the health endpoint never connects")
    }
    fn send(&mut self, _: &mut MockSocket, _: &[u8]) -> nb::Result<(), MockError> {
        unreachable!("the health endpoint sends with send_to")
    }
    fn receive(
        &mut self,
        _: &mut MockSocket,
        buffer: &mut [u8],
    ) -> nb::Result<(usize, SocketAddr), MockError> {
        if std::mem::take(&mut self.fail_receive) {
            return Err(nb::Error::Other(MockError::Receive));
        }
        let (from, datagram) = self.inbox.pop_front().ok_or(nb::Error::WouldBlock)?;
        let copied = datagram.len().min(buffer.len());
        buffer[..copied].copy_from_slice(&datagram[..copied]);
        Ok((self.report_len.take().unwrap_or(copied), from))
    }
    fn close(&mut self, _: MockSocket) -> Result<(), MockError> {
        self.bound = None;
        Ok(())
    }
}

impl UdpFullStack for MockStack {
    fn bind(&mut self, _: &mut MockSocket, port: u16) -> Result<(), MockError> {
        self.bound = Some(port);
        Ok(())
    }
    fn send_to(
        &mut self,
        _: &mut MockSocket,
        remote: SocketAddr,
        buffer: &[u8],
    ) -> nb::Result<(), MockError> {
        if self.block_sends > 0 {
            self.block_sends -= 1;
            return Err(nb::Error::WouldBlock);
        }
        if std::mem::take(&mut self.fail_send) {
            return Err(nb::Error::Other(MockError::Send));
        }
        self.outbox.push((remote, buffer.to_vec()));
        Ok(())
    }
}

type Endpoint<'b> = HealthEndpoint<'b, MockStack, UnwrapErr<SysRng>>;

const PEER: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7)),
    7000,
);

fn endpoint<'b>(stack: &mut MockStack, buffers: &'b mut HealthBuffers) -> Endpoint<'b> {
    let config = Config::new().with_learn_from_requests(false);
    let node = HealthNode::new(config, UnwrapErr(SysRng));
    HealthEndpoint::bind(stack, 7000, node, buffers).unwrap()
}

fn request(nonce: u8) -> Vec<u8> {
    let mut datagram = vec![nonce; 17];
    datagram[0] = 0x01;
    datagram
}

#[test]
fn bind_and_close() {
    let mut stack = MockStack::default();
    let mut buffers = HealthBuffers::new();
    let endpoint = endpoint(&mut stack, &mut buffers);
    assert_eq!(stack.bound, Some(7000));
    endpoint.close(&mut stack).unwrap();
    assert_eq!(stack.bound, None);
}

#[test]
fn would_block_keeps_the_datagram_for_the_next_process() {
    let mut stack = MockStack::default();
    let mut buffers = HealthBuffers::new();
    let mut endpoint = endpoint(&mut stack, &mut buffers);
    let now = Instant::from_millis(1);
    let nonce = endpoint.ping(now, PEER).unwrap();

    stack.block_sends = 2;
    assert_eq!(
        endpoint.process(&mut stack, now),
        Ok(Some(now)),
        "try again"
    );
    assert!(endpoint.is_stalled());
    assert_eq!(endpoint.process(&mut stack, now), Ok(Some(now)));
    assert!(stack.outbox.is_empty());

    let next = endpoint.process(&mut stack, now).unwrap();
    assert!(!endpoint.is_stalled());
    assert_eq!(stack.outbox.len(), 1, "sent once, not once per process");
    let (to, datagram) = &stack.outbox[0];
    assert_eq!(*to, PEER);
    assert_eq!(datagram[0], 0x01);
    assert_eq!(&datagram[1..], nonce.as_bytes());
    // Now only the ping's deadline is left.
    assert_eq!(next, Some(now + endpoint.node().config().response_timeout));
}

#[test]
fn stack_errors_are_reported_and_the_endpoint_goes_on() {
    let mut stack = MockStack::default();
    let mut buffers = HealthBuffers::new();
    let mut endpoint = endpoint(&mut stack, &mut buffers);
    let now = Instant::from_millis(1);

    stack.fail_receive = true;
    stack.inbox.push_back((PEER, request(1)));
    assert_eq!(
        endpoint.process(&mut stack, now),
        Err(Error::Network(MockError::Receive))
    );
    // The datagram is still there; the next process reads and answers it.
    endpoint.process(&mut stack, now).unwrap();
    assert_eq!(stack.outbox.len(), 1);
    assert_eq!(stack.outbox[0].1[0], 0x02);

    stack.fail_send = true;
    stack.inbox.push_back((PEER, request(2)));
    stack.inbox.push_back((PEER, request(3)));
    assert_eq!(
        endpoint.process(&mut stack, now),
        Err(Error::Network(MockError::Send))
    );
    // The answer to 2 was lost with the error; the answer to 3 goes out at the next process.
    endpoint.process(&mut stack, now).unwrap();
    assert_eq!(stack.outbox.len(), 2);
    assert_eq!(stack.outbox[1].1[1], 3);
    assert_eq!(endpoint.node().stats().requests_answered, 3);
}

#[test]
fn a_burst_is_read_at_most_rx_burst_at_a_time() {
    let mut stack = MockStack::default();
    let mut buffers = HealthBuffers::new();
    let mut endpoint = endpoint(&mut stack, &mut buffers);
    let now = Instant::from_millis(1);
    for i in 0..READ_BURST + 4 {
        stack.inbox.push_back((PEER, request(i as u8)));
    }
    assert_eq!(
        endpoint.process(&mut stack, now),
        Ok(Some(now)),
        "more to read"
    );
    assert_eq!(stack.outbox.len(), READ_BURST);
    assert_eq!(stack.inbox.len(), 4);
    assert_eq!(endpoint.process(&mut stack, now), Ok(None), "nothing left");
    assert_eq!(stack.outbox.len(), READ_BURST + 4);
}

#[test]
fn an_oversized_datagram_is_refused_however_the_stack_reports_it() {
    let mut stack = MockStack::default();
    let mut buffers = HealthBuffers::new();
    let mut endpoint = endpoint(&mut stack, &mut buffers);
    let now = Instant::from_millis(1);
    let mut long = vec![0u8; 1000];
    long[0] = 0x03; // a zero-padded peer-table request, but 1000 bytes long
    // Truncated to the buffer by the stack...
    stack.inbox.push_back((PEER, long.clone()));
    // ...or with its full length reported.
    stack.inbox.push_back((PEER, long));
    stack.report_len = Some(1000);
    endpoint.process(&mut stack, now).unwrap();
    assert_eq!(endpoint.node().stats().malformed, 2);
    assert!(stack.outbox.is_empty());
}
