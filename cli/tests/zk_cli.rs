//! The built `sinew` binary's ZooKeeper commands: `decode zk-request` / `decode zk-reply`
//! (always), and `sinew zk …` against a real server (ignored; set SINEW_ZK_SERVER, see
//! `zk_interop.rs`).

mod common;
use common::finish;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn sinew(args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_sinew"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run sinew");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs `sinew args…` with `input` on stdin, killing it if it outlives `deadline`; the
/// stdout bytes too.
fn sinew_with(args: &[&str], input: &[u8], deadline: Duration) -> (Run, Vec<u8>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sinew"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sinew");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let (status, out, err) = finish(child, deadline, args);
    writer.join().unwrap();
    let run = Run {
        code: status,
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
    };
    (run, out)
}

fn assert_lines(run: &Run, needles: &[&str]) {
    for needle in needles {
        assert!(
            run.stdout.contains(needle),
            "missing {needle:?} in\n{}\nstderr:\n{}",
            run.stdout,
            run.stderr
        );
    }
}

// ---------------------------------------------------------------------------------------------
// decode
// ---------------------------------------------------------------------------------------------

#[test]
fn decode_zk_connect_request() {
    // A new session as the Java client asks for it (frame length 45).
    let run = sinew(&[
        "decode",
        "zk-request",
        "--connect",
        "0000002d 00000000 0000000000000000 00007530 0000000000000000 00000010",
        "00000000000000000000000000000000 00",
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_lines(
        &run,
        &[
            "zk ConnectRequest, 49 bytes (payload 45)",
            "protocolVersion  0",
            "lastZxidSeen     0x0 (0)",
            "timeOut          30000 ms",
            "sessionId        0x0",
            "passwd           16 bytes 00000000000000000000000000000000",
            "readOnly         false",
        ],
    );
}

#[test]
fn decode_zk_connect_response() {
    let run = sinew(&[
        "decode",
        "zk-reply",
        "--op",
        "connect",
        "00000025 00000000 00001770 0000012345678abc 00000010 30313233343536373839616263646566 00",
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_lines(
        &run,
        &[
            "zk ConnectResponse, 41 bytes (payload 37)",
            "timeOut          6000 ms",
            "sessionId        0x12345678abc",
            "passwd           16 bytes \"0123456789abcdef\"",
            "readOnly         false",
        ],
    );
}

#[test]
fn decode_zk_create_request_with_acl() {
    // create /a "hi" world:anyone ALL, ephemeral sequential; xid 3.
    let run = sinew(&[
        "decode",
        "zk-request",
        "00000033",
        "00000003 00000001",
        "00000002 2f61",
        "00000002 6869",
        "00000001 0000001f 00000005 776f726c64 00000006 616e796f6e65",
        "00000003",
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_lines(
        &run,
        &[
            "xid      3",
            "op       1 create",
            "path     \"/a\"",
            "data     2 bytes \"hi\"",
            "acl      1 entries",
            "world:anyone perms cdrwa (0x1f)",
            "flags    3 ephemeral sequential",
        ],
    );
}

#[test]
fn decode_zk_get_data_reply_by_name_and_number() {
    // xid 1, zxid 0x2a, ok; data "hello"; a Stat with version 3 and dataLength 5.
    let stat = "0000000000000010 0000000000000011 0000018bcfe56800 0000018bcfe56800 \
                00000003 00000000 00000000 0000000000000000 00000005 00000000 0000000000000010";
    let frame_hex =
        format!("0000005d 00000001 000000000000002a 00000000 00000005 68656c6c6f {stat}");
    for op in ["getData", "4"] {
        let run = sinew(&["decode", "zk-reply", "--op", op, &frame_hex]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert_lines(
            &run,
            &[
                "zk reply to getData, 97 bytes (payload 93)",
                "zxid     0x2a (42)",
                "err      0 Ok",
                "data     5 bytes \"hello\"",
                "czxid           0x10",
                "ctime           1700000000000 (2023-11-14T22:13:20.000Z)",
                "version         3",
                "dataLength      5",
            ],
        );
    }
}

#[test]
fn decode_zk_notification_and_aborted_multi() {
    let run = sinew(&[
        "decode",
        "zk-reply",
        "0000001e ffffffff ffffffffffffffff 00000000 00000004 00000003 00000002 2f61",
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_lines(
        &run,
        &[
            "zk notification",
            "xid      -1 (notification)",
            "type     4 NodeChildrenChanged",
            "state    3 SyncConnected",
        ],
    );
    // The aborted multi of PROTOCOL-zk.md.
    let run = sinew(&[
        "decode",
        "zk-reply",
        "--op",
        "multi",
        "00000040 00000004 000000000000002b 00000000",
        "ffffffff 00 00000000 00000000",
        "ffffffff 00 ffffff9b ffffff9b",
        "ffffffff 00 fffffffe fffffffe",
        "ffffffff 01 ffffffff",
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_lines(
        &run,
        &[
            "results  3",
            "result 0: error 0 Ok",
            "result 1: error -101 NoNode",
            "result 2: error -2 RuntimeInconsistency",
        ],
    );
}

#[test]
fn decode_zk_refuses_malformed_input() {
    // Not hex.
    let run = sinew(&["decode", "zk-request", "00zz"]);
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("not hex"), "{}", run.stderr);
    // The frame is shorter than its length says.
    let run = sinew(&["decode", "zk-request", "0000000f 00000001 00000004"]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("truncated frame"), "{}", run.stderr);
    assert!(run.stdout.is_empty());
    // Bytes after the frame.
    let run = sinew(&["decode", "zk-request", "00000008 00000001 0000006b ff"]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("1 byte after"), "{}", run.stderr);
    // A negative frame length.
    let run = sinew(&["decode", "zk-reply", "ffffff00 00"]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("bad frame length"), "{}", run.stderr);
    // A getData reply whose data length runs past the frame.
    let run = sinew(&[
        "decode",
        "zk-reply",
        "--op",
        "getData",
        "00000014 00000001 0000000000000001 00000000 00000009",
    ]);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("malformed reply to getData"),
        "{}",
        run.stderr
    );
    // A reply with a body without --op, and an unknown op.
    let run = sinew(&[
        "decode",
        "zk-reply",
        "00000016 00000001 000000000000002a 00000000 00000002 2f61",
    ]);
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.starts_with("sinew: "), "{}", run.stderr);
    assert!(run.stderr.contains("--op"), "{}", run.stderr);
    let run = sinew(&["decode", "zk-reply", "--op", "getDta", "00"]);
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr.contains("unknown op \"getDta\""),
        "{}",
        run.stderr
    );
}

// ---------------------------------------------------------------------------------------------
// sinew zk, without a server
// ---------------------------------------------------------------------------------------------

#[test]
fn zk_says_what_happened_at_each_server() {
    let closed = |_| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let (a, b) = (closed(0), closed(1));
    let start = std::time::Instant::now();
    let run = sinew(&["zk", &format!("--server={a},{b}"), "ls", "/"]);
    let elapsed = start.elapsed();
    // Unreachable: EX_UNAVAILABLE, not the protocol's "no".
    assert_eq!(run.code, Some(69), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    // Both refused at once: no connect timeout (10 s here) waited out.
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    let line = run.stderr.trim_end();
    assert!(
        line.starts_with(&format!("sinew: could not connect to {a}: ")),
        "{line}"
    );
    assert!(line.contains(&format!("; {b}: ")), "{line}");
    assert_eq!(line.matches("refused").count(), 2, "{line}");
}

#[test]
fn decode_zk_reads_stdin_decodes_error_replies_and_points_to_op_connect() {
    // The hex on stdin, as `xxd -p` prints it (newlines included).
    let (run, _) = sinew_with(
        &["decode", "zk-reply"],
        b"00000010000000010000\n00000000002affffff9b\n",
        Duration::from_secs(10),
    );
    // An error reply is a bare header: no --op needed.
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_lines(
        &run,
        &[
            "zk error reply, 20 bytes (payload 16)",
            "xid      1",
            "zxid     0x2a (42)",
            "err      -101 NoNode",
        ],
    );
    // `-` reads stdin too.
    let (run, _) = sinew_with(
        &["decode", "zk-request", "-"],
        b"0000000f 00000001 00000004 00000002 2f61 01",
        Duration::from_secs(10),
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_lines(&run, &["op       4 getData", "path     \"/a\""]);
    // A ConnectResponse without --op connect: refused with the hint.
    let run = sinew(&[
        "decode",
        "zk-reply",
        "00000025 00000000 00001770 0000012345678abc 00000010 30313233343536373839616263646566 00",
    ]);
    assert_eq!(run.code, Some(2));
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(
        run.stderr.starts_with("sinew: ") && run.stderr.contains("--op connect"),
        "{}",
        run.stderr
    );
    // Nothing on stdin.
    let (run, _) = sinew_with(&["decode", "health"], b"", Duration::from_secs(10));
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("no bytes given"), "{}", run.stderr);
}

/// A server on loopback that accepts connections and, for each, sends `answer` (nothing:
/// stays silent) and keeps the socket open.
fn fake_server(answer: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        let mut kept = Vec::new();
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let _ = conn.write_all(answer);
            kept.push(conn);
        }
    });
    addr
}

#[test]
fn zk_tells_a_silent_server_from_a_refused_one_and_a_bad_frame() {
    // Silent: the handshake is never answered; timed out (75), after the timeout, not before.
    let silent = fake_server(b"");
    let start = Instant::now();
    let (run, _) = sinew_with(
        &[
            "zk",
            &format!("--server={silent}"),
            "--timeout=1500",
            "ls",
            "/",
        ],
        b"",
        Duration::from_secs(15),
    );
    let elapsed = start.elapsed();
    assert_eq!(run.code, Some(75), "{}", run.stderr);
    assert!(elapsed >= Duration::from_millis(1400), "{elapsed:?}");
    let line = run.stderr.trim_end();
    assert!(
        line.starts_with(&format!("sinew: could not connect to {silent}: ")),
        "{line}"
    );
    assert!(line.contains("no answer to the handshake"), "{line}");
    // A bad frame: a length the protocol forbids. Unreachable (69) at once, with the cause.
    let bad = fake_server(b"\xff\xff\xff\xf0garbage");
    let start = Instant::now();
    let (run, _) = sinew_with(
        &[
            "zk",
            &format!("--server={bad}"),
            "--timeout=10000",
            "ls",
            "/",
        ],
        b"",
        Duration::from_secs(20),
    );
    assert_eq!(run.code, Some(69), "{}", run.stderr);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    let line = run.stderr.trim_end();
    assert!(
        line.starts_with(&format!("sinew: could not connect to {bad}: ")),
        "{line}"
    );
    assert!(!line.contains("timed out"), "{line}");
}

#[test]
fn zk_refuses_invalid_arguments_as_usage() {
    // An invalid path is refused before any connection is tried: no server runs here.
    for (args, message) in [
        (&["get", "xe"][..], "Path must start with / character"),
        (&["ls", "/xe/"][..], "Path must not end with / character"),
        (&["stat", ""][..], "Path length must be > 0"),
        (
            &["create", "/a", "x", "world:anyone"][..],
            "scheme:id:perms",
        ),
    ] {
        let mut all = vec!["zk", "--server=127.0.0.1:1"];
        all.extend_from_slice(args);
        let run = sinew(&all);
        assert_eq!(run.code, Some(2), "{args:?}: {}", run.stderr);
        assert!(run.stderr.starts_with("sinew: "), "{}", run.stderr);
        assert!(run.stderr.contains(message), "{args:?}: {}", run.stderr);
    }
    // clap's usage errors in the same style.
    let run = sinew(&["zk", "get"]);
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.starts_with("sinew: "), "{}", run.stderr);
}

// ---------------------------------------------------------------------------------------------
// sinew zk, against a server
// ---------------------------------------------------------------------------------------------

fn server_arg() -> String {
    match std::env::var("SINEW_ZK_SERVER") {
        Ok(addr) if !addr.trim().is_empty() => format!("--server={addr}"),
        _ => panic!(
            "SINEW_ZK_SERVER is not set. Start a server with `scripts/zookeeper.sh start DIR` \
             and run with SINEW_ZK_SERVER=127.0.0.1:$(cat DIR/port)"
        ),
    }
}

#[test]
#[ignore = "needs a ZooKeeper server: SINEW_ZK_SERVER=host:port (scripts/zookeeper.sh)"]
fn zk_commands_as_zkcli() {
    let server = server_arg();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let node = format!("/sinew-cli-{}-{nanos}", std::process::id());
    let zk = |args: &[&str]| {
        let mut all = vec!["zk", server.as_str()];
        all.extend_from_slice(args);
        sinew(&all)
    };

    let run = zk(&["create", &node, "hello"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.stdout.trim(), format!("Created {node}"));
    let run = zk(&["create", &node, "again"]);
    assert_eq!(run.code, Some(1));
    assert_eq!(
        run.stderr.trim(),
        format!("sinew: Node already exists: {node}")
    );

    let run = zk(&["get", "-s", &node]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.starts_with("hello\n"), "{}", run.stdout);
    assert!(run.stdout.contains("dataVersion = 0"), "{}", run.stdout);

    let run = zk(&["set", &node, "world", "-v", "0"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let run = zk(&["set", &node, "stale", "-v", "0"]);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("version No is not valid"),
        "{}",
        run.stderr
    );

    let run = zk(&["create", "-s", &format!("{node}/seq-"), ""]);
    assert_eq!(run.stdout.trim(), format!("Created {node}/seq-0000000000"));
    let run = zk(&["ls", &node]);
    assert_eq!(run.stdout.trim(), "[seq-0000000000]");
    let run = zk(&["stat", &node]);
    assert!(run.stdout.contains("numChildren = 1"), "{}", run.stdout);
    assert!(run.stdout.contains("dataLength = 5"), "{}", run.stdout);

    // watch prints events until --count.
    let watch = Command::new(env!("CARGO_BIN_EXE_sinew"))
        .args(["zk", &server, "watch", &node, "--recursive", "--count", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    zk(&["set", &node, "changed"]);
    zk(&["delete", &format!("{node}/seq-0000000000")]);
    let output = watch.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains(&format!("NodeDataChanged {node}")), "{text}");
    assert!(
        text.contains(&format!("NodeDeleted {node}/seq-0000000000")),
        "{text}"
    );

    let run = zk(&["delete", &node, "-v", "7"]);
    assert_eq!(run.code, Some(1));
    let run = zk(&["delete", &node]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let run = zk(&["get", &node]);
    assert_eq!(run.code, Some(1));
    assert_eq!(
        run.stderr.trim(),
        format!("sinew: Node does not exist: {node}")
    );
}

/// A unique node name for this run.
fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("/{prefix}-{}-{nanos}", std::process::id())
}

/// `sinew zk --server=… args…` with `input` on stdin, at most 30 s.
fn zk_in(server: &str, args: &[&str], input: &[u8]) -> (Run, Vec<u8>) {
    let mut all = vec!["zk", server];
    all.extend_from_slice(args);
    sinew_with(&all, input, Duration::from_secs(30))
}

fn zk_run(server: &str, args: &[&str]) -> Run {
    zk_in(server, args, b"").0
}

#[track_caller]
fn ok(run: &Run) -> &str {
    assert_eq!(
        run.code,
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
    &run.stdout
}

#[test]
#[ignore = "needs a ZooKeeper server: SINEW_ZK_SERVER=host:port (scripts/zookeeper.sh)"]
fn zk_paths_are_checked_as_zkcli_checks_them() {
    let server = server_arg();
    // "/xe" exists, so that "xe" finding it (or the root) would show.
    let node = unique("xe");
    ok(&zk_run(&server, &["create", &node, "here"]));
    let name = node.trim_start_matches('/');
    let trailing = format!("{node}/");
    let cases: [(&str, &str); 3] = [
        (name, "Path must start with / character"),
        (&trailing, "Path must not end with / character"),
        ("", "Path length must be > 0"),
    ];
    for (path, message) in cases {
        for args in [
            vec!["get", path],
            vec!["ls", path],
            vec!["stat", path],
            vec!["set", path, "d"],
            vec!["delete", path],
            vec!["create", path, "d"],
            vec!["getAcl", path],
            vec!["setAcl", path, "world:anyone:r"],
            vec!["sync", path],
            vec!["watch", path],
            vec!["get", "-w", path],
            vec!["deleteall", path],
        ] {
            let start = Instant::now();
            let run = zk_run(&server, &args);
            assert_eq!(run.code, Some(2), "{args:?}: {}", run.stderr);
            assert_eq!(run.stderr, format!("sinew: {message}\n"), "{args:?}");
            assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
            assert!(start.elapsed() < Duration::from_secs(5), "{args:?}");
        }
    }
    // The other rules, with the path quoted as zkCli does.
    let run = zk_run(&server, &["get", &format!("{node}//a")]);
    assert_eq!(run.code, Some(2));
    let at = node.len() + 1;
    assert_eq!(
        run.stderr.trim_end(),
        format!(
            "sinew: Invalid path string \"{node}//a\" caused by empty node name specified @{at}"
        )
    );
    let run = zk_run(&server, &["ls", &format!("{node}/..")]);
    assert!(
        run.stderr.contains("relative paths not allowed"),
        "{}",
        run.stderr
    );
    // A sequential create may end with '/': the server names the child.
    let run = zk_run(&server, &["create", "-s", &trailing, "seq"]);
    assert_eq!(ok(&run).trim(), format!("Created {node}/0000000000"));
    // With a chroot, the client path is what is checked; "/" is the chroot itself.
    let chrooted = format!("{server}{node}");
    let run = zk_run(&chrooted, &["ls", "/"]);
    assert_eq!(ok(&run).trim(), "[0000000000]");
    let run = zk_run(&chrooted, &["get", "0000000000"]);
    assert_eq!(run.code, Some(2));
    assert_eq!(
        run.stderr.trim_end(),
        "sinew: Path must start with / character"
    );
    let run = zk_run(&format!("{server}{node}/"), &["ls", "/"]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("chroot"), "{}", run.stderr);
    ok(&zk_run(&server, &["deleteall", &node]));
}

/// A TCP proxy to the server that can be stopped: its connections cut and its port closed,
/// as a stopped server looks to a client.
struct StoppableProxy {
    addr: SocketAddr,
    stopped: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl StoppableProxy {
    fn start(upstream: SocketAddr) -> StoppableProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stopped = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (stopped2, conns2) = (Arc::clone(&stopped), Arc::clone(&conns));
        thread::spawn(move || {
            // Dropping the listener at the end closes the port.
            while !stopped2.load(Ordering::SeqCst) {
                let Ok((client, _)) = listener.accept() else {
                    thread::sleep(Duration::from_millis(5));
                    continue;
                };
                client.set_nonblocking(false).unwrap();
                let server = TcpStream::connect(upstream).unwrap();
                let mut list = conns2.lock().unwrap();
                list.extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        StoppableProxy {
            addr,
            stopped,
            conns,
        }
    }

    fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        thread::sleep(Duration::from_millis(50));
        for conn in self.conns.lock().unwrap().drain(..) {
            let _ = conn.shutdown(Shutdown::Both);
        }
    }
}

fn server_addr() -> SocketAddr {
    let arg = server_arg();
    arg.trim_start_matches("--server=").parse().unwrap()
}

/// Starts `sinew zk …` and waits until its stdout has a line starting with `ready`; returns
/// the child and the reader thread's output so far (joined at the end).
fn spawn_until(
    args: &[&str],
    ready: &str,
) -> (Child, thread::JoinHandle<String>, Arc<Mutex<String>>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sinew"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let seen = Arc::new(Mutex::new(String::new()));
    let seen2 = Arc::clone(&seen);
    let reader = thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = stdout.read(&mut buf) {
            seen2
                .lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        seen2.lock().unwrap().clone()
    });
    let end = Instant::now() + Duration::from_secs(10);
    while !seen.lock().unwrap().lines().any(|l| l.starts_with(ready)) {
        assert!(
            Instant::now() < end,
            "no {ready:?} line: {}",
            seen.lock().unwrap()
        );
        thread::sleep(Duration::from_millis(20));
    }
    (child, reader, seen)
}

#[test]
#[ignore = "needs a ZooKeeper server: SINEW_ZK_SERVER=host:port (scripts/zookeeper.sh)"]
fn zk_watch_gives_up_once_the_session_cannot_be_reestablished() {
    let node = unique("sinew-cli-lost");
    ok(&zk_run(&server_arg(), &["create", &node]));
    for command in [
        vec!["watch", node.as_str()],
        vec!["get", "-w", node.as_str()],
    ] {
        let proxy = StoppableProxy::start(server_addr());
        let server = format!("--server={}", proxy.addr);
        let mut args = vec!["zk", server.as_str(), "--timeout=4000"];
        args.extend_from_slice(&command);
        let ready = if command[0] == "watch" {
            "watching"
        } else {
            "null"
        };
        let (mut child, reader, _) = spawn_until(&args, ready);
        let stopped = Instant::now();
        proxy.stop();
        let mut stderr = child.stderr.take().unwrap();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if stopped.elapsed() > Duration::from_secs(15) {
                child.kill().unwrap();
                panic!("{command:?} still waiting 15 s after the server went away");
            }
            thread::sleep(Duration::from_millis(20));
        };
        let waited = stopped.elapsed();
        let mut err = String::new();
        stderr.read_to_string(&mut err).unwrap();
        let _ = reader.join();
        assert_eq!(status.code(), Some(75), "{command:?}: {err}");
        // The stated timeout, not much more.
        assert!(waited >= Duration::from_millis(3900), "{waited:?}");
        assert!(waited < Duration::from_secs(9), "{waited:?}");
        // The loss once, then the reason for giving up naming the server.
        assert_eq!(err.matches("lost the connection").count(), 2, "{err}");
        assert!(err.contains("reconnecting for up to 4000 ms"), "{err}");
        let last = err.lines().last().unwrap();
        assert!(
            last.starts_with(&format!(
                "sinew: {node}: lost the connection to {}",
                proxy.addr
            )),
            "{last}"
        );
        assert!(last.contains("within 4000 ms"), "{last}");
    }
    ok(&zk_run(&server_arg(), &["delete", &node]));
}

#[test]
#[ignore = "needs a ZooKeeper server: SINEW_ZK_SERVER=host:port (scripts/zookeeper.sh)"]
fn zk_data_from_stdin_and_files_null_and_binary() {
    let server = server_arg();
    let node = unique("sinew-cli-data");
    // No data: null, shown as zkCli shows it.
    ok(&zk_run(&server, &["create", &node]));
    assert_eq!(ok(&zk_run(&server, &["get", &node])), "null\n");
    let run = zk_run(&server, &["--json", "get", &node]);
    assert!(
        ok(&run).contains(r#""data":null,"data_hex":null"#),
        "{}",
        run.stdout
    );
    // Binary data from stdin: shown escaped, never like the text "0xff00fe".
    let bin = format!("{node}/bin");
    let (run, _) = zk_in(&server, &["create", &bin, "-"], &[0xff, 0x00, 0xfe]);
    ok(&run);
    assert_eq!(ok(&zk_run(&server, &["get", &bin])), "\\xff\\x00\\xfe\n");
    let text = format!("{node}/text");
    ok(&zk_run(&server, &["create", &text, "0xff00fe"]));
    assert_eq!(ok(&zk_run(&server, &["get", &text])), "0xff00fe\n");
    let run = zk_run(&server, &["--json", "get", &bin]);
    assert!(
        ok(&run).contains(r#""data":null,"data_hex":"ff00fe""#),
        "{}",
        run.stdout
    );
    let run = zk_run(&server, &["--json", "get", &text]);
    assert!(
        ok(&run).contains(r#""data":"0xff00fe","data_hex":"3078666630306665""#),
        "{}",
        run.stdout
    );
    // 200 KB from a file (too long for an argument list entry on many systems), and back.
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let file = std::env::temp_dir().join(format!("sinew-cli-{}.bin", std::process::id()));
    std::fs::write(&file, &big).unwrap();
    let file_arg = file.to_str().unwrap();
    ok(&zk_run(&server, &["set", "-f", file_arg, &bin]));
    let run = zk_run(&server, &["--json", "get", "-s", &bin]);
    let hex_big: String = big.iter().map(|b| format!("{b:02x}")).collect();
    assert!(ok(&run).contains(&format!(r#""data_hex":"{hex_big}""#)));
    assert!(run.stdout.contains(r#""dataLength":200000"#));
    // set from stdin, with -s printing the new stat.
    let (run, _) = zk_in(&server, &["set", "-s", &text, "-"], b"from stdin");
    assert!(ok(&run).contains("dataVersion = 1"), "{}", run.stdout);
    assert!(run.stdout.contains("dataLength = 10"), "{}", run.stdout);
    assert_eq!(ok(&zk_run(&server, &["get", &text])), "from stdin\n");
    // create -f with an ACL after the path.
    let from_file = format!("{node}/file");
    ok(&zk_run(
        &server,
        &["create", "-f", file_arg, &from_file, "world:anyone:r"],
    ));
    let run = zk_run(&server, &["getAcl", &from_file]);
    assert_eq!(ok(&run), "'world,'anyone\n: r\n");
    // A file that is not there: named, nothing created.
    let run = zk_run(
        &server,
        &["create", "-f", "/nonexistent/sinew", &format!("{node}/x")],
    );
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr.starts_with("sinew: /nonexistent/sinew: "),
        "{}",
        run.stderr
    );
    std::fs::remove_file(&file).unwrap();
    ok(&zk_run(&server, &["deleteall", &node]));
    assert_eq!(zk_run(&server, &["stat", &node]).code, Some(1));
}

#[test]
#[ignore = "needs a ZooKeeper server: SINEW_ZK_SERVER=host:port (scripts/zookeeper.sh)"]
fn zk_zkcli_commands_and_flags() {
    let server = server_arg();
    let node = unique("sinew-cli-cmds");
    let a = format!("{node}/a");
    let b = format!("{node}/a/b");
    ok(&zk_run(&server, &["create", &node, "root"]));
    ok(&zk_run(&server, &["create", &a, "A"]));
    ok(&zk_run(&server, &["create", &b, "B"]));
    // ls -R lists the subtree breadth first, the node first; ls -s adds the stat.
    let run = zk_run(&server, &["ls", "-R", &node]);
    assert_eq!(ok(&run), format!("{node}\n{a}\n{b}\n"));
    let run = zk_run(&server, &["ls", "-s", &node]);
    assert!(ok(&run).starts_with("[a]\ncZxid = 0x"), "{}", run.stdout);
    assert!(run.stdout.contains("numChildren = 1"), "{}", run.stdout);
    // getAllChildrenNumber counts every node below.
    assert_eq!(
        ok(&zk_run(&server, &["getAllChildrenNumber", &node])),
        "2\n"
    );
    // sync, whoami (the server sees loopback), getEphemerals (none in a fresh session).
    assert_eq!(ok(&zk_run(&server, &["sync", &node])), "Sync is OK\n");
    assert_eq!(
        ok(&zk_run(&server, &["whoami"])),
        "Auth scheme: User\nip: 127.0.0.1\n"
    );
    assert_eq!(ok(&zk_run(&server, &["getEphemerals", &node])), "[]\n");
    // removewatches: a fresh session has none, as the server says.
    let run = zk_run(&server, &["removewatches", &node, "-d"]);
    assert_eq!(run.code, Some(1));
    assert_eq!(
        run.stderr.trim_end(),
        format!("sinew: KeeperErrorCode = NoWatcher for {node}")
    );
    // config: a standalone server without reconfig has an empty /zookeeper/config.
    let run = zk_run(&server, &["config", "-s"]);
    assert!(ok(&run).contains("dataLength = 0"), "{}", run.stdout);
    let run = zk_run(&server, &["--json", "config"]);
    assert!(
        ok(&run).starts_with(r#"{"config":"","clients":[]"#),
        "{}",
        run.stdout
    );
    // create -c: a container; -t: TTL nodes need the server's extended types (off here).
    let container = format!("{node}/container");
    assert_eq!(
        ok(&zk_run(&server, &["create", "-c", &container])).trim(),
        format!("Created {container}")
    );
    let run = zk_run(&server, &["create", "-t", "1000", &format!("{node}/ttl")]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert_eq!(
        run.stderr.trim_end(),
        format!("sinew: KeeperErrorCode = Unimplemented for {node}/ttl")
    );
    // stat -w, get -w, ls -w: the result, then the event when the watch fires.
    for (args, change, event) in [
        (
            vec!["stat", "-w", a.as_str()],
            vec!["set", a.as_str(), "A2"],
            "NodeDataChanged",
        ),
        (
            vec!["get", "-w", a.as_str()],
            vec!["set", a.as_str(), "A3"],
            "NodeDataChanged",
        ),
        (
            vec!["ls", "-w", a.as_str()],
            vec!["delete", b.as_str()],
            "NodeChildrenChanged",
        ),
    ] {
        let mut all = vec!["zk", server.as_str()];
        all.extend_from_slice(&args);
        let ready = match args[0] {
            "stat" => "cZxid",
            "get" => "A",
            _ => "[b]",
        };
        let (child, reader, _) = spawn_until(&all, ready);
        ok(&zk_run(&server, &change));
        let (code, _, err) = finish(child, Duration::from_secs(15), &args);
        let out = reader.join().unwrap();
        assert_eq!(code, Some(0), "{args:?}: {}", String::from_utf8_lossy(&err));
        let expected = format!("WatchedEvent state:SyncConnected type:{event} path:{a}");
        assert_eq!(
            out.lines().last(),
            Some(expected.as_str()),
            "{args:?}: {out}"
        );
    }
    // The ls -w case deleted b: put it back.
    ok(&zk_run(&server, &["create", &b, "B"]));
    // set -v with a stale version: zkCli's words, exit 1.
    let run = zk_run(&server, &["set", "-v", "0", &a, "x"]);
    assert_eq!(run.code, Some(1));
    assert_eq!(
        run.stderr.trim_end(),
        format!("sinew: version No is not valid : {a}")
    );
    // Quotas: set (soft count, hard bytes), list, lift one limit, delete.
    ok(&zk_run(
        &server,
        &["setquota", "-n", "5", "-B", "100", &node],
    ));
    let run = zk_run(&server, &["listquota", &node]);
    assert_eq!(
        ok(&run),
        format!(
            "Output quota for {node} count=5,bytes=-1=;byteHardLimit=100;countHardLimit=-1\n\
             Output stat for {node} count=4,bytes=7\n"
        )
    );
    let run = zk_run(&server, &["setquota", "-n", "2", &a]);
    assert_eq!(run.code, Some(1));
    assert_eq!(
        run.stderr.trim_end(),
        format!("sinew: {a} has a parent {node} which has a quota")
    );
    ok(&zk_run(&server, &["delquota", "-B", &node]));
    let run = zk_run(&server, &["--json", "listquota", &node]);
    assert!(
        ok(&run)
            .contains(r#""quota":{"count":5,"bytes":-1,"countHardLimit":-1,"byteHardLimit":-1}"#),
        "{}",
        run.stdout
    );
    ok(&zk_run(&server, &["delquota", &node]));
    let run = zk_run(&server, &["listquota", &node]);
    assert_eq!(run.code, Some(1));
    assert_eq!(
        run.stderr.trim_end(),
        format!("sinew: quota for {node} does not exist.")
    );
    let quota_node = format!("/zookeeper/quota{node}");
    assert_eq!(zk_run(&server, &["stat", &quota_node]).code, Some(1));
    // deleteall in batches of 2: the whole subtree goes.
    let run = zk_run(&server, &["--json", "deleteall", "-b", "2", &node]);
    assert!(ok(&run).starts_with(r#"{"deleted":["#), "{}", run.stdout);
    let run = zk_run(&server, &["ls", &node]);
    assert_eq!(run.code, Some(1));
    assert_eq!(
        run.stderr.trim_end(),
        format!("sinew: Node does not exist: {node}")
    );
}

/// kazoo's side of the ACL cross-check: `check NODE` prints the node's ACL as kazoo reads it
/// (`acl SCHEME ID PERMS` lines), then whether a session without auth and one with digest
/// alice:secret may write it; `set NODE` gives it kazoo's ACL (ip:127.0.0.1 read+admin,
/// digest bob:pw all) and prints bob's digest id; `digest USER PASS` prints a digest id.
const KAZOO_ACL: &str = r#"
import sys
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import ACL, Id, Permissions, make_digest_acl_credential

hosts, cmd, arg = sys.argv[1], sys.argv[2], sys.argv[3]
if cmd == "digest":
    print(make_digest_acl_credential(arg, sys.argv[4]))
    sys.exit(0)
zk = KazooClient(hosts=hosts)
zk.start(timeout=10)
if cmd == "check":
    acls, _ = zk.get_acls(arg)
    for a in acls:
        print("acl", a.id.scheme, a.id.id, a.perms)
    for who, auth in (("anonymous", None), ("alice", ("digest", "alice:secret"))):
        c = KazooClient(hosts=hosts, auth_data=[auth] if auth else None)
        c.start(timeout=10)
        try:
            c.set(arg, b"by " + who.encode())
            print("write", who, "ok")
        except NoAuthError:
            print("write", who, "denied")
        c.stop()
elif cmd == "set":
    bob = make_digest_acl_credential("bob", "pw")
    zk.set_acls(arg, [
        ACL(Permissions.READ | Permissions.ADMIN, Id("ip", "127.0.0.1")),
        ACL(Permissions.ALL, Id("digest", bob)),
    ])
    print(bob)
zk.stop()
"#;

fn kazoo(server: &str, args: &[&str]) -> String {
    let hosts = server.trim_start_matches("--server=");
    let output = Command::new("python3")
        .arg("-c")
        .arg(KAZOO_ACL)
        .arg(hosts)
        .args(args)
        .output()
        .expect("python3");
    assert!(
        output.status.success(),
        "kazoo {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
#[ignore = "needs a ZooKeeper server (SINEW_ZK_SERVER=host:port) and kazoo (pip install kazoo)"]
fn zk_acls_round_trip_with_kazoo() {
    let server = server_arg();
    let node = unique("sinew-cli-acl");
    ok(&zk_run(&server, &["create", &node]));
    let alice = kazoo(&server, &["digest", "alice", "secret"]);
    let alice = alice.trim();
    // sinew creates with zkCli's syntax; kazoo reads the same ACL and is held to it.
    let created = format!("{node}/by-sinew");
    let acl = format!("digest:{alice}:cdrwa,world:anyone:r");
    ok(&zk_run(&server, &["create", &created, "x", &acl]));
    // The server hides a digest's hash from a reader without ADMIN (ZooKeeper 3.6+): kazoo,
    // unauthenticated, sees "alice:x"; sinew authenticated as alice sees the hash it sent.
    let seen = kazoo(&server, &["check", &created]);
    assert_eq!(
        seen,
        "acl digest alice:x 31\nacl world anyone 1\nwrite anonymous denied\nwrite alice ok\n"
    );
    let run = zk_run(&server, &["--auth", "alice:secret", "getAcl", &created]);
    assert_eq!(
        ok(&run),
        format!("'digest,'{alice}\n: cdrwa\n'world,'anyone\n: r\n")
    );
    // `auth::` grants the identities of this session (--auth): the server stores alice's
    // digest, as kazoo sees.
    let via_auth = format!("{node}/via-auth");
    ok(&zk_run(
        &server,
        &[
            "--auth",
            "alice:secret",
            "create",
            &via_auth,
            "y",
            "auth::rwa,world:anyone:r",
        ],
    ));
    let run = zk_run(&server, &["--auth", "alice:secret", "getAcl", &via_auth]);
    assert_eq!(
        ok(&run),
        format!("'digest,'{alice}\n: rwa\n'world,'anyone\n: r\n")
    );
    let seen = kazoo(&server, &["check", &via_auth]);
    assert_eq!(
        seen,
        "acl digest alice:x 19\nacl world anyone 1\nwrite anonymous denied\nwrite alice ok\n"
    );
    // sinew setAcl (-v: the ACL version), read back by kazoo.
    let run = zk_run(
        &server,
        &[
            "--auth",
            "alice:secret",
            "setAcl",
            "-s",
            "-v",
            "0",
            &created,
            "world:anyone:cdrwa",
        ],
    );
    assert!(ok(&run).contains("aclVersion = 1"), "{}", run.stdout);
    let seen = kazoo(&server, &["check", &created]);
    assert!(
        seen.starts_with("acl world anyone 31\nwrite anonymous ok"),
        "{seen}"
    );
    let run = zk_run(&server, &["setAcl", "-v", "0", &created, "world:anyone:r"]);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("version No is not valid"),
        "{}",
        run.stderr
    );
    // kazoo sets an ACL; sinew's getAcl shows it as zkCli does, and --json as data.
    let bob = kazoo(&server, &["set", &created]);
    let bob = bob.trim();
    let run = zk_run(&server, &["getAcl", &created]);
    assert_eq!(
        ok(&run),
        format!("'ip,'127.0.0.1\n: ra\n'digest,'{bob}\n: cdrwa\n")
    );
    let run = zk_run(&server, &["--json", "getAcl", &created]);
    assert!(
        ok(&run).contains(&format!(
            r#""acl":[{{"scheme":"ip","id":"127.0.0.1","perms":"ra"}},{{"scheme":"digest","id":"{bob}","perms":"cdrwa"}}]"#
        )),
        "{}",
        run.stdout
    );
    // Without bob's auth, writing is refused: zkCli's words, exit 1.
    let run = zk_run(&server, &["set", &created, "z"]);
    assert_eq!(run.code, Some(1));
    assert_eq!(
        run.stderr.trim_end(),
        format!("sinew: Insufficient permission : {created}")
    );
    ok(&zk_run(
        &server,
        &["--auth", "bob:pw", "set", &created, "z"],
    ));
    // setAcl -R: every node below too (alice may administer via-auth; loopback, created).
    ok(&zk_run(
        &server,
        &[
            "--auth",
            "alice:secret",
            "setAcl",
            "-R",
            &node,
            "world:anyone:cdrwa",
        ],
    ));
    for below in [&created, &via_auth] {
        let seen = kazoo(&server, &["check", below]);
        assert_eq!(
            seen, "acl world anyone 31\nwrite anonymous ok\nwrite alice ok\n",
            "{below}"
        );
    }
    ok(&zk_run(
        &server,
        &["--auth", "alice:secret", "deleteall", &node],
    ));
}
