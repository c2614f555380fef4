//! A ZooKeeper session over a plain blocking `std::net::TcpStream`.
//!
//! `ZkSession` owns the protocol (handshake, xids, replies in order, pings, timeouts, watches)
//! and never touches the socket: this program connects, writes what the session hands it,
//! reads into the session's receive buffer with a read timeout that ends at the session's next
//! timer, and reads the events. Against a real server it creates an ephemeral sequential node,
//! reads it back, leaves a data watch and triggers it, leaves an exists watch and deletes the
//! node, checks the node is gone, and closes the session. Each step is printed and checked; the
//! program exits 1, saying why, when the server's answer is not what it should be.
//!
//! ```text
//! cargo run -p sinew-proto --example zk -- 127.0.0.1:2181
//! ```
//!
//! The server is the first argument, else `SINEW_ZK_SERVER`, else `127.0.0.1:2181`.

use std::error::Error;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant as StdInstant};

use sinew_proto::time::Instant;
use sinew_proto::zk::session::{Config, Event, MIN_TRANSMIT_LEN, ZkSession};
use sinew_proto::zk::{
    Acl, CreateMode, CreateRequest, ErrorCode, EventType, List, PathVersionRequest,
    PathWatchRequest, ReplyBody, RequestBody, SetDataRequest, ZkStr,
};

/// How long any one step may take before the program gives up.
const STEP_DEADLINE: Duration = Duration::from_secs(10);
/// The session's buffers: requests queued to send, and replies received.
const BUFFER_LEN: usize = 64 * 1024;

type Result<T, E = Box<dyn Error>> = std::result::Result<T, E>;

/// The socket, the session it carries, and the watch notifications seen so far.
struct Client {
    stream: TcpStream,
    session: ZkSession<Vec<u8>>,
    /// The protocol's clock: microseconds since this instant.
    epoch: StdInstant,
    /// Bytes from `poll_transmit`, written to the socket at once.
    out: Vec<u8>,
    /// Watch notifications (type and path) that arrived, oldest first.
    fired: Vec<(EventType, String)>,
}

impl Client {
    /// Opens the TCP connection and completes the handshake.
    fn connect(server: SocketAddr) -> Result<Client> {
        let config = Config::new().with_session_timeout(Duration::from_secs(10));
        let mut session = ZkSession::new(config, vec![0; BUFFER_LEN], vec![0; BUFFER_LEN]);
        let epoch = StdInstant::now();
        session.handle_connecting(Instant::ZERO);
        let stream = TcpStream::connect_timeout(&server, config.connect_timeout)?;
        stream.set_nodelay(true)?;
        let mut client = Client {
            stream,
            session,
            epoch,
            out: vec![0; MIN_TRANSMIT_LEN.max(BUFFER_LEN)],
            fired: Vec::new(),
        };
        client.session.handle_connected(client.now());
        client.wait("handshake", |event| match event {
            Event::Connected {
                session_id,
                timeout_ms,
                ..
            } => {
                println!("connected: session {session_id:#x}, timeout {timeout_ms} ms");
                Some(())
            }
            _ => None,
        })?;
        Ok(client)
    }

