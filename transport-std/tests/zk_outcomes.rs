//! Where a ZooKeeper client's outcomes go, through connection cuts, against a real ZooKeeper
//! 3.8 server behind a small cutting proxy: every reply, error and event reaches the path the
//! caller chose — a handler, or the owned store of the blocking calls — whichever call did the
//! socket work (`flush`, `process`, a blocking call, `run_for`).
//!
//! Ignored by default: they need a server (see `zk_interop.rs`):
//!
//! ```text
//! scripts/zookeeper.sh start /tmp/sinew-zk
//! SINEW_ZK_SERVER=127.0.0.1:$(cat /tmp/sinew-zk/port) \
//!     cargo test -p sinew-transport-std --test zk_outcomes -- --include-ignored
//! ```

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

mod common;

use common::CuttingProxy;
use mio::{Events, Poll, Token};
use sinew_proto::zk::session::{DisconnectReason, Event, SessionState, Xid};
use sinew_proto::zk::{ErrorCode, PathWatchRequest, RequestBody, ZkStr};
use sinew_transport_std::Error;
use sinew_transport_std::zk::{ClientConfig, ZkClient, ZkEvent, parse_connect_string};

fn server() -> SocketAddr {
    match std::env::var("SINEW_ZK_SERVER") {
        Ok(addr) if !addr.trim().is_empty() => addr.parse().expect("SINEW_ZK_SERVER as ip:port"),
        _ => panic!(
            "SINEW_ZK_SERVER is not set. Start a server with `scripts/zookeeper.sh start DIR` \
             and run with SINEW_ZK_SERVER=127.0.0.1:$(cat DIR/port)"
        ),
    }
}

/// What a handler saw, owned.
#[derive(Clone, Debug, PartialEq)]
enum Seen {
    Reply(Xid, Result<(), ErrorCode>),
    Event(ZkEvent),
}

/// A handler that logs everything it sees.
fn logging_handler() -> (
    Arc<Mutex<Vec<Seen>>>,
    impl FnMut(Event<'_>) + Send + 'static,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let handler = move |event: Event<'_>| {
        let entry = match event {
            Event::Reply(r) => Seen::Reply(r.xid, r.result.map(|_| ())),
            other => Seen::Event(ZkEvent::from_event(other).unwrap()),
        };
        log.lock().unwrap().push(entry);
    };
    (seen, handler)
}

fn get_data_root() -> RequestBody<'static> {
    RequestBody::GetData(PathWatchRequest {
        path: ZkStr::new("/"),
        watch: false,
    })
}

fn config() -> ClientConfig {
    ClientConfig::new().with_session_timeout(Duration::from_secs(10))
}

fn is_connected(seen: &Seen, reattached: bool) -> bool {
    matches!(seen, Seen::Event(ZkEvent::Connected { reattached: r, .. }) if *r == reattached)
}

/// The cut as the tests make it: the proxy cuts, a pause lets the reset arrive.
fn cut_and_pause(proxy: &CuttingProxy) {
    proxy.reset();
    thread::sleep(Duration::from_millis(200));
}

/// The outcome sequence of one cut: Disconnected, then every request in flight failing with
/// ConnectionLoss, in order.
fn lost(xids: &[Xid]) -> Vec<Seen> {
    let mut expected = vec![Seen::Event(ZkEvent::Disconnected(
        DisconnectReason::Transport,
    ))];
    expected.extend(
        xids.iter()
            .map(|&xid| Seen::Reply(xid, Err(ErrorCode::ConnectionLoss))),
    );
    expected
}

