//! The run itself: one thread owns the network, the clients, the services and the nemesis,
//! and waits for the next line from a node or the next deadline, whichever comes first.
//! Its seams: [`clients`] (operations in and out of the history), [`faults`] (the nemesis's
//! actions on processes and the network), [`routing`] (lines from nodes to their destination).

mod clients;
mod faults;
mod routing;

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::generator::{Generator, Invocation};
use super::nemesis::Nemesis;
use super::net::Network;
use super::process::{Event, Launch, NodeProcess};
use super::summary;
use super::{HarnessError, NemesisStats, Options, Outcome, later};
use crate::Message;
use crate::check;
use crate::history::{self, Op, WorkloadName};
use crate::services::{LinKv, LinTso, LwwKv, SeqKv, Service};

/// The harness's own client, which sends `init` and `topology`.
const SETUP_CLIENT: &str = "c0";
/// How long a node gets to exit once its stdin is closed at the end.
const EXIT_GRACE: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NodeState {
    /// `init` sent (msg_id), no `init_ok` yet; given up on at the deadline.
    Starting { msg_id: u64, deadline: Instant },
    /// Answered `init`.
    Up,
    /// Killed or exited.
    Down,
}

#[derive(Debug)]
struct NodeSlot {
    id: String,
    process: Option<NodeProcess>,
    state: NodeState,
    paused: bool,
    incarnation: u32,
    log: PathBuf,
}

#[derive(Debug)]
struct Pending {
    msg_id: u64,
    inv: Invocation,
    deadline: Instant,
}

#[derive(Debug)]
struct Client {
    name: String,
    node: usize,
    process: u64,
    next_msg_id: u64,
    pending: Option<Pending>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for every `init_ok`.
    Init {
        deadline: Instant,
    },
    /// broadcast: waiting for every `topology_ok`.
    Topology {
        deadline: Instant,
    },
    /// Clients at `--rate`, the nemesis at work.
    Main {
        until: Instant,
    },
    /// Healed; the operations in flight finish.
    Drain,
    /// Waiting for the nodes to converge.
    Recovery {
        until: Instant,
    },
    /// Each client's final operation.
    Final,
    Done,
}

pub(super) struct Engine {
    options: Options,
    launch: Launch,
    log_dir: PathBuf,
    events_tx: Sender<Event>,
    events: Receiver<Event>,
    nodes: Vec<NodeSlot>,
    services: Vec<Box<dyn Service>>,
    net: Network,
    nemesis: Nemesis,
    nemesis_stats: NemesisStats,
    generator: Generator,
    clients: Vec<Client>,
    history: Vec<Op>,
    epoch: Instant,
    phase: Phase,
    next_op_at: Instant,
    next_setup_id: u64,
    /// Where [`Engine::free_client`] starts looking.
    next_client: usize,
    topology_waiting: Vec<Option<u64>>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> HarnessError + '_ {
    move |source| HarnessError::Log {
        path: path.to_owned(),
        source,
    }
}

impl Engine {
    /// Prepares the log directory and starts every node with its `init`.
    pub(super) fn start(options: &Options) -> Result<Engine, HarnessError> {
        let log_dir = options.log_dir.clone().unwrap_or_else(|| {
            PathBuf::from("store")
                .join(options.workload.as_str())
                .join(summary::timestamp(std::time::SystemTime::now()))
        });
        let node_logs = log_dir.join("node-logs");
        std::fs::create_dir_all(&node_logs).map_err(io_err(&node_logs))?;
        let n = options.node_count;
        let services: Vec<Box<dyn Service>> = vec![
            Box::new(LinKv::new()),
            Box::new(SeqKv::new(options.seed)),
            Box::new(LwwKv::new(options.seed)),
            Box::new(LinTso::new()),
        ];
        let (events_tx, events) = mpsc::channel();
        let now = Instant::now();
        let clients = (0..options.concurrency)
            .map(|i| Client {
                name: format!("c{}", i + 1),
                node: i % n,
                process: i as u64,
                next_msg_id: 1,
                pending: None,
            })
            .collect();
        let mut engine = Engine {
            launch: Launch {
                bin: options.bin.clone(),
                args: options.args.clone(),
            },
            nodes: (0..n)
                .map(|i| NodeSlot {
                    id: format!("n{i}"),
                    process: None,
                    state: NodeState::Down,
                    paused: false,
                    incarnation: 0,
                    log: node_logs.join(format!("n{i}.log")),
                })
                .collect(),
            net: Network::new(
                n,
                services.len(),
                options.latency,
                options.latency_dist,
                options.p_loss,
                options.seed,
            ),
            services,
            nemesis: Nemesis::new(options.nemesis, options.nemesis_interval, n, options.seed),
            nemesis_stats: NemesisStats::default(),
            generator: Generator::new(options.workload, options.seed, options.concurrency),
            clients,
            history: Vec::new(),
            epoch: now,
            phase: Phase::Init {
                deadline: later(now, options.init_timeout),
            },
            next_op_at: now,
            next_setup_id: 1,
            next_client: 0,
            topology_waiting: vec![None; n],
            options: options.clone(),
            log_dir,
            events_tx,
            events,
        };
        for i in 0..n {
            engine.boot(i, now).map_err(|source| HarnessError::Spawn {
                bin: options.bin.clone(),
                source,
            })?;
        }
        Ok(engine)
    }

