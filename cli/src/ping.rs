//! `sinew ping`: health checks to one node, reported like ping(8).

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant as StdInstant};

use clap::Args;
use sinew_proto::health::{Config, Event, HEALTH_LEN};
use sinew_proto::nonce::Nonce;

use super::{format, is_set};
use sinew_transport_std::{Error, UdpHealthNode};

use crate::error::{EXIT_UNAVAILABLE, Failure};
use crate::key::{self, KeyArgs};

/// Options of `sinew ping`.
///
/// The checks come from an ephemeral port that answers health checks too: a node that learns
/// from requests probes it back and keeps it in its table (Unhealthy once the ping is over).
#[derive(Debug, Clone, Args)]
pub struct PingArgs {
    /// The node to check, such as 127.0.0.1:7000 or localhost:7000.
    #[arg(value_name = "ADDR")]
    pub addr: String,
    /// Stop after this many checks (default: until Ctrl-C).
    #[arg(short, long, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Time between checks, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub interval: u64,
    /// How long to wait for each response, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
    /// Keys for sealed datagrams (the node must be keyed with one of them).
    #[command(flatten)]
    pub key: KeyArgs,
}

/// Round-trip statistics, as ping(8) reports them.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Summary {
    /// Checks sent.
    pub transmitted: u64,
    /// Responses received in time.
    pub received: u64,
    /// Round-trip times of the responses, in order.
    pub rtts: Vec<Duration>,
}

impl Summary {
    /// Lost checks as a percentage of those sent.
    pub fn loss_percent(&self) -> f64 {
        if self.transmitted == 0 {
            return 0.0;
        }
        (self.transmitted - self.received) as f64 * 100.0 / self.transmitted as f64
    }

    /// `(min, avg, max, mdev)` in milliseconds, mdev as ping(8) computes it: the square root
    /// of the mean of the squares minus the square of the mean.
    pub fn rtt_ms(&self) -> Option<(f64, f64, f64, f64)> {
        if self.rtts.is_empty() {
            return None;
        }
        let ms: Vec<f64> = self.rtts.iter().map(|r| r.as_secs_f64() * 1e3).collect();
        let n = ms.len() as f64;
        let min = ms.iter().copied().fold(f64::INFINITY, f64::min);
        let max = ms.iter().copied().fold(0.0, f64::max);
        let avg = ms.iter().sum::<f64>() / n;
        let mean_sq = ms.iter().map(|x| x * x).sum::<f64>() / n;
        let mdev = (mean_sq - avg * avg).max(0.0).sqrt();
        Some((min, avg, max, mdev))
    }
}

struct Pinger<'w> {
    out: &'w mut dyn Write,
    target: SocketAddr,
    timeout: u64,
    outstanding: HashMap<Nonce, u64>,
    summary: Summary,
    error: Option<io::Error>,
}

impl Pinger<'_> {
    fn on_event(&mut self, event: &Event) {
        let line = match *event {
            Event::Pong { nonce, rtt, .. } => {
                let Some(seq) = self.outstanding.remove(&nonce) else {
                    return;
                };
                self.summary.received += 1;
                self.summary.rtts.push(rtt);
                format!(
                    "{HEALTH_LEN} bytes from {}: seq={seq} time={} ms",
                    self.target,
                    format::millis(rtt)
                )
            }
            Event::PingTimeout { nonce, .. } => {
                let Some(seq) = self.outstanding.remove(&nonce) else {
                    return;
                };
                format!(
                    "no reply from {}: seq={seq} timeout after {} ms",
                    self.target, self.timeout
                )
            }
            _ => return,
        };
        if self.error.is_none()
            && let Err(e) = writeln!(self.out, "{line}").and_then(|()| self.out.flush())
        {
            self.error = Some(e);
        }
    }
}

/// Resolves `addr` (an address or `host:port`) to its first socket address.
///
/// # Errors
/// A usage failure for text that is not `HOST:PORT`, "unavailable" if the host does not
/// resolve.
pub fn resolve(addr: &str) -> Result<SocketAddr, Failure> {
    let mut addrs = addr.to_socket_addrs().map_err(|e| {
        if e.kind() == io::ErrorKind::InvalidInput {
            Failure::usage(format!("{addr}: not HOST:PORT ({e})"))
        } else {
            Failure::new(EXIT_UNAVAILABLE, format!("{addr}: {e}"))
        }
    })?;
    addrs
        .next()
        .ok_or_else(|| Failure::new(EXIT_UNAVAILABLE, format!("{addr}: no address")))
}

