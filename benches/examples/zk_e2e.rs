//! End-to-end ZooKeeper throughput: pipelined getData of a 100-byte node, in ops/s and client
//! CPU time per op, for
//!
//! * `raw`: pre-encoded getData frames on a plain blocking socket, replies only framed (not
//!   parsed), every reply's replacement written at once and all of a read's replacements in one
//!   `write`: the server's ceiling on this machine;
//! * `sinew`: [`ZkClient`] standalone, submitting and handling replies zero-copy (`submit`, a
//!   handler, `run_until`), every reply parsed;
//! * `sinew-batch`: the same with [`Batching::PIPELINED`] (with 32 or more requests in flight
//!   the client naps while about half of them are answered, at most 1 ms, so that one
//!   wake-up takes in many replies);
//! * `rust`: the `zookeeper-client` crate (async, on a current-thread tokio runtime): a
//!   `get_data` future per request, `DEPTH` of them in a `FuturesUnordered`;
//! * `kazoo`: Python's kazoo with its async API (`scripts/zk_e2e_kazoo.py`), if importable.
//!
//! Every client keeps DEPTH requests for the same node in flight for SECONDS (a reply's
//! replacement is sent when it arrives), at every depth given, after a warm-up of the server's
//! JIT. Client CPU is user + system time of the client's process (`/proc/self/stat`, every
//! thread; kazoo's own `time.process_time()`) over the timed phase, divided by the ops done.
//!
//! ```sh
//! scripts/zookeeper.sh start /tmp/zk
//! SINEW_ZK_SERVER=127.0.0.1:$(cat /tmp/zk/port) \
//!   cargo run --release -p sinew-benches --example zk_e2e -- [SECONDS [DEPTH...]]
//! ```
//!
//! On a 2-core machine the rates are steadier with the server and the clients on a core each:
//! `taskset -a -p -c 1 $(pgrep -f zookeeper.jar)`, then the built example under `taskset -c 0`
//! (kazoo, a child process, inherits it).
//!
//! `ZK_E2E_CLIENTS=raw,sinew` (say) runs only those rows; `ZK_E2E_ROUNDS=N` runs everything N
//! times, each row's "of raw" against the raw run just before it, and ends with the medians.
//! Without `SINEW_ZK_SERVER` it says so and does nothing (a bench is not a test).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use sinew_proto::zk::session::Event;
use sinew_proto::zk::{
    Acl, ConnectRequest, ConnectResponse, CreateMode, FrameDecoder, FrameStatus, OpCode,
    PathWatchRequest, Reply, ReplyBody, Request, RequestBody, ZkStr,
};
use sinew_transport_std::Error;
use sinew_transport_std::zk::{Batching, ClientConfig, ZkClient};

const PATH: &str = "/sinew-e2e-bench";
const DATA_LEN: usize = 100;

type BoxError = Box<dyn std::error::Error>;

/// What one client did in its timed phase.
struct Run {
    ops: u64,
    elapsed: Duration,
    /// Client CPU time (user + system), `None` if it could not be read.
    cpu: Option<Duration>,
}

impl Run {
    fn ops_per_s(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }

    fn cpu_us_per_op(&self) -> Option<f64> {
        Some(self.cpu?.as_secs_f64() * 1e6 / self.ops.max(1) as f64)
    }
}

/// One round of a row: ops/s, its share of that round's raw rate, CPU µs per op.
type Sample = (f64, Option<f64>, Option<f64>);

