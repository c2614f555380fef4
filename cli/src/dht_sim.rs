//! `sinew dht sim`: a ring of real [`DhtNode`]s on [`sinew_proto::sim`]'s virtual network, to
//! see what a ring of a given size does before deploying it: how it forms, how many hops a
//! request takes, how many succeed, their latency, the traffic per node and the memory.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant as WallInstant};

use clap::{Args, ValueEnum};
use sinew_proto::dht::{Body, Config, DhtNode, Event, Message, NodeAddr, RequestId};
use sinew_proto::sim::{Latency, NetConfig, Network, SimRng};
use sinew_proto::time::Instant;

use crate::error::{EXIT_FAILED, EXIT_OK, Failure};

/// Request datagrams seen, by (key, the put's value or `None` for a get).
type Hops = Rc<RefCell<HashMap<(Vec<u8>, Option<Vec<u8>>), u32>>>;

/// The simulated node: the defaults of `sinew dht node` (4 nodes a side, 32 keys of ≤ 32
/// bytes, values ≤ 128 bytes, 32 requests in flight).
type Node = DhtNode<SimRng>;

/// How inter-node latency is distributed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LatencyDist {
    /// Uniform between `--latency-min-ms` and `--latency-max-ms`.
    Uniform,
    /// Always `--latency-max-ms`.
    Constant,
    /// Exponential with mean `--latency-max-ms` (a long tail).
    Exponential,
}

/// `sinew dht sim`'s arguments.
#[derive(Debug, Clone, Args)]
pub struct SimArgs {
    /// Ring size.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(2..=100_000))]
    pub nodes: u32,
    /// A node joins every this many milliseconds, through a random node already in the ring.
    #[arg(long, default_value_t = 50)]
    pub join_interval_ms: u64,
    /// Quiet time after the last join, before the requests.
    #[arg(long, default_value_t = 5_000)]
    pub settle_ms: u64,
    /// Requests: half puts, half gets of keys whose put was acknowledged.
    #[arg(long, default_value_t = 1_000)]
    pub ops: u32,
    /// Distinct keys the puts choose from (default: 4 per node, so that the stores, 32 keys a
    /// node with its replicas, do not fill up; fewer nodes than that would answer `Full`).
    #[arg(long)]
    pub key_space: Option<u32>,
    /// Requests per second, from random live nodes.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate: u32,
    /// Latency distribution between nodes.
    #[arg(long, value_enum, default_value_t = LatencyDist::Uniform)]
    pub latency_dist: LatencyDist,
    /// Shortest latency (uniform).
    #[arg(long, default_value_t = 0.5)]
    pub latency_min_ms: f64,
    /// Longest latency (uniform), the latency (constant), or the mean (exponential).
    #[arg(long, default_value_t = 10.0)]
    pub latency_max_ms: f64,
    /// Datagrams lost, in percent.
    #[arg(long, default_value_t = 0.0)]
    pub loss: f64,
    /// Nodes crashed (at random, without leaving) after the ring formed, before the requests.
    #[arg(long, default_value_t = 0)]
    pub crash: u32,
    /// Nodes on each side of a node's leaf set (1..=4).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(1..=4))]
    pub leaf_size: u8,
    /// Copies of each key besides the owner's.
    #[arg(long, default_value_t = 2)]
    pub replicas: u8,
    /// How long a node waits for an answer before trying again.
    #[arg(long, default_value_t = 500)]
    pub request_timeout_ms: u64,
    /// How often a node pings its leaf set.
    #[arg(long, default_value_t = 1_000)]
    pub stabilize_ms: u64,
    /// Seed of the whole run (ids, latencies, losses, choices): equal seeds, equal runs.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Exit 1 unless at least this share of the requests succeeded (0..=1).
    #[arg(long)]
    pub require_success: Option<f64>,
}