    fn now(&self) -> Instant {
        Instant::from_micros(u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX))
    }

    /// One round of the transport: let time pass, write everything the session has to send,
    /// then one read that waits no longer than the session's next timer.
    fn step(&mut self) -> Result<()> {
        let now = self.now();
        if self.session.poll_timeout().is_some_and(|t| t <= now) {
            self.session.handle_timeout(now);
        }
        loop {
            let n = self.session.poll_transmit(now, &mut self.out);
            if n == 0 {
                break;
            }
            if let Err(e) = self.stream.write_all(&self.out[..n]) {
                self.session.handle_disconnected(self.now());
                return Err(e.into());
            }
        }
        let wait = self
            .session
            .poll_timeout()
            .map_or(Duration::from_millis(100), |t| {
                t.saturating_duration_since(self.now())
            });
        // A zero read timeout means "block forever" to the socket: wait at least 1 ms.
        self.stream.set_read_timeout(Some(
            wait.clamp(Duration::from_millis(1), Duration::from_secs(1)),
        ))?;
        // Straight into the session's receive buffer: it splits the bytes into frames itself.
        let buf = self.session.receive_buffer();
        if buf.is_empty() {
            // Full of frames not yet polled: the caller polls them first.
            return Ok(());
        }
        match self.stream.read(buf) {
            Ok(0) => {
                self.session.handle_disconnected(self.now());
                Err("the server closed the connection".into())
            }
            Ok(n) => {
                self.session.handle_received(self.now(), n);
                Ok(())
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(()),
            Err(e) => {
                self.session.handle_disconnected(self.now());
                Err(e.into())
            }
        }
    }

    /// Drives the session until `pick` takes an event (and returns what it made of it). Watch
    /// notifications go to `fired`; the loss of the connection or session is an error.
    fn wait<T>(&mut self, what: &str, mut pick: impl FnMut(Event<'_>) -> Option<T>) -> Result<T> {
        let deadline = StdInstant::now() + STEP_DEADLINE;
        loop {
            while let Some(event) = self.session.poll_event() {
                match event {
                    Event::Watch(watch) => {
                        let path = String::from_utf8_lossy(watch.path.as_bytes()).into_owned();
                        println!("  watch fired: {} on {path}", watch.event_type);
                        self.fired.push((watch.event_type, path));
                    }
                    Event::Disconnected { reason } => {
                        return Err(format!("{what}: connection lost: {reason}").into());
                    }
                    Event::Expired => return Err(format!("{what}: session expired").into()),
                    event => {
                        if let Some(picked) = pick(event) {
                            return Ok(picked);
                        }
                    }
                }
            }
            if !self.session.state().has_connection() {
                return Err(format!("{what}: the session is {}", self.session.state()).into());
            }
            if StdInstant::now() > deadline {
                return Err(format!("{what}: no answer within {STEP_DEADLINE:?}").into());
            }
            self.step()?;
        }
    }

    /// Submits a request and waits for its reply, which `take` turns into something owned
    /// (the reply borrows the session's receive buffer).
    fn call<T>(
        &mut self,
        what: &str,
        body: RequestBody<'_>,
        mut take: impl FnMut(std::result::Result<ReplyBody<'_>, ErrorCode>) -> T,
    ) -> Result<T> {
        let xid = self.session.submit(self.now(), body)?;
        self.wait(what, |event| match event {
            Event::Reply(reply) if reply.xid == xid => Some(take(reply.result)),
            _ => None,
        })
    }

    /// Whether a watch notification of `event_type` on `path` has arrived.
    fn has_fired(&self, event_type: EventType, path: &str) -> bool {
        self.fired
            .iter()
            .any(|(t, p)| *t == event_type && p == path)
    }
}

fn main() -> Result<()> {
    let server = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("SINEW_ZK_SERVER").ok())
        .unwrap_or_else(|| "127.0.0.1:2181".to_string());
    let addr = server
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| format!("{server}: no address"))?;
    println!("server {addr}");
    let mut zk = Client::connect(addr)?;
    let session_id = zk.session.session_id();

    // 1. An ephemeral sequential node: the server appends a unique number to the name.
    let data = b"hello from sinew";
    let create = RequestBody::Create2(CreateRequest {
        path: ZkStr::new("/sinew-example-"),
        data: Some(data),
        acl: List::from_slice(Acl::OPEN_ACL_UNSAFE),
        mode: CreateMode::EphemeralSequential,
    });
    let (path, stat) = zk.call("create", create, |result| match result {
        Ok(ReplyBody::Created(created)) => Ok((
            String::from_utf8_lossy(created.path.as_bytes()).into_owned(),
            created.stat,
        )),
        other => Err(format!("create: {other:?}")),
    })??;
    println!("created {path} (version {})", stat.version);
    if stat.ephemeral_owner != session_id || stat.data_length != data.len() as i32 {
        return Err(format!("create: unexpected stat {stat:?}").into());
    }

    // 2. Read it back, leaving a data watch on it.
    let get = RequestBody::GetData(PathWatchRequest {
        path: ZkStr::new(&path),
        watch: true,
    });
    let read = zk.call("getData", get, |result| match result {
        Ok(ReplyBody::Data(reply)) => Ok(reply.data.map(<[u8]>::to_vec)),
        other => Err(format!("getData: {other:?}")),
    })??;
    if read.as_deref() != Some(&data[..]) {
        return Err(format!("getData read back {read:?}").into());
    }
    println!("read back {:?}, watch left", String::from_utf8_lossy(data));

    // 3. Change the data: the watch fires.
    let set = RequestBody::SetData(SetDataRequest {
        path: ZkStr::new(&path),
        data: Some(b"changed"),
        version: 0,
    });
    // ZooKeeper delivers a watch's notification before the reply to the change that fired it.
    let version = zk.call("setData", set, |result| match result {
        Ok(ReplyBody::Stat(stat)) => Ok(stat.version),
        other => Err(format!("setData: {other:?}")),
    })??;
    println!("data set (version {version})");
    if version != 1 || !zk.has_fired(EventType::NodeDataChanged, &path) {
        return Err(format!("setData: version {version}, watches fired {:?}", zk.fired).into());
    }

    // 4. An exists watch, then delete: it fires as NodeDeleted.
    let exists = RequestBody::Exists(PathWatchRequest {
        path: ZkStr::new(&path),
        watch: true,
    });
    zk.call("exists", exists, |result| match result {
        Ok(ReplyBody::Stat(stat)) if stat.version == 1 => Ok(()),
        other => Err(format!("exists: {other:?}")),
    })??;
    let delete = RequestBody::Delete(PathVersionRequest {
        path: ZkStr::new(&path),
        version: 1,
    });
    zk.call("delete", delete, |result| match result {
        Ok(ReplyBody::Empty) => Ok(()),
        other => Err(format!("delete: {other:?}")),
    })??;
    // ZooKeeper delivers a watch's notification before the reply to the change that fired it.
    if !zk.has_fired(EventType::NodeDeleted, &path) {
        return Err(format!("delete: no NodeDeleted notification, got {:?}", zk.fired).into());
    }
    println!("deleted {path}");

    // 5. It is gone.
    let exists = RequestBody::Exists(PathWatchRequest {
        path: ZkStr::new(&path),
        watch: false,
    });
    zk.call("exists after delete", exists, |result| match result {
        Err(ErrorCode::NoNode) => Ok(()),
        other => Err(format!("exists after delete: {other:?}")),
    })??;
    println!("{path} no longer exists");

    // 6. Close the session: the server answers, then closes the connection.
    zk.session.close(zk.now())?;
    zk.wait("close", |event| {
        matches!(event, Event::Closed).then_some(())
    })?;
    println!("session {session_id:#x} closed");
    Ok(())
}