fn main() -> Result<(), BoxError> {
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
    let clients = std::env::var("ZK_E2E_CLIENTS")
        .unwrap_or_else(|_| "raw,sinew,sinew-batch,rust,kazoo".into());
    let wanted = |name: &str| clients.split(',').any(|c| c.trim() == name);
    let duration = Duration::from_secs_f64(seconds);

    // The node: 100 bytes.
    let mut zk = ZkClient::connect(&server, ClientConfig::default())?;
    match zk.create(
        PATH,
        &[0x42; DATA_LEN],
        Acl::OPEN_ACL_UNSAFE,
        CreateMode::Persistent,
    ) {
        Ok(_) | Err(Error::Zk(_)) => {}
        Err(e) => return Err(e.into()),
    }
    zk.set_data(PATH, &[0x42; DATA_LEN], -1)?;
    drop(zk);

    // Let the server's JIT compile its request path before anything is timed.
    raw(
        &server,
        depths.iter().copied().max().unwrap_or(1),
        Duration::from_secs(1),
    )?;

    println!(
        "{:>11} {:>6} {:>10} {:>7} {:>11}",
        "client", "depth", "ops/s", "of raw", "cpu µs/op"
    );
    let rounds: usize = std::env::var("ZK_E2E_ROUNDS").map_or(Ok(1), |r| r.parse())?;
    // (client, depth) → per-round samples.
    let mut results: Vec<(String, usize, Vec<Sample>)> = Vec::new();
    for _ in 0..rounds {
        for &depth in &depths {
            let mut ceiling = None;
            let mut row = |name: &str, run: Option<Run>| {
                let Some(run) = run else {
                    println!("{name:>11} {depth:>6} {:>10}", "skipped");
                    return;
                };
                let rate = run.ops_per_s();
                if name == "raw" {
                    ceiling = Some(rate);
                }
                let of_raw = ceiling.map(|c: f64| rate / c);
                let cpu = run.cpu_us_per_op();
                println!(
                    "{name:>11} {depth:>6} {rate:>10.0} {:>7} {:>11}",
                    of_raw.map_or(String::from("-"), |r| format!("{:.0}%", 100.0 * r)),
                    cpu.map_or(String::from("-"), |c| format!("{c:.2}")),
                );
                match results
                    .iter_mut()
                    .find(|(n, d, _)| n == name && *d == depth)
                {
                    Some((_, _, runs)) => runs.push((rate, of_raw, cpu)),
                    None => results.push((name.into(), depth, vec![(rate, of_raw, cpu)])),
                }
            };
            if wanted("raw") {
                row("raw", Some(raw(&server, depth, duration)?));
            }
            if wanted("sinew") {
                row("sinew", Some(sinew(&server, depth, duration, None)?));
            }
            if wanted("sinew-batch") {
                let batching = Some(Batching::PIPELINED);
                row(
                    "sinew-batch",
                    Some(sinew(&server, depth, duration, batching)?),
                );
            }
            if wanted("rust") {
                row("rust", Some(rust_peer(&server, depth, duration)?));
            }
            if wanted("kazoo") {
                row("kazoo", kazoo(&server, depth, seconds));
            }
        }
    }
    if rounds > 1 {
        println!("\nmedians of {rounds} rounds (\"of raw\": the median of each round's ratio)");
        for (name, depth, runs) in &results {
            let median = |mut v: Vec<f64>| {
                v.sort_by(f64::total_cmp);
                v.get(v.len() / 2).copied()
            };
            let rate = median(runs.iter().map(|r| r.0).collect()).unwrap_or(0.0);
            let of_raw = median(runs.iter().filter_map(|r| r.1).collect());
            let cpu = median(runs.iter().filter_map(|r| r.2).collect());
            println!(
                "{name:>11} {depth:>6} {rate:>10.0} {:>7} {:>11}",
                of_raw.map_or(String::from("-"), |r| format!("{:.0}%", 100.0 * r)),
                cpu.map_or(String::from("-"), |c| format!("{c:.2}")),
            );
        }
    }
    Ok(())
}

/// User + system CPU time of this process so far (every thread), from `/proc/self/stat`.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces; the fields after it do not. utime and stime are the
    // 14th and 15th fields, 12th and 13th after the name, in clock ticks (USER_HZ, 100).
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ').skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// CPU time spent since `start`.
fn cpu_since(start: Option<Duration>) -> Option<Duration> {
    cpu_time()?.checked_sub(start?)
}

