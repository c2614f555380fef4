//! `sinew node`: one health-check node, printing its events and, every few seconds, its table.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant as StdInstant};

use clap::Args;
use sinew_proto::health::{Config, HostInfo};

use super::{format, is_set};
use sinew_transport_std::UdpHealthNode;

use crate::error::{Failure, plural};
use crate::key::{self, KeyArgs};

/// Options of `sinew node`.
#[derive(Debug, Clone, Args)]
pub struct NodeArgs {
    /// The address to bind, such as 0.0.0.0:7000 (port 0: any free port).
    #[arg(long)]
    pub bind: SocketAddr,
    /// A node of the network to join through (repeat for several).
    #[arg(long = "seed", value_name = "ADDR")]
    pub seeds: Vec<SocketAddr>,
    /// How often each host in the table is checked, in milliseconds.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub check_ms: u64,
    /// How long a check waits for its response, in milliseconds.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_ms: u64,
    /// How often a healthy host is asked for its table, in milliseconds.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..))]
    pub table_ms: u64,
    /// Print the network table every this many seconds (0: never).
    #[arg(long, default_value_t = 5)]
    pub print_table_s: u64,
    /// Do not probe (and so never add) the senders of requests from unknown addresses.
    #[arg(long)]
    pub no_learn: bool,
    /// Stop after this many seconds instead of running until Ctrl-C.
    #[arg(long, value_name = "SECS")]
    pub exit_after: Option<u64>,
    /// Keys for sealed datagrams.
    #[command(flatten)]
    pub key: KeyArgs,
}

/// Runs the node until `stop` is set (Ctrl-C) or `--exit-after` passes; prints its counters at
/// the end. Returns the exit code.
///
/// # Errors
/// The address that cannot be bound and why; too many seeds; `out` failing.
pub fn run(args: &NodeArgs, out: &mut dyn Write, stop: &AtomicBool) -> Result<u8, Failure> {
    let config = Config::new()
        .with_check_interval(Duration::from_millis(args.check_ms))
        .with_response_timeout(Duration::from_millis(args.timeout_ms))
        .with_table_interval(Duration::from_millis(args.table_ms))
        .with_learn_from_requests(!args.no_learn);
    let keyring = args.key.keyring()?;
    let keyed = !keyring.is_empty();
    let mut node = UdpHealthNode::bind_keyed(args.bind, config, keyring)
        .map_err(|e| Failure::caused(format!("bind {}", args.bind), e))?;
    for &seed in &args.seeds {
        node.add_seed(seed)?;
    }
    writeln!(
        out,
        "sinew node on {} (checks every {} ms, timeout {} ms, tables every {} ms{})",
        node.local_addr(),
        args.check_ms,
        args.timeout_ms,
        args.table_ms,
        if keyed { ", sealed" } else { "" }
    )?;
    for seed in &args.seeds {
        writeln!(out, "  seed {seed}")?;
    }
    out.flush()?;

    let end = args
        .exit_after
        .and_then(|s| StdInstant::now().checked_add(Duration::from_secs(s)));
    let table_every = (args.print_table_s > 0).then(|| Duration::from_secs(args.print_table_s));
    let mut error: Option<io::Error> = None;
    loop {
        let now = StdInstant::now();
        if is_set(stop) || end.is_some_and(|e| now >= e) {
            break;
        }
        let mut slice = table_every.unwrap_or(Duration::from_secs(3600));
        if let Some(e) = end {
            slice = slice.min(e.saturating_duration_since(now));
        }
        node.run_until(slice, |node| {
            while let Some(timed) = node.poll_event() {
                let text = format::event(&timed.event, |a| a.to_string());
                if let Err(e) = writeln!(out, "{} {text}", format::stamp(timed.at)) {
                    error.get_or_insert(e);
                }
            }
            error.is_some() || is_set(stop)
        })?;
        if let Some(e) = error.take() {
            return Err(e.into());
        }
        let ending = is_set(stop) || end.is_some_and(|e| StdInstant::now() >= e);
        if table_every.is_some() && !ending {
            write_table(out, &node)?;
        }
    }
    writeln!(out, "stopping")?;
    write_table(out, &node)?;
    format::write_counters_header(out)?;
    format::write_counters(
        out,
        &node.local_addr().to_string(),
        &node.stats(),
        node.socket_stats(),
    )?;
    if let Some(line) = key::seal_counters(&node.seal_stats(), keyed) {
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(0)
}

fn write_table(out: &mut dyn Write, node: &UdpHealthNode) -> io::Result<()> {
    let now = node.clock().now();
    let hosts: Vec<HostInfo> = node.hosts().copied().collect();
    writeln!(
        out,
        "{} table of {}: {}",
        format::stamp(now),
        node.local_addr(),
        plural(hosts.len() as u64, "host", "hosts")
    )?;
    format::write_table(out, &hosts, now, |a| a.to_string())?;
    out.flush()
}
