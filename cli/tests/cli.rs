//! The built `sinew` binary, run as a user would, each run bounded by a deadline.

mod common;
use common::finish;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use sinew_proto::health::Config;
use sinew_transport_std::UdpHealthNode;

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `sinew args…`, killing it if it outlives `deadline`.
fn sinew(args: &[&str], deadline: Duration) -> Run {
    let child = Command::new(env!("CARGO_BIN_EXE_sinew"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sinew");
    let (code, stdout, stderr) = finish(child, deadline, args);
    Run {
        code,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

const SHORT: Duration = Duration::from_secs(10);

#[test]
fn decode_health_prints_every_field_of_a_valid_datagram() {
    // A health request with its 16-byte nonce, colon-separated as Wireshark copies it.
    let run = sinew(
        &[
            "decode",
            "health",
            "01:6b:1f:28:3a:90:4c:11:ee:9f:5d:02:42:ac:12:00:02",
        ],
        SHORT,
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stdout.contains("health datagram, 17 bytes"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("type     0x01 (version 0, kind 1: health request)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("nonce    6b1f283a904c11ee9f5d0242ac120002")
    );

    // A peer-table page of two entries, one argument per field.
    let run = sinew(
        &[
            "decode",
            "health",
            "04",                                       // peer-table response
            "000102030405060708090a0b0c0d0e0f",         // nonce
            "0003",                                     // start 3
            "0005",                                     // total 5
            "02",                                       // 2 entries
            "00000000000000000000ffff7f000001 1f90 03", // 127.0.0.1:8080, 3 lives
            "20010db8000000000000000000000001 0035 01", // [2001:db8::1]:53, 1 life
        ],
        SHORT,
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    for field in [
        "health datagram, 60 bytes",
        "type     0x04 (version 0, kind 4: peer-table response)",
        "nonce    000102030405060708090a0b0c0d0e0f",
        "start    3",
        "total    5",
        "count    2",
        "entry 0   addr 127.0.0.1  port 8080  lives 3  status Healthy",
        "entry 1   addr 2001:db8::1  port 53  lives 1  status AtRisk",
    ] {
        assert!(
            run.stdout.contains(field),
            "missing {field:?}:\n{}",
            run.stdout
        );
    }
}

#[test]
fn decode_health_refuses_a_truncated_datagram() {
    let run = sinew(
        &["decode", "health", "01 6b1f283a904c11ee 9f5d0242ac1200"],
        SHORT,
    );
    assert_eq!(run.code, Some(1));
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(
        run.stderr
            .contains("malformed health datagram (16 bytes): input truncated"),
        "{}",
        run.stderr
    );

    let run = sinew(
        &[
            "decode",
            "health",
            "01 6b1f283a904c11ee 9f5d0242ac120002 00",
        ],
        SHORT,
    );
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("(18 bytes): trailing bytes"),
        "{}",
        run.stderr
    );

    let run = sinew(&["decode", "health", "01 6z"], SHORT);
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("not hex"), "{}", run.stderr);
}

#[test]
fn ping_against_a_running_node_prints_replies() {
    let mut node = UdpHealthNode::bind(
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        Config::default(),
    )
    .unwrap();
    let addr = node.local_addr().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let stop_node = Arc::clone(&stop);
    let server = thread::spawn(move || {
        node.run_until(Duration::from_secs(20), |_| {
            stop_node.load(Ordering::Relaxed)
        })
        .unwrap();
        node
    });

    let run = sinew(
        &[
            "ping",
            &addr,
            "--count",
            "3",
            "--interval",
            "100",
            "--timeout",
            "1000",
        ],
        SHORT,
    );
    stop.store(true, Ordering::Relaxed);
    let node = server.join().unwrap();
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    for seq in 1..=3 {
        let prefix = format!("17 bytes from {addr}: seq={seq} time=");
        let line = run
            .stdout
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no reply line for seq {seq}:\n{}", run.stdout));
        assert!(line.ends_with(" ms"), "{line}");
    }
    assert!(
        run.stdout
            .contains("3 packets transmitted, 3 received, 0% packet loss"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("rtt min/avg/max/mdev = "),
        "{}",
        run.stdout
    );
    assert!(node.stats().requests_answered >= 3, "{:?}", node.stats());
}

#[test]
fn ping_without_any_reply_exits_non_zero() {
    // Bound, so nothing else answers on that port, and silent.
    let silent = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let run = sinew(
        &[
            "ping",
            &addr,
            "-c",
            "2",
            "--interval",
            "50",
            "--timeout",
            "200",
        ],
        SHORT,
    );
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    assert!(run.stdout.contains(&format!("no reply from {addr}: seq=1")));
    assert!(run.stdout.contains(&format!("no reply from {addr}: seq=2")));
    assert!(
        run.stdout
            .contains("2 packets transmitted, 0 received, 100% packet loss"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("rtt min"));
}

#[test]
fn demo_runs_every_phase_and_exits_zero() {
    let started = Instant::now();
    let run = sinew(&["demo"], Duration::from_secs(60));
    let took = started.elapsed();
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    let out = &run.stdout;
    // The phases, in order.
    let mut at = 0;
    for needle in [
        "node 0: 127.0.0.1:",
        "(the seed)",
        "phase 1: discovery",
        "joined the table (Healthy 3/3)",
        "converged: all 5 nodes hold the 4 others, Healthy",
        "node 4 (127.0.0.1:",
        "phase 2: node 4 stops",
        "node 4 stopped",
        "node 4: Healthy 3/3 -> AtRisk 2/3",
        "node 4: AtRisk 1/3 -> Unhealthy 0/3",
        "node 4 is Unhealthy in all 4 other tables",
        "phase 3: node 4 restarts",
        "node 4 restarted on 127.0.0.1:",
        "node 4: AtRisk 2/3 -> Healthy 3/3",
        "node 4 is Healthy in all 4 other tables",
        "summary",
        "time to converge:",
        "time to Unhealthy:",
        "time to recover:",
        "wrong_source",
        "total",
        "all phases passed",
    ] {
        match out[at..].find(needle) {
            Some(i) => at += i + needle.len(),
            None => panic!("missing {needle:?} (in order) in:\n{out}"),
        }
    }
    // Every one of the four others saw it go down and come back.
    for observer in 0..4 {
        for change in [
            "Healthy 3/3 -> AtRisk 2/3",
            "AtRisk 1/3 -> Unhealthy 0/3",
            "AtRisk 2/3 -> Healthy 3/3",
        ] {
            let line = format!("node {observer}: node 4: {change}");
            assert!(out.contains(&line), "missing {line:?}:\n{out}");
        }
    }
    // Then the DHT demo.
    let dht = &out[at..];
    assert!(dht.contains("sinew demo dht: 5 DHT nodes"), "{out}");
    assert!(dht.contains("dht demo completed in"), "{out}");
    assert!(took < Duration::from_secs(40), "the demo took {took:?}");
}

#[test]
fn dht_demo_runs_every_phase_and_exits_zero() {
    let run = sinew(&["demo", "dht", "--nodes", "6"], Duration::from_secs(60));
    assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
    let out = &run.stdout;
    let mut at = 0;
    for needle in [
        "sinew demo dht: 6 DHT nodes on loopback",
        "phase 1: nodes 1..5 join through node 0",
        "ring formed, by id: node ",
        "phase 2: the client stores 20 keys",
        "20 puts acknowledged",
        "copies per key: min 3 max 3",
        "phase 3: node ",
        "crashed",
        "neighbour node ",
        "ring healed without node ",
        "20/20 values read back through node 1",
        "phase 4: alice and bob",
        "alice holds \"door\"",
        "bob is denied: it is held (by alice, whom the owner does not name)",
        "bob holds \"door\"",
        "alice's unlock is refused (NotHolder); bob's unlock releases \"door\"",
        "phase 5: node ",
        "ring healed without node ",
        "20/20 values read back through node 1",
        "summary",
        "all phases passed",
    ] {
        match out[at..].find(needle) {
            Some(i) => at += i + needle.len(),
            None => panic!("missing {needle:?} (in order) in:\n{out}"),
        }
    }
    assert!(
        !out.contains("health-check nodes"),
        "only the DHT demo: {out}"
    );
}

#[test]
fn decode_dht_prints_a_relayed_request_and_the_request_inside() {
    use sinew_proto::dht::{Body, Header, Message, NodeAddr, NodeId, RelayedRequest};
    let message = Message {
        header: Header {
            message_id: 9,
            sender: NodeAddr {
                id: NodeId::from_u128(0xabcd),
                addr: "192.0.2.7:7100".parse().unwrap(),
            },
        },
        body: Body::Relayed {
            budget_ms: 175,
            origin: NodeAddr {
                id: NodeId::from_u128(0x33),
                addr: "198.51.100.4:9000".parse().unwrap(),
            },
            request: RelayedRequest::Put {
                key: b"colour",
                value: b"blue",
            },
        },
    };
    let mut buf = [0u8; 128];
    let len = message.encode(&mut buf).unwrap();
    let hex: String = buf[..len].iter().map(|b| format!("{b:02x}")).collect();
    let run = sinew(&["decode", "dht", &hex], SHORT);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    for needle in [
        "type        0x14 (version 0, Relayed)",
        "budget      175 ms",
        "origin id   00000000000000000000000000000033",
        "origin addr 198.51.100.4:9000",
        "request     0x03 (version 0, Put)",
        "key         \"colour\" (6 bytes)",
        "value       \"blue\" (4 bytes)",
    ] {
        assert!(
            run.stdout.contains(needle),
            "{needle:?} in:\n{}",
            run.stdout
        );
    }
}

#[test]
fn decode_dht_prints_every_field_and_refuses_a_truncated_message() {
    use sinew_proto::dht::{Body, Header, LockToken, Message, NodeAddr, NodeId};
    let message = Message {
        header: Header {
            message_id: 0x0102_0304_0506_0708,
            sender: NodeAddr {
                id: NodeId::from_u128(0xabcd),
                addr: "192.0.2.7:7100".parse().unwrap(),
            },
        },
        body: Body::Lock {
            key: b"door",
            token: LockToken(0x42u128.to_be_bytes()),
            lease_ms: 1500,
        },
    };
    let mut buf = [0u8; 128];
    let len = message.encode(&mut buf).unwrap();
    let hex: String = buf[..len].iter().map(|b| format!("{b:02x}")).collect();
    let run = sinew(&["decode", "dht", &hex], SHORT);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    for needle in [
        &format!("DHT message, {len} bytes"),
        "type        0x25 (version 1, Lock)",
        "message id  0x0102030405060708",
        "sender id   0000000000000000000000000000abcd",
        "sender addr 192.0.2.7:7100",
        "key         \"door\" (4 bytes)",
        "token       00000000000000000000000000000042",
        "lease       1500 ms",
    ] {
        assert!(
            run.stdout.contains(needle),
            "{needle:?} in:\n{}",
            run.stdout
        );
    }
    let run = sinew(&["decode", "dht", &hex[..hex.len() - 2]], SHORT);
    assert_eq!(run.code, Some(1));
    assert!(run.stdout.is_empty());
    assert!(
        run.stderr
            .contains(&format!("malformed DHT message ({} bytes): ", len - 1)),
        "{}",
        run.stderr
    );
}

#[test]
fn errors_are_one_line_naming_what_with_an_exit_code_per_class() {
    fn one_line(run: &Run) -> &str {
        let line = run.stderr.trim_end();
        assert!(line.starts_with("sinew: "), "{line}");
        assert_eq!(line.lines().count(), 1, "{line}");
        line
    }
    // Usage (2): an address without a port names the argument.
    let run = sinew(&["ping", "127.0.0.1"], SHORT);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        one_line(&run).starts_with("sinew: 127.0.0.1: not HOST:PORT"),
        "{}",
        run.stderr
    );
    let run = sinew(&["decode", "health", "01 6z"], SHORT);
    assert_eq!(run.code, Some(2));
    assert!(
        one_line(&run).starts_with("sinew: not hex"),
        "{}",
        run.stderr
    );
    // Refused by the system (1): the address in use is named.
    let taken = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    for args in [
        vec!["node", "--bind", addr.as_str()],
        vec!["dht", "node", "--bind", addr.as_str()],
    ] {
        let run = sinew(&args, SHORT);
        assert_eq!(run.code, Some(1), "{args:?}: {}", run.stderr);
        let line = one_line(&run);
        assert!(
            line.starts_with(&format!("sinew: bind {addr}: ")) && line.contains("in use"),
            "{line}"
        );
    }
    // Timed out (75): a DHT node that never answers, named with the key.
    let run = sinew(
        &["dht", "get", "--node", &addr, "--timeout-ms", "100", "k"],
        SHORT,
    );
    assert_eq!(run.code, Some(75), "{}", run.stderr);
    assert_eq!(
        one_line(&run),
        format!("sinew: \"k\" at node {addr}: no answer (timed out)")
    );
    // The exit codes are documented where a user looks.
    let run = sinew(&["--help"], SHORT);
    assert_eq!(run.code, Some(0));
    for code in ["69", "75", "usage"] {
        assert!(run.stdout.contains(code), "{code} in:\n{}", run.stdout);
    }
    let run = sinew(&["zk", "--help"], SHORT);
    assert!(run.stdout.contains("Exit status:"), "{}", run.stdout);
}

#[test]
fn decode_zk_reply_takes_a_negative_op_number() {
    // closeSession is op -11: `--op -11` is the op, not a flag.
    let reply = "00000010 00000002 0000000000000005 00000000";
    let run = sinew(&["decode", "zk-reply", "--op", "-11", reply], SHORT);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stdout.contains("zk reply to closeSession"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("zxid     0x5 (5)"), "{}", run.stdout);
    let named = sinew(
        &["decode", "zk-reply", "--op", "closeSession", reply],
        SHORT,
    );
    assert_eq!(named.stdout, run.stdout);
}

#[test]
fn keygen_key_file_ping_and_decode_of_a_sealed_datagram() {
    let dir = std::env::temp_dir().join(format!("sinew-keygen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key_path = dir.join("cluster.key");
    let run = sinew(&["keygen"], SHORT);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let key_line = run.stdout.trim().to_string();
    assert_eq!(key_line.len(), 64, "{key_line}");
    std::fs::write(&key_path, format!("{key_line}\n")).unwrap();
    let key_file = key_path.to_str().unwrap();
    let ring = sinew_cli::key::load(&key_path).unwrap();

    // A node keyed with that file answers a keyed ping, and the unkeyed ping gets nothing.
    let mut node = UdpHealthNode::bind_keyed(
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        Config::default(),
        ring.clone(),
    )
    .unwrap();
    let addr = node.local_addr().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let stop_node = Arc::clone(&stop);
    let server = thread::spawn(move || {
        node.run_until(Duration::from_secs(20), |_| {
            stop_node.load(Ordering::Relaxed)
        })
        .unwrap();
        node
    });
    let ping = |keyed: bool| {
        let mut args = vec![
            "ping",
            &addr,
            "-c",
            "2",
            "--interval",
            "50",
            "--timeout",
            "500",
        ];
        if keyed {
            args.extend(["--key-file", key_file]);
        }
        sinew(&args, SHORT)
    };
    let keyed = ping(true);
    let unkeyed = ping(false);
    stop.store(true, Ordering::Relaxed);
    let node = server.join().unwrap();
    assert_eq!(keyed.code, Some(0), "{}\n{}", keyed.stdout, keyed.stderr);
    assert!(
        keyed.stdout.contains("sealed (47 bytes)"),
        "{}",
        keyed.stdout
    );
    // (The node probes the pinger back, so more than the two checks are sealed.)
    assert!(keyed.stdout.contains("seal: sealed "), "{}", keyed.stdout);
    assert!(
        keyed
            .stdout
            .contains("dropped: unsealed 0, unknown key 0, bad tag 0"),
        "{}",
        keyed.stdout
    );
    assert_eq!(unkeyed.code, Some(1), "{}", unkeyed.stdout);
    assert!(node.seal_stats().unsealed >= 2, "{:?}", node.seal_stats());

    // A sealed health request, decoded with and without the key file.
    let mut buf = [0u8; 64];
    buf[sinew_proto::seal::HEADER_LEN] = 0x01;
    let len = ring.seal(0x0102_0304_0506_0708, 9, &mut buf, 17).unwrap();
    let hex: String = buf[..len].iter().map(|b| format!("{b:02x}")).collect();
    let run = sinew(&["decode", "health", "--key-file", key_file, &hex], SHORT);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stdout.contains("sealed datagram (47 bytes): key id 0x"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("sender 0102030405060708, counter 9, 17 bytes inside")
    );
    let run = sinew(&["decode", "health", &hex], SHORT);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("give --key-file"), "{}", run.stderr);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn dht_put_and_get_with_a_key_file_through_a_keyed_node() {
    use sinew_proto::dht::NodeId;
    use sinew_transport_std::dht::UdpDhtNode;

    let dir = std::env::temp_dir().join(format!("sinew-dht-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key_path = dir.join("ring.key");
    std::fs::write(&key_path, format!("{}\n", "5a".repeat(32))).unwrap();
    let key_file = key_path.to_str().unwrap();
    let ring = sinew_cli::key::load(&key_path).unwrap();
    let mut node: UdpDhtNode = UdpDhtNode::bind_keyed(
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        NodeId::from_name(b"keyed"),
        ring,
        |_| {},
    )
    .unwrap();
    let addr = node.local().addr.to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let stop_node = Arc::clone(&stop);
    // A ring of one has no timer to wake it: step in short slices, so the stop is seen.
    let server = thread::spawn(move || {
        while !stop_node.load(Ordering::Relaxed) {
            node.run_for(Duration::from_millis(20)).unwrap();
        }
    });
    let put = sinew(
        &[
            "dht",
            "put",
            "--node",
            &addr,
            "--key-file",
            key_file,
            "k",
            "v",
        ],
        SHORT,
    );
    let get = sinew(
        &["dht", "--key-file", key_file, "get", "--node", &addr, "k"],
        SHORT,
    );
    let unkeyed = sinew(
        &["dht", "get", "--node", &addr, "--timeout-ms", "100", "k"],
        SHORT,
    );
    stop.store(true, Ordering::Relaxed);
    server.join().unwrap();
    assert_eq!(put.code, Some(0), "{}\n{}", put.stdout, put.stderr);
    assert_eq!(get.code, Some(0), "{}\n{}", get.stdout, get.stderr);
    assert!(get.stdout.contains('v'), "{}", get.stdout);
    assert_ne!(unkeyed.code, Some(0), "{}", unkeyed.stdout);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `sinew decode … | grep -q …`: the reader leaves after the first line it wanted. The
/// command must neither complain nor fail (CI's pipefail saw exit 69, "Broken pipe").
#[test]
fn test_reader_leaving_early_is_not_a_failure() {
    let args = ["decode", "health", "016b1f283a904c11ee9f5d0242ac120002"];
    let mut child = Command::new(env!("CARGO_BIN_EXE_sinew"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sinew");
    // The read end closes before sinew writes a byte: its first write fails with EPIPE.
    drop(child.stdout.take());
    let (code, _, stderr) = finish(child, SHORT, &args);
    let stderr = String::from_utf8_lossy(&stderr);
    assert_eq!(code, Some(0), "stderr: {stderr}");
    assert!(stderr.is_empty(), "stderr: {stderr}");
}