/// sinew's client: keep `depth` getData in flight, parse every reply; with `batching`, the
/// client's reply batching on.
fn sinew(
    server: &str,
    depth: usize,
    duration: Duration,
    batching: Option<Batching>,
) -> Result<Run, Error> {
    let mut config = ClientConfig::new();
    config.batching = batching;
    let mut zk = ZkClient::connect(server, config)?;
    let body = RequestBody::GetData(PathWatchRequest {
        path: ZkStr::new(PATH),
        watch: false,
    });
    // Replies as they come, zero-copy: counted by a handler.
    let (done, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (done2, failed2) = (Arc::clone(&done), Arc::clone(&failed));
    zk.set_handler(move |event| {
        if let Event::Reply(reply) = event {
            let counter = match reply.result {
                Ok(ReplyBody::Data(data)) if data.data.map(<[u8]>::len) == Some(DATA_LEN) => &done2,
                _ => &failed2,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
    let answered = || done.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed);
    let mut sent = 0u64;
    let cpu = cpu_time();
    let start = Instant::now();
    let mut end = None;
    loop {
        let elapsed = start.elapsed();
        let before = answered();
        if end.is_none() && elapsed >= duration {
            end = Some((done.load(Ordering::Relaxed), elapsed, cpu_since(cpu)));
        }
        if end.is_some() && sent == before {
            break;
        }
        while end.is_none() && sent - before < depth as u64 {
            zk.submit(body)?;
            sent += 1;
        }
        // Until replies come: their replacements are submitted above, written by the next step.
        zk.run_until(Duration::from_millis(100), |_| answered() > before)?;
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0, "getData failed");
    let (ops, elapsed, cpu) = end.unwrap_or_default();
    zk.close()?;
    Ok(Run { ops, elapsed, cpu })
}

/// The ceiling: pre-encoded frames on a blocking socket, replies framed but not parsed.
fn raw(server: &str, depth: usize, duration: Duration) -> std::io::Result<Run> {
    let mut socket = TcpStream::connect(server)?;
    socket.set_nodelay(true)?;
    let hello = ConnectRequest::new_session(30_000);
    let mut buf = vec![0u8; 1 << 20];
    let n = hello.encode_framed(&mut buf).unwrap();
    socket.write_all(&buf[..n])?;
    let decoder = FrameDecoder::new();
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
    // The check that a reply is a getData reply, read once: every reply is the same.
    let mut checked = false;
    let cpu = cpu_time();
    let start = Instant::now();
    socket.write_all(&frames)?;
    let mut in_flight = depth;
    let mut done = 0u64;
    let mut end = None;
    while in_flight > 0 {
        have += socket.read(&mut buf[have..])?;
        let mut at = 0;
        let mut replies = 0;
        while let FrameStatus::Complete { consumed, frame } =
            decoder.decode(&buf[at..have]).unwrap()
        {
            if !checked {
                let reply = Reply::parse(OpCode::GetData, frame).unwrap();
                assert!(matches!(reply.body, ReplyBody::Data(_)));
                checked = true;
            }
            at += consumed;
            replies += 1;
        }
        buf.copy_within(at..have, 0);
        have -= at;
        done += replies as u64;
        in_flight -= replies;
        if end.is_none() {
            let elapsed = start.elapsed();
            if elapsed >= duration {
                end = Some((done, elapsed, cpu_since(cpu)));
            } else {
                // The same xids again: the server answers in order and does not check them.
                socket.write_all(&frames[..replies * frame_len])?;
                in_flight += replies;
            }
        }
    }
    let (ops, elapsed, cpu) = end.unwrap_or_default();
    Ok(Run { ops, elapsed, cpu })
}

/// The `zookeeper-client` crate: `depth` `get_data` futures in flight on a current-thread
/// tokio runtime.
fn rust_peer(server: &str, depth: usize, duration: Duration) -> Result<Run, BoxError> {
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    runtime.block_on(async {
        let client = zookeeper_client::Client::connect(server).await?;
        let mut in_flight = FuturesUnordered::new();
        let cpu = cpu_time();
        let start = Instant::now();
        for _ in 0..depth {
            in_flight.push(client.get_data(PATH));
        }
        let mut done = 0u64;
        let mut end = None;
        while let Some(reply) = in_flight.next().await {
            let (data, _stat) = reply?;
            assert_eq!(data.len(), DATA_LEN);
            done += 1;
            if end.is_none() {
                let elapsed = start.elapsed();
                if elapsed >= duration {
                    end = Some((done, elapsed, cpu_since(cpu)));
                } else {
                    in_flight.push(client.get_data(PATH));
                }
            }
        }
        let (ops, elapsed, cpu) = end.unwrap_or_default();
        Ok(Run { ops, elapsed, cpu })
    })
}

/// kazoo's async API, through `scripts/zk_e2e_kazoo.py`; `None` if it cannot run.
fn kazoo(server: &str, depth: usize, seconds: f64) -> Option<Run> {
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
    // "OPS SECONDS CPU_SECONDS"
    let out = String::from_utf8_lossy(&out.stdout);
    let mut fields = out.split_whitespace().map(str::parse::<f64>);
    let (Some(Ok(ops)), Some(Ok(elapsed)), Some(Ok(cpu))) =
        (fields.next(), fields.next(), fields.next())
    else {
        eprintln!("kazoo: unexpected output {out:?}");
        return None;
    };
    Some(Run {
        ops: ops as u64,
        elapsed: Duration::from_secs_f64(elapsed),
        cpu: Some(Duration::from_secs_f64(cpu)),
    })
}