/// What a run measured.
#[derive(Debug, Clone, Default)]
pub struct SimReport {
    /// Nodes in the ring after formation (of those not crashed).
    pub in_ring: usize,
    /// Virtual seconds until every node was in the ring (to 100 ms), if they all were by
    /// the end of settling.
    pub formed_after_s: Option<f64>,
    /// Datagrams during formation and settling.
    pub formation_messages: u64,
    /// Requests made.
    pub ops: u32,
    /// Requests that succeeded (a put acknowledged; a get answered with a value put under
    /// its key).
    pub succeeded: u32,
    /// Failures, by reason.
    pub failures: Vec<(String, u32)>,
    /// Request datagrams (Get or Put, retries included) per answered request.
    pub hops: Vec<u32>,
    /// Latencies of the successful requests, in microseconds.
    pub latencies_us: Vec<u64>,
    /// Datagrams per live node per second during the requests.
    pub msgs_per_node_s: f64,
    /// Bytes per live node per second during the requests.
    pub bytes_per_node_s: f64,
    /// One node's memory (fixed: a node never allocates).
    pub node_bytes: usize,
    /// Virtual seconds simulated.
    pub virtual_s: f64,
    /// Wall-clock seconds the simulation took.
    pub wall_s: f64,
}

/// Node `i`'s address; the port comes from the seed, so that each seed places the nodes
/// (whose ids are bound to their addresses) differently on the ring.
fn addr(i: u32, seed: u64) -> SocketAddr {
    let port = 1024 + (seed % 60_000) as u16;
    SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], port))
}

fn ms(x: f64) -> Duration {
    Duration::from_micros((x.max(0.0) * 1000.0) as u64)
}

