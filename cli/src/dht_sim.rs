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
use sinew_proto::dht::{
    Body, Config, DhtNode, Event, Message, NodeAddr, RelayedRequest, RequestId,
};
use sinew_proto::sim::{Latency, NetConfig, Network, SimRng};
use sinew_proto::time::Instant;

use crate::error::{EXIT_FAILED, EXIT_OK, Failure};

/// Request datagrams seen, by (key, the put's value or `None` for a get).
type Hops = Rc<RefCell<HashMap<(Vec<u8>, Option<Vec<u8>>), u32>>>;

/// The simulated node: a host-sized node (4 nodes a side, 256 keys of ≤ 32 bytes, values ≤ 128
/// bytes, 32 requests in flight): a ring of 10,000 nodes under churn puts tens of keys on its
/// busiest nodes (with their replicas), more than the 32 of `DhtNode`'s defaults, which are
/// sized for a microcontroller.
type Node = DhtNode<SimRng, 4, NODE_KEYS, NODE_KEY, NODE_VALUE, NODE_PENDING>;
const NODE_KEYS: usize = 256;
const NODE_KEY: usize = 32;
const NODE_VALUE: usize = 128;
const NODE_PENDING: usize = 32;

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
    /// Distinct keys the puts choose from (default: 4 per node, so that the stores, 256 keys a
    /// node with its replicas, do not fill up).
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
    /// Churn while the requests run: this percentage of the nodes crashes, and as many new
    /// nodes join, per virtual minute (evenly spread, one crash and one join at a time).
    #[arg(long, default_value_t = 0.0)]
    pub churn: f64,
    /// Run the requests for this many virtual seconds (`--rate` × S requests) instead of
    /// `--ops` requests.
    #[arg(long)]
    pub duration_s: Option<u64>,
    /// This percentage of the requests are locks (of a few shared keys, held briefly, then
    /// unlocked); the run checks that no key is ever held by two nodes at once.
    #[arg(long, default_value_t = 0.0)]
    pub locks: f64,
    /// Cut this percentage of the live nodes (chosen at random, as a subnet's addresses fall
    /// at random places on the ring) off from the rest while the requests run, then heal.
    #[arg(long, default_value_t = 0.0)]
    pub partition: f64,
    /// When the partition starts, in virtual seconds after the first request.
    #[arg(long, default_value_t = 10)]
    pub partition_at_s: u64,
    /// How long the partition lasts, in virtual seconds.
    #[arg(long, default_value_t = 10)]
    pub partition_s: u64,
    /// After the read-back, print each lost key's story: what the get read, which live nodes
    /// hold what, when nodes holding a copy crashed, and its puts.
    #[arg(long)]
    pub show_lost: bool,
}

/// What a run measured.
#[derive(Debug, Clone, Default)]
pub struct SimReport {
    /// Nodes in the ring after formation (of those not crashed).
    pub in_ring: usize,
    /// Nodes cut off by `--partition` (0: none).
    pub partitioned: usize,
    /// Joins that failed (JoinFailed) during the requests and the read-back; each node is made
    /// to join again, through another member, a second later.
    pub joins_failed: u32,
    /// Joins made again that way.
    pub rejoins: u32,
    /// Failed joins, by reason.
    pub join_failures: Vec<(String, u32)>,
    /// At the end: live nodes, and how many of them have their true successor (the next live
    /// id clockwise) as their nearest right neighbour — all of them once the ring is whole.
    pub successors_right: (usize, usize),
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
    /// Datagrams per live node per second during the requests that were neither requests nor
    /// their answers nor replication: stabilization, joins, routing-table upkeep, challenges.
    pub background_per_node_s: f64,
    /// Nodes crashed and nodes joined by churn during the requests.
    pub churned: (u32, u32),
    /// Requests whose node crashed before their outcome (left out of `ops`).
    pub origin_crashed: u32,
    /// Read-back at the end: keys with an acknowledged put, read with the latest acknowledged
    /// value (or a newer one tried), lost (no value, or a value overwritten by an acknowledged
    /// put that started after it was acknowledged), and not answered.
    pub readback: ReadBack,
    /// Lock requests: granted, denied, failed, and grants while another node held the lock.
    pub locks: LockBook,
    /// The nodes' counters, summed over every node that ever ran.
    pub counters: Counters,
    /// Virtual seconds simulated.
    pub virtual_s: f64,
    /// Wall-clock seconds the simulation took.
    pub wall_s: f64,
}

