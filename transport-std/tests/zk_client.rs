//! The mio ZooKeeper client against a scripted fake server on loopback: failover across the
//! server list and re-attaching the session, and connect errors that say what happened at
//! each server (a closed port, a silent server), without a real ZooKeeper.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use sinew_proto::zk::session::SessionState;
use sinew_proto::zk::{
    ConnectRequest, ConnectResponse, ErrorCode, GetDataResponse, Reply, ReplyBody, ReplyHeader,
    Request, RequestBody, Stat,
};
use sinew_transport_std::Error;
use sinew_transport_std::zk::{ClientConfig, ZkClient, ZkEvent};

const SESSION: i64 = 0x77;
const PASSWD: &[u8; 16] = b"fake-password-16";

fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).ok()?;
    let mut frame = vec![0; i32::from_be_bytes(len) as usize];
    stream.read_exact(&mut frame).ok()?;
    Some(frame)
}

fn write_reply(stream: &mut TcpStream, reply: Reply<'_>) {
    let mut buf = vec![0; reply.framed_len()];
    reply.encode_framed(&mut buf).unwrap();
    stream.write_all(&buf).unwrap();
}

/// Serves `connections` connections: answers the handshake (re-attaching session
/// [`SESSION`]), getData with "fake" at zxid 0x42, closeSession; the first connection is
/// dropped after its first getData, as a crashing server would. Reports each ConnectRequest.
fn fake_server(listener: TcpListener, connections: usize, seen: mpsc::Sender<(i64, Vec<u8>, i64)>) {
    for i in 0..connections {
        let (mut stream, _) = listener.accept().unwrap();
        let Some(hello) = read_frame(&mut stream) else {
            continue;
        };
        let request = ConnectRequest::parse(&hello).unwrap();
        seen.send((
            request.session_id,
            request.passwd.unwrap_or_default().to_vec(),
            request.last_zxid_seen,
        ))
        .unwrap();
        let response = ConnectResponse {
            protocol_version: 0,
            timeout: 6000,
            session_id: SESSION,
            passwd: Some(PASSWD),
            read_only: Some(false),
        };
        let mut buf = vec![0; response.framed_len()];
        response.encode_framed(&mut buf).unwrap();
        stream.write_all(&buf).unwrap();
        while let Some(frame) = read_frame(&mut stream) {
            let request = Request::parse(&frame).unwrap();
            let header = |zxid| ReplyHeader {
                xid: request.xid,
                zxid,
                err: ErrorCode::Ok,
            };
            match request.body {
                RequestBody::GetData(_) => {
                    let body = ReplyBody::Data(GetDataResponse {
                        data: Some(b"fake"),
                        stat: Stat::default(),
                    });
                    write_reply(
                        &mut stream,
                        Reply {
                            header: header(0x42),
                            body,
                        },
                    );
                    if i == 0 {
                        break;
                    }
                }
                RequestBody::Ping => write_reply(
                    &mut stream,
                    Reply {
                        header: header(0x42),
                        body: ReplyBody::Empty,
                    },
                ),
                RequestBody::CloseSession => {
                    write_reply(
                        &mut stream,
                        Reply {
                            header: header(0x43),
                            body: ReplyBody::Empty,
                        },
                    );
                    break;
                }
                other => panic!("fake server: unexpected {:?}", other.op()),
            }
        }
    }
}

fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

