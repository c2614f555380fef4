//! `sinew dht`: run a DHT ring member, and read, write and lock keys through one.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant as StdInstant};

use clap::{Args, Subcommand};
use sinew_proto::dht::{Body, Event, LockToken, Message, NodeAddr, NodeId, RequestError};
use sinew_proto::nonce::{split_type_byte, type_byte};

use super::is_set;
use crate::error::Failure;
use sinew_proto::seal::Keyring;
use sinew_transport_std::Error;
use sinew_transport_std::dht::{LockOutcome, UdpDhtClient, UdpDhtNode};

/// Options of `sinew dht`.
#[derive(Debug, Clone, Args)]
pub struct DhtArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: DhtCommand,
    /// Seal every datagram with the first key of this file and accept only datagrams sealed
    /// with one of its keys (see `sinew keygen`); every member and client of the ring must
    /// have it. A keyed node serves no TCP.
    #[arg(long, value_name = "FILE", global = true)]
    pub key_file: Option<std::path::PathBuf>,
}

/// The `sinew dht` subcommands.
#[derive(Debug, Clone, Subcommand)]
#[non_exhaustive]
pub enum DhtCommand {
    /// Run a ring member: alone, or joining a ring through any of its nodes. Ctrl-C (or
    /// SIGTERM) leaves the ring gracefully, handing the node's keys to its neighbours.
    Node(NodeArgs),
    /// Simulate a ring of real DHT nodes in virtual time (latency, loss, crashes) and print
    /// hops, success, latency quantiles, traffic and memory per node: size a ring before
    /// deploying it.
    Sim(crate::dht_sim::SimArgs),
    /// Store a value under a key (acknowledged once the owner and its replicas hold it).
    Put {
        /// Any node of the ring.
        #[command(flatten)]
        client: ClientArgs,
        /// The key (up to 64 bytes).
        key: String,
        /// The value (up to 256 bytes).
        value: String,
    },
    /// Read a key: prints its value, or exits 1 if the ring stores none.
    Get {
        /// Any node of the ring.
        #[command(flatten)]
        client: ClientArgs,
        /// The key.
        key: String,
    },
    /// Take (or renew) a lock for a holder: exits 0 if it is held, 1 if someone else holds it
    /// (who is not told).
    Lock {
        /// Any node of the ring.
        #[command(flatten)]
        client: ClientArgs,
        /// The key to lock.
        key: String,
        /// The holder's secret: the lock is held with a token derived from it and the key, and
        /// whoever knows it can renew or release the lock, so choose one others cannot guess.
        #[arg(long)]
        holder: String,
        /// The lease in milliseconds (the owner may shorten it to its maximum).
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=u64::from(u32::MAX)))]
        lease_ms: u64,
    },
    /// Release a holder's lock: exits 1 if the lock is not held with that holder's secret.
    Unlock {
        /// Any node of the ring.
        #[command(flatten)]
        client: ClientArgs,
        /// The key to unlock.
        key: String,
        /// The holder's secret, as given to `lock`.
        #[arg(long)]
        holder: String,
    },
}

/// Options of `sinew dht node`.
#[derive(Debug, Clone, Args)]
pub struct NodeArgs {
    /// The address to bind and to be reached at, such as 127.0.0.1:7100 (port 0: any free
    /// port; the first line printed names it).
    #[arg(long)]
    pub bind: SocketAddr,
    /// A node of the ring to join through. A join that times out is made again through it
    /// until it succeeds (the node prints "joining again through").
    #[arg(long, value_name = "ADDR")]
    pub join: Option<SocketAddr>,
    /// The node's name; its id is then the first 128 bits of the name's SHA-256, and the node
    /// takes any id from its peers (a closed ring whose members all have names). Default: the
    /// id bound to the address bound, and peers' ids checked against theirs.
    #[arg(long)]
    pub id: Option<String>,
    /// Replicas of every key beside its owner.
    #[arg(long, default_value_t = 2)]
    pub replicas: usize,
    /// How often the node checks its neighbours, in milliseconds.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub stabilize_ms: u64,
    /// How long one request attempt waits for its answer, in milliseconds.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_ms: u64,
    /// Also accept clients on TCP at the bound address (requests as frames with a 4-byte
    /// length; answers on the same connection), for clients such as embedded-nal TCP stacks.
    #[arg(long)]
    pub tcp: bool,
    /// Print the leaf set every this many seconds (0: never).
    #[arg(long, default_value_t = 5)]
    pub print_s: u64,
    /// Stop (leaving gracefully) after this many seconds instead of running until Ctrl-C.
    #[arg(long, value_name = "SECS")]
    pub exit_after: Option<u64>,
}

/// Options of the client subcommands.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Any node of the ring: it routes the request to the key's owner.
    #[arg(long, value_name = "ADDR")]
    pub node: SocketAddr,
    /// How long one attempt waits for its answer, in milliseconds (3 attempts).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_ms: u64,
}