/// Runs the simulation `args` describes.
pub fn simulate(args: &SimArgs) -> SimReport {
    let wall = WallInstant::now();
    let latency = match args.latency_dist {
        LatencyDist::Uniform => Latency::Uniform {
            min: ms(args.latency_min_ms.min(args.latency_max_ms)),
            max: ms(args.latency_max_ms),
        },
        LatencyDist::Constant => Latency::Constant(ms(args.latency_max_ms)),
        LatencyDist::Exponential => Latency::Exponential {
            mean: ms(args.latency_max_ms),
        },
    };
    let loss_ppm = (args.loss.clamp(0.0, 100.0) * 10_000.0) as u32;
    let mut net: Network<Node> = Network::new(
        NetConfig::new()
            .with_latency(latency)
            .with_loss_ppm(loss_ppm)
            .with_seed(args.seed),
    );
    let mut rng = SimRng::new(args.seed ^ 0xd47);
    let n = args.nodes;
    for i in 0..n {
        let config = Config::new(NodeAddr::bound(addr(i, args.seed)))
            .with_leaf_size(args.leaf_size as usize)
            .with_replicas(args.replicas as usize)
            .with_request_timeout(Duration::from_millis(args.request_timeout_ms))
            .with_stabilize_interval(Duration::from_millis(args.stabilize_ms));
        net.add(
            addr(i, args.seed),
            Node::new(
                config,
                SimRng::new(args.seed.wrapping_mul(31) + u64::from(i)),
            ),
        );
    }

    // Formation: node i joins through a random node before it.
    for i in 1..n {
        let entry = addr(rng.below(u64::from(i)) as u32, args.seed);
        let now = net.now();
        // A join only fails on a full request table, which a fresh node does not have.
        let _ = net.with_core(i as usize, |node| node.join(now, entry));
        net.run_for(Duration::from_millis(args.join_interval_ms));
    }
    // Settling, in 100 ms slices: when did every node first count itself in the ring?
    let all_in = |net: &Network<Node>| (0..n as usize).all(|i| net.core(i).in_ring());
    let mut formed = all_in(&net).then(|| net.now());
    let settle_end = net.now() + Duration::from_millis(args.settle_ms);
    while net.now() < settle_end {
        let slice = (net.now() + Duration::from_millis(100)).min(settle_end);
        net.run_until(slice);
        if formed.is_none() && all_in(&net) {
            formed = Some(net.now());
        }
    }
    net.take_events();
    let in_ring = (0..n as usize).filter(|&i| net.core(i).in_ring()).count();
    let formation_messages = net.stats().sent;

    // Crashes.
    let mut live: Vec<usize> = (0..n as usize).collect();
    for _ in 0..args.crash.min(n.saturating_sub(1)) {
        let k = rng.below(live.len() as u64) as usize;
        net.crash(live.swap_remove(k));
    }

    // Hops: Get and Put datagrams on the wire, by what they carry. A put's value names its
    // request (every put writes a value of its own); gets of one key in flight at once are
    // counted together (rare: the keys are many and a get is short).
    let hops: Hops = Rc::default();
    let tap_hops = hops.clone();
    net.set_tap(Box::new(move |_, _, _, bytes| {
        if let Ok(m) = Message::parse(bytes) {
            let what = match m.body {
                Body::Get { key } => (key.to_vec(), None),
                Body::Put { key, value } => (key.to_vec(), Some(value.to_vec())),
                _ => return,
            };
            *tap_hops.borrow_mut().entry(what).or_default() += 1;
        }
    }));

    // Requests: puts first, then gets of half of what was put, interleaved in time.
    let start = net.now();
    let traffic_before: (u64, u64) = live.iter().fold((0, 0), |acc, &i| {
        let t = net.traffic(i);
        (acc.0 + t.sent, acc.1 + t.bytes_sent)
    });
    let interval = Duration::from_micros(1_000_000 / u64::from(args.rate));
    let mut book = Book {
        hops,
        report: SimReport {
            in_ring,
            formed_after_s: formed.map(|t| t.as_micros() as f64 / 1e6),
            formation_messages,
            ops: args.ops,
            node_bytes: std::mem::size_of::<Node>(),
            ..SimReport::default()
        },
        ..Book::default()
    };
    let key_space = u64::from(args.key_space.unwrap_or(4 * n).max(1));
    for op in 0..args.ops {
        let from = live[rng.below(live.len() as u64) as usize];
        let now = net.now();
        let is_get = op % 2 == 1 && !book.acked_keys.is_empty();
        let key = if is_get {
            book.acked_keys[rng.below(book.acked_keys.len() as u64) as usize].clone()
        } else {
            format!("k{}", rng.below(key_space)).into_bytes()
        };
        let value = format!("v{op}").into_bytes();
        let started = net.with_core(from, |node| {
            if is_get {
                node.get(now, &key)
            } else {
                node.put(now, &key, &value)
            }
        });
        if !is_get {
            // A get may see a put not yet acknowledged, or one that failed after storing.
            book.tried
                .entry(key.clone())
                .or_default()
                .push(value.clone());
        }
        match started {
            // A put carries its value, to be recorded once acknowledged.
            Ok(id) => {
                let put = (!is_get).then_some(value);
                book.inflight.insert((from, id), (now, key, put));
            }
            Err(e) => book.fail(format!("not started: {e}")),
        }
        let next = now + interval;
        while net.step(next).is_some() {
            book.settle(&mut net);
        }
    }
    // The last answers: wait out every retry.
    let drain_end = net.now() + Duration::from_millis(args.request_timeout_ms * 8);
    while !book.inflight.is_empty() && net.step(drain_end).is_some() {
        book.settle(&mut net);
    }
    for _ in 0..book.inflight.len() {
        book.fail("no answer".into());
    }
    let Book {
        mut report,
        failures,
        ..
    } = book;
    let elapsed = (net.now() - start).as_micros().max(1) as f64 / 1e6;
    let traffic_after: (u64, u64) = live.iter().fold((0, 0), |acc, &i| {
        let t = net.traffic(i);
        (acc.0 + t.sent, acc.1 + t.bytes_sent)
    });
    let live_n = live.len().max(1) as f64;
    report.msgs_per_node_s = (traffic_after.0 - traffic_before.0) as f64 / live_n / elapsed;
    report.bytes_per_node_s = (traffic_after.1 - traffic_before.1) as f64 / live_n / elapsed;
    let mut failures: Vec<_> = failures.into_iter().collect();
    failures.sort();
    report.failures = failures;
    report.virtual_s = net.now().as_micros() as f64 / 1e6;
    report.wall_s = wall.elapsed().as_secs_f64();
    report
}

