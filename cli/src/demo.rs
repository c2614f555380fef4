//! `sinew demo`: a network of health-check nodes on loopback, on one thread and one `mio::Poll`,
//! then a DHT ring ([`demo_dht`](super::demo_dht)); `sinew demo health` or `sinew demo dht` runs
//! one of them.
//!
//! Node 0 is the seed; the others know only the seed. The demo shows, with timestamps:
//! 1. discovery: every node learns every other through peer tables, all Healthy;
//! 2. failure: the last node stops; the others see it go AtRisk, then Unhealthy;
//! 3. recovery: it restarts on the same address and is Healthy again in every table;
//!
//! then prints a summary and exits 0, or exits 1 if a phase did not happen within its deadline.

use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use clap::{Args, ValueEnum};
use sinew_proto::health::{Config, Event, HostInfo, Status};
use sinew_proto::time::Instant;

use super::format;
use sinew_transport_std::{Clock, Group, Result, UdpHealthNode};

/// Which demo `sinew demo` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum DemoKind {
    /// The health-check network, then the DHT ring.
    #[default]
    All,
    /// The health-check network: discovery, failure, recovery.
    Health,
    /// The DHT ring: formation, replicated puts, a crash, a contended lock, a leave.
    Dht,
}

/// Options of `sinew demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Which demo to run.
    #[arg(value_enum, default_value_t = DemoKind::All)]
    pub which: DemoKind,
    /// Number of nodes (of each demo); node 0 is the seed.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(2..=32))]
    pub nodes: u64,
    /// How often every node checks every host, in milliseconds.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
    pub check_ms: u64,
    /// How long a check waits for its response, in milliseconds.
    #[arg(long, default_value_t = 150, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_ms: u64,
    /// How often every node asks a healthy host for its table, in milliseconds.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub table_ms: u64,
    /// Deadline of each phase, in seconds; a phase that takes longer fails the demo.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub phase_timeout_s: u64,
}

impl Default for DemoArgs {
    fn default() -> DemoArgs {
        DemoArgs {
            which: DemoKind::All,
            nodes: 5,
            check_ms: 200,
            timeout_ms: 150,
            table_ms: 1000,
            phase_timeout_s: 10,
        }
    }
}

/// Prints the nodes' events as they come, naming nodes by index, and remembers the first
/// write error (the run loop's predicate cannot return one).
struct Printer<'w> {
    out: &'w mut dyn Write,
    addrs: Vec<SocketAddr>,
    error: Option<io::Error>,
}

