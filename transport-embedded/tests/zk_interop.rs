//! The embedded ZooKeeper client (`sinew_transport_embedded::zk::ZkClient`) over
//! `std-embedded-nal` sockets against a real ZooKeeper 3.8 server.
//!
//! Ignored by default: they need a server. Start one and point the tests at it:
//!
//! ```text
//! scripts/zookeeper.sh start /tmp/sinew-zk
//! SINEW_ZK_SERVER=127.0.0.1:$(cat /tmp/sinew-zk/port) \
//!     cargo test -p sinew-transport-embedded --test zk_interop -- --include-ignored
//! scripts/zookeeper.sh stop /tmp/sinew-zk
//! ```
//!
//! Run with `--include-ignored` but without `SINEW_ZK_SERVER`, every test fails: they never
//! skip quietly.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant as StdInstant, SystemTime, UNIX_EPOCH};

use embedded_nal::{TcpClientStack, nb};
use sinew_proto::time::Instant;
use sinew_proto::zk::session::{Config, DisconnectReason, Event, SessionState, WatchKind, Xid};
use sinew_proto::zk::{
    Acl, CreateMode, CreateRequest, ErrorCode, EventType, List, MultiOp, MultiResult,
    PathVersionRequest, ReplyBody, SetDataRequest, Stat, ZkStr,
};
use sinew_transport_embedded::zk::{ZkBuffers, ZkClient};
use std_embedded_nal::Stack;

const OPEN: &[Acl<'static>] = Acl::OPEN_ACL_UNSAFE;
/// How long any one exchange with the server may take.
const PATIENCE: Duration = Duration::from_secs(10);

type Buffers = ZkBuffers<8192, 16384, 4096>;

fn server() -> SocketAddr {
    match std::env::var("SINEW_ZK_SERVER") {
        Ok(addr) if !addr.trim().is_empty() => addr
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("SINEW_ZK_SERVER={addr:?} is not host:port: {e}")),
        _ => panic!(
            "SINEW_ZK_SERVER is not set. Start a server with `scripts/zookeeper.sh start DIR` \
             and run with SINEW_ZK_SERVER=127.0.0.1:$(cat DIR/port)"
        ),
    }
}

/// A node path of its own for each test.
fn root(name: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "/sinew-emb-{name}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A reply, copied out of the borrowed event.
#[derive(Clone, Debug, PartialEq)]
enum Got {
    Empty,
    Path(String),
    Stat(Stat),
    Data(Vec<u8>, Stat),
    Children(Vec<String>),
    Multi(Vec<Outcome>),
    Other(String),
    Err(ErrorCode, bool),
}

/// One result of a multi, copied out.
#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    Created(String),
    Deleted,
    Set(i32),
    Checked,
    Failed(ErrorCode),
    Other(String),
}

fn text(s: ZkStr<'_>) -> String {
    String::from_utf8(s.as_bytes().to_vec()).unwrap()
}

/// Everything the client handed out, owned.
#[derive(Debug, Default)]
struct Seen {
    replies: HashMap<Xid, Got>,
    /// (type, path, kind)
    watches: Vec<(EventType, String, Option<WatchKind>)>,
    connected: Vec<(i64, bool)>,
    disconnected: Vec<DisconnectReason>,
    closed: bool,
    expired: bool,
}