/// The read-back of every acknowledged key at the end of a run.
#[derive(Debug, Clone, Default)]
pub struct ReadBack {
    /// Keys with an acknowledged put.
    pub keys: u32,
    /// Read back with a value no acknowledged put had overwritten.
    pub intact: u32,
    /// Read back with no value, or an overwritten one.
    pub lost: u32,
    /// Of those lost, the keys whose good value no live node held any more (the rest were
    /// still held somewhere, but not where a get finds them).
    pub gone: u32,
    /// Of those gone, the keys of which at least `replicas + 1` nodes holding a copy crashed:
    /// every copy went, which the ring does not survive.
    pub gone_all_copies_crashed: u32,
    /// For those: the longest, over the keys, of the shortest time in which `replicas + 1` of
    /// its copies' nodes crashed (virtual seconds).
    pub gone_crash_window_s: f64,
    /// With `--show-lost`: one line per lost key.
    pub stories: Vec<String>,
    /// Not answered (after two tries).
    pub unanswered: u32,
}

/// Locks granted during a run, and the mutual-exclusion check.
#[derive(Debug, Clone, Copy, Default)]
pub struct LockBook {
    /// Lock requests made.
    pub requested: u32,
    /// Granted (Locked).
    pub granted: u32,
    /// Denied (LockDenied: held by another, or a new owner's grace period).
    pub denied: u32,
    /// Failed (no answer, refused).
    pub failed: u32,
    /// Grants while another node still believed it held the lock: must be 0.
    pub held_twice: u32,
}