/// Pings until `--count` checks are answered or timed out, or until `stop` is set (Ctrl-C);
/// prints a line per reply or timeout and the summary. Exit code 0 if any reply came, else 1.
///
/// # Errors
/// The address that does not resolve, the socket that cannot be bound, or `out` failing.
pub fn run(args: &PingArgs, out: &mut dyn Write, stop: &AtomicBool) -> Result<u8, Failure> {
    let target = resolve(&args.addr)?;
    let bind = if target.is_ipv4() {
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
    } else {
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))
    };
    let never = Duration::from_secs(24 * 3600);
    let config = Config::new()
        .with_check_interval(never)
        .with_response_timeout(Duration::from_millis(args.timeout))
        .with_table_interval(never)
        .with_learn_from_requests(false);
    let keyring = args.key.keyring()?;
    let keyed = !keyring.is_empty();
    let mut node = UdpHealthNode::bind_keyed(bind, config, keyring)
        .map_err(|e| Failure::caused(format!("bind {bind}"), e))?;
    writeln!(
        out,
        "SINEW PING {target}: {HEALTH_LEN} bytes per health check{}",
        if keyed {
            format!(
                ", sealed ({} bytes)",
                HEALTH_LEN + sinew_proto::seal::OVERHEAD
            )
        } else {
            String::new()
        }
    )?;
    out.flush()?;

    let interval = Duration::from_millis(args.interval);
    let started = StdInstant::now();
    let mut next_send = started;
    let mut next_seq = 1u64;
    let mut p = Pinger {
        out,
        target,
        timeout: args.timeout,
        outstanding: HashMap::new(),
        summary: Summary::default(),
        error: None,
    };
    loop {
        if is_set(stop) {
            break;
        }
        let more = args.count.is_none_or(|c| p.summary.transmitted < c);
        let now = StdInstant::now();
        if more && now >= next_send {
            match node.ping(target) {
                Ok(nonce) => {
                    p.outstanding.insert(nonce, next_seq);
                    next_seq += 1;
                    p.summary.transmitted += 1;
                    next_send += interval;
                }
                // Too many checks outstanding: send this one when a slot frees.
                Err(Error::Proto(sinew_proto::Error::Capacity)) => {
                    next_send = now + Duration::from_millis(1);
                }
                Err(e) => return Err(Failure::caused(format!("ping {target}"), e)),
            }
            continue;
        }
        if !more && p.outstanding.is_empty() {
            break;
        }
        let wait = if more {
            next_send.saturating_duration_since(now)
        } else {
            // The core reports a timeout for every check still out.
            Duration::from_millis(args.timeout) + Duration::from_millis(100)
        };
        node.run_until(wait, |node| {
            while let Some(timed) = node.poll_event() {
                p.on_event(&timed.event);
            }
            p.error.is_some() || is_set(stop) || (!more && p.outstanding.is_empty())
        })?;
        if let Some(e) = p.error.take() {
            return Err(e.into());
        }
    }

    let elapsed = started.elapsed();
    let summary = &p.summary;
    let loss = summary.loss_percent();
    let out = p.out;
    writeln!(out, "\n--- {target} sinew ping statistics ---")?;
    writeln!(
        out,
        "{} packets transmitted, {} received, {}% packet loss, time {}ms",
        summary.transmitted,
        summary.received,
        if loss.fract() == 0.0 {
            format!("{loss:.0}")
        } else {
            format!("{loss:.1}")
        },
        elapsed.as_millis()
    )?;
    if let Some((min, avg, max, mdev)) = summary.rtt_ms() {
        writeln!(
            out,
            "rtt min/avg/max/mdev = {min:.3}/{avg:.3}/{max:.3}/{mdev:.3} ms"
        )?;
    }
    if let Some(line) = key::seal_counters(&node.seal_stats(), keyed) {
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(if summary.received > 0 { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_matches_ping8_arithmetic() {
        let summary = Summary {
            transmitted: 4,
            received: 3,
            rtts: [1000, 2000, 3000].map(Duration::from_micros).to_vec(),
        };
        assert_eq!(summary.loss_percent(), 25.0);
        let (min, avg, max, mdev) = summary.rtt_ms().unwrap();
        assert_eq!((min, avg, max), (1.0, 2.0, 3.0));
        // sqrt((1 + 4 + 9) / 3 - 2²) = sqrt(2/3)
        assert!((mdev - (2.0f64 / 3.0).sqrt()).abs() < 1e-9);
        assert_eq!(Summary::default().rtt_ms(), None);
    }
}