impl Seen {
    fn take(&mut self, event: Event<'_>) {
        match event {
            Event::Reply(reply) => {
                let got = match reply.result {
                    Err(code) => Got::Err(code, reply.is_local()),
                    Ok(ReplyBody::Empty) => Got::Empty,
                    Ok(ReplyBody::Path(p)) => Got::Path(text(p)),
                    Ok(ReplyBody::Stat(s)) => Got::Stat(s),
                    Ok(ReplyBody::Data(d)) => {
                        Got::Data(d.data.unwrap_or_default().to_vec(), d.stat)
                    }
                    Ok(ReplyBody::Children(c)) => Got::Children(c.iter().map(text).collect()),
                    Ok(ReplyBody::Multi(results)) => Got::Multi(
                        results
                            .iter()
                            .map(|r| match r {
                                MultiResult::Create(p) => Outcome::Created(text(p)),
                                MultiResult::Delete => Outcome::Deleted,
                                MultiResult::SetData(s) => Outcome::Set(s.version),
                                MultiResult::Check => Outcome::Checked,
                                MultiResult::Error(code) => Outcome::Failed(code),
                                other => Outcome::Other(format!("{other:?}")),
                            })
                            .collect(),
                    ),
                    Ok(other) => Got::Other(format!("{other:?}")),
                };
                assert!(
                    self.replies.insert(reply.xid, got).is_none(),
                    "two replies for xid {}",
                    reply.xid
                );
            }
            Event::Watch(w) => self.watches.push((w.event_type, text(w.path), w.kind)),
            Event::Connected {
                session_id,
                reattached,
                ..
            } => self.connected.push((session_id, reattached)),
            Event::Disconnected { reason } => self.disconnected.push(reason),
            Event::Closed => self.closed = true,
            Event::Expired => self.expired = true,
            Event::AuthFailed => panic!("auth failed"),
            other => panic!("unexpected event {other:?}"),
        }
    }
}

/// One embedded client on the std stack, with its clock and what it saw.
struct Peer<'b, S: TcpClientStack = Stack> {
    zk: ZkClient<'b, S>,
    stack: S,
    start: StdInstant,
    seen: Seen,
}

impl<'b, S: TcpClientStack> Peer<'b, S>
where
    S::Error: std::fmt::Debug,
{
    fn new(stack: S, servers: &'b [SocketAddr], buffers: &'b mut Buffers, config: Config) -> Self {
        let zk = ZkClient::new(config, servers, buffers).unwrap();
        Peer {
            zk,
            stack,
            start: StdInstant::now(),
            seen: Seen::default(),
        }
    }

    fn now(&self) -> Instant {
        Instant::from_micros(self.start.elapsed().as_micros() as u64)
    }

    /// One round of the client; a short sleep when it has nothing to do at once.
    fn step(&mut self) {
        let now = self.now();
        let seen = &mut self.seen;
        let next = self
            .zk
            .process(&mut self.stack, now, |event| seen.take(event))
            .unwrap();
        if next.is_none_or(|t| t > now) {
            thread::sleep(Duration::from_millis(1));
        }
    }

    fn run_until(&mut self, what: &str, mut done: impl FnMut(&Self) -> bool) {
        let deadline = StdInstant::now() + PATIENCE;
        while !done(self) {
            assert!(
                StdInstant::now() < deadline,
                "{what}: not within {PATIENCE:?}; state {:?}, seen {:?}",
                self.zk.state(),
                self.seen
            );
            self.step();
        }
    }

    /// Runs for `time`, whatever happens.
    fn run_for(&mut self, time: Duration) {
        let end = StdInstant::now() + time;
        while StdInstant::now() < end {
            self.step();
        }
    }

    fn connect(&mut self) -> i64 {
        self.run_until("connect", |p| !p.seen.connected.is_empty());
        let (id, reattached) = self.seen.connected[0];
        assert!(!reattached);
        assert_ne!(id, 0);
        assert_eq!(self.zk.state(), SessionState::Connected);
        assert_eq!(self.zk.session().session_id(), id);
        id
    }

    fn wait(&mut self, xid: Xid) -> Got {
        self.run_until(&format!("reply to xid {xid}"), |p| {
            p.seen.replies.contains_key(&xid)
        });
        self.seen.replies.remove(&xid).unwrap()
    }

    fn create(&mut self, path: &str, data: &[u8], mode: CreateMode) -> Got {
        let now = self.now();
        let xid = self.zk.create(now, path, data, OPEN, mode).unwrap();
        self.wait(xid)
    }

    fn get_data(&mut self, path: &str, watch: bool) -> Got {
        let now = self.now();
        let xid = self.zk.get_data(now, path, watch).unwrap();
        self.wait(xid)
    }

    fn set_data(&mut self, path: &str, data: &[u8], version: i32) -> Got {
        let now = self.now();
        let xid = self.zk.set_data(now, path, data, version).unwrap();
        self.wait(xid)
    }

    fn exists(&mut self, path: &str, watch: bool) -> Got {
        let now = self.now();
        let xid = self.zk.exists(now, path, watch).unwrap();
        self.wait(xid)
    }

    fn children(&mut self, path: &str) -> Got {
        let now = self.now();
        let xid = self.zk.get_children(now, path, false).unwrap();
        self.wait(xid)
    }

    fn delete(&mut self, path: &str, version: i32) -> Got {
        let now = self.now();
        let xid = self.zk.delete(now, path, version).unwrap();
        self.wait(xid)
    }

    fn close(&mut self) {
        let now = self.now();
        let xid = self.zk.close(now).unwrap();
        assert_eq!(
            self.wait(xid),
            Got::Empty,
            "the server answers closeSession"
        );
        self.run_until("closed", |p| p.seen.closed);
        assert_eq!(self.zk.state(), SessionState::Closed);
        assert_eq!(self.zk.current_server(), None, "the socket is closed");
    }
}

