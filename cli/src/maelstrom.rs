//! `sinew maelstrom <workload>`: one Maelstrom node on stdin/stdout (what Maelstrom's `--bin`
//! runs), from `sinew-maelstrom`; and `sinew maelstrom test -w <workload> --bin <path> …`,
//! sinew's reproduction of Maelstrom's test runner (`sinew_maelstrom::harness`), with
//! Maelstrom's flags.

use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use sinew_maelstrom::broadcast::{self, Broadcast, Topology};
use sinew_maelstrom::check::Validity;
use sinew_maelstrom::check::rw_register::TxnConsistency;
use sinew_maelstrom::echo::Echo;
use sinew_maelstrom::g_counter::{self, GCounter};
use sinew_maelstrom::harness::{self, BroadcastTopology, Faults, HarnessError, LatencyDist};
use sinew_maelstrom::history;
use sinew_maelstrom::kafka::{self, Kafka};
use sinew_maelstrom::runtime;
use sinew_maelstrom::txn::{self, Txn};
use sinew_maelstrom::unique_ids::UniqueIds;
use sinew_maelstrom::{Node, Workload};

use crate::error::{EXIT_FAILED, EXIT_OK, Failure};

/// The workloads a node can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[non_exhaustive]
pub enum WorkloadName {
    /// `echo` → `echo_ok`.
    Echo,
    /// `generate` → `generate_ok {id}`, unique across nodes and restarts.
    UniqueIds,
    /// `topology`, `broadcast`, `read`, values spread by gossip.
    Broadcast,
    /// `add`, `read`, over the seq-kv service.
    GCounter,
    /// `send`, `poll`, `commit_offsets`, `list_committed_offsets`, over the lin-kv service.
    Kafka,
    /// `txn` → `txn_ok`, totally available, read committed.
    TxnRwRegister,
}

/// Options of `sinew maelstrom`.
#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct MaelstromArgs {
    /// `test`: run a Maelstrom test against a node executable instead of serving one.
    #[command(subcommand)]
    pub command: Option<MaelstromCommand>,
    /// The workload to serve.
    #[arg(value_enum, required = true)]
    pub workload: Option<WorkloadName>,
    /// broadcast: gossip with the neighbours of Maelstrom's `topology` message instead of a
    /// tree over the node ids.
    #[arg(long)]
    pub given_topology: bool,
    /// broadcast: children per node in the gossip tree (default: a star around the first node).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub fanout: Option<u64>,
    /// broadcast: how long new values wait to be batched, in milliseconds.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub gossip_ms: u64,
}

/// What `sinew maelstrom` can do besides serving a node.
#[derive(Debug, Clone, Subcommand)]
#[non_exhaustive]
pub enum MaelstromCommand {
    /// Test a node executable as Maelstrom does (sinew's reproduction of Maelstrom's network,
    /// faults and checkers): prints the results and exits 0 only when the history is valid.
    Test(TestArgs),
}

/// Options of `sinew maelstrom test`: Maelstrom's flag names and defaults.
#[derive(Debug, Clone, Args)]
pub struct TestArgs {
    /// The workload: echo, unique-ids, broadcast, g-counter, kafka, txn-rw-register, lin-kv.
    #[arg(short = 'w', long, value_parser = parse_workload)]
    pub workload: history::WorkloadName,
    /// The node executable (started with no arguments unless some follow `--`).
    #[arg(long)]
    pub bin: PathBuf,
    /// Arguments for the node executable, after `--`.
    #[arg(last = true)]
    pub bin_args: Vec<String>,
    /// How many nodes to run (named n0, n1, …).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub node_count: u64,
    /// How long the clients run, in seconds.
    #[arg(long, default_value_t = 60.0, value_parser = parse_seconds)]
    pub time_limit: f64,
    /// Operations per second, over all clients.
    #[arg(long, default_value_t = 5.0, value_parser = parse_rate)]
    pub rate: f64,
    /// Clients: a number, or `Nn` for N per node.
    #[arg(long, default_value = "1n")]
    pub concurrency: String,
    /// Mean latency of messages between servers, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency: u64,
    /// How latencies are drawn: constant, uniform or exponential.
    #[arg(long, default_value = "constant")]
    pub latency_dist: LatencyDist,
    /// The chance (0 to 1) that a message between two nodes is lost.
    #[arg(long, default_value_t = 0.0)]
    pub p_loss: f64,
    /// Faults to inject, comma-separated: partition, kill, pause.
    #[arg(long, default_value = "")]
    pub nemesis: Faults,
    /// Mean seconds between fault changes.
    #[arg(long, default_value_t = 10.0, value_parser = parse_seconds)]
    pub nemesis_interval: f64,
    /// `total`: every operation must succeed.
    #[arg(long, value_parser = ["total"])]
    pub availability: Option<String>,
    /// txn-rw-register: the consistency model checked: read-uncommitted or read-committed.
    #[arg(long, default_value = "read-committed")]
    pub consistency_models: TxnConsistency,
    /// broadcast: the topology handed to the nodes: grid, line or total.
    #[arg(long, default_value = "grid")]
    pub topology: BroadcastTopology,
    /// Seeds every random choice of the run (latencies, operations, faults).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Where the history, results and node logs go (default: `store/WORKLOAD/TIME`).
    #[arg(long)]
    pub log_dir: Option<PathBuf>,
    /// Seconds to wait after healing before the final reads (sinew's; Maelstrom waits 10).
    #[arg(long, default_value_t = 10.0, value_parser = parse_seconds)]
    pub recovery_time: f64,
}