/// Runs a `sinew dht` subcommand; returns the exit code.
///
/// # Errors
/// The failure, naming the node or key concerned: a socket that cannot be bound, a node
/// that does not answer (timed out) or refuses, a key without a value, `out` failing.
pub fn run(
    args: &DhtArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
    stop: &AtomicBool,
) -> Result<u8, Failure> {
    let _ = err;
    let keyring = crate::key::KeyArgs {
        key_file: args.key_file.clone(),
    }
    .keyring()?;
    let connect = |client: &ClientArgs| connect(client, keyring.clone());
    match &args.command {
        DhtCommand::Node(node) => run_node(node, keyring.clone(), out, stop),
        DhtCommand::Sim(sim) => crate::dht_sim::run(sim, out),
        DhtCommand::Put { client, key, value } => {
            let mut c = connect(client)?;
            c.put(key.as_bytes(), value.as_bytes())
                .map_err(|e| failed(e, client, key))?;
            writeln!(out, "stored {key:?}")?;
            Ok(0)
        }
        DhtCommand::Get { client, key } => {
            let mut c = connect(client)?;
            match c.get(key.as_bytes()) {
                Ok(Some(value)) => {
                    out.write_all(&value)?;
                    writeln!(out)?;
                    Ok(0)
                }
                Ok(None) => Err(Failure::failed(format!(
                    "{key:?}: no value (at {})",
                    client.node
                ))),
                Err(e) => Err(failed(e, client, key)),
            }
        }
        DhtCommand::Lock {
            client,
            key,
            holder,
            lease_ms,
        } => {
            let mut c = connect(client)?;
            let token = LockToken::derive(holder.as_bytes(), key.as_bytes());
            match c.lock(key.as_bytes(), token, Duration::from_millis(*lease_ms)) {
                Ok(LockOutcome::Locked { until }) => {
                    let left = until.saturating_duration_since(StdInstant::now());
                    writeln!(
                        out,
                        "locked {key:?} for {holder} for {} ms",
                        left.as_millis()
                    )?;
                    Ok(0)
                }
                Ok(LockOutcome::Denied { remaining }) => {
                    writeln!(
                        out,
                        "denied: {key:?} is held by someone else (or its owner took it over \
                         recently and grants no lock yet) for up to {} ms more",
                        remaining.as_millis()
                    )?;
                    Ok(1)
                }
                Ok(other) => {
                    writeln!(out, "lock {key:?}: {other:?}")?;
                    Ok(1)
                }
                Err(e) => Err(failed(e, client, key)),
            }
        }
        DhtCommand::Unlock {
            client,
            key,
            holder,
        } => {
            let mut c = connect(client)?;
            let token = LockToken::derive(holder.as_bytes(), key.as_bytes());
            c.unlock(key.as_bytes(), token)
                .map_err(|e| failed(e, client, key))?;
            writeln!(out, "unlocked {key:?} for {holder}")?;
            Ok(0)
        }
    }
}

fn connect(args: &ClientArgs, keyring: Keyring) -> Result<UdpDhtClient, Failure> {
    let timeout = Duration::from_millis(args.timeout_ms);
    UdpDhtClient::connect_keyed(args.node, keyring, |c| c.request_timeout = timeout)
        .map_err(|e| Failure::caused(format!("node {}", args.node), e))
}

/// A request's error, naming the node and the key.
fn failed(e: Error, client: &ClientArgs, key: &str) -> Failure {
    Failure::caused(format!("{key:?} at node {}", client.node), e)
}