fn stat(got: Got) -> Stat {
    match got {
        Got::Stat(stat) => stat,
        other => panic!("expected a Stat, got {other:?}"),
    }
}

fn no_node() -> Got {
    Got::Err(ErrorCode::NoNode, false)
}

fn config() -> Config {
    Config::new()
        .with_session_timeout(Duration::from_secs(10))
        .with_connect_timeout(Duration::from_secs(5))
}

// ---------------------------------------------------------------------------------------------

#[test]
#[ignore = "needs a ZooKeeper server: SINEW_ZK_SERVER=host:port (scripts/zookeeper.sh)"]
fn crud_and_error_codes() {
    let servers = [server()];
    let mut buffers = Box::new(Buffers::new());
    let mut p = Peer::new(Stack, &servers, &mut buffers, config());
    p.connect();
    let root = root("crud");
    let child = format!("{root}/child");

    assert_eq!(
        p.create(&root, b"top", CreateMode::Persistent),
        Got::Path(root.clone())
    );
    assert_eq!(
        p.create(&child, b"v0", CreateMode::Persistent),
        Got::Path(child.clone())
    );
    match p.get_data(&child, false) {
        Got::Data(data, stat) => {
            assert_eq!(data, b"v0");
            assert_eq!(
                (stat.version, stat.data_length, stat.ephemeral_owner),
                (0, 2, 0)
            );
        }
        other => panic!("getData: {other:?}"),
    }
    assert_eq!(stat(p.set_data(&child, b"v1", 0)).version, 1);
    assert_eq!(stat(p.exists(&child, false)).version, 1);
    assert_eq!(stat(p.exists(&root, false)).num_children, 1);
    assert_eq!(p.children(&root), Got::Children(vec!["child".into()]));
    match p.get_data(&child, false) {
        Got::Data(data, _) => assert_eq!(data, b"v1"),
        other => panic!("getData: {other:?}"),
    }

    // The server's error codes, each for the request it answers.
    let missing = format!("{root}/missing");
    assert_eq!(p.exists(&missing, false), no_node());
    assert_eq!(p.get_data(&missing, false), no_node());
    assert_eq!(p.delete(&missing, -1), no_node());
    assert_eq!(
        p.create(&child, b"again", CreateMode::Persistent),
        Got::Err(ErrorCode::NodeExists, false)
    );
    assert_eq!(
        p.set_data(&child, b"stale", 0),
        Got::Err(ErrorCode::BadVersion, false)
    );
    assert_eq!(p.delete(&child, 7), Got::Err(ErrorCode::BadVersion, false));
    assert_eq!(p.delete(&root, -1), Got::Err(ErrorCode::NotEmpty, false));

    // Pipelined: many requests in flight, replies in order, each to its xid.
    let now = p.now();
    let xids: Vec<Xid> = (0..10)
        .map(|i| {
            p.zk.set_data(now, &child, format!("p{i}").as_bytes(), -1)
                .unwrap()
        })
        .collect();
    let versions: Vec<i32> = xids.iter().map(|&x| stat(p.wait(x)).version).collect();
    assert_eq!(versions, (2..12).collect::<Vec<_>>());

    assert_eq!(p.delete(&child, 11), Got::Empty);
    assert_eq!(p.delete(&root, 0), Got::Empty);
    assert_eq!(p.exists(&root, false), no_node());
    assert!(p.seen.disconnected.is_empty(), "{:?}", p.seen.disconnected);
    p.close();
}