fn parse_workload(s: &str) -> Result<history::WorkloadName, String> {
    s.parse()
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1e6).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a number of seconds (0 to 1000000)")),
    }
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a non-negative rate")),
    }
}

/// `--concurrency`: `10`, or `2n` for twice the node count (Maelstrom's forms).
fn concurrency(s: &str, nodes: usize) -> Result<usize, Failure> {
    let bad = || Failure::usage(format!("--concurrency {s:?}: a positive number, or Nn"));
    let n = match s.strip_suffix('n') {
        Some(per_node) => per_node
            .parse::<usize>()
            .map_err(|_| bad())?
            .checked_mul(nodes)
            .ok_or_else(bad)?,
        None => s.parse::<usize>().map_err(|_| bad())?,
    };
    if n == 0 { Err(bad()) } else { Ok(n) }
}

/// The harness's options for `args`.
pub fn test_options(args: &TestArgs) -> Result<harness::Options, Failure> {
    let mut o = harness::Options::new(args.workload, &args.bin);
    o.args = args.bin_args.clone();
    o.node_count = usize::try_from(args.node_count).unwrap_or(usize::MAX);
    o.concurrency = concurrency(&args.concurrency, o.node_count)?;
    o.time_limit = Duration::from_secs_f64(args.time_limit);
    o.rate = args.rate;
    o.latency = Duration::from_millis(args.latency);
    o.latency_dist = args.latency_dist;
    o.p_loss = args.p_loss;
    o.nemesis = args.nemesis;
    o.nemesis_interval = Duration::from_secs_f64(args.nemesis_interval);
    o.check.total_availability = args.availability.is_some();
    o.check.txn_consistency = args.consistency_models;
    o.topology = args.topology;
    o.seed = args.seed;
    o.log_dir = args.log_dir.clone();
    o.recovery_time = Duration::from_secs_f64(args.recovery_time);
    Ok(o)
}

/// Runs `sinew maelstrom test`: the results on `out`; 0 when valid, 1 when not (or unknown).
pub fn run_test(args: &TestArgs, out: &mut impl Write) -> Result<u8, Failure> {
    let options = test_options(args)?;
    let outcome = harness::run(&options).map_err(|e| match e {
        HarnessError::Options(_) | HarnessError::Spawn { .. } => Failure::usage(e.to_string()),
        _ => Failure::failed(e.to_string()),
    })?;
    out.write_all(outcome.summary().as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Failure::io("stdout", &e))?;
    Ok(if outcome.valid() == Validity::Valid {
        EXIT_OK
    } else {
        EXIT_FAILED
    })
}

/// Runs the node until stdin ends (lines on stdout, logs on stderr), or `sinew maelstrom test`.
pub fn run(args: &MaelstromArgs) -> Result<u8, Failure> {
    let workload = match (&args.command, args.workload) {
        (Some(MaelstromCommand::Test(test)), _) => return run_test(test, &mut io::stdout()),
        (None, Some(workload)) => workload,
        (None, None) => return Err(Failure::usage("a workload to serve, or `test`")),
    };
    match workload {
        WorkloadName::Echo => serve(Echo),
        WorkloadName::UniqueIds => {
            serve(UniqueIds::from_os().map_err(|e| Failure::io("random boot id", &e))?)
        }
        WorkloadName::Broadcast => {
            let topology = if args.given_topology {
                Topology::Given
            } else {
                Topology::Tree {
                    fanout: args
                        .fanout
                        .map_or(usize::MAX, |f| usize::try_from(f).unwrap_or(usize::MAX)),
                }
            };
            let config = broadcast::Config::new()
                .with_topology(topology)
                .with_gossip_interval(std::time::Duration::from_millis(args.gossip_ms));
            serve(Broadcast::new(config))
        }
        WorkloadName::GCounter => serve(GCounter::new(g_counter::Config::new())),
        WorkloadName::Kafka => serve(Kafka::new(kafka::Config::new())),
        WorkloadName::TxnRwRegister => serve(Txn::new(txn::Config::new())),
    }
}