/// Some of the nodes' [`Stats`](sinew_proto::dht::Stats), summed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counters {
    /// Challenges sent instead of answers.
    pub challenges: u64,
    /// Client requests sent again.
    pub retries: u64,
    /// Request attempts timed out.
    pub timeouts: u64,
    /// Replicate messages refused.
    pub replicates_refused: u64,
    /// Leaf-set members declared down.
    pub peers_down: u64,
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
    let new_node = |i: u32| {
        let config = Config::new(NodeAddr::bound(addr(i, args.seed)))
            .with_leaf_size(args.leaf_size as usize)
            .with_replicas(args.replicas as usize)
            .with_request_timeout(Duration::from_millis(args.request_timeout_ms))
            .with_stabilize_interval(Duration::from_millis(args.stabilize_ms));
        Node::new(
            config,
            SimRng::new(args.seed.wrapping_mul(31) + u64::from(i)),
        )
    };
    for i in 0..n {
        net.add(addr(i, args.seed), new_node(i));
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

    // Hops: Get and Put datagrams on the wire, by what they carry (relayed ones included). A put's value names its
    // request (every put writes a value of its own); gets of one key in flight at once are
    // counted together (rare: the keys are many and a get is short). Background: datagrams
    // that are no request, answer or replica.
    let hops: Hops = Rc::default();
    let background: Rc<RefCell<u64>> = Rc::default();
    let tap_hops = hops.clone();
    let tap_background = background.clone();
    net.set_tap(Box::new(move |_, _, _, bytes| {
        if let Ok(m) = Message::parse(bytes) {
            let what = match m.body {
                Body::Get { key }
                | Body::Relayed {
                    request: RelayedRequest::Get { key },
                    ..
                } => (key.to_vec(), None),
                Body::Put { key, value }
                | Body::Relayed {
                    request: RelayedRequest::Put { key, value },
                    ..
                } => (key.to_vec(), Some(value.to_vec())),
                Body::InitConnect
                | Body::RequestInsertion { .. }
                | Body::Join { .. }
                | Body::Leave { .. }
                | Body::Challenge
                | Body::Withheld { .. }
                | Body::Echo
                | Body::RouteRequest { .. }
                | Body::Route { .. } => {
                    *tap_background.borrow_mut() += 1;
                    return;
                }
                _ => return,
            };
            *tap_hops.borrow_mut().entry(what).or_default() += 1;
        }
    }));

    // Requests: puts first, then gets of half of what was put, interleaved in time; some
    // locks; churn throughout.
    let start = net.now();
    let sent_before = net.stats().sent;
    let interval = Duration::from_micros(1_000_000 / u64::from(args.rate));
    let ops = match args.duration_s {
        Some(s) => u32::try_from(s.saturating_mul(u64::from(args.rate))).unwrap_or(u32::MAX),
        None => args.ops,
    };
    let mut book = Book {
        hops,
        replicas: usize::from(args.replicas),
        show_lost: args.show_lost,
        report: SimReport {
            in_ring,
            formed_after_s: formed.map(|t| t.as_micros() as f64 / 1e6),
            formation_messages,
            node_bytes: std::mem::size_of::<Node>(),
            ..SimReport::default()
        },
        late: Duration::from_millis(
            args.request_timeout_ms
                * u64::from(Config::new(NodeAddr::bound(addr(0, 0))).max_attempts)
                * 2,
        ),
        ..Book::default()
    };
    let key_space = u64::from(args.key_space.unwrap_or(4 * n).max(1));
    let lock_keys = u64::from((n / 64).max(4));
    // One crash and one join every `churn_every` (none without churn).
    let churn_per_s = args.churn.max(0.0) / 100.0 * f64::from(n) / 60.0;
    let churn_every = (churn_per_s > 0.0).then(|| Duration::from_secs_f64(1.0 / churn_per_s));
    let mut next_churn = churn_every.map(|d| start + d);
    let mut next_index = n;
    let partition_start = start + Duration::from_secs(args.partition_at_s);
    let partition_end = partition_start + Duration::from_secs(args.partition_s);
    let mut partition = (args.partition > 0.0).then_some(false);
    for op in 0..ops {
        let now = net.now();
        if partition == Some(false) && now >= partition_start {
            let count = ((args.partition.min(100.0) / 100.0) * live.len() as f64) as usize;
            let mut cut = live.clone();
            for i in 0..cut.len() {
                let j = i + rng.below((cut.len() - i) as u64) as usize;
                cut.swap(i, j);
            }
            cut.truncate(count.min(live.len().saturating_sub(1)));
            book.report.partitioned = cut.len();
            net.partition(&[&cut]);
            partition = Some(true);
        } else if partition == Some(true) && now >= partition_end {
            net.heal();
            partition = None;
        }
        let from = member(&net, &live, &mut rng);
        if rng.unit() * 100.0 < args.locks {
            let key = format!("l{}", rng.below(lock_keys)).into_bytes();
            book.report.locks.requested += 1;
            match net.with_core(from, |node| node.lock(now, &key, LOCK_LEASE)) {
                Ok(id) => {
                    book.lock_inflight.insert((from, id), key);
                }
                Err(_) => book.report.locks.failed += 1,
            }
        } else {
            let is_get = op % 2 == 1 && !book.acked_keys.is_empty();
            let key = if is_get {
                book.acked_keys[rng.below(book.acked_keys.len() as u64) as usize].clone()
            } else {
                format!("k{}", rng.below(key_space)).into_bytes()
            };
            let value = format!("v{op}").into_bytes();
            book.report.ops += 1;
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
        }
        let next = now + interval;
        loop {
            let until = match next_churn {
                Some(c) if c < next => c,
                _ => next,
            };
            while net.step(until).is_some() {
                book.settle(&mut net);
            }
            book.release_locks(&mut net);
            book.rejoin(&mut net, &live, &mut rng);
            if until == next {
                break;
            }
            // Churn: one node crashes, a new one joins through a member.
            next_churn = churn_every.map(|d| until + d);
            if live.len() > 2 {
                let k = rng.below(live.len() as u64) as usize;
                let gone = live.swap_remove(k);
                let at = net.now();
                for (key, _) in net.core(gone).stored_entries() {
                    book.copies_crashed
                        .entry(key.to_vec())
                        .or_default()
                        .push(at);
                }
                net.crash(gone);
                book.crashed(gone);
                book.report.churned.0 += 1;
            }
            let entry = net.addr(member(&net, &live, &mut rng));
            let ix = net.add(addr(next_index, args.seed), new_node(next_index));
            next_index += 1;
            let now = net.now();
            let _ = net.with_core(ix, |node| node.join(now, entry));
            live.push(ix);
            book.report.churned.1 += 1;
        }
    }
    if partition == Some(true) {
        net.heal();
    }
    // The last answers: wait out every retry.
    let drain_end = net.now() + Duration::from_millis(args.request_timeout_ms * 8);
    while !(book.inflight.is_empty() && book.lock_inflight.is_empty())
        && net.step(drain_end).is_some()
    {
        book.settle(&mut net);
        book.release_locks(&mut net);
        book.rejoin(&mut net, &live, &mut rng);
    }
    for _ in 0..book.inflight.len() {
        book.fail("no answer".into());
    }
    book.report.locks.failed += book.lock_inflight.len() as u32;
    book.inflight.clear();
    book.lock_inflight.clear();
    let elapsed = (net.now() - start).as_micros().max(1) as f64 / 1e6;
    let live_n = live.len().max(1) as f64;
    book.report.msgs_per_node_s = (net.stats().sent - sent_before) as f64 / live_n / elapsed;
    book.report.background_per_node_s = *background.borrow() as f64 / live_n / elapsed;
    let bytes: u64 = (0..net.len()).map(|i| net.traffic(i).bytes_sent).sum();
    book.report.bytes_per_node_s =
        bytes as f64 / net.len().max(1) as f64 / (net.now().as_micros().max(1) as f64 / 1e6);

    // Read-back: every key with an acknowledged put, once the ring is quiet again (the
    // probation of the last crashed nodes and their handover), from random members.
    if !book.put_ok.is_empty() {
        // Quiet time, in 100 ms slices; a join that fails now is made again too.
        let quiet_end = net.now()
            + Duration::from_millis((args.stabilize_ms * 8).max(args.request_timeout_ms * 4));
        while net.now() < quiet_end {
            net.run_until((net.now() + Duration::from_millis(100)).min(quiet_end));
            book.settle(&mut net);
            book.rejoin(&mut net, &live, &mut rng);
        }
        net.take_events();
        let keys: Vec<Vec<u8>> = book.acked_keys.clone();
        book.report.readback.keys = keys.len() as u32;
        let mut todo = keys;
        for round in 0..2 {
            let mut asked: HashMap<(usize, RequestId), Vec<u8>> = HashMap::new();
            let mut unanswered = Vec::new();
            for key in todo {
                let from = member(&net, &live, &mut rng);
                let now = net.now();
                match net.with_core(from, |node| node.get(now, &key)) {
                    Ok(id) => {
                        asked.insert((from, id), key);
                    }
                    Err(_) => unanswered.push(key),
                }
                let next = now + Duration::from_millis(2);
                while net.step(next).is_some() {
                    book.read_back(&mut net, &mut asked, &mut unanswered, &live);
                }
            }
            let end = net.now() + Duration::from_millis(args.request_timeout_ms * 8);
            while !asked.is_empty() && net.step(end).is_some() {
                book.read_back(&mut net, &mut asked, &mut unanswered, &live);
            }
            unanswered.extend(asked.into_values());
            if round == 1 {
                book.report.readback.unanswered = unanswered.len() as u32;
            }
            todo = unanswered;
        }
    }

    // Is the ring whole? Each live node's nearest right neighbour against the true one.
    let mut ids: Vec<(u128, usize)> = live
        .iter()
        .map(|&i| (net.core(i).local().id.to_u128(), i))
        .collect();
    ids.sort_unstable();
    let right = (0..ids.len())
        .filter(|&k| {
            let next = ids[(k + 1) % ids.len()].0;
            net.core(ids[k].1)
                .leaf_set()
                .nearest_right()
                .is_some_and(|n| n.id.to_u128() == next)
        })
        .count();
    book.report.successors_right = (ids.len(), right);
    let Book {
        mut report,
        failures,
        join_failures,
        ..
    } = book;
    for i in 0..net.len() {
        let s = net.core(i).stats();
        let c = &mut report.counters;
        c.challenges += s.challenges_sent;
        c.retries += s.retries;
        c.timeouts += s.timeouts;
        c.replicates_refused += s.replicates_refused;
        c.peers_down += s.peers_down;
    }
    let mut failures: Vec<_> = failures.into_iter().collect();
    failures.sort();
    report.failures = failures;
    let mut join_failures: Vec<_> = join_failures.into_iter().collect();
    join_failures.sort();
    report.join_failures = join_failures;
    report.virtual_s = net.now().as_micros() as f64 / 1e6;
    report.wall_s = wall.elapsed().as_secs_f64();
    report
}