#[test]
fn fails_over_and_reattaches_the_session() {
    let dead = closed_port();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let live = listener.local_addr().unwrap();
    let (tx, seen) = mpsc::channel();
    let server = thread::spawn(move || fake_server(listener, 2, tx));

    let config = ClientConfig::new()
        .with_session_timeout(Duration::from_secs(6))
        .with_connect_timeout(Duration::from_secs(2));
    // The first address refuses connections: the client goes on to the second.
    let mut zk = ZkClient::new(vec![dead, live], config).unwrap();
    zk.wait_connected(Duration::from_secs(10)).unwrap();
    assert_eq!(zk.current_server(), Some(live));
    assert_eq!(zk.session_id(), SESSION);
    assert!(zk.io_stats().connect_failures >= 1);
    let first = seen.recv().unwrap();
    assert_eq!(
        first,
        (0, vec![0; 16], 0),
        "a new session as the Java client asks"
    );

    let (data, _) = zk.get_data("/x", None).unwrap();
    assert_eq!(data, b"fake");
    assert_eq!(zk.session().last_zxid(), 0x42);

    // The server drops the connection: the client reconnects (past the dead address again)
    // and re-attaches with the session's id, password and last zxid.
    let mut events = Vec::new();
    while !events.iter().any(|e| {
        matches!(
            e,
            ZkEvent::Connected {
                reattached: true,
                ..
            }
        )
    }) {
        match zk.next_event(Duration::from_secs(10)).unwrap() {
            Some(event) => events.push(event),
            None => panic!("no reconnect; events {events:?}"),
        }
    }
    assert!(
        events.iter().any(|e| matches!(e, ZkEvent::Disconnected(_))),
        "{events:?}"
    );
    let second = seen.recv().unwrap();
    assert_eq!(second, (SESSION, PASSWD.to_vec(), 0x42));
    assert_eq!(zk.get_data("/x", None).unwrap().0, b"fake");

    zk.close().unwrap();
    assert_eq!(zk.state(), SessionState::Closed);
    server.join().unwrap();
    // After close, requests fail at once, without a connection.
    match zk.get_data("/x", None) {
        Err(Error::Zk(ErrorCode::SessionExpired)) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn connect_to_a_closed_port_fails_at_once_naming_it() {
    let dead = closed_port();
    let start = Instant::now();
    // The default config: a 30 s session timeout, hence a 30 s connect timeout.
    let err = ZkClient::connect(&dead.to_string(), ClientConfig::default()).unwrap_err();
    let elapsed = start.elapsed();
    println!("a closed port: failed after {elapsed:?}: {err}");
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    let Error::Connect(connect) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(connect.attempts.len(), 1, "{connect:?}");
    assert_eq!(connect.attempts[0].0, dead);
    assert_eq!(connect.attempts[0].1.kind(), ErrorKind::ConnectionRefused);
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("could not connect to {dead}: ")) && text.contains("refused"),
        "{text}"
    );
}

#[test]
fn a_silent_server_fails_after_the_connect_timeout_and_every_server_is_named() {
    // A listener that never accepts: the kernel completes the TCP handshake, nobody answers
    // the ZooKeeper one.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let dead = closed_port();
    let config = ClientConfig::new()
        .with_session_timeout(Duration::from_secs(6))
        .with_connect_timeout(Duration::from_millis(300));
    let mut zk = ZkClient::new(vec![silent_addr, dead], config).unwrap();
    let start = Instant::now();
    let err = zk.wait_connected(Duration::from_secs(5)).unwrap_err();
    let elapsed = start.elapsed();
    println!("a silent server and a closed port: failed after {elapsed:?}: {err}");
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(2),
        "{elapsed:?}"
    );
    let Error::Connect(connect) = &err else {
        panic!("{err:?}")
    };
    let kinds: Vec<_> = connect
        .attempts
        .iter()
        .map(|(addr, e)| (*addr, e.kind()))
        .collect();
    assert_eq!(
        kinds,
        [
            (silent_addr, ErrorKind::TimedOut),
            (dead, ErrorKind::ConnectionRefused)
        ]
    );
    let text = err.to_string();
    assert!(
        text.contains(&format!(
            "{silent_addr}: connected, but no answer to the handshake within 300ms"
        )),
        "{text}"
    );
    // The session is not over: it would go on trying if driven.
    assert!(!zk.state().is_terminal());
    drop(silent);
}

#[test]
fn an_oversized_request_is_refused_before_any_connection() {
    let mut zk = ZkClient::new(vec![closed_port()], ClientConfig::default()).unwrap();
    let big = vec![0u8; 0x100000];
    let err = zk
        .submit(RequestBody::SetData(sinew_proto::zk::SetDataRequest {
            path: sinew_proto::zk::ZkStr::new("/big"),
            data: Some(&big),
            version: -1,
        }))
        .unwrap_err();
    assert!(
        matches!(err, Error::Proto(sinew_proto::Error::TooLarge)),
        "{err:?}"
    );
    assert_eq!(zk.io_stats().connects, 0);
}
