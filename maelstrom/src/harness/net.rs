//! The network between clients, nodes and services: clients talk to nodes at once (Maelstrom
//! keeps them co-located, since client latency hides anomalies); every other message waits a
//! latency drawn from the distribution, in its destination's queue ordered by delivery time.
//! A partition cuts node↔node messages across it, when sent and when due.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::later;
use super::rng::Rng;

/// How inter-node latencies are drawn around `--latency` (Maelstrom's `--latency-dist`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LatencyDist {
    /// Always the mean.
    #[default]
    Constant,
    /// Uniform in `[0, 2 × mean]`.
    Uniform,
    /// Exponential with that mean.
    Exponential,
}

impl std::str::FromStr for LatencyDist {
    type Err = String;

    fn from_str(s: &str) -> Result<LatencyDist, String> {
        match s {
            "constant" => Ok(LatencyDist::Constant),
            "uniform" => Ok(LatencyDist::Uniform),
            "exponential" => Ok(LatencyDist::Exponential),
            _ => Err(format!(
                "unknown latency distribution {s:?}; one of constant, uniform, exponential"
            )),
        }
    }
}

/// The longest latency drawn (an exponential's tail is cut here).
const MAX_LATENCY: Duration = Duration::from_secs(60);

impl LatencyDist {
    fn draw(self, mean: Duration, rng: &mut Rng) -> Duration {
        let d = match self {
            LatencyDist::Constant => return mean,
            LatencyDist::Uniform => mean.as_secs_f64() * 2.0 * rng.unit(),
            LatencyDist::Exponential => -mean.as_secs_f64() * (1.0 - rng.unit()).ln(),
        };
        Duration::try_from_secs_f64(d)
            .unwrap_or(MAX_LATENCY)
            .min(MAX_LATENCY)
    }
}

/// Message counts of one kind of traffic, as Maelstrom's `:net` stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Messages sent.
    pub send_count: u64,
    /// Messages delivered.
    pub recv_count: u64,
}

/// What the network saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NetStats {
    /// Every message (after `init`).
    pub all: Counts,
    /// Messages to or from a client.
    pub clients: Counts,
    /// Messages between servers (nodes and services).
    pub servers: Counts,
    /// Node↔node messages dropped by a partition.
    pub dropped_by_partition: u64,
    /// Node↔node messages lost (`--p-loss`).
    pub dropped_by_loss: u64,
    /// Messages to a node that was down (killed, not yet restarted).
    pub dropped_node_down: u64,
    /// Messages to a destination that does not exist.
    pub unknown_destination: u64,
    /// Lines from nodes that are not messages, per node.
    pub malformed: Vec<u64>,
    /// Replies to a client request that had already completed (timed out) or never existed.
    pub unexpected_replies: u64,
    /// Lines whose `src` is not the node that wrote them: dropped, never delivered (a node
    /// cannot speak for another node).
    pub forged_src: u64,
    /// Replies to a client from a node other than the one the client asked: dropped (they
    /// cannot complete its operation).
    pub wrong_node_replies: u64,
}

impl NetStats {
    /// Malformed lines from every node.
    pub fn malformed_total(&self) -> u64 {
        self.malformed.iter().sum()
    }
}

/// A message in flight.
#[derive(Debug)]
pub(crate) struct InFlight {
    pub(crate) due: Instant,
    seq: u64,
    /// The sending node, for partitions (`None`: a service).
    pub(crate) from_node: Option<usize>,
    pub(crate) line: String,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &InFlight) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}

impl Eq for InFlight {}

impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &InFlight) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for InFlight {
    /// Reversed: the earliest due is the greatest, at the top of the max-heap.
    fn cmp(&self, other: &InFlight) -> Ordering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

/// Queues per destination (nodes, then services), the partition, the counts.
#[derive(Debug)]
pub(crate) struct Network {
    nodes: usize,
    latency: Duration,
    dist: LatencyDist,
    p_loss: f64,
    rng: Rng,
    queues: Vec<BinaryHeap<InFlight>>,
    seq: u64,
    /// Per node, its side of the partition (`None`: no partition).
    sides: Option<Vec<u8>>,
    pub(crate) stats: NetStats,
}

impl Network {
    pub(crate) fn new(
        nodes: usize,
        services: usize,
        latency: Duration,
        dist: LatencyDist,
        p_loss: f64,
        seed: u64,
    ) -> Network {
        Network {
            nodes,
            latency,
            dist,
            p_loss,
            rng: Rng::new(seed, 1),
            queues: (0..nodes + services).map(|_| BinaryHeap::new()).collect(),
            seq: 0,
            sides: None,
            stats: NetStats {
                malformed: vec![0; nodes],
                ..NetStats::default()
            },
        }
    }

    /// Cuts the nodes into sides (`sides[node]`), or heals (`None`).
    pub(crate) fn partition(&mut self, sides: Option<Vec<u8>>) {
        self.sides = sides;
    }

    /// Whether a partition is in force.
    pub(crate) fn is_partitioned(&self) -> bool {
        self.sides.is_some()
    }

    fn cut(&self, from: Option<usize>, to: usize) -> bool {
        match (&self.sides, from) {
            (Some(sides), Some(from)) if to < self.nodes => sides.get(from) != sides.get(to),
            _ => false,
        }
    }

    /// Counts a message to or from a client (delivered at once by the caller).
    pub(crate) fn count_client(&mut self, delivered: bool) {
        for c in [&mut self.stats.all, &mut self.stats.clients] {
            c.send_count += 1;
            c.recv_count += u64::from(delivered);
        }
    }

    /// Sends `line` from a node (`from_node`) or a service (`None`) to queue `to` (a node's
    /// index, or `nodes + service`), delayed by a drawn latency.
    pub(crate) fn send(&mut self, now: Instant, from_node: Option<usize>, to: usize, line: String) {
        self.stats.all.send_count += 1;
        self.stats.servers.send_count += 1;
        if self.cut(from_node, to) {
            self.stats.dropped_by_partition += 1;
            return;
        }
        if to >= self.queues.len() {
            self.stats.unknown_destination += 1;
            return;
        }
        // Only node↔node messages are lost; services and clients are reliable.
        if self.p_loss > 0.0
            && from_node.is_some()
            && to < self.nodes
            && self.rng.unit() < self.p_loss
        {
            self.stats.dropped_by_loss += 1;
            return;
        }
        let Some(queue) = self.queues.get_mut(to) else {
            self.stats.unknown_destination += 1;
            return;
        };
        let delay = self.dist.draw(self.latency, &mut self.rng);
        self.seq += 1;
        queue.push(InFlight {
            due: later(now, delay),
            seq: self.seq,
            from_node,
            line,
        });
    }

    /// When the next message is due.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.queues
            .iter()
            .filter_map(|q| q.peek().map(|m| m.due))
            .min()
    }

    /// A message due by `now` and its destination queue; one cut by a partition meanwhile is
    /// dropped and counted here.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(usize, InFlight)> {
        loop {
            let (to, _) = self
                .queues
                .iter()
                .enumerate()
                .filter_map(|(i, q)| q.peek().map(|m| (i, m.due)))
                .filter(|(_, due)| *due <= now)
                .min_by_key(|(_, due)| *due)?;
            let message = self.queues[to].pop()?;
            if self.cut(message.from_node, to) {
                self.stats.dropped_by_partition += 1;
                continue;
            }
            self.stats.all.recv_count += 1;
            self.stats.servers.recv_count += 1;
            return Some((to, message));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_queue_orders_by_due_and_partition_drops_across_the_cut() {
        let t0 = Instant::now();
        let mut net = Network::new(
            3,
            1,
            Duration::from_millis(10),
            LatencyDist::Uniform,
            0.0,
            5,
        );
        for i in 0..50 {
            net.send(t0, Some(0), 1, format!("m{i}"));
        }
        let mut last = t0;
        let mut got = 0;
        while let Some((to, m)) = net.pop_due(t0 + Duration::from_millis(25)) {
            assert_eq!(to, 1);
            assert!(m.due >= last && m.due <= t0 + Duration::from_millis(20));
            last = m.due;
            got += 1;
        }
        assert_eq!(got, 50);
        net.send(t0, Some(0), 2, "in flight".into());
        net.partition(Some(vec![0, 0, 1]));
        net.send(t0, Some(0), 2, "cut at send".into());
        net.send(t0, Some(0), 1, "same side".into());
        net.send(t0, None, 2, "from a service".into());
        net.send(t0, Some(2), 3, "to a service".into());
        let far = t0 + Duration::from_secs(1);
        let mut lines: Vec<String> =
            std::iter::from_fn(|| net.pop_due(far).map(|(_, m)| m.line)).collect();
        lines.sort();
        assert_eq!(lines, ["from a service", "same side", "to a service"]);
        assert_eq!(net.stats.dropped_by_partition, 2);
        net.partition(None);
        net.send(t0, Some(0), 9, "nowhere".into());
        assert_eq!(net.stats.unknown_destination, 1);
    }

    #[test]
    fn test_loss_takes_only_node_to_node_messages_at_its_rate() {
        let t0 = Instant::now();
        let mut net = Network::new(3, 1, Duration::ZERO, LatencyDist::Constant, 0.25, 9);
        for i in 0..4000 {
            net.send(t0, Some(i % 3), (i + 1) % 3, "node to node".into());
        }
        for i in 0..300 {
            net.send(t0, Some(i % 3), 3, "to the service".into());
            net.send(t0, None, i % 3, "from the service".into());
        }
        let lost = net.stats.dropped_by_loss;
        assert!((850..=1150).contains(&lost), "{lost} of 4000 lost at 0.25");
        let delivered: Vec<String> =
            std::iter::from_fn(|| net.pop_due(t0).map(|(_, m)| m.line)).collect();
        assert_eq!(delivered.len() as u64, 4000 - lost + 600);
        let service = delivered.iter().filter(|l| l.contains("service")).count();
        assert_eq!(service, 600, "services are never lost");
        // And without loss, nothing is.
        let mut net = Network::new(3, 1, Duration::ZERO, LatencyDist::Constant, 0.0, 9);
        for i in 0..1000 {
            net.send(t0, Some(i % 3), (i + 1) % 3, "m".into());
        }
        assert_eq!(net.stats.dropped_by_loss, 0);
    }

    #[test]
    fn test_latency_distributions_keep_their_mean() {
        let mean = Duration::from_millis(100);
        for dist in [
            LatencyDist::Constant,
            LatencyDist::Uniform,
            LatencyDist::Exponential,
        ] {
            let mut rng = Rng::new(9, 0);
            let total: Duration = (0..4000).map(|_| dist.draw(mean, &mut rng)).sum();
            let avg = total.as_secs_f64() / 4000.0;
            assert!((avg - 0.1).abs() < 0.01, "{dist:?}: {avg}");
        }
        assert_eq!("uniform".parse::<LatencyDist>(), Ok(LatencyDist::Uniform));
        assert!("normal".parse::<LatencyDist>().is_err());
    }
}
