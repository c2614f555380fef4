//! The built `sinew` binary's ZooKeeper commands: `decode zk-request` / `decode zk-reply`
//! (always), and `sinew zk …` against a real server (ignored; set SINEW_ZK_SERVER, see
//! `zk_interop.rs`).
#![cfg(feature = "cli")]

use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    assert!(run.stderr.contains("1 bytes after"), "{}", run.stderr);
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
    // An ordinary reply without --op, and an unknown op.
    let run = sinew(&[
        "decode",
        "zk-reply",
        "00000010 00000001 000000000000002a ffffff9b",
    ]);
    assert_eq!(run.code, Some(2));
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
    assert_eq!(run.code, Some(1), "{}", run.stderr);
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
    assert_eq!(run.stderr.trim(), format!("Node already exists: {node}"));

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
    assert_eq!(run.stderr.trim(), format!("Node does not exist: {node}"));
}
