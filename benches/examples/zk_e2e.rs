//! End-to-end ZooKeeper throughput: pipelined getData of a 100-byte node, in ops/s, for
//!
//! * `raw`: pre-encoded getData frames written to a plain blocking socket, replies only counted
//!   (not parsed): the server's ceiling on this machine;
//! * `sinew`: [`ZkClient`] submitting and processing replies zero-copy (`submit` + `process`);
//! * `kazoo`: Python's kazoo with its async API (`scripts/zk_e2e_kazoo.py`), if importable.
//!
//! Each keeps DEPTH requests in flight for SECONDS, at every depth given:
//!
//! ```sh
//! scripts/zookeeper.sh start /tmp/zk
//! SINEW_ZK_SERVER=127.0.0.1:$(cat /tmp/zk/port) \
//!   cargo run --release -p sinew-benches --example zk_e2e -- [SECONDS [DEPTH...]]
//! ```
//!
//! Without `SINEW_ZK_SERVER` it says so and does nothing (a bench is not a test).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use sinew_proto::zk::session::Event;
use sinew_proto::zk::{
    Acl, ConnectRequest, ConnectResponse, CreateMode, FrameStatus, PathWatchRequest, Request,
    RequestBody, ZkFrameDecoder, ZkStr,
};
use sinew_transport_std::zk::{ClientConfig, ZkClient, ZkError};

const PATH: &str = "/sinew-e2e-bench";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Ok(server) = std::env::var("SINEW_ZK_SERVER") else {
        eprintln!(
            "zk_e2e: SINEW_ZK_SERVER is not set; skipping. Start a server with \
             `scripts/zookeeper.sh start DIR` and set SINEW_ZK_SERVER=127.0.0.1:$(cat DIR/port)."
        );
        return Ok(());
    };
    let mut args = std::env::args().skip(1);
    let seconds: f64 = args.next().map_or(Ok(3.0), |s| s.parse())?;
    let depths: Vec<usize> = args.map(|d| d.parse()).collect::<Result<_, _>>()?;
    let depths = if depths.is_empty() {
        vec![1, 16, 128]
    } else {
        depths
    };
    let duration = Duration::from_secs_f64(seconds);

    // The node: 100 bytes.
    let mut zk = ZkClient::connect(&server, ClientConfig::default())?;
    match zk.create(
        PATH,
        &[0x42; 100],
        Acl::OPEN_ACL_UNSAFE,
        CreateMode::Persistent,
    ) {
        Ok(_) | Err(ZkError::Zk(_)) => {}
        Err(e) => return Err(e.into()),
    }
    zk.set_data(PATH, &[0x42; 100], -1)?;
    drop(zk);

    println!(
        "{:>6} {:>6} {:>12} {:>8}",
        "client", "depth", "ops/s", "of raw"
    );
    for &depth in &depths {
        let raw = raw(&server, depth, duration)?;
        println!("{:>6} {depth:>6} {raw:>12.0} {:>7.0}%", "raw", 100.0);
        let sinew = sinew(&server, depth, duration)?;
        println!(
            "{:>6} {depth:>6} {sinew:>12.0} {:>7.0}%",
            "sinew",
            100.0 * sinew / raw
        );
        match kazoo(&server, depth, seconds) {
            Some(kazoo) => println!(
                "{:>6} {depth:>6} {kazoo:>12.0} {:>7.0}%",
                "kazoo",
                100.0 * kazoo / raw
            ),
            None => println!("{:>6} {depth:>6} {:>12}", "kazoo", "skipped"),
        }
    }
    Ok(())
}

/// sinew's client: keep `depth` getData in flight, count the replies.
fn sinew(server: &str, depth: usize, duration: Duration) -> Result<f64, ZkError> {
    let mut zk = ZkClient::connect(server, ClientConfig::default())?;
    let body = RequestBody::GetData(PathWatchRequest {
        path: ZkStr::new(PATH),
        watch: false,
    });
    let mut in_flight = 0;
    let mut done = 0u64;
    let mut failed = 0u64;
    let start = Instant::now();
    let mut end = None;
    loop {
        let elapsed = start.elapsed();
        if end.is_none() && elapsed >= duration {
            end = Some((done, elapsed));
        }
        if end.is_some() && in_flight == 0 {
            break;
        }
        while end.is_none() && in_flight < depth {
            zk.submit(body)?;
            in_flight += 1;
        }
        zk.process(Some(Duration::from_millis(100)), &mut |event| {
            if let Event::Reply(reply) = event {
                in_flight -= 1;
                match reply.result {
                    Ok(_) => done += 1,
                    Err(_) => failed += 1,
                }
            }
        })?;
    }
    assert_eq!(failed, 0, "getData failed");
    let (done, elapsed) = end.unwrap();
    zk.close()?;
    Ok(done as f64 / elapsed.as_secs_f64())
}

/// The ceiling: pre-encoded frames on a blocking socket, replies counted by their lengths.
fn raw(server: &str, depth: usize, duration: Duration) -> std::io::Result<f64> {
    let mut socket = TcpStream::connect(server)?;
    socket.set_nodelay(true)?;
    let hello = ConnectRequest::new_session(30_000);
    let mut buf = vec![0u8; 1 << 20];
    let n = hello.encode_framed(&mut buf).unwrap();
    socket.write_all(&buf[..n])?;
    let decoder = ZkFrameDecoder::new();
    let mut have = 0;
    let consumed = loop {
        have += socket.read(&mut buf[have..])?;
        if let FrameStatus::Complete { frame, consumed } = decoder.decode(&buf[..have]).unwrap() {
            let response = ConnectResponse::parse(frame).unwrap();
            assert!(!response.is_expired());
            break consumed;
        }
    };
    buf.copy_within(consumed..have, 0);
    have -= consumed;

    let get = Request {
        xid: 1,
        body: RequestBody::GetData(PathWatchRequest {
            path: ZkStr::new(PATH),
            watch: false,
        }),
    };
    let frame_len = get.framed_len();
    let mut frames = vec![0u8; frame_len * depth];
    for (i, out) in frames.chunks_mut(frame_len).enumerate() {
        Request {
            xid: i as i32 + 1,
            ..get
        }
        .encode_framed(out)
        .unwrap();
    }
    socket.write_all(&frames)?;
    let mut in_flight = depth;
    let mut done = 0u64;
    let start = Instant::now();
    let mut end = None;
    while in_flight > 0 {
        have += socket.read(&mut buf[have..])?;
        let mut at = 0;
        let mut replies = 0;
        while let FrameStatus::Complete { consumed, .. } = decoder.decode(&buf[at..have]).unwrap() {
            at += consumed;
            replies += 1;
        }
        buf.copy_within(at..have, 0);
        have -= at;
        done += replies as u64;
        in_flight -= replies;
        let elapsed = start.elapsed();
        if end.is_none() && elapsed >= duration {
            end = Some((done, elapsed));
        }
        if end.is_none() {
            // The same xids again: the server answers in order and does not check them.
            socket.write_all(&frames[..replies * frame_len])?;
            in_flight += replies;
        }
    }
    let (done, elapsed) = end.unwrap();
    Ok(done as f64 / elapsed.as_secs_f64())
}

/// kazoo's async API, through `scripts/zk_e2e_kazoo.py`; `None` if it cannot run.
fn kazoo(server: &str, depth: usize, seconds: f64) -> Option<f64> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/zk_e2e_kazoo.py");
    let out = Command::new("python3")
        .args([
            script,
            server,
            PATH,
            &depth.to_string(),
            &seconds.to_string(),
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("kazoo: {}", String::from_utf8_lossy(&out.stderr).trim());
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}