/// A request in flight: when it was made, its key, and a put's value (`None`: a get).
type InFlight = (Instant, Vec<u8>, Option<Vec<u8>>);

/// The requests' bookkeeping.
#[derive(Default)]
struct Book {
    /// By (node, request id).
    inflight: HashMap<(usize, RequestId), InFlight>,
    /// Every value acknowledged under each key.
    put_ok: HashMap<Vec<u8>, Vec<Vec<u8>>>,
    /// The keys with an acknowledged put, for gets to choose from.
    acked_keys: Vec<Vec<u8>>,
    /// Every value a put tried to write under each key.
    tried: HashMap<Vec<u8>, Vec<Vec<u8>>>,
    hops: Hops,
    report: SimReport,
    failures: HashMap<String, u32>,
}

impl Book {
    fn fail(&mut self, why: String) {
        *self.failures.entry(why).or_default() += 1;
    }

    /// Takes the events of the step just run: outcomes of the requests in flight.
    fn settle(&mut self, net: &mut Network<Node>) {
        for (at, ix, event) in net.take_events() {
            let Some(id) = event.request_id() else {
                continue;
            };
            let Some((sent, key, put_value)) = self.inflight.remove(&(ix, id)) else {
                continue;
            };
            let latency = (at - sent).as_micros() as u64;
            let seen = self
                .hops
                .borrow_mut()
                .remove(&(key.clone(), put_value.clone()));
            self.report.hops.push(seen.unwrap_or(0));
            match event {
                Event::PutDone { .. } => {
                    self.report.succeeded += 1;
                    self.report.latencies_us.push(latency);
                    let values = self.put_ok.entry(key.clone()).or_default();
                    if values.is_empty() {
                        self.acked_keys.push(key);
                    }
                    values.extend(put_value);
                }
                Event::GetDone { value, .. } => {
                    let put_before = |v: &[u8]| {
                        self.tried
                            .get(&key)
                            .is_some_and(|t| t.iter().any(|x| x[..] == *v))
                    };
                    match value {
                        Some(v) if put_before(&v) => {
                            self.report.succeeded += 1;
                            self.report.latencies_us.push(latency);
                        }
                        Some(_) => self.fail("get: a value never put".into()),
                        None => self
                            .fail("get: no value, though a put of the key was acknowledged".into()),
                    }
                }
                Event::Failed { error, .. } => self.fail(format!("{error:?}")),
                _ => self.fail("unexpected answer".into()),
            }
        }
    }
}

fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Prints a report, as `sinew dht sim` does.
pub fn render(args: &SimArgs, r: &SimReport) -> String {
    let mut s = String::new();
    let crashed = args.crash.min(args.nodes.saturating_sub(1));
    let formed = match r.formed_after_s {
        Some(t) => format!("all in the ring at {t:.1} s"),
        None => format!("{} in the ring after settling", r.in_ring),
    };
    let _ = writeln!(
        s,
        "ring: {} nodes joining every {} ms, {formed}; {} datagrams to form and settle",
        args.nodes, args.join_interval_ms, r.formation_messages
    );
    if crashed > 0 {
        let _ = writeln!(s, "crashed: {crashed} nodes, before the requests");
    }
    let pct = 100.0 * f64::from(r.succeeded) / f64::from(r.ops.max(1));
    let _ = writeln!(
        s,
        "requests: {} at {}/s, {} succeeded ({pct:.1}%)",
        r.ops, args.rate, r.succeeded
    );
    for (why, count) in &r.failures {
        let _ = writeln!(s, "  failed: {count} × {why}");
    }
    let mut hops: Vec<u64> = r.hops.iter().map(|&h| u64::from(h)).collect();
    hops.sort_unstable();
    let mean = hops.iter().sum::<u64>() as f64 / hops.len().max(1) as f64;
    let _ = writeln!(
        s,
        "hops (request datagrams per request, retries included): mean {mean:.1}, p50 {}, p99 {}, max {}",
        quantile(&hops, 0.5),
        quantile(&hops, 0.99),
        hops.last().copied().unwrap_or(0)
    );
    let mut lat = r.latencies_us.clone();
    lat.sort_unstable();
    let f = |us: u64| us as f64 / 1000.0;
    let _ = writeln!(
        s,
        "latency of successful requests: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        f(quantile(&lat, 0.5)),
        f(quantile(&lat, 0.9)),
        f(quantile(&lat, 0.99)),
        f(lat.last().copied().unwrap_or(0))
    );
    let _ = writeln!(
        s,
        "traffic per live node during the requests: {:.1} datagrams/s, {:.0} bytes/s",
        r.msgs_per_node_s, r.bytes_per_node_s
    );
    let _ = writeln!(
        s,
        "memory per node: {} bytes (fixed; a node never allocates)",
        r.node_bytes
    );
    let _ = writeln!(s, "simulated {:.1} s in {:.2} s", r.virtual_s, r.wall_s);
    s
}