#[test]
#[ignore = "needs a ZooKeeper server: SINEW_ZK_SERVER=host:port (scripts/zookeeper.sh)"]
fn ephemeral_and_sequential_nodes_and_close_removes_ephemerals() {
    let servers = [server()];
    let mut buffers_a = Box::new(Buffers::new());
    let mut buffers_b = Box::new(Buffers::new());
    let mut a = Peer::new(Stack, &servers, &mut buffers_a, config());
    let mut b = Peer::new(Stack, &servers, &mut buffers_b, config());
    let session_a = a.connect();
    let session_b = b.connect();
    assert_ne!(session_a, session_b);

    let root = root("eph");
    assert_eq!(
        a.create(&root, b"", CreateMode::Persistent),
        Got::Path(root.clone())
    );

    // Sequential: the server appends a 10-digit counter that grows.
    let prefix = format!("{root}/seq-");
    let mut numbers = Vec::new();
    for mode in [
        CreateMode::PersistentSequential,
        CreateMode::EphemeralSequential,
    ] {
        match a.create(&prefix, b"s", mode) {
            Got::Path(path) => {
                let suffix = path.strip_prefix(&prefix).expect("the prefix is kept");
                assert_eq!(suffix.len(), 10, "{path}");
                numbers.push(suffix.parse::<u32>().unwrap());
            }
            other => panic!("sequential create: {other:?}"),
        }
    }
    assert!(numbers[1] > numbers[0], "{numbers:?}");

    // Ephemeral: owned by A's session, seen by B.
    let eph = format!("{root}/eph");
    assert_eq!(
        a.create(&eph, b"alive", CreateMode::Ephemeral),
        Got::Path(eph.clone())
    );
    assert_eq!(stat(b.exists(&eph, false)).ephemeral_owner, session_a);
    // An ephemeral node has no children.
    assert_eq!(
        a.create(&format!("{eph}/kid"), b"", CreateMode::Persistent),
        Got::Err(ErrorCode::NoChildrenForEphemerals, false)
    );
    match b.children(&root) {
        Got::Children(mut names) => {
            names.sort();
            assert_eq!(names.len(), 3, "{names:?}");
            assert!(names.contains(&"eph".to_string()));
        }
        other => panic!("getChildren: {other:?}"),
    }

    // B watches the ephemeral node; A closes its session; the server deletes A's ephemerals.
    assert_eq!(stat(b.exists(&eph, true)).ephemeral_owner, session_a);
    a.close();
    b.run_until("the ephemeral node's deletion", |p| {
        p.seen
            .watches
            .iter()
            .any(|(t, path, _)| *t == EventType::NodeDeleted && *path == eph)
    });
    assert_eq!(b.exists(&eph, false), no_node());
    match b.children(&root) {
        Got::Children(names) => {
            assert_eq!(
                names.len(),
                1,
                "only the persistent sequential node is left: {names:?}"
            )
        }
        other => panic!("getChildren: {other:?}"),
    }
    // A closed session fails what is submitted afterwards, locally.
    let now = a.now();
    let xid = a.zk.exists(now, &root, false).unwrap();
    assert_eq!(a.wait(xid), Got::Err(ErrorCode::SessionExpired, true));

    if let Got::Children(names) = b.children(&root) {
        for name in names {
            assert_eq!(b.delete(&format!("{root}/{name}"), -1), Got::Empty);
        }
    }
    assert_eq!(b.delete(&root, -1), Got::Empty);
    b.close();
}

