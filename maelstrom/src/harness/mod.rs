//! A harness that plays Maelstrom's part for any node executable: it starts `--node-count`
//! copies as child processes, sends each `init`, runs Maelstrom's network between them (zero
//! latency to clients, a latency distribution between servers, per-destination queues ordered
//! by delivery time, partitions), hosts the services (`lin-kv`, `seq-kv`, `lww-kv`,
//! `lin-tso`) in-process, injects faults (partition, kill, pause), drives the workload's
//! clients at `--rate` for `--time-limit`, heals, waits, performs the final reads, and checks
//! the history with [`crate::check`].
//!
//! This is sinew's reproduction of Maelstrom, not Maelstrom: the semantics follow Maelstrom's
//! source (`net.clj`, `client.clj`, `core.clj`, the workloads), the checkers are sinew's own.
//! It runs in real time; `--seed` fixes every random choice (latencies, operations, faults),
//! but real processes add scheduling jitter, so two runs with one seed may differ in timing
//! and therefore in history.
//!
//! ```no_run
//! use sinew_maelstrom::harness::{Options, run};
//! use sinew_maelstrom::history::WorkloadName;
//!
//! let mut options = Options::new(WorkloadName::Echo, "target/release/sinew-maelstrom-echo");
//! options.node_count = 3;
//! options.time_limit = std::time::Duration::from_secs(5);
//! let outcome = run(&options).expect("the nodes started");
//! print!("{}", outcome.summary());
//! ```

mod engine;
mod generator;
mod nemesis;
mod net;
mod process;
mod rng;
mod summary;

use std::path::PathBuf;
use std::time::Duration;

use crate::check::{CheckOptions, Report, Validity};
use crate::history::{Op, WorkloadName};

pub use nemesis::Faults;
pub use net::{Counts, LatencyDist, NetStats};
pub use summary::Quantiles;

/// The `topology` a broadcast test hands its nodes (Maelstrom's `--topology`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum BroadcastTopology {
    /// A square-ish grid, each node with up to four neighbours (Maelstrom's default).
    #[default]
    Grid,
    /// A line: each node with the one before and the one after.
    Line,
    /// Every node neighbours every other.
    Total,
}

impl std::str::FromStr for BroadcastTopology {
    type Err = String;

    fn from_str(s: &str) -> Result<BroadcastTopology, String> {
        match s {
            "grid" => Ok(BroadcastTopology::Grid),
            "line" => Ok(BroadcastTopology::Line),
            "total" => Ok(BroadcastTopology::Total),
            _ => Err(format!("unknown topology {s:?}; one of grid, line, total")),
        }
    }
}

impl BroadcastTopology {
    /// Each node's neighbours, by index, for `n` nodes.
    pub fn neighbours(self, n: usize) -> Vec<Vec<usize>> {
        match self {
            BroadcastTopology::Total => (0..n)
                .map(|i| (0..n).filter(|j| *j != i).collect())
                .collect(),
            BroadcastTopology::Line => (0..n)
                .map(|i| {
                    [i.checked_sub(1), (i + 1 < n).then_some(i + 1)]
                        .into_iter()
                        .flatten()
                        .collect()
                })
                .collect(),
            BroadcastTopology::Grid => {
                let side = (1..=n).find(|s| s * s >= n).unwrap_or(1);
                (0..n)
                    .map(|i| {
                        let (row, col) = (i / side, i % side);
                        let mut v = Vec::new();
                        if row > 0 {
                            v.push(i - side);
                        }
                        if i + side < n {
                            v.push(i + side);
                        }
                        if col > 0 {
                            v.push(i - 1);
                        }
                        if col + 1 < side && i + 1 < n {
                            v.push(i + 1);
                        }
                        v
                    })
                    .collect()
            }
        }
    }
}