/// The lease of the simulation's locks, and how long a holder keeps one before unlocking.
const LOCK_LEASE: Duration = Duration::from_secs(2);
const LOCK_HOLD: Duration = Duration::from_millis(300);

/// A request in flight: when it was made, its key, and a put's value (`None`: a get).
type InFlight = (Instant, Vec<u8>, Option<Vec<u8>>);

/// A put: its value, when it was made, and when it was acknowledged (or failed).
#[derive(Clone)]
struct PutRecord {
    value: Vec<u8>,
    started: Instant,
    /// When it was acknowledged, or when it failed plus the longest a late copy of it may
    /// still travel (it may have been stored).
    ended: Instant,
    acked: bool,
}

/// The requests' bookkeeping.
#[derive(Default)]
struct Book {
    /// By (node, request id).
    inflight: HashMap<(usize, RequestId), InFlight>,
    /// Every put acknowledged (or failed) under each key.
    put_ok: HashMap<Vec<u8>, Vec<PutRecord>>,
    /// How long after its failure a put may still be applied (a copy on its way).
    late: Duration,
    /// The keys with an acknowledged put, for gets to choose from.
    acked_keys: Vec<Vec<u8>>,
    /// Every value a put tried to write under each key.
    tried: HashMap<Vec<u8>, Vec<Vec<u8>>>,
    hops: Hops,
    report: SimReport,
    failures: HashMap<String, u32>,
    /// Lock requests in flight, by (node, request id).
    lock_inflight: HashMap<(usize, RequestId), Vec<u8>>,
    /// Who believes it holds each lock key: (node, from, until).
    holders: HashMap<Vec<u8>, Vec<(usize, Instant, Instant)>>,
    /// Holders that will unlock: (when, node, key).
    to_release: Vec<(Instant, usize, Vec<u8>)>,
    /// When a node holding a copy of each key crashed (for the keys lost: how many copies
    /// went, how close together).
    copies_crashed: HashMap<Vec<u8>, Vec<Instant>>,
    /// Nodes to join again (when, node), after their join failed.
    rejoin: Vec<(Instant, usize)>,
    /// Failed joins, by reason.
    join_failures: HashMap<String, u32>,
    /// Copies of each key besides the owner's.
    replicas: usize,
    /// `--show-lost`.
    show_lost: bool,
}