#[test]
#[ignore = "needs a ZooKeeper server: SINEW_ZK_SERVER=host:port (scripts/zookeeper.sh)"]
fn one_shot_watches_fire_once() {
    let servers = [server()];
    let mut buffers_a = Box::new(Buffers::new());
    let mut buffers_b = Box::new(Buffers::new());
    let mut a = Peer::new(Stack, &servers, &mut buffers_a, config());
    let mut b = Peer::new(Stack, &servers, &mut buffers_b, config());
    a.connect();
    b.connect();
    let node = root("watch");

    // exists on a missing node leaves a watch that fires on creation.
    assert_eq!(a.exists(&node, true), no_node());
    assert_eq!(
        b.create(&node, b"0", CreateMode::Persistent),
        Got::Path(node.clone())
    );
    a.run_until("NodeCreated", |p| !p.seen.watches.is_empty());
    assert_eq!(
        a.seen.watches.remove(0),
        (EventType::NodeCreated, node.clone(), Some(WatchKind::Exist))
    );

    // getData leaves a data watch: the first change fires it, the second does not.
    assert!(matches!(a.get_data(&node, true), Got::Data(..)));
    assert_eq!(a.zk.session().watches().count(), 1);
    assert_eq!(stat(b.set_data(&node, b"1", -1)).version, 1);
    a.run_until("NodeDataChanged", |p| !p.seen.watches.is_empty());
    assert_eq!(
        a.seen.watches.remove(0),
        (
            EventType::NodeDataChanged,
            node.clone(),
            Some(WatchKind::Data)
        )
    );
    assert_eq!(
        a.zk.session().watches().count(),
        0,
        "one-shot: gone once fired"
    );
    assert_eq!(stat(b.set_data(&node, b"2", -1)).version, 2);
    a.run_for(Duration::from_millis(500));
    assert!(
        a.seen.watches.is_empty(),
        "fired twice: {:?}",
        a.seen.watches
    );

    assert_eq!(b.delete(&node, -1), Got::Empty);
    a.close();
    b.close();
}

#[test]
#[ignore = "needs a ZooKeeper server: SINEW_ZK_SERVER=host:port (scripts/zookeeper.sh)"]
fn multi_commits_or_aborts_as_a_whole() {
    let servers = [server()];
    let mut buffers = Box::new(Buffers::new());
    let mut p = Peer::new(Stack, &servers, &mut buffers, config());
    p.connect();
    let root = root("multi");
    let (x, y) = (format!("{root}/x"), format!("{root}/y"));
    assert_eq!(
        p.create(&root, b"r", CreateMode::Persistent),
        Got::Path(root.clone())
    );

    fn create(path: &str) -> MultiOp<'_> {
        MultiOp::Create(CreateRequest {
            path: ZkStr::from_bytes(path.as_bytes()),
            data: Some(b"m"),
            acl: List::from_slice(OPEN),
            mode: CreateMode::Persistent,
        })
    }
    let ops = [
        create(&x),
        MultiOp::Check(PathVersionRequest {
            path: ZkStr::from_bytes(root.as_bytes()),
            version: 0,
        }),
        MultiOp::SetData(SetDataRequest {
            path: ZkStr::from_bytes(root.as_bytes()),
            data: Some(b"r1"),
            version: 0,
        }),
    ];
    let now = p.now();
    let xid = p.zk.multi(now, &ops).unwrap();
    assert_eq!(
        p.wait(xid),
        Got::Multi(vec![
            Outcome::Created(x.clone()),
            Outcome::Checked,
            Outcome::Set(1),
        ])
    );

    // The check fails (the version is 1 now): nothing of the transaction is applied.
    let ops = [
        create(&y),
        MultiOp::Check(PathVersionRequest {
            path: ZkStr::from_bytes(root.as_bytes()),
            version: 0,
        }),
        MultiOp::Delete(PathVersionRequest {
            path: ZkStr::from_bytes(x.as_bytes()),
            version: -1,
        }),
    ];
    let now = p.now();
    let xid = p.zk.multi(now, &ops).unwrap();
    assert_eq!(
        p.wait(xid),
        Got::Multi(vec![
            Outcome::Failed(ErrorCode::Ok),
            Outcome::Failed(ErrorCode::BadVersion),
            Outcome::Failed(ErrorCode::RuntimeInconsistency),
        ])
    );
    assert_eq!(p.exists(&y, false), no_node());
    assert_eq!(stat(p.exists(&x, false)).version, 0);

    assert_eq!(p.delete(&x, -1), Got::Empty);
    assert_eq!(p.delete(&root, -1), Got::Empty);
    p.close();
}