/// `sinew dht sim`.
pub fn run(args: &SimArgs, out: &mut dyn Write) -> Result<u8, Failure> {
    if !(args.latency_min_ms.is_finite()
        && args.latency_max_ms.is_finite()
        && args.loss.is_finite())
    {
        return Err(Failure::usage("latencies and loss must be numbers"));
    }
    let report = simulate(args);
    out.write_all(render(args, &report).as_bytes())
        .map_err(|e| Failure::io("stdout", &e))?;
    if let Some(need) = args.require_success {
        let got = f64::from(report.succeeded) / f64::from(report.ops.max(1));
        if got < need {
            writeln!(
                out,
                "sinew dht sim: {:.1}% succeeded, {:.1}% required",
                got * 100.0,
                need * 100.0
            )
            .map_err(|e| Failure::io("stdout", &e))?;
            return Ok(EXIT_FAILED);
        }
    }
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sim: SimArgs,
    }

    fn args(extra: &[&str]) -> SimArgs {
        let mut v = vec!["sim"];
        v.extend_from_slice(extra);
        Cli::parse_from(v).sim
    }

    #[test]
    fn test_small_ring_serves_every_request_in_few_hops() {
        let a = args(&["--nodes", "16", "--ops", "300"]);
        let r = simulate(&a);
        assert_eq!(r.in_ring, 16);
        assert!(r.formed_after_s.is_some_and(|t| t < 10.0), "{r:?}");
        assert_eq!((r.ops, r.succeeded), (300, 300), "{:?}", r.failures);
        assert_eq!(r.hops.len(), 300);
        // 16 nodes, 4 a side: the owner is at most two leaf-set jumps away.
        let mean = r.hops.iter().sum::<u32>() as f64 / 300.0;
        assert!((0.5..3.0).contains(&mean), "{mean}");
        assert_eq!(r.latencies_us.len(), 300);
        assert!(r.msgs_per_node_s > 1.0);
        assert_eq!(r.node_bytes, std::mem::size_of::<Node>());
        let text = render(&a, &r);
        assert!(text.contains("300 succeeded (100.0%)"), "{text}");
    }

    #[test]
    fn test_same_seed_same_run_and_crashes_and_loss_show() {
        let a = args(&["--nodes", "24", "--ops", "200", "--seed", "9"]);
        let (r1, r2) = (simulate(&a), simulate(&a));
        assert_eq!(
            (r1.succeeded, &r1.hops, &r1.latencies_us),
            (r2.succeeded, &r2.hops, &r2.latencies_us)
        );
        let other = simulate(&args(&["--nodes", "24", "--ops", "200", "--seed", "10"]));
        assert_ne!(r1.latencies_us, other.latencies_us);
        // Lossy, with crashed nodes: the run shows both, and what failed.
        let hard = args(&[
            "--nodes", "24", "--ops", "200", "--crash", "3", "--loss", "5",
        ]);
        let r = simulate(&hard);
        assert!(r.succeeded > 100, "{r:?}");
        let failed: u32 = r.failures.iter().map(|f| f.1).sum();
        assert_eq!(r.succeeded + failed, 200, "{r:?}");
        let text = render(&hard, &r);
        assert!(
            text.contains("crashed: 3 nodes") && text.contains("failed: "),
            "{text}"
        );
    }
}