/// A test's settings: Maelstrom's flags, with Maelstrom's defaults.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Options {
    /// `-w`: the workload.
    pub workload: WorkloadName,
    /// `--bin`: the node executable.
    pub bin: PathBuf,
    /// Arguments for `bin` (Maelstrom passes none; `sinew maelstrom broadcast` needs one).
    pub args: Vec<String>,
    /// `--node-count` (default 5, Jepsen's n1…n5; named `n0`… here as Maelstrom does).
    pub node_count: usize,
    /// `--time-limit` (default 60 s, Jepsen's).
    pub time_limit: Duration,
    /// `--rate`: operations per second over all clients (default 5).
    pub rate: f64,
    /// `--concurrency`: clients (default one per node).
    pub concurrency: usize,
    /// `--latency`: the mean latency between servers (default 0).
    pub latency: Duration,
    /// `--latency-dist` (default constant).
    pub latency_dist: LatencyDist,
    /// `--p-loss`: the chance that a message between two nodes is lost (default 0). Messages
    /// to and from clients and services are never lost, as in Maelstrom.
    pub p_loss: f64,
    /// `--nemesis` (default none).
    pub nemesis: Faults,
    /// `--nemesis-interval`: mean time between faults flipping (default 10 s).
    pub nemesis_interval: Duration,
    /// What the checkers are told: `--availability total` (`total_availability`),
    /// `--consistency-models` (`txn_consistency`), ….
    pub check: CheckOptions,
    /// `--topology` for broadcast (default grid).
    pub topology: BroadcastTopology,
    /// `--seed`: every random choice of the run (default 0).
    pub seed: u64,
    /// `--log-dir`: where the history and node logs go (default
    /// `store/<workload>/<timestamp>`, as Maelstrom's `store/`).
    pub log_dir: Option<PathBuf>,
    /// How long to wait after healing before the final reads (Maelstrom: 10 s).
    pub recovery_time: Duration,
    /// How long a client waits for a reply (Maelstrom: 5 s).
    pub timeout: Duration,
    /// How long a node may take to answer `init` (and `topology`).
    pub init_timeout: Duration,
}

impl Options {
    /// Maelstrom's defaults for `workload` run against `bin`.
    pub fn new(workload: WorkloadName, bin: impl Into<PathBuf>) -> Options {
        Options {
            workload,
            bin: bin.into(),
            args: Vec::new(),
            node_count: 5,
            time_limit: Duration::from_secs(60),
            rate: 5.0,
            concurrency: 5,
            latency: Duration::ZERO,
            latency_dist: LatencyDist::Constant,
            p_loss: 0.0,
            nemesis: Faults::NONE,
            nemesis_interval: Duration::from_secs(10),
            check: CheckOptions::default(),
            topology: BroadcastTopology::Grid,
            seed: 0,
            log_dir: None,
            recovery_time: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
            init_timeout: Duration::from_secs(10),
        }
    }

    fn validate(&self) -> Result<(), HarnessError> {
        let bad = |s: &str| Err(HarnessError::Options(s.to_owned()));
        if self.node_count == 0 {
            return bad("--node-count must be at least 1");
        }
        if self.concurrency == 0 {
            return bad("--concurrency must be at least 1");
        }
        if !self.rate.is_finite() || self.rate < 0.0 {
            return bad("--rate must be a non-negative number");
        }
        if !(0.0..=1.0).contains(&self.p_loss) {
            return bad("--p-loss must be a probability, 0 to 1");
        }
        if self.nemesis.any() && self.nemesis_interval.is_zero() {
            return bad("--nemesis-interval must be positive");
        }
        Ok(())
    }
}