#[test]
#[ignore = "needs a ZooKeeper server: SINEW_ZK_SERVER=host:port (scripts/zookeeper.sh)"]
fn a_handler_on_a_callers_poll_sees_every_outcome_through_a_cut() {
    let proxy = CuttingProxy::start(server());
    let (servers, _) = parse_connect_string(&proxy.addr.to_string()).unwrap();
    let mut zk = ZkClient::new(servers, config()).unwrap();
    let (seen, handler) = logging_handler();
    zk.set_handler(handler);
    let mut poll = Poll::new().unwrap();
    let mut events = Events::with_capacity(16);
    zk.register(poll.registry(), Token(7)).unwrap();
    // The caller's loop: process, sleep until the socket or the client's timeout.
    let mut drive = |zk: &mut ZkClient, what: &str, done: &dyn Fn(&[Seen]) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            zk.process().unwrap();
            if done(&seen.lock().unwrap()) {
                return;
            }
            let now = Instant::now();
            assert!(
                now < deadline,
                "{what}: timed out; seen {:?}",
                seen.lock().unwrap()
            );
            let wake = zk.poll_timeout().map_or(deadline, |t| t.min(deadline));
            poll.poll(&mut events, Some(wake.saturating_duration_since(now)))
                .unwrap();
        }
    };
    drive(&mut zk, "connect", &|s| {
        s.iter().any(|e| is_connected(e, false))
    });
    let session = zk.session_id();

    // Blocking calls refuse on a caller's Poll, before sending anything.
    let pending = zk.session().pending();
    let err = zk.get_data("/", None).unwrap_err();
    assert!(
        matches!(&err, Error::Io(e) if e.to_string().contains("caller's Poll")),
        "{err:?}"
    );
    assert_eq!(zk.session().pending(), pending);
    assert!(matches!(zk.close(), Err(Error::Io(_))));

    // 16 getData submitted, the proxy cut, a pause, then flush.
    seen.lock().unwrap().clear();
    let xids: Vec<Xid> = (0..16)
        .map(|_| zk.submit(get_data_root()).unwrap())
        .collect();
    cut_and_pause(&proxy);
    zk.flush().unwrap();
    #[cfg(target_os = "linux")]
    {
        // The reset made flush's write fail: what that brought about went to the handler.
        assert_eq!(*seen.lock().unwrap(), lost(&xids), "after flush");
    }
    // process() reconnects: the same session, on a new connection.
    drive(&mut zk, "reconnect", &|s| {
        s.iter().any(|e| is_connected(e, true))
    });
    let seen_now = seen.lock().unwrap().clone();
    let mut expected = lost(&xids);
    expected.push(seen_now.last().unwrap().clone());
    assert_eq!(seen_now, expected);
    assert!(matches!(
        seen_now.last(),
        Some(Seen::Event(ZkEvent::Connected { session_id, .. })) if *session_id == session
    ));

    // It works, and closes through the chosen path too.
    seen.lock().unwrap().clear();
    let xid = zk.submit(get_data_root()).unwrap();
    drive(&mut zk, "getData", &|s| {
        s.contains(&Seen::Reply(xid, Ok(())))
    });
    let now = zk.clock().now();
    let close = zk.session_mut().close(now).unwrap();
    drive(&mut zk, "close", &|s| {
        s.contains(&Seen::Event(ZkEvent::Closed))
    });
    assert!(seen.lock().unwrap().contains(&Seen::Reply(close, Ok(()))));
    assert_eq!(zk.state(), SessionState::Closed);
}

#[test]
#[ignore = "needs a ZooKeeper server: SINEW_ZK_SERVER=host:port (scripts/zookeeper.sh)"]
fn a_blocking_user_sees_every_outcome_through_a_cut() {
    let proxy = CuttingProxy::start(server());
    let mut zk = ZkClient::connect(&proxy.addr.to_string(), config()).unwrap();
    let session = zk.session_id();
    assert!(matches!(
        zk.next_event(Duration::ZERO).unwrap(),
        Some(ZkEvent::Connected {
            reattached: false,
            ..
        })
    ));

    // 16 getData submitted, the proxy cut, a pause, then flush.
    let xids: Vec<Xid> = (0..16)
        .map(|_| zk.submit(get_data_root()).unwrap())
        .collect();
    cut_and_pause(&proxy);
    zk.flush().unwrap();
    #[cfg(target_os = "linux")]
    for &xid in &xids {
        // Kept by flush itself.
        let done = zk.take_completion(xid).expect("kept by flush");
        assert_eq!(done.result, Err(ErrorCode::ConnectionLoss), "xid {xid}");
    }
    #[cfg(not(target_os = "linux"))]
    for &xid in &xids {
        let done = zk.wait(xid, Duration::from_secs(10)).unwrap();
        assert_eq!(done.result, Err(ErrorCode::ConnectionLoss), "xid {xid}");
    }
    let event = zk.next_event(Duration::from_secs(10)).unwrap();
    assert_eq!(
        event,
        Some(ZkEvent::Disconnected(DisconnectReason::Transport))
    );
    let event = zk.next_event(Duration::from_secs(10)).unwrap();
    let reattached = matches!(
        event,
        Some(ZkEvent::Connected { session_id, reattached: true, .. }) if session_id == session
    );
    assert!(reattached, "{event:?}");

    // A blocking call does the socket work this time: its own outcome is its return value,
    // the others' are kept.
    let xids: Vec<Xid> = (0..4)
        .map(|_| zk.submit(get_data_root()).unwrap())
        .collect();
    cut_and_pause(&proxy);
    let own = zk.get_data("/", None);
    assert!(
        matches!(own, Err(Error::Zk(ErrorCode::ConnectionLoss))),
        "{own:?}"
    );
    for &xid in &xids {
        let done = zk.wait(xid, Duration::from_secs(10)).unwrap();
        assert_eq!(done.result, Err(ErrorCode::ConnectionLoss), "xid {xid}");
    }
    assert_eq!(
        zk.next_event(Duration::from_secs(10)).unwrap(),
        Some(ZkEvent::Disconnected(DisconnectReason::Transport))
    );
    zk.wait_connected(Duration::from_secs(10)).unwrap();
    assert!(matches!(
        zk.next_event(Duration::ZERO).unwrap(),
        Some(ZkEvent::Connected {
            reattached: true,
            ..
        })
    ));
    assert_eq!(zk.get_data("/", None).unwrap().1.czxid, 0);
    zk.close().unwrap();
    assert_eq!(
        zk.next_event(Duration::ZERO).unwrap(),
        Some(ZkEvent::Closed)
    );
}