#[test]
#[ignore = "needs a ZooKeeper server: SINEW_ZK_SERVER=host:port (scripts/zookeeper.sh)"]
fn connection_loss_fails_in_flight_requests_and_the_session_reattaches() {
    let servers = [server()];
    let mut buffers_a = Box::new(Buffers::new());
    let mut buffers_b = Box::new(Buffers::new());
    let mut a = Peer::new(Stack, &servers, &mut buffers_a, config());
    let mut b = Peer::new(Stack, &servers, &mut buffers_b, config());
    let session = a.connect();
    b.connect();
    let node = root("loss");
    assert_eq!(
        a.create(&node, b"0", CreateMode::Ephemeral),
        Got::Path(node.clone())
    );
    assert!(matches!(a.get_data(&node, true), Got::Data(..)));

    // A request goes out; the connection dies before its reply is read.
    let now = a.now();
    let xid = a.zk.get_data(now, &node, false).unwrap();
    let now = a.now();
    let seen = &mut a.seen;
    a.zk.process(&mut a.stack, now, |event| seen.take(event))
        .unwrap();
    assert!(a.zk.io_stats().bytes_sent > 0);
    assert!(!a.seen.replies.contains_key(&xid), "answered too early");
    let now = a.now();
    a.zk.abort_connection(&mut a.stack, now);
    assert_eq!(a.wait(xid), Got::Err(ErrorCode::ConnectionLoss, true));
    assert_eq!(a.seen.disconnected, [DisconnectReason::Transport]);

    // The client reconnects and re-attaches the same session: the ephemeral node survives and
    // the data watch is registered again.
    a.run_until("re-attached", |p| p.seen.connected.len() == 2);
    assert_eq!(a.seen.connected[1], (session, true));
    assert_eq!(a.zk.io_stats().connects, 2);
    assert_eq!(stat(b.exists(&node, false)).ephemeral_owner, session);
    assert_eq!(stat(b.set_data(&node, b"1", -1)).version, 1);
    a.run_until("the re-registered watch", |p| !p.seen.watches.is_empty());
    assert_eq!(a.seen.watches[0].0, EventType::NodeDataChanged);
    assert_eq!(a.zk.session().stats().set_watches_sent, 1);

    a.close();
    assert_eq!(b.exists(&node, false), no_node());
    b.close();
}

/// A stack that takes at most a few bytes per `send`, returns at most a few per `receive`,
/// and says `WouldBlock` every other call, to exercise partial writes and reads.
struct Stingy {
    inner: Stack,
    calls: u64,
}

impl TcpClientStack for Stingy {
    type TcpSocket = <Stack as TcpClientStack>::TcpSocket;
    type Error = <Stack as TcpClientStack>::Error;

    fn socket(&mut self) -> Result<Self::TcpSocket, Self::Error> {
        self.inner.socket()
    }

    fn connect(
        &mut self,
        socket: &mut Self::TcpSocket,
        remote: SocketAddr,
    ) -> nb::Result<(), Self::Error> {
        self.calls += 1;
        if self.calls.is_multiple_of(2) {
            return Err(nb::Error::WouldBlock);
        }
        self.inner.connect(socket, remote)
    }