fn run_node(
    args: &NodeArgs,
    keyring: Keyring,
    out: &mut dyn Write,
    stop: &AtomicBool,
) -> Result<u8, Failure> {
    let socket = std::net::UdpSocket::bind(args.bind)
        .map_err(|e| Failure::io(format!("bind {}", args.bind), &e))?;
    let bound = socket.local_addr()?;
    let chosen = args
        .id
        .as_ref()
        .map(|name| NodeId::from_name(name.as_bytes()));
    let (replicas, stabilize, timeout) = (
        args.replicas,
        Duration::from_millis(args.stabilize_ms),
        Duration::from_millis(args.timeout_ms),
    );
    let keyed = !keyring.is_empty();
    let mut node: UdpDhtNode = UdpDhtNode::from_std_keyed(socket, chosen, keyring, |c| {
        c.replicas = replicas;
        c.stabilize_interval = stabilize;
        c.request_timeout = timeout;
    })?;
    writeln!(
        out,
        "sinew dht node {} on {}{}",
        node.local().id,
        node.local().addr,
        if keyed { " (sealed)" } else { "" }
    )?;
    if args.tcp {
        let tcp = node.listen_tcp(bound)?;
        writeln!(out, "clients also on TCP {tcp}")?;
    }
    if let Some(entry) = args.join {
        writeln!(out, "joining through {entry}")?;
        node.join(entry)?;
    }
    out.flush()?;
    let end = args
        .exit_after
        .and_then(|s| StdInstant::now().checked_add(Duration::from_secs(s)));
    let print_every = (args.print_s > 0).then(|| Duration::from_secs(args.print_s));
    let started = StdInstant::now();
    let mut error: Option<io::Error> = None;
    loop {
        let now = StdInstant::now();
        if is_set(stop) || end.is_some_and(|e| now >= e) {
            break;
        }
        let mut slice = print_every.unwrap_or(Duration::from_secs(3600));
        if let Some(e) = end {
            slice = slice.min(e.saturating_duration_since(now));
        }
        node.run_until(slice, |node| {
            while let Some(event) = node.poll_event() {
                let mut line = describe(&event);
                // A join that timed out (a node on its way crashed, say) is made again: a node
                // started to be in a ring keeps trying.
                if let (
                    Event::JoinFailed {
                        error: RequestError::Timeout,
                    },
                    Some(entry),
                ) = (&event, args.join)
                {
                    match node.join(entry) {
                        Ok(()) => line.push_str(&format!("; joining again through {entry}")),
                        Err(e) => line.push_str(&format!("; cannot join again: {e}")),
                    }
                }
                if let Err(e) = writeln!(out, "{:>8.3}s {line}", started.elapsed().as_secs_f64())
                    .and_then(|()| out.flush())
                {
                    error.get_or_insert(e);
                }
            }
            error.is_some() || is_set(stop)
        })?;
        if let Some(e) = error.take() {
            return Err(e.into());
        }
        if print_every.is_some() && !is_set(stop) {
            write_leaf_set(out, &node, started)?;
        }
    }
    writeln!(out, "leaving the ring")?;
    node.leave()?;
    node.run_for(Duration::from_millis(200))?;
    write_leaf_set(out, &node, started)?;
    let s = node.stats();
    writeln!(
        out,
        "received {} (malformed {}, unmatched {}, wrong sender {}), sent {}, served {}, \
         forwarded {}, replicas sent {}, timeouts {}, peers down {}",
        s.received,
        s.malformed,
        s.unmatched,
        s.wrong_sender,
        s.sent,
        s.served,
        s.forwarded,
        s.replicates_sent,
        s.timeouts,
        s.peers_down
    )?;
    if let Some(line) = crate::key::seal_counters(node.seal_stats(), keyed) {
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(0)
}

fn write_leaf_set(out: &mut dyn Write, node: &UdpDhtNode, started: StdInstant) -> io::Result<()> {
    let leaf = node.leaf_set();
    let list = |nodes: &mut dyn Iterator<Item = NodeAddr>| {
        nodes.map(|n| n.to_string()).collect::<Vec<_>>().join(" ")
    };
    writeln!(
        out,
        "{:>8.3}s leaf set: left [{}] right [{}]; {} keys stored",
        started.elapsed().as_secs_f64(),
        list(&mut leaf.left()),
        list(&mut leaf.right()),
        node.core().stored_len()
    )?;
    out.flush()
}

/// One line for a node's event.
pub fn describe<const VALUE: usize>(event: &Event<VALUE>) -> String {
    match event {
        Event::Joined { via } => format!("joined the ring via {via}"),
        Event::JoinFailed { error } => format!("join failed: {}", request_error(*error)),
        Event::NeighbourDown { node } => format!("neighbour {node} is gone"),
        Event::GetDone { id, value } => match value {
            Some(v) => format!("get {} = {:?}", id.0, String::from_utf8_lossy(v)),
            None => format!("get {}: no value", id.0),
        },
        Event::PutDone { id } => format!("put {} stored", id.0),
        Event::Locked { id, .. } => format!("lock {} held", id.0),
        Event::LockDenied { id, remaining } => format!(
            "lock {} denied: held for up to {} ms",
            id.0,
            remaining.as_millis()
        ),
        Event::Unlocked { id } => format!("unlock {} done", id.0),
        Event::Failed { id, op, error } => {
            format!("{op:?} {} failed: {}", id.0, request_error(*error))
        }
        other => format!("{other:?}"),
    }
}

fn request_error(e: RequestError) -> String {
    Error::Dht(e).to_string()
}

/// Decodes one DHT message (a datagram, or a TCP frame without its length prefix) and prints
/// every field.
///
/// Returns `Ok(Err(e))` for a malformed message.
///
/// # Errors
/// Only `out`'s write errors.
pub fn write_message(
    bytes: &[u8],
    out: &mut dyn Write,
) -> io::Result<Result<(), sinew_proto::Error>> {
    let message = match Message::parse(bytes) {
        Ok(m) => m,
        Err(e) => return Ok(Err(e)),
    };
    let (version, _) = split_type_byte(bytes[0]);
    let kind = message.body.kind();
    let h = message.header;
    writeln!(out, "DHT message, {} bytes", bytes.len())?;
    writeln!(
        out,
        "  type        0x{:02x} (version {version}, {kind:?})",
        bytes[0]
    )?;
    writeln!(out, "  message id  {:#018x}", h.message_id)?;
    writeln!(out, "  sender id   {}", hex::encode(h.sender.id.0))?;
    writeln!(out, "  sender addr {}", h.sender.addr)?;
    write_body(&message.body, out)?;
    Ok(Ok(()))
}

/// Prints the fields of a message body (and of the request a Relayed carries).
fn write_body(body: &Body<'_>, out: &mut dyn Write) -> io::Result<()> {
    let text = |b: &[u8]| format!("{:?} ({} bytes)", String::from_utf8_lossy(b), b.len());
    match *body {
        Body::Get { key } | Body::PutAck { key } | Body::Unlocked { key } => {
            writeln!(out, "  key         {}", text(key))?;
        }
        Body::Value { key, value } => {
            writeln!(out, "  key         {}", text(key))?;
            match value {
                Some(v) => writeln!(out, "  value       {}", text(v))?,
                None => writeln!(out, "  value       none")?,
            }
        }
        Body::Put { key, value } | Body::Replicate { key, value } => {
            writeln!(out, "  key         {}", text(key))?;
            writeln!(out, "  value       {}", text(value))?;
        }
        Body::Lock {
            key,
            token,
            lease_ms,
        }
        | Body::Locked {
            key,
            token,
            lease_ms,
        } => {
            writeln!(out, "  key         {}", text(key))?;
            writeln!(out, "  token       {}", hex::encode(token.0))?;
            writeln!(out, "  lease       {lease_ms} ms")?;
        }
        Body::LockDenied { key, remaining_ms } => {
            writeln!(out, "  key         {}", text(key))?;
            writeln!(out, "  remaining   {remaining_ms} ms")?;
        }
        Body::Unlock { key, token } => {
            writeln!(out, "  key         {}", text(key))?;
            writeln!(out, "  token       {}", hex::encode(token.0))?;
        }
        Body::InitConnect | Body::Challenge | Body::Echo | Body::ViewRequest => {}
        Body::RequestInsertion { joining } => {
            writeln!(
                out,
                "  joining     {} at {}",
                hex::encode(joining.id.0),
                joining.addr
            )?;
        }
        Body::Join { side, nodes } => {
            writeln!(out, "  side        {side:?}")?;
            writeln!(out, "  nodes       {}", nodes.len())?;
            for n in nodes.iter() {
                writeln!(out, "    {} at {}", hex::encode(n.id.0), n.addr)?;
            }
        }
        Body::Leave { nodes } => {
            writeln!(out, "  nodes       {}", nodes.len())?;
            for n in nodes.iter() {
                writeln!(out, "    {} at {}", hex::encode(n.id.0), n.addr)?;
            }
        }
        Body::Error { code } => {
            writeln!(out, "  error       {code:?} ({})", code.to_u16())?;
        }
        Body::Withheld { cookie } => {
            writeln!(out, "  cookie      0x{cookie:016x}")?;
        }
        Body::RouteRequest { row, columns } => {
            writeln!(out, "  row         {row}")?;
            writeln!(out, "  columns     0x{columns:04x}")?;
        }
        Body::Route { row, nodes } => {
            writeln!(out, "  row         {row}")?;
            writeln!(out, "  nodes       {}", nodes.len())?;
            for n in nodes.iter() {
                writeln!(out, "    {} at {}", hex::encode(n.id.0), n.addr)?;
            }
        }
        Body::View { left, right } => {
            writeln!(out, "  left        {}", left.len())?;
            for n in left.iter() {
                writeln!(out, "    {} at {}", hex::encode(n.id.0), n.addr)?;
            }
            writeln!(out, "  right       {}", right.len())?;
            for n in right.iter() {
                writeln!(out, "    {} at {}", hex::encode(n.id.0), n.addr)?;
            }
        }
        Body::Relayed {
            budget_ms,
            origin,
            request,
        } => {
            writeln!(out, "  budget      {budget_ms} ms")?;
            writeln!(out, "  origin id   {}", hex::encode(origin.id.0))?;
            writeln!(out, "  origin addr {}", origin.addr)?;
            let kind = request.kind();
            writeln!(
                out,
                "  request     0x{:02x} (version {}, {kind:?})",
                type_byte(kind.version(), kind as u8),
                kind.version()
            )?;
            write_body(&request.body(), out)?;
        }
        ref other => writeln!(out, "  {other:?}")?,
    }
    Ok(())
}