fn serve<W: Workload>(workload: W) -> Result<u8, Failure> {
    runtime::run(Node::new(workload)).map_err(|e| Failure::io("stdout", &e))?;
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::{Cli, Command};

    fn test_args(line: &[&str]) -> Result<TestArgs, clap::Error> {
        let cli = Cli::try_parse_from(["sinew", "maelstrom"].iter().chain(line))?;
        match cli.command {
            Command::Maelstrom(MaelstromArgs {
                command: Some(MaelstromCommand::Test(t)),
                ..
            }) => Ok(t),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn test_maelstroms_flags_and_defaults() {
        let t = test_args(&[
            "test",
            "-w",
            "broadcast",
            "--bin",
            "./node",
            "--node-count",
            "25",
            "--time-limit",
            "20",
            "--rate",
            "100",
            "--latency",
            "100",
            "--latency-dist",
            "exponential",
            "--nemesis",
            "partition,pause",
            "--availability",
            "total",
            "--consistency-models",
            "read-uncommitted",
            "--",
            "--fanout",
            "4",
        ])
        .unwrap();
        let o = test_options(&t).unwrap();
        assert_eq!(o.workload, history::WorkloadName::Broadcast);
        assert_eq!((o.node_count, o.concurrency), (25, 25));
        assert_eq!(o.time_limit, Duration::from_secs(20));
        assert_eq!(o.latency, Duration::from_millis(100));
        assert_eq!(o.latency_dist, LatencyDist::Exponential);
        assert!(o.nemesis.partition && o.nemesis.pause && !o.nemesis.kill);
        assert!(o.check.total_availability);
        assert_eq!(o.check.txn_consistency, TxnConsistency::ReadUncommitted);
        assert_eq!(o.args, ["--fanout", "4"]);
        let d = test_options(&test_args(&["test", "-w", "echo", "--bin", "x"]).unwrap()).unwrap();
        assert_eq!((d.node_count, d.concurrency, d.rate), (5, 5, 5.0));
        assert_eq!(d.time_limit, Duration::from_secs(60));
        assert_eq!(d.nemesis_interval, Duration::from_secs(10));
        assert!(!d.check.total_availability);
        assert_eq!(d.check.txn_consistency, TxnConsistency::ReadCommitted);
        assert!(test_args(&["test", "-w", "kv", "--bin", "x"]).is_err());
        assert!(test_args(&["test", "-w", "echo", "--bin", "x", "--nemesis", "clock"]).is_err());
        assert!(test_args(&["test", "-w", "echo", "--bin", "x", "--availability", "0.9"]).is_err());
        // Serving a node still parses as before.
        let cli = Cli::try_parse_from(["sinew", "maelstrom", "echo"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Maelstrom(MaelstromArgs {
                workload: Some(WorkloadName::Echo),
                command: None,
                ..
            })
        ));
        assert!(Cli::try_parse_from(["sinew", "maelstrom"]).is_err());
    }

    #[test]
    fn test_concurrency_forms() {
        assert_eq!(concurrency("2n", 5).unwrap(), 10);
        assert_eq!(concurrency("7", 5).unwrap(), 7);
        for bad in ["0", "0n", "n", "x", "99999999999999999999n"] {
            assert_eq!(
                concurrency(bad, 5).unwrap_err().code,
                crate::error::EXIT_USAGE,
                "{bad}"
            );
        }
    }

    #[test]
    fn test_a_missing_binary_is_a_usage_error() {
        let dir = std::env::temp_dir().join(format!("sinew-cli-mtest-{}", std::process::id()));
        let t = test_args(&[
            "test",
            "-w",
            "echo",
            "--bin",
            "/nonexistent/node",
            "--log-dir",
            dir.to_str().unwrap(),
        ])
        .unwrap();
        let mut out = Vec::new();
        let e = run_test(&t, &mut out).unwrap_err();
        assert_eq!(e.code, crate::error::EXIT_USAGE);
        assert!(
            e.message.contains("/nonexistent/node: cannot start"),
            "{}",
            e.message
        );
        assert!(out.is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }
}