#[test]
#[ignore = "needs a ZooKeeper server: SINEW_ZK_SERVER=host:port (scripts/zookeeper.sh)"]
fn a_handler_on_a_standalone_client_sees_what_blocking_calls_bring_about() {
    let proxy = CuttingProxy::start(server());
    let mut zk = ZkClient::connect(&proxy.addr.to_string(), config()).unwrap();
    let (seen, handler) = logging_handler();
    // The Connected of connect() was kept: the handler is handed it.
    zk.set_handler(handler);
    assert!(
        matches!(&seen.lock().unwrap()[..], [c] if is_connected(c, false)),
        "{:?}",
        seen.lock().unwrap()
    );

    // A blocking call does the socket work after a cut: its own outcome is its return value,
    // everything else goes to the handler.
    seen.lock().unwrap().clear();
    let xids: Vec<Xid> = (0..16)
        .map(|_| zk.submit(get_data_root()).unwrap())
        .collect();
    cut_and_pause(&proxy);
    let own = zk.get_data("/", None);
    assert!(
        matches!(own, Err(Error::Zk(ErrorCode::ConnectionLoss))),
        "{own:?}"
    );
    assert_eq!(*seen.lock().unwrap(), lost(&xids));
    let reconnected = zk
        .run_until(Duration::from_secs(10), |_| {
            seen.lock().unwrap().iter().any(|e| is_connected(e, true))
        })
        .unwrap();
    assert!(reconnected, "{:?}", seen.lock().unwrap());
    let seen_now = seen.lock().unwrap().clone();
    assert_eq!(seen_now[..17], lost(&xids)[..], "{seen_now:?}");

    // The owned paths refuse with a handler set: nothing will be kept for them.
    let xid = zk.submit(get_data_root()).unwrap();
    assert!(matches!(
        zk.wait(xid, Duration::from_secs(1)),
        Err(Error::Io(ref e)) if e.kind() == std::io::ErrorKind::Unsupported
    ));
    assert!(matches!(
        zk.next_event(Duration::ZERO),
        Err(Error::Io(ref e)) if e.kind() == std::io::ErrorKind::Unsupported
    ));
    // That request's reply goes to the handler (run_for does the socket work).
    seen.lock().unwrap().clear();
    zk.run_for(Duration::from_millis(300)).unwrap();
    assert_eq!(*seen.lock().unwrap(), [Seen::Reply(xid, Ok(()))]);

    // A blocking call that gives up: its reply is dropped when it comes, not handed over.
    seen.lock().unwrap().clear();
    zk.set_operation_timeout(Duration::from_millis(300));
    proxy.hold(true);
    let started = Instant::now();
    let timed_out = zk.get_data("/", None);
    assert!(matches!(timed_out, Err(Error::Timeout)), "{timed_out:?}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    proxy.hold(false);
    zk.run_for(Duration::from_millis(500)).unwrap();
    assert_eq!(*seen.lock().unwrap(), [], "the late reply is dropped");
    assert_eq!(zk.session().pending(), 0, "it did come");

    // Back to the owned path.
    zk.set_operation_timeout(Duration::from_secs(10));
    assert!(zk.take_handler().is_some());
    let xid = zk.submit(get_data_root()).unwrap();
    assert_eq!(
        zk.wait(xid, Duration::from_secs(10))
            .unwrap()
            .result
            .map(|_| ()),
        Ok(())
    );
    zk.close().unwrap();
    assert_eq!(
        zk.next_event(Duration::ZERO).unwrap(),
        Some(ZkEvent::Closed)
    );
}