impl Printer<'_> {
    fn name(addrs: &[SocketAddr], addr: SocketAddr) -> String {
        match addrs.iter().position(|&a| a == addr) {
            Some(i) => format!("node {i}"),
            None => addr.to_string(),
        }
    }

    fn line(&mut self, at: Instant, text: &str) {
        if self.error.is_none()
            && let Err(e) = writeln!(self.out, "{} {text}", format::stamp(at))
        {
            self.error = Some(e);
        }
    }

    /// Prints every waiting event of every node; calls `seen(observer, event)` for each.
    fn drain(&mut self, group: &mut Group, mut seen: impl FnMut(usize, &Event, Instant)) {
        for (i, node) in group.iter_mut::<UdpHealthNode>().enumerate() {
            while let Some(timed) = node.poll_event() {
                let addrs = &self.addrs;
                let text = format::event(&timed.event, |a| Printer::name(addrs, a));
                self.line(timed.at, &format!("node {i}: {text}"));
                seen(i, &timed.event, timed.at);
            }
        }
    }

    fn tables(&mut self, group: &Group, now: Instant) -> io::Result<()> {
        for (i, node) in group.iter::<UdpHealthNode>().enumerate() {
            let hosts: Vec<HostInfo> = node.hosts().copied().collect();
            writeln!(
                self.out,
                "  node {i} ({}) knows {}:",
                node.local_addr(),
                crate::error::plural(hosts.len() as u64, "host", "hosts")
            )?;
            let addrs = &self.addrs;
            format::write_table(self.out, &hosts, now, |a| {
                format!("{} ({a})", Printer::name(addrs, a))
            })?;
        }
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

fn status_of(node: &UdpHealthNode, addr: SocketAddr) -> Option<Status> {
    node.host(addr).map(|h| h.health.status())
}

/// Whether every running node holds every other node, Healthy.
fn converged(group: &Group, addrs: &[SocketAddr]) -> bool {
    group.iter::<UdpHealthNode>().enumerate().all(|(i, node)| {
        addrs
            .iter()
            .enumerate()
            .all(|(j, &addr)| i == j || status_of(node, addr) == Some(Status::Healthy))
    })
}

/// Runs the demo(s) chosen, printing to `out`; returns the exit code (0 when every phase of
/// every demo happened).
///
/// # Errors
/// [`Error::Io`](sinew_transport_std::Error::Io) if a socket cannot be bound or polled, or `out` fails.
pub fn run(args: &DemoArgs, out: &mut dyn Write) -> Result<u8> {
    let n = usize::try_from(args.nodes).unwrap_or(usize::MAX);
    let deadline = Duration::from_secs(args.phase_timeout_s);
    if args.which != DemoKind::Dht {
        let code = run_health(args, out)?;
        if code != 0 || args.which == DemoKind::Health {
            return Ok(code);
        }
        writeln!(out)?;
    }
    super::demo_dht::run(n, deadline, out)
}

/// The health-check demo.
fn run_health(args: &DemoArgs, out: &mut dyn Write) -> Result<u8> {
    let n = usize::try_from(args.nodes).unwrap_or(usize::MAX);
    let config = Config::new()
        .with_check_interval(Duration::from_millis(args.check_ms))
        .with_response_timeout(Duration::from_millis(args.timeout_ms))
        .with_table_interval(Duration::from_millis(args.table_ms))
        .with_learn_from_requests(true);
    let deadline = Duration::from_secs(args.phase_timeout_s);
    let clock = Clock::new();
    let mut group = Group::new()?;
    let mut handles = Vec::with_capacity(n);
    for _ in 0..n {
        let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        handles.push(group.add(UdpHealthNode::bind_with_clock(loopback, config, clock)?)?);
    }
    let addrs: Vec<SocketAddr> = group
        .iter::<UdpHealthNode>()
        .map(|n| n.local_addr())
        .collect();
    let seed = addrs[0];
    for node in group.iter_mut::<UdpHealthNode>().skip(1) {
        node.add_seed(seed)?;
    }
    let victim = n - 1;
    let victim_addr = addrs[victim];

    writeln!(
        out,
        "sinew demo: {n} health-check nodes on loopback, one thread, one mio Poll"
    )?;
    writeln!(
        out,
        "checks every {} ms, response timeout {} ms, table exchange every {} ms, {} lives",
        args.check_ms,
        args.timeout_ms,
        args.table_ms,
        sinew_proto::health::MAX_LIVES
    )?;
    for (i, addr) in addrs.iter().enumerate() {
        let role = if i == 0 {
            "the seed"
        } else {
            "knows only the seed"
        };
        writeln!(out, "  node {i}: {addr} ({role})")?;
    }
    let mut p = Printer {
        out,
        addrs: addrs.clone(),
        error: None,
    };

    // Phase 1: discovery.
    writeln!(
        p.out,
        "\nphase 1: discovery through peer tables (deadline {} s)",
        args.phase_timeout_s
    )?;
    let start = clock.now();
    let done = group.run_until(deadline, |g| {
        p.drain(g, |_, _, _| {});
        p.error.is_some() || converged(g, &addrs)
    })?;
    p.finish()?;
    if !done {
        return fail(&mut p, &group, clock, "phase 1: the nodes did not converge");
    }
    let converged_at = clock.now();
    let t_converge = converged_at - start;
    writeln!(
        p.out,
        "{} converged: all {n} nodes hold the {} others, Healthy, after {:.3} s",
        format::stamp(converged_at),
        n - 1,
        t_converge.as_secs_f64()
    )?;
    p.tables(&group, converged_at)?;

    // Phase 2: failure.
    writeln!(
        p.out,
        "\nphase 2: node {victim} stops; the others must see it AtRisk, then Unhealthy"
    )?;
    group[handles[victim]].stop()?;
    let stopped_at = clock.now();
    p.line(
        stopped_at,
        &format!("node {victim} stopped (socket closed)"),
    );
    let mut first_at_risk: Option<Instant> = None;
    let mut at_risk_seen = vec![false; n];
    let mut unhealthy_before_at_risk = false;
    let done = group.run_until(deadline, |g| {
        p.drain(g, |observer, event, at| {
            if let Event::HealthChanged { addr, to, .. } = *event
                && addr == victim_addr
            {
                match to.status() {
                    Status::AtRisk => {
                        at_risk_seen[observer] = true;
                        first_at_risk.get_or_insert(at);
                    }
                    Status::Unhealthy => unhealthy_before_at_risk |= !at_risk_seen[observer],
                    Status::Healthy => {}
                }
            }
        });
        p.error.is_some()
            || g.iter::<UdpHealthNode>().enumerate().all(|(i, node)| {
                i == victim || status_of(node, victim_addr) == Some(Status::Unhealthy)
            })
    })?;
    p.finish()?;
    if !done {
        return fail(
            &mut p,
            &group,
            clock,
            "phase 2: the stopped node was not Unhealthy everywhere",
        );
    }
    if unhealthy_before_at_risk || first_at_risk.is_none() {
        return fail(
            &mut p,
            &group,
            clock,
            "phase 2: a node saw Unhealthy without AtRisk first",
        );
    }
    let unhealthy_at = clock.now();
    let t_at_risk = first_at_risk.map_or(Duration::ZERO, |t| t - stopped_at);
    let t_unhealthy = unhealthy_at - stopped_at;
    writeln!(
        p.out,
        "{} node {victim} is Unhealthy in all {} other tables, {:.3} s after it stopped (first AtRisk after {:.3} s)",
        format::stamp(unhealthy_at),
        n - 1,
        t_unhealthy.as_secs_f64(),
        t_at_risk.as_secs_f64()
    )?;

    // Phase 3: recovery.
    writeln!(
        p.out,
        "\nphase 3: node {victim} restarts on {victim_addr} with an empty table"
    )?;
    group[handles[victim]].restart()?;
    let restarted_at = clock.now();
    p.line(
        restarted_at,
        &format!("node {victim} restarted on {victim_addr}"),
    );
    let mut healthy_everywhere_at: Option<Instant> = None;
    let done = group.run_until(deadline, |g| {
        p.drain(g, |_, _, _| {});
        if healthy_everywhere_at.is_none()
            && g.iter::<UdpHealthNode>().enumerate().all(|(i, node)| {
                i == victim || status_of(node, victim_addr) == Some(Status::Healthy)
            })
        {
            healthy_everywhere_at = Some(clock.now());
        }
        p.error.is_some() || (healthy_everywhere_at.is_some() && converged(g, &addrs))
    })?;
    p.finish()?;
    if !done {
        return fail(
            &mut p,
            &group,
            clock,
            "phase 3: the restarted node did not recover everywhere",
        );
    }
    let recovered_at = clock.now();
    let t_healthy = healthy_everywhere_at.map_or(Duration::ZERO, |t| t - restarted_at);
    let t_reconverge = recovered_at - restarted_at;
    writeln!(
        p.out,
        "{} node {victim} is Healthy in all {} other tables after {:.3} s; it holds them all, Healthy, after {:.3} s",
        format::stamp(recovered_at),
        n - 1,
        t_healthy.as_secs_f64(),
        t_reconverge.as_secs_f64()
    )?;
    p.tables(&group, recovered_at)?;

    // Summary.
    let out = p.out;
    writeln!(out, "\nsummary")?;
    writeln!(
        out,
        "  time to converge:  {:.3} s",
        t_converge.as_secs_f64()
    )?;
    writeln!(
        out,
        "  time to Unhealthy: {:.3} s (first AtRisk after {:.3} s)",
        t_unhealthy.as_secs_f64(),
        t_at_risk.as_secs_f64()
    )?;
    writeln!(
        out,
        "  time to recover:   {:.3} s (Healthy in every table), {:.3} s (full table again)",
        t_healthy.as_secs_f64(),
        t_reconverge.as_secs_f64()
    )?;
    writeln!(out, "  datagrams and drop counters:")?;
    format::write_counters_header(out)?;
    let mut total = Default::default();
    for (i, node) in group.iter::<UdpHealthNode>().enumerate() {
        let label = format!("node {i} {}", node.local_addr());
        format::write_counters(out, &label, &node.stats(), node.socket_stats())?;
        format::add_counters(&mut total, &node.stats(), node.socket_stats());
    }
    format::write_counters(out, "total", &total.0, &total.1)?;
    writeln!(
        out,
        "  demo completed in {:.3} s: all phases passed",
        clock.elapsed().as_secs_f64()
    )?;
    out.flush()?;
    Ok(0)
}

fn fail(p: &mut Printer<'_>, group: &Group, clock: Clock, what: &str) -> Result<u8> {
    let now = clock.now();
    writeln!(
        p.out,
        "{} FAILED: {what} within the deadline",
        format::stamp(now)
    )?;
    p.tables(group, now)?;
    p.out.flush()?;
    Ok(1)
}
