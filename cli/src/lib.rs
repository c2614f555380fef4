//! The `sinew` command, as a library so that every subcommand can be tested.
//!
//! Each protocol family adds its subcommands here (`sinew zk …`, `sinew dht …`) and its
//! datagram or frame kinds to [`decode::DecodeCommand`] (`sinew decode zk-request …`).
//! Subcommands write to the writers they are given and return the process's exit code.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod decode;
pub mod demo;
pub mod demo_dht;
pub mod dht;
pub mod dht_sim;
pub mod error;
pub mod format;
pub mod json;
pub mod key;
pub mod maelstrom;
pub mod node;
pub mod ping;
pub mod zk;

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Parser, Subcommand};

use error::Failure;

/// sinew's protocols on std sockets: run, probe and inspect them.
#[derive(Debug, Parser)]
#[command(name = "sinew", version, after_help = error::EXIT_CODES_HELP)]
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
    /// Decode one datagram or frame given in hex (arguments, or stdin) and print every field.
    #[command(subcommand)]
    Decode(decode::DecodeCommand),
    /// A ZooKeeper client with zkCli's commands (create, get, set, ls, getAcl, setAcl, …).
    Zk(zk::ZkArgs),
    /// The DHT: run a ring member, or put, get, lock and unlock keys through one.
    Dht(dht::DhtArgs),
    /// Print a fresh key for sealed datagrams (64 hex digits, a line for a --key-file).
    Keygen(key::KeygenArgs),
    /// Serve a Maelstrom workload on stdin/stdout (JSON lines), as Maelstrom's --bin runs it; or
    /// `test`: run any node binary under sinew's reproduction of Maelstrom's network, faults and
    /// checkers.
    Maelstrom(maelstrom::MaelstromArgs),
}

/// Runs a parsed command line on the process's stdin, stdout and stderr; returns the exit
/// code ([`error`] lists them). A failure is one line on stderr, `sinew: ` and what happened.
pub fn run(cli: Cli) -> u8 {
    // Before stdin is locked below: the node's reader thread needs it.
    if let Command::Maelstrom(args) = &cli.command {
        return finish(maelstrom::run(args), &mut io::stderr());
    }
    let stdout = io::stdout();
    let stderr = io::stderr();
    let stdin = io::stdin();
    let mut out = Output::new(stdout.lock());
    let mut err = stderr.lock();
    let mut input = stdin.lock();
    let result = match cli.command {
        Command::Demo(args) => demo::run(&args, &mut out).map_err(Failure::from),
        Command::Node(args) => node::run(&args, &mut out, &interrupt_flag()),
        Command::Ping(args) => ping::run(&args, &mut out, &interrupt_flag()),
        Command::Decode(command) => decode::run(&command, &mut out, &mut input),
        Command::Zk(args) => zk::run(&args, &mut out, &mut err, &mut input, &interrupt_flag()),
        Command::Dht(args) => dht::run(&args, &mut out, &mut err, &interrupt_flag()),
        Command::Keygen(args) => key::run_keygen(&args, &mut out),
        // Served above, before stdin was locked.
        Command::Maelstrom(args) => maelstrom::run(&args),
    };
    let _ = out.flush();
    if out.reader_gone {
        // `sinew … | head -1`: the reader took what it wanted and left. That is not a
        // failure of the command, and there is nobody to tell (ripgrep's convention).
        return error::EXIT_OK;
    }
    finish(result, &mut err)
}

/// The process's stdout, noting whether its reader went away (a write failed with
/// `BrokenPipe`: the other end of a pipe was closed).
struct Output<W> {
    inner: W,
    reader_gone: bool,
}

impl<W: Write> Output<W> {
    fn new(inner: W) -> Self {
        Output {
            inner,
            reader_gone: false,
        }
    }

    fn note<T>(&mut self, result: io::Result<T>) -> io::Result<T> {
        if let Err(e) = &result
            && e.kind() == io::ErrorKind::BrokenPipe
        {
            self.reader_gone = true;
        }
        result
    }
}

impl<W: Write> Write for Output<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let r = self.inner.write(buf);
        self.note(r)
    }

    fn flush(&mut self) -> io::Result<()> {
        let r = self.inner.flush();
        self.note(r)
    }
}

/// The exit code of a command's result; a failure is printed on `err` first.
fn finish(result: Result<u8, Failure>, err: &mut impl Write) -> u8 {
    match result {
        Ok(code) => code,
        Err(failure) => {
            let _ = writeln!(err, "sinew: {failure}");
            failure.code
        }
    }
}

/// Parses the process's arguments; a usage error is printed in the CLI's one style
/// (`sinew: …`, clap's hints after it) and ends the process with exit code 2 ([`error`]);
/// `--help` and `--version` print and exit 0.
pub fn parse_args() -> Cli {
    match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            let text = e.render().to_string();
            let text = text.strip_prefix("error: ").unwrap_or(&text);
            let _ = write!(io::stderr(), "sinew: {text}");
            std::process::exit(i32::from(error::EXIT_USAGE));
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