impl Book {
    fn fail(&mut self, why: String) {
        *self.failures.entry(why).or_default() += 1;
    }

    fn fail_join(&mut self, why: String) {
        *self.join_failures.entry(why).or_default() += 1;
    }

    /// Joins again, through a random member, the nodes whose join failed a second ago.
    fn rejoin(&mut self, net: &mut Network<Node>, live: &[usize], rng: &mut SimRng) {
        let now = net.now();
        let mut k = 0;
        while k < self.rejoin.len() {
            let (due, ix) = self.rejoin[k];
            if due > now {
                k += 1;
                continue;
            }
            self.rejoin.swap_remove(k);
            if !live.contains(&ix) {
                continue;
            }
            let entry = net.addr(member(net, live, rng));
            if net.with_core(ix, |node| node.join(now, entry)).is_ok() {
                self.report.rejoins += 1;
            }
        }
    }

    /// Node `ix` crashed: its requests will have no outcome.
    fn crashed(&mut self, ix: usize) {
        let before = self.inflight.len();
        self.inflight.retain(|(i, _), _| *i != ix);
        let gone = (before - self.inflight.len()) as u32;
        self.report.origin_crashed += gone;
        self.report.ops -= gone;
        self.lock_inflight.retain(|(i, _), _| *i != ix);
        self.to_release.retain(|(_, i, _)| *i != ix);
    }

    /// Unlocks the locks whose holding time is over; the holder stops believing it holds it
    /// when it sends the unlock.
    fn release_locks(&mut self, net: &mut Network<Node>) {
        let now = net.now();
        let mut i = 0;
        while i < self.to_release.len() {
            if self.to_release[i].0 > now {
                i += 1;
                continue;
            }
            let (_, ix, key) = self.to_release.swap_remove(i);
            if let Some(h) = self.holders.get_mut(&key) {
                for (who, _, until) in h.iter_mut() {
                    if *who == ix && *until > now {
                        *until = now;
                    }
                }
            }
            if net.is_alive(ix) {
                let _ = net.with_core(ix, |node| node.unlock(now, &key));
            }
        }
    }