    /// Starts node `i`'s next incarnation and sends it `init`.
    fn boot(&mut self, i: usize, now: Instant) -> std::io::Result<()> {
        let slot = &mut self.nodes[i];
        slot.incarnation += 1;
        let process = self
            .launch
            .spawn(i, slot.incarnation, &slot.log, self.events_tx.clone())?;
        let msg_id = self.next_setup_id;
        self.next_setup_id += 1;
        let node_ids: Vec<Value> = (0..self.options.node_count)
            .map(|j| format!("n{j}").into())
            .collect();
        let mut fields = Map::new();
        fields.insert("node_id".into(), slot.id.clone().into());
        fields.insert("node_ids".into(), Value::Array(node_ids));
        process.send(setup_message(&slot.id, "init", msg_id, fields));
        slot.process = Some(process);
        slot.paused = false;
        slot.state = NodeState::Starting {
            msg_id,
            deadline: later(now, self.options.init_timeout),
        };
        Ok(())
    }

    /// Runs every phase, then checks and writes the results.
    pub(super) fn run(mut self) -> Result<Outcome, HarnessError> {
        let result = self.event_loop();
        for slot in &mut self.nodes {
            if let Some(p) = &mut slot.process {
                if slot.paused {
                    let _ = p.pause(false);
                }
                p.close_stdin();
            }
        }
        let until = Instant::now() + EXIT_GRACE;
        for slot in &mut self.nodes {
            if let Some(mut p) = slot.process.take() {
                p.wait_until(until);
            }
        }
        result?;
        self.finish()
    }

    fn event_loop(&mut self) -> Result<(), HarnessError> {
        loop {
            let now = Instant::now();
            self.on_time(now)?;
            if self.phase == Phase::Done {
                return Ok(());
            }
            let wait = self.next_wake().map_or(Duration::from_millis(100), |at| {
                at.saturating_duration_since(Instant::now())
            });
            match self.events.recv_timeout(wait) {
                Ok(event) => self.on_event(event, Instant::now())?,
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {}
            }
        }
    }

    fn next_wake(&self) -> Option<Instant> {
        let mut wake: Vec<Instant> = Vec::new();
        wake.extend(self.net.next_due());
        wake.extend(
            self.clients
                .iter()
                .filter_map(|c| c.pending.as_ref().map(|p| p.deadline)),
        );
        wake.extend(self.nodes.iter().filter_map(|n| match n.state {
            NodeState::Starting { deadline, .. } => Some(deadline),
            _ => None,
        }));
        match self.phase {
            Phase::Init { deadline } | Phase::Topology { deadline } => wake.push(deadline),
            Phase::Main { until } => {
                wake.push(until);
                wake.extend(self.nemesis.next_at());
                if self.options.rate > 0.0 && self.clients.iter().any(|c| c.pending.is_none()) {
                    wake.push(self.next_op_at);
                }
            }
            Phase::Recovery { until } => wake.push(until),
            Phase::Drain | Phase::Final | Phase::Done => {}
        }
        wake.into_iter().min()
    }

    /// Everything due by `now`: deliveries, timeouts, faults, new operations, phase changes.
    fn on_time(&mut self, now: Instant) -> Result<(), HarnessError> {
        while let Some((to, message)) = self.net.pop_due(now) {
            self.deliver(to, message.line, now);
        }
        self.expire_clients(now);
        self.expire_restarts(now);
        match self.phase {
            Phase::Init { deadline } => {
                if let Some(slot) = self.nodes.iter().find(|n| n.state != NodeState::Up) {
                    if now >= deadline {
                        return Err(HarnessError::NoInitReply {
                            node: slot.id.clone(),
                            request: "init",
                            waited: self.options.init_timeout,
                        });
                    }
                } else if self.options.workload == WorkloadName::Broadcast {
                    self.send_topology(now);
                } else {
                    self.begin_main(now);
                }
            }
            Phase::Topology { deadline } => {
                if let Some(i) = self.topology_waiting.iter().position(Option::is_some) {
                    if now >= deadline {
                        return Err(HarnessError::NoInitReply {
                            node: self.nodes[i].id.clone(),
                            request: "topology",
                            waited: self.options.init_timeout,
                        });
                    }
                } else {
                    self.begin_main(now);
                }
            }
            Phase::Main { until } => {
                if now >= until {
                    for action in self.nemesis.heal_all() {
                        self.apply(action, now);
                    }
                    self.phase = Phase::Drain;
                } else {
                    while let Some(action) = self.nemesis.poll(now) {
                        self.apply(action, now);
                    }
                    self.generate(now);
                }
            }
            Phase::Drain => {
                if self.clients.iter().all(|c| c.pending.is_none()) {
                    self.phase = Phase::Recovery {
                        until: later(now, self.options.recovery_time),
                    };
                }
            }
            Phase::Recovery { until } => {
                if now >= until {
                    self.phase = Phase::Final;
                    return self.step_final(now);
                }
            }
            Phase::Final => return self.step_final(now),
            Phase::Done => {}
        }
        Ok(())
    }

