//! The built `sinew` binary, run as a user would, each run bounded by a deadline.

use std::io::Read;
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
    let mut child = Command::new(env!("CARGO_BIN_EXE_sinew"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sinew");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).unwrap();
        s
    });
    let err = thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).unwrap();
        s
    });
    let end = Instant::now() + deadline;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= end {
            child.kill().unwrap();
            let _ = child.wait();
            panic!(
                "sinew {args:?} still running after {deadline:?}\nstdout:\n{}\nstderr:\n{}",
                out.join().unwrap(),
                err.join().unwrap()
            );
        }
        thread::sleep(Duration::from_millis(20));
    };
    Run {
        code: status.code(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
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
        "bob is denied: alice (",
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
fn decode_dht_prints_every_field_and_refuses_a_truncated_message() {
    use sinew_proto::dht::{Body, Header, Message, NodeAddr, NodeId};
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
            holder: NodeId::from_u128(0x42),
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
        "type        0x05 (version 0, Lock)",
        "message id  0x0102030405060708",
        "sender id   0000000000000000000000000000abcd",
        "sender addr 192.0.2.7:7100",
        "key         \"door\" (4 bytes)",
        "holder      00000000000000000000000000000042",
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