    /// Takes the events of the step just run: outcomes of the requests in flight.
    fn settle(&mut self, net: &mut Network<Node>) {
        for (at, ix, event) in net.take_events() {
            if let Event::JoinFailed { error } = event {
                // As an application should: join again, through another member, a second on.
                self.report.joins_failed += 1;
                self.fail_join(format!("{error:?}"));
                self.rejoin.push((at + Duration::from_secs(1), ix));
                continue;
            }
            let Some(id) = event.request_id() else {
                continue;
            };
            if let Some(key) = self.lock_inflight.remove(&(ix, id)) {
                let l = &mut self.report.locks;
                match event {
                    Event::Locked { until, .. } => {
                        l.granted += 1;
                        let h = self.holders.entry(key.clone()).or_default();
                        h.retain(|(_, _, u)| *u > at);
                        if h.iter().any(|(who, _, _)| *who != ix) {
                            l.held_twice += 1;
                        }
                        h.push((ix, at, until));
                        self.to_release.push((at + LOCK_HOLD, ix, key));
                    }
                    Event::LockDenied { .. } => l.denied += 1,
                    _ => l.failed += 1,
                }
                continue;
            }
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
                    if !values.iter().any(|p| p.acked) {
                        self.acked_keys.push(key);
                    }
                    values.extend(put_value.map(|value| PutRecord {
                        value,
                        started: sent,
                        ended: at,
                        acked: true,
                    }));
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
                Event::Failed { error, .. } => {
                    self.fail(format!("{error:?}"));
                    if let Some(value) = put_value {
                        self.put_ok.entry(key).or_default().push(PutRecord {
                            value,
                            started: sent,
                            ended: at + self.late,
                            acked: false,
                        });
                    }
                }
                _ => self.fail("unexpected answer".into()),
            }
        }
    }

    /// Takes the answers of read-back gets: a value is intact unless it is none, was never
    /// put, or was overwritten: an acknowledged put of the key started after its own put was
    /// acknowledged.
    fn read_back(
        &mut self,
        net: &mut Network<Node>,
        asked: &mut HashMap<(usize, RequestId), Vec<u8>>,
        unanswered: &mut Vec<Vec<u8>>,
        live: &[usize],
    ) {
        for (_, ix, event) in net.take_events() {
            let Some(id) = event.request_id() else {
                continue;
            };
            let Some(key) = asked.remove(&(ix, id)) else {
                continue;
            };
            let Event::GetDone { value, .. } = event else {
                unanswered.push(key);
                continue;
            };
            let puts = self.put_ok.get(&key).map(Vec::as_slice).unwrap_or_default();
            let good = |v: &[u8]| {
                let tried = self
                    .tried
                    .get(&key)
                    .is_some_and(|t| t.iter().any(|x| x[..] == *v));
                let overwritten = puts
                    .iter()
                    .find(|p| p.value[..] == *v)
                    .is_some_and(|p| puts.iter().any(|q| q.acked && q.started > p.ended));
                tried && !overwritten
            };
            if value.as_ref().is_some_and(|v| good(v)) {
                self.report.readback.intact += 1;
            } else {
                self.report.readback.lost += 1;
                let held = live
                    .iter()
                    .any(|&i| net.core(i).stored(&key).is_some_and(good));
                let copies = self.replicas + 1;
                let crashes = self
                    .copies_crashed
                    .get(&key)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                if !held {
                    self.report.readback.gone += 1;
                    // The shortest window holding `copies` crashes (they are in time order).
                    let window = crashes
                        .windows(copies)
                        .map(|w| w[copies - 1].saturating_duration_since(w[0]))
                        .min();
                    if let Some(w) = window {
                        let b = &mut self.report.readback;
                        b.gone_all_copies_crashed += 1;
                        b.gone_crash_window_s = b.gone_crash_window_s.max(w.as_secs_f64());
                    }
                }
                if self.show_lost {
                    let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
                    let holders: Vec<String> = live
                        .iter()
                        .filter_map(|&i| {
                            net.core(i)
                                .stored(&key)
                                .map(|v| format!("{}: {}", net.addr(i), text(v)))
                        })
                        .collect();
                    let puts: Vec<String> = puts
                        .iter()
                        .map(|p| {
                            format!(
                                "{} {:.3}-{:.3} s{}",
                                text(&p.value),
                                secs(p.started),
                                secs(p.ended),
                                if p.acked { " acked" } else { "" }
                            )
                        })
                        .collect();
                    let crashed: Vec<String> =
                        crashes.iter().map(|&t| format!("{:.3}", secs(t))).collect();
                    self.report.readback.stories.push(format!(
                        "lost {}: read {}; held by [{}]; nodes with a copy crashed at [{}] s; puts [{}]",
                        text(&key),
                        value.as_deref().map_or("no value".into(), text),
                        holders.join(", "),
                        crashed.join(", "),
                        puts.join(", ")
                    ));
                }
            }
        }
    }
}

/// A random live node in the ring (any live one if none is).
fn member(net: &Network<Node>, live: &[usize], rng: &mut SimRng) -> usize {
    for _ in 0..16 {
        let i = live[rng.below(live.len() as u64) as usize];
        if net.core(i).in_ring() {
            return i;
        }
    }
    live[rng.below(live.len() as u64) as usize]
}