    /// The final operations: each client idle gets its next one until none has any left.
    fn step_final(&mut self, now: Instant) -> Result<(), HarnessError> {
        let mut busy = false;
        for c in 0..self.clients.len() {
            if self.clients[c].pending.is_some() {
                busy = true;
            } else if let Some(inv) = self.generator.next_final(c) {
                self.invoke(c, inv, now);
                busy = true;
            }
        }
        if !busy {
            self.phase = Phase::Done;
        }
        Ok(())
    }

    fn send_topology(&mut self, now: Instant) {
        let n = self.nodes.len();
        let neighbours = self.options.topology.neighbours(n);
        let topology: Map<String, Value> = neighbours
            .iter()
            .enumerate()
            .map(|(i, ns)| {
                let ns: Vec<Value> = ns.iter().map(|j| format!("n{j}").into()).collect();
                (format!("n{i}"), Value::Array(ns))
            })
            .collect();
        for i in 0..n {
            let msg_id = self.next_setup_id;
            self.next_setup_id += 1;
            let mut fields = Map::new();
            fields.insert("topology".into(), Value::Object(topology.clone()));
            if let Some(p) = &self.nodes[i].process {
                p.send(setup_message(&self.nodes[i].id, "topology", msg_id, fields));
            }
            self.topology_waiting[i] = Some(msg_id);
        }
        self.phase = Phase::Topology {
            deadline: later(now, self.options.init_timeout),
        };
    }

    fn begin_main(&mut self, now: Instant) {
        self.epoch = now;
        self.next_op_at = now;
        self.nemesis.start(now);
        self.phase = Phase::Main {
            until: later(now, self.options.time_limit),
        };
    }

    fn on_event(&mut self, event: Event, now: Instant) -> Result<(), HarnessError> {
        match event {
            Event::Exited { node, incarnation } => {
                if self.nodes[node].incarnation != incarnation || self.nodes[node].process.is_none()
                {
                    return Ok(());
                }
                if matches!(self.phase, Phase::Init { .. }) {
                    return Err(HarnessError::ExitedDuringInit {
                        node: self.nodes[node].id.clone(),
                    });
                }
                let id = self.nodes[node].id.clone();
                self.note(now, format!("{id} exited on its own"));
                self.take_down(node, now);
            }
            Event::Line {
                node,
                incarnation,
                line,
            } => {
                if self.nodes[node].incarnation == incarnation && !line.trim().is_empty() {
                    self.on_line(node, &line, now);
                }
            }
        }
        Ok(())
    }

    /// Checks the history, writes it and the summary, and returns the outcome.
    fn finish(self) -> Result<Outcome, HarnessError> {
        let report = check::check(self.options.workload, &self.history, &self.options.check);
        let (ops, latency) = summary::op_stats(&self.history);
        let outcome = Outcome {
            workload: self.options.workload,
            report,
            ops,
            net: self.net.stats,
            latency,
            nemesis: self.nemesis_stats,
            log_dir: self.log_dir,
            history: self.history,
        };
        let path = outcome.history_path();
        let mut file =
            std::io::BufWriter::new(std::fs::File::create(&path).map_err(io_err(&path))?);
        history::write_jsonl(&outcome.history, &mut file).map_err(io_err(&path))?;
        std::io::Write::flush(&mut file).map_err(io_err(&path))?;
        let path = outcome.log_dir.join("results.edn");
        std::fs::write(&path, outcome.summary()).map_err(io_err(&path))?;
        let path = outcome.log_dir.join("nemesis.log");
        let mut events = outcome.nemesis.log.join("\n");
        events.push('\n');
        std::fs::write(&path, events).map_err(io_err(&path))?;
        Ok(outcome)
    }
}

/// A message from the harness's setup client.
fn setup_message(dest: &str, kind: &str, msg_id: u64, fields: Map<String, Value>) -> String {
    Message {
        src: SETUP_CLIENT.into(),
        dest: dest.into(),
        kind: kind.into(),
        msg_id: Some(msg_id),
        in_reply_to: None,
        fields,
    }
    .to_line()
}
