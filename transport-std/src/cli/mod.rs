//! The `sinew` command, as a library so that every subcommand can be tested.
//!
//! Each protocol family adds its subcommands here (`sinew zk …`, `sinew dht …`) and its
//! datagram or frame kinds to [`decode::DecodeCommand`] (`sinew decode zk-request …`).
//! Subcommands write to the writers they are given and return the process's exit code.

pub mod decode;
pub mod demo;
pub mod demo_dht;
pub mod dht;
pub mod format;
pub mod node;
pub mod ping;
pub mod zk;

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Parser, Subcommand};

/// sinew's protocols on std sockets: run, probe and inspect them.
#[derive(Debug, Parser)]
#[command(name = "sinew", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands, one or more per protocol family.
#[derive(Debug, Subcommand)]
#[non_exhaustive]
pub enum Command {
    /// Run local networks on loopback: health checks (discovery, failure, recovery), then a DHT
    /// ring (replicated puts, a crash, a contended lock, a leave).
    Demo(demo::DemoArgs),
    /// Run one health-check node, printing events and its table.
    Node(node::NodeArgs),
    /// Send health checks to a node and report round-trip times, like ping(8).
    Ping(ping::PingArgs),
    /// Decode one datagram given in hex and print every field.
    #[command(subcommand)]
    Decode(decode::DecodeCommand),
    /// A ZooKeeper client: create, get, set, delete, ls, stat, watch (as zkCli).
    Zk(zk::ZkArgs),
    /// The DHT: run a ring member, or put, get, lock and unlock keys through one.
    Dht(dht::DhtArgs),
}

/// Runs a parsed command line on the process's stdout and stderr; returns the exit code.
pub fn run(cli: Cli) -> u8 {
    let stdout = io::stdout();
    let stderr = io::stderr();
    let mut out = stdout.lock();
    let mut err = stderr.lock();
    let result = match cli.command {
        Command::Demo(args) => demo::run(&args, &mut out),
        Command::Node(args) => node::run(&args, &mut out, &interrupt_flag()),
        Command::Ping(args) => ping::run(&args, &mut out, &interrupt_flag()),
        Command::Decode(command) => return decode::run(&command, &mut out, &mut err),
        Command::Zk(args) => zk::run(&args, &mut out, &mut err, &interrupt_flag()),
        Command::Dht(args) => dht::run(&args, &mut out, &mut err, &interrupt_flag()),
    };
    let _ = out.flush();
    match result {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(err, "sinew: {e}");
            1
        }
    }
}

/// A flag that SIGINT (Ctrl-C) and SIGTERM set, so that a long-running command can stop and
/// print its summary; a second Ctrl-C ends the process at once.
pub fn interrupt_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    #[cfg(unix)]
    {
        use signal_hook::consts::{SIGINT, SIGTERM};
        use signal_hook::flag;
        for signal in [SIGINT, SIGTERM] {
            // Order matters: the conditional shutdown sees the flag as the first signal left it.
            let _ = flag::register_conditional_shutdown(signal, 130, Arc::clone(&flag));
            let _ = flag::register(signal, Arc::clone(&flag));
        }
    }
    flag
}

/// Whether `flag` has been set.
fn is_set(flag: &AtomicBool) -> bool {
    flag.load(Ordering::Relaxed)
}
