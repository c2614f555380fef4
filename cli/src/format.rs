//! How the commands print times, events, tables and counters.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::Duration;

use sinew_proto::health::{Event, Health, HostInfo, MAX_LIVES, Stats};
use sinew_proto::time::Instant;

use sinew_transport_std::SocketStats;

/// `at` as seconds with millisecond precision, right-aligned: `[   1.234s]`.
pub fn stamp(at: Instant) -> String {
    format!("[{:>8.3}s]", at.as_micros() as f64 / 1e6)
}

/// A duration in milliseconds with microsecond precision: `0.081`.
pub fn millis(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

/// A health as `Healthy 3/3`.
pub fn health(h: Health) -> String {
    format!("{} {}/{}", h.status(), h.lives(), MAX_LIVES)
}

/// One line describing `event`, naming hosts with `name`.
pub fn event(event: &Event, name: impl Fn(SocketAddr) -> String) -> String {
    match *event {
        Event::HostAdded { addr } => {
            format!(
                "+ {} joined the table ({})",
                name(addr),
                health(Health::HEALTHY)
            )
        }
        Event::HealthChanged { addr, from, to } => {
            format!("{}: {} -> {}", name(addr), health(from), health(to))
        }
        Event::HostEvicted { addr } => {
            format!("- {} evicted (unhealthy, room needed)", name(addr))
        }
        Event::Pong { addr, rtt, .. } => {
            format!("pong from {}: time={} ms", name(addr), millis(rtt))
        }
        Event::PingTimeout { addr, .. } => format!("no pong from {}", name(addr)),
        other => format!("{other:?}"),
    }
}

/// Writes a network table, one host a line, naming hosts with `name`.
pub fn write_table(
    out: &mut dyn Write,
    hosts: &[HostInfo],
    now: Instant,
    name: impl Fn(SocketAddr) -> String,
) -> io::Result<()> {
    if hosts.is_empty() {
        return writeln!(out, "    (no hosts)");
    }
    for host in hosts {
        let rtt = host
            .last_rtt
            .map_or_else(|| "-".to_string(), |r| format!("{} ms", millis(r)));
        writeln!(
            out,
            "    {:<26} {:<13} rtt {:>10}   last answer {:.3} s ago",
            name(host.addr),
            health(host.health),
            rtt,
            (now - host.last_seen).as_secs_f64(),
        )?;
    }
    Ok(())
}

/// The header line of [`write_counters`].
pub fn write_counters_header(out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "    {:<24} {:>7} {:>7} {:>8} {:>8} {:>9} {:>9} {:>12} {:>5} {:>10} {:>6} {:>10} {:>8}",
        "",
        "recv",
        "sent",
        "answered",
        "accepted",
        "malformed",
        "unmatched",
        "wrong_source",
        "late",
        "queue_full",
        "missed",
        "wouldblock",
        "send_err",
    )
}

/// One line of datagram counts and drop counters.
pub fn write_counters(
    out: &mut dyn Write,
    label: &str,
    stats: &Stats,
    socket: &SocketStats,
) -> io::Result<()> {
    writeln!(
        out,
        "    {:<24} {:>7} {:>7} {:>8} {:>8} {:>9} {:>9} {:>12} {:>5} {:>10} {:>6} {:>10} {:>8}",
        label,
        socket.datagrams_received,
        socket.datagrams_sent,
        stats.requests_answered,
        stats.responses_accepted,
        stats.malformed,
        stats.unmatched,
        stats.wrong_source,
        stats.late,
        stats.queue_full,
        stats.checks_missed,
        socket.send_would_block,
        socket.send_errors,
    )
}

/// Sums the counters that [`write_counters`] prints.
pub fn add_counters(total: &mut (Stats, SocketStats), stats: &Stats, socket: &SocketStats) {
    let (t, s) = total;
    t.requests_answered += stats.requests_answered;
    t.responses_accepted += stats.responses_accepted;
    t.malformed += stats.malformed;
    t.unmatched += stats.unmatched;
    t.wrong_source += stats.wrong_source;
    t.late += stats.late;
    t.queue_full += stats.queue_full;
    t.checks_missed += stats.checks_missed;
    s.datagrams_received += socket.datagrams_received;
    s.datagrams_sent += socket.datagrams_sent;
    s.send_would_block += socket.send_would_block;
    s.send_errors += socket.send_errors;
}