/// Why a run could not be carried out (a run that found anomalies is an [`Outcome`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum HarnessError {
    /// The options are inconsistent.
    Options(String),
    /// The node executable could not be started.
    Spawn {
        /// The executable.
        bin: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A node did not answer `init` (or, for broadcast, `topology`) in time.
    NoInitReply {
        /// The node (`n0`).
        node: String,
        /// The message it did not answer.
        request: &'static str,
        /// How long it was given.
        waited: Duration,
    },
    /// A node's process exited before it answered `init`.
    ExitedDuringInit {
        /// The node.
        node: String,
    },
    /// The log directory or a file in it could not be written.
    Log {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl std::fmt::Display for HarnessError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HarnessError::Options(s) => f.write_str(s),
            HarnessError::Spawn { bin, source } => {
                write!(f, "{}: cannot start: {source}", bin.display())
            }
            HarnessError::NoInitReply {
                node,
                request,
                waited,
            } => write!(
                f,
                "{node} did not answer {request} within {} ms (see its log)",
                waited.as_millis()
            ),
            HarnessError::ExitedDuringInit { node } => {
                write!(f, "{node} exited before it answered init (see its log)")
            }
            HarnessError::Log { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl std::error::Error for HarnessError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HarnessError::Spawn { source, .. } | HarnessError::Log { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Operations by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct OpCounts {
    /// Invocations.
    pub count: u64,
    /// `Ok` completions.
    pub ok: u64,
    /// `Fail` completions.
    pub fail: u64,
    /// `Info` completions (and invocations the run never completed).
    pub info: u64,
}

/// What the nemesis did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NemesisStats {
    /// Partitions started.
    pub partitions: u64,
    /// Node processes killed.
    pub kills: u64,
    /// Node processes restarted that answered their fresh `init`.
    pub restarts: u64,
    /// Node processes paused.
    pub pauses: u64,
    /// Every fault event, with its time since the start, for a human.
    pub log: Vec<String>,
}

/// A finished run: the history, the checkers' report and the network's figures.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Outcome {
    /// The workload.
    pub workload: WorkloadName,
    /// Every operation, invocations and completions.
    pub history: Vec<Op>,
    /// The checkers' report (`valid` is the run's `:valid?`).
    pub report: Report,
    /// Operations by outcome.
    pub ops: OpCounts,
    /// The network's counts.
    pub net: NetStats,
    /// Latency of `Ok` operations, in milliseconds.
    pub latency: Option<Quantiles>,
    /// What the nemesis did.
    pub nemesis: NemesisStats,
    /// Where the history, the summary and the node logs were written.
    pub log_dir: PathBuf,
}

impl Outcome {
    /// The run's verdict: only `Valid` is valid (`Unknown` is not).
    pub fn valid(&self) -> Validity {
        self.report.valid
    }

    /// Messages per operation, all messages counted (Maelstrom's `:net :all :msgs-per-op`).
    pub fn msgs_per_op(&self) -> f64 {
        per_op(self.net.all.send_count, self.ops.count)
    }

    /// Messages between servers per operation (Maelstrom's `:net :servers :msgs-per-op`,
    /// Fly.io's efficiency figure).
    pub fn server_msgs_per_op(&self) -> f64 {
        per_op(self.net.servers.send_count, self.ops.count)
    }

    /// The path of the history file.
    pub fn history_path(&self) -> PathBuf {
        self.log_dir.join("history.jsonl")
    }
}

/// `now + d`, saturating at a century from now (an `Instant` cannot hold more).
pub(crate) fn later(now: std::time::Instant, d: Duration) -> std::time::Instant {
    const FAR: Duration = Duration::from_secs(100 * 365 * 86_400);
    now.checked_add(d.min(FAR)).unwrap_or(now)
}

fn per_op(messages: u64, ops: u64) -> f64 {
    if ops == 0 {
        0.0
    } else {
        messages as f64 / ops as f64
    }
}

/// Runs one test. `Err` when it could not run (options, a node that cannot be started or does
/// not answer `init`, an unwritable log directory); otherwise the outcome, valid or not.
pub fn run(options: &Options) -> Result<Outcome, HarnessError> {
    options.validate()?;
    engine::Engine::start(options)?.run()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_later_saturates() {
        let now = std::time::Instant::now();
        assert_eq!(
            later(now, Duration::from_secs(1)),
            now + Duration::from_secs(1)
        );
        assert!(later(now, Duration::MAX) > now);
    }

    #[test]
    fn test_grid_topology_is_maelstroms() {
        let g = BroadcastTopology::Grid.neighbours(5);
        // A 3-wide grid: n0 n1 n2 / n3 n4.
        assert_eq!(g[0], [3, 1]);
        assert_eq!(g[1], [4, 0, 2]);
        assert_eq!(g[2], [1]);
        assert_eq!(g[4], [1, 3]);
        assert_eq!(
            BroadcastTopology::Line.neighbours(3),
            [vec![1], vec![0, 2], vec![1]]
        );
        assert_eq!(BroadcastTopology::Total.neighbours(3)[1], [0, 2]);
        let mut o = Options::new(WorkloadName::Echo, "x");
        o.nemesis_interval = Duration::MAX;
        o.timeout = Duration::MAX;
        assert!(o.validate().is_ok());
        o.rate = f64::NAN;
        assert!(matches!(o.validate(), Err(HarnessError::Options(_))));
    }
}