/// Virtual seconds since the start of the simulation.
fn secs(t: Instant) -> f64 {
    t.as_micros() as f64 / 1e6
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
    if r.joins_failed > 0 {
        let reasons: Vec<String> = r
            .join_failures
            .iter()
            .map(|(why, n)| format!("{n} × {why}"))
            .collect();
        let _ = writeln!(
            s,
            "joins failed: {} ({}); each node joined again through another member a second later \
             ({} times)",
            r.joins_failed,
            reasons.join(", "),
            r.rejoins
        );
    }
    if r.partitioned > 0 {
        let _ = writeln!(
            s,
            "partition: {} nodes cut off from the rest {} s into the requests, for {} s",
            r.partitioned, args.partition_at_s, args.partition_s
        );
    }
    if args.churn > 0.0 {
        let _ = writeln!(
            s,
            "churn: {}% a virtual minute: {} nodes crashed, {} joined during the requests",
            args.churn, r.churned.0, r.churned.1
        );
    }
    let pct = 100.0 * f64::from(r.succeeded) / f64::from(r.ops.max(1));
    let _ = writeln!(
        s,
        "requests: {} gets and puts at {}/s, {} succeeded ({pct:.2}%)",
        r.ops, args.rate, r.succeeded
    );
    if r.origin_crashed > 0 {
        let _ = writeln!(
            s,
            "  not counted: {} whose node crashed before their outcome",
            r.origin_crashed
        );
    }
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
    let mut histogram = String::new();
    let top = hops.last().copied().unwrap_or(0);
    for h in 0..=top {
        let count = hops.iter().filter(|&&x| x == h).count();
        if count > 0 {
            let _ = write!(
                histogram,
                " {h}:{:.1}%",
                100.0 * count as f64 / hops.len() as f64
            );
        }
    }
    let _ = writeln!(s, "hop histogram:{histogram}");
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
        "traffic per live node during the requests: {:.1} datagrams/s, of which background \
         (stabilization, joins, routing table, challenges) {:.1}; {:.0} bytes/s over the run",
        r.msgs_per_node_s, r.background_per_node_s, r.bytes_per_node_s
    );
    let c = &r.counters;
    let _ = writeln!(
        s,
        "node counters (sum): {} challenges, {} retries, {} timeouts, {} replicates refused, \
         {} neighbours declared down",
        c.challenges, c.retries, c.timeouts, c.replicates_refused, c.peers_down
    );
    let b = &r.readback;
    if b.keys > 0 {
        let _ = writeln!(
            s,
            "read-back of every acknowledged key at the end: {} keys, {} intact, {} lost, {} unanswered",
            b.keys, b.intact, b.lost, b.unanswered
        );
        if b.lost > 0 {
            let _ = writeln!(
                s,
                "  lost: {} still held by a live node where no get finds them; {} held by none, \
                 {} of which lost every copy: {} nodes holding one crashed (within {:.1} s)",
                b.lost - b.gone,
                b.gone,
                b.gone_all_copies_crashed,
                u32::from(args.replicas) + 1,
                b.gone_crash_window_s
            );
        }
        for story in &b.stories {
            let _ = writeln!(s, "  {story}");
        }
    }
    let l = &r.locks;
    if l.requested > 0 {
        let _ = writeln!(
            s,
            "locks: {} requested, {} granted, {} denied, {} failed; held by two nodes at once: {}",
            l.requested, l.granted, l.denied, l.failed, l.held_twice
        );
    }
    let (live, right) = r.successors_right;
    let _ = writeln!(
        s,
        "ring at the end: {right} of {live} live nodes have their true successor as nearest right \
         neighbour{}",
        if right == live { " (whole)" } else { "" }
    );
    let _ = writeln!(
        s,
        "memory per node: {} bytes (fixed; a node never allocates): {} keys of <= {} bytes, \
         values <= {} bytes, {} requests in flight, {} validated addresses",
        r.node_bytes,
        NODE_KEYS,
        NODE_KEY,
        NODE_VALUE,
        NODE_PENDING,
        sinew_proto::dht::VALIDATED
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
        // 16 nodes, 4 a side: the owner is at most two leaf-set jumps away, and a request
        // relayed once (a Relayed datagram) counts two hops: about a quarter of them.
        let mean = r.hops.iter().sum::<u32>() as f64 / 300.0;
        assert!((1.05..2.0).contains(&mean), "{mean}");
        let two = r.hops.iter().filter(|&&h| h == 2).count();
        assert!((30..150).contains(&two), "{two} of 300 took two hops");
        assert_eq!(r.latencies_us.len(), 300);
        assert!(r.msgs_per_node_s > 1.0);
        assert_eq!(r.node_bytes, std::mem::size_of::<Node>());
        let text = render(&a, &r);
        assert!(text.contains("300 succeeded (100.00%)"), "{text}");
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

    /// Durability under heavy churn (20 % of 200 nodes crash and as many join per virtual
    /// minute: one of each every 1.5 s), two seeds: every acknowledged key reads back. Before
    /// handover was fixed (an offer of a key to its new owner, refused once because the
    /// joiner's view had not settled, was never made again), these runs lost 9 and 17 keys,
    /// each still held by a live node that no get reached.
    #[test]
    fn test_acknowledged_keys_survive_heavy_churn() {
        for seed in ["1", "3"] {
            let a = args(&[
                "--nodes",
                "200",
                "--churn",
                "20",
                "--duration-s",
                "60",
                "--rate",
                "50",
                "--seed",
                seed,
            ]);
            let r = simulate(&a);
            assert!(r.churned.0 >= 39, "{:?}", r.churned);
            let b = r.readback;
            assert!(b.keys > 600, "seed {seed}: {b:?}");
            assert_eq!((b.lost, b.unanswered), (0, 0), "seed {seed}: {b:?}");
            assert_eq!(b.intact, b.keys, "seed {seed}: {b:?}");
            // And the ring is one ring at the end: every joiner got in. Seed 1 had 12 nodes
            // with a wrong successor before failed joins were made again, 4 before an
            // insertion forwarded to a routing-table entry probed it (a crashed entry
            // swallowed every join near it).
            assert_eq!(r.successors_right, (200, 200), "seed {seed}");
            assert_eq!(r.rejoins, r.joins_failed, "seed {seed}");
        }
    }

    /// A run that does lose keys (24 nodes, a crash and a join every 1.25 s): the read-back
    /// says why. For each, every node that held a copy crashed (the owner and both replicas,
    /// 3 or more within seconds), and `--show-lost` tells each key's story.
    #[test]
    fn test_a_key_whose_every_copy_crashed_is_reported_as_such() {
        let a = args(&[
            "--nodes",
            "24",
            "--churn",
            "200",
            "--duration-s",
            "30",
            "--rate",
            "20",
            "--seed",
            "3",
            "--show-lost",
        ]);
        let r = simulate(&a);
        let b = &r.readback;
        assert!(b.lost > 0, "{b:?}");
        assert_eq!(
            (b.gone, b.gone_all_copies_crashed),
            (b.lost, b.lost),
            "{b:?}"
        );
        assert!(b.gone_crash_window_s > 0.0 && b.gone_crash_window_s < 15.0);
        assert_eq!(b.stories.len(), b.lost as usize);
        for story in &b.stories {
            assert!(
                story.contains("read no value; held by []") && story.contains(" acked"),
                "{story}"
            );
        }
        let text = render(&a, &r);
        assert!(text.contains(&format!(
            "{} of which lost every copy: 3 nodes holding one crashed",
            b.lost
        )));
        assert!(text.contains(b.stories[0].as_str()));
    }

    /// `--partition`: half the nodes cut off for 40 s (longer than a tombstone), then healed.
    /// The run reports the cut, and the ring is one ring again by the end. What a partition
    /// costs is shown, not hidden: both sides act as owners meanwhile, so some writes
    /// acknowledged on one side are lost, and a lock can be granted on both sides (this seed:
    /// 2 keys lost, 4 grants while the other side held the lock) — see README, *Partitions*.
    #[test]
    fn test_a_partition_is_reported_and_healed() {
        let a = args(&[
            "--nodes",
            "24",
            "--duration-s",
            "80",
            "--rate",
            "20",
            "--partition",
            "50",
            "--partition-at-s",
            "5",
            "--partition-s",
            "40",
            "--locks",
            "10",
        ]);
        let r = simulate(&a);
        assert_eq!(r.partitioned, 12);
        assert_eq!(r.successors_right, (24, 24), "the ring is whole again");
        let text = render(&a, &r);
        assert!(
            text.contains(
                "partition: 12 nodes cut off from the rest 5 s into the requests, for 40 s"
            ) && text.contains("24 of 24 live nodes have their true successor")
                && text.contains("(whole)"),
            "{text}"
        );
        assert!(r.readback.lost > 0 && r.locks.held_twice > 0, "{text}");
    }

    #[test]
    fn test_churn_locks_and_read_back_are_reported() {
        let a = args(&[
            "--nodes",
            "32",
            "--churn",
            "10",
            "--duration-s",
            "30",
            "--rate",
            "50",
            "--locks",
            "20",
        ]);
        let r = simulate(&a);
        // 10 % of 32 nodes a minute for 30 s: one crash and one join every 18.75 s.
        assert_eq!(r.churned, (1, 1), "{r:?}");
        assert_eq!(r.ops + r.locks.requested + r.origin_crashed, 1_500, "{r:?}");
        assert!(
            r.locks.granted > 0 && r.locks.held_twice == 0,
            "{:?}",
            r.locks
        );
        let b = &r.readback;
        assert!(b.keys > 100, "{b:?}");
        assert_eq!(b.intact + b.lost + b.unanswered, b.keys, "{b:?}");
        assert!(r.background_per_node_s > 0.0 && r.background_per_node_s < r.msgs_per_node_s);
        let text = render(&a, &r);
        for line in [
            "churn: 10%",
            "hop histogram:",
            "read-back of every",
            "locks: ",
            "background",
        ] {
            assert!(text.contains(line), "{line}: {text}");
        }
    }
}