    fn send(
        &mut self,
        socket: &mut Self::TcpSocket,
        buffer: &[u8],
    ) -> nb::Result<usize, Self::Error> {
        self.calls += 1;
        if self.calls.is_multiple_of(2) {
            return Err(nb::Error::WouldBlock);
        }
        let n = buffer.len().min(7);
        self.inner.send(socket, &buffer[..n])
    }

    fn receive(
        &mut self,
        socket: &mut Self::TcpSocket,
        buffer: &mut [u8],
    ) -> nb::Result<usize, Self::Error> {
        self.calls += 1;
        if self.calls.is_multiple_of(2) {
            return Err(nb::Error::WouldBlock);
        }
        let n = buffer.len().min(5);
        self.inner.receive(socket, &mut buffer[..n])
    }

    fn close(&mut self, socket: Self::TcpSocket) -> Result<(), Self::Error> {
        self.inner.close(socket)
    }
}

#[test]
#[ignore = "needs a ZooKeeper server: SINEW_ZK_SERVER=host:port (scripts/zookeeper.sh)"]
fn partial_sends_and_receives() {
    let servers = [server()];
    let mut buffers = Box::new(Buffers::new());
    let stingy = Stingy {
        inner: Stack,
        calls: 0,
    };
    let mut p = Peer::new(stingy, &servers, &mut buffers, config());
    p.connect();
    let node = root("partial");
    let data: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    assert_eq!(
        p.create(&node, &data, CreateMode::Persistent),
        Got::Path(node.clone())
    );
    let now = p.now();
    let xids: Vec<Xid> = (0..5)
        .map(|_| p.zk.get_data(now, &node, false).unwrap())
        .collect();
    for xid in xids {
        match p.wait(xid) {
            Got::Data(got, stat) => {
                assert_eq!(got, data);
                assert_eq!(stat.data_length, 3000);
            }
            other => panic!("getData: {other:?}"),
        }
    }
    let io = *p.zk.io_stats();
    assert!(io.partial_sends > 10, "{io:?}");
    assert!(io.receives > 3000 / 5, "{io:?}");
    assert_eq!(p.delete(&node, -1), Got::Empty);
    assert!(p.seen.disconnected.is_empty(), "{:?}", p.seen.disconnected);
    p.close();
}

#[test]
#[ignore = "needs a ZooKeeper server: SINEW_ZK_SERVER=host:port (scripts/zookeeper.sh)"]
fn a_reply_larger_than_the_receive_buffer_ends_the_connection_loudly() {
    let servers = [server()];
    let mut big = Box::new(Buffers::new());
    let mut small = Box::new(ZkBuffers::<1024, 512, 2048>::new());
    let mut writer = Peer::new(Stack, &servers, &mut big, config());
    writer.connect();
    let node = root("large");
    assert_eq!(
        writer.create(&node, &[7u8; 2000], CreateMode::Persistent),
        Got::Path(node.clone())
    );

    let zk: ZkClient<'_, Stack> = ZkClient::new(config(), &servers, &mut small).unwrap();
    let mut reader = Peer {
        zk,
        stack: Stack,
        start: StdInstant::now(),
        seen: Seen::default(),
    };
    reader.connect();
    let now = reader.now();
    let xid = reader.zk.get_data(now, &node, false).unwrap();
    assert_eq!(reader.wait(xid), Got::Err(ErrorCode::ConnectionLoss, true));
    assert!(
        matches!(reader.seen.disconnected[0], DisconnectReason::Protocol(_)),
        "{:?}",
        reader.seen.disconnected
    );
    // A small reply still works after the reconnect.
    reader.run_until("re-attached", |p| p.seen.connected.len() == 2);
    assert!(matches!(reader.exists(&node, false), Got::Stat(s) if s.data_length == 2000));

    assert_eq!(writer.delete(&node, -1), Got::Empty);
    reader.close();
    writer.close();
}
