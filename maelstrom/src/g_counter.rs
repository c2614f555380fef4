//! The g-counter workload: `add {delta}` → `add_ok`, `read` → `read_ok {value}`, over
//! Maelstrom's `seq-kv` service.
//!
//! Each node owns one key of the store, its node id, and only it writes that key: adds are
//! batched into one `cas` from the value the node last wrote to that value plus the batch.
//! An add is acknowledged only once its `cas` is, so a killed node loses no acknowledged add;
//! a restarted node reads its key back before it writes. A `cas` that times out is sent again
//! unchanged: if the first one had been applied, the second fails with `precondition-failed`,
//! and reading the key tells whether it holds the value the node tried to write.
//!
//! A read first writes the node's own `sync-<node id>` key (sequential consistency lets a
//! read be served from the past; a write brings this node's view up to date), then reads every
//! node's key and answers with the sum.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::{Map, Value};
use sinew_proto::time::Instant;

use crate::echo::not_supported;
use crate::{Ctx, ErrorCode, Message, Reject, Workload};

/// How a g-counter node uses its store.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// The key-value service (`"seq-kv"`).
    pub service: String,
    /// How long a request to the service waits for its answer before it is sent again.
    pub retry_after: Duration,
}

impl Config {
    /// `seq-kv`, retries after 500 ms.
    pub fn new() -> Config {
        Config {
            service: "seq-kv".into(),
            retry_after: Duration::from_millis(500),
        }
    }
}

impl Default for Config {
    fn default() -> Config {
        Config::new()
    }
}

/// Why a request to the store was sent.
#[derive(Clone, Debug)]
enum Purpose {
    /// Read the node's own key at start (a restarted node's total).
    Load,
    /// Write a batch of adds.
    Cas { to: u64, adds: Vec<Message> },
    /// After a refused `cas`: did the key get `to` (an earlier try applied) or not?
    Check { to: u64, adds: Vec<Message> },
    /// Bring this node's view up to date before read `read`.
    Sync { read: u64 },
    /// One node's key for read `read`.
    Read { read: u64, key: String },
}

#[derive(Clone, Debug)]
struct Outstanding {
    sent: Instant,
    kind: &'static str,
    fields: Map<String, Value>,
    purpose: Purpose,
}

#[derive(Debug)]
struct ReadOp {
    request: Message,
    remaining: usize,
    sum: u64,
}

/// The g-counter node.
#[derive(Debug, Default)]
pub struct GCounter {
    config: Config,
    loaded: bool,
    /// What the node's key holds, as far as this node knows.
    total: u64,
    queued: Vec<(Message, u64)>,
    outstanding: HashMap<u64, Outstanding>,
    reads: BTreeMap<u64, ReadOp>,
    next_read: u64,
    syncs: u64,
}

impl GCounter {
    /// A node that uses the store as `config` says.
    pub fn new(config: Config) -> GCounter {
        GCounter {
            config,
            ..GCounter::default()
        }
    }

    /// What this node's key holds, as far as it knows.
    pub fn total(&self) -> u64 {
        self.total
    }

    fn request(
        &mut self,
        ctx: &mut Ctx<'_>,
        kind: &'static str,
        fields: Map<String, Value>,
        purpose: Purpose,
    ) {
        let id = ctx.send(&self.config.service, kind, fields.clone());
        self.outstanding.insert(
            id,
            Outstanding {
                sent: ctx.now,
                kind,
                fields,
                purpose,
            },
        );
    }

    fn read_key(&mut self, ctx: &mut Ctx<'_>, key: &str, purpose: Purpose) {
        self.request(ctx, "read", fields([("key", key.into())]), purpose);
    }

    fn writing(&self) -> bool {
        self.outstanding.values().any(|o| {
            matches!(
                o.purpose,
                Purpose::Cas { .. } | Purpose::Check { .. } | Purpose::Load
            )
        })
    }

    /// Sends the queued adds as one `cas`, unless a write is under way.
    fn flush(&mut self, ctx: &mut Ctx<'_>) {
        if !self.loaded || self.queued.is_empty() || self.writing() {
            return;
        }
        let adds: Vec<(Message, u64)> = std::mem::take(&mut self.queued);
        let to = adds
            .iter()
            .fold(self.total, |sum, (_, d)| sum.saturating_add(*d));
        let cas = fields([
            ("key", ctx.node_id.into()),
            ("from", self.total.into()),
            ("to", to.into()),
            ("create_if_not_exists", true.into()),
        ]);
        let adds = adds.into_iter().map(|(m, _)| m).collect();
        self.request(ctx, "cas", cas, Purpose::Cas { to, adds });
    }

    fn applied(&mut self, ctx: &mut Ctx<'_>, to: u64, adds: Vec<Message>) {
        self.total = to;
        for add in &adds {
            ctx.reply(add, "add_ok", Map::new());
        }
    }

    fn requeue(&mut self, adds: Vec<Message>) {
        let mut again: Vec<(Message, u64)> = adds
            .into_iter()
            .map(|m| {
                let d = m.get("delta").and_then(Value::as_u64).unwrap_or(0);
                (m, d)
            })
            .collect();
        again.append(&mut self.queued);
        self.queued = again;
    }

    fn finish_read(&mut self, ctx: &mut Ctx<'_>, read: u64, value: u64) {
        let Some(op) = self.reads.get_mut(&read) else {
            return;
        };
        op.sum = op.sum.saturating_add(value);
        op.remaining = op.remaining.saturating_sub(1);
        if op.remaining == 0
            && let Some(op) = self.reads.remove(&read)
        {
            ctx.reply(&op.request, "read_ok", fields([("value", op.sum.into())]));
        }
    }

    fn on_service_reply(&mut self, ctx: &mut Ctx<'_>, message: &Message, sent: Outstanding) {
        let ok = message.kind != "error";
        let code = message
            .get("code")
            .and_then(Value::as_u64)
            .map(ErrorCode::from_code);
        let value = message.get("value").and_then(Value::as_u64);
        match sent.purpose {
            Purpose::Load => {
                if ok || code == Some(ErrorCode::KeyDoesNotExist) {
                    self.total = if ok { value.unwrap_or(0) } else { 0 };
                    self.loaded = true;
                } else {
                    self.read_key(ctx, ctx.node_id, Purpose::Load);
                }
            }
            Purpose::Cas { to, adds } => {
                if ok {
                    self.applied(ctx, to, adds);
                } else if matches!(
                    code,
                    Some(ErrorCode::PreconditionFailed | ErrorCode::KeyDoesNotExist)
                ) {
                    self.read_key(ctx, ctx.node_id, Purpose::Check { to, adds });
                } else {
                    self.request(ctx, sent.kind, sent.fields, Purpose::Cas { to, adds });
                }
            }
            Purpose::Check { to, adds } => {
                let now_holds = if ok {
                    Some(value.unwrap_or(0))
                } else if code == Some(ErrorCode::KeyDoesNotExist) {
                    Some(0)
                } else {
                    None
                };
                match now_holds {
                    Some(v) if v == to => self.applied(ctx, to, adds),
                    Some(v) => {
                        self.total = v;
                        self.requeue(adds);
                    }
                    None => self.read_key(ctx, ctx.node_id, Purpose::Check { to, adds }),
                }
            }
            Purpose::Sync { read } => {
                let ids: Vec<String> = ctx.node_ids.to_vec();
                if let Some(op) = self.reads.get_mut(&read) {
                    op.remaining = ids.len();
                }
                for key in ids {
                    self.read_key(
                        ctx,
                        &key,
                        Purpose::Read {
                            read,
                            key: key.clone(),
                        },
                    );
                }
            }
            Purpose::Read { read, key } => {
                let v = if ok {
                    value.unwrap_or(0)
                } else if code == Some(ErrorCode::KeyDoesNotExist) {
                    0
                } else {
                    self.read_key(ctx, &key.clone(), Purpose::Read { read, key });
                    return;
                };
                // This node's own key: never less than what it knows it wrote.
                let v = if key == ctx.node_id {
                    v.max(self.total)
                } else {
                    v
                };
                self.finish_read(ctx, read, v);
            }
        }
        self.flush(ctx);
    }
}

fn fields<const N: usize>(pairs: [(&str, Value); N]) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

impl Workload for GCounter {
    fn on_init(&mut self, ctx: &mut Ctx<'_>) {
        self.read_key(ctx, ctx.node_id, Purpose::Load);
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_>, message: &Message) -> Result<(), Reject> {
        if message.src == self.config.service {
            if let Some(sent) = message
                .in_reply_to
                .and_then(|id| self.outstanding.remove(&id))
            {
                self.on_service_reply(ctx, message, sent);
            }
            return Ok(());
        }
        match message.kind.as_str() {
            "add" => {
                let delta = message
                    .get("delta")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| {
                        Reject::malformed("add: `delta` must be a non-negative integer")
                    })?;
                if delta == 0 {
                    ctx.reply(message, "add_ok", Map::new());
                } else {
                    self.queued.push((message.clone(), delta));
                    self.flush(ctx);
                }
            }
            "read" => {
                let read = self.next_read;
                self.next_read += 1;
                self.reads.insert(
                    read,
                    ReadOp {
                        request: message.clone(),
                        remaining: usize::MAX,
                        sum: 0,
                    },
                );
                self.syncs += 1;
                let key = format!("sync-{}", ctx.node_id);
                let write = fields([("key", key.into()), ("value", self.syncs.into())]);
                self.request(ctx, "write", write, Purpose::Sync { read });
            }
            _ => return Err(not_supported(message)),
        }
        Ok(())
    }

    fn on_timeout(&mut self, ctx: &mut Ctx<'_>) {
        let retry = self.config.retry_after;
        let late: Vec<u64> = self
            .outstanding
            .iter()
            .filter(|(_, o)| ctx.now.saturating_duration_since(o.sent) >= retry)
            .map(|(&id, _)| id)
            .collect();
        for id in late {
            if let Some(o) = self.outstanding.remove(&id) {
                // Sent again unchanged, under a new msg_id; a late answer to the old one is ignored.
                self.request(ctx, o.kind, o.fields, o.purpose);
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.outstanding
            .values()
            .map(|o| o.sent + self.config.retry_after)
            .min()
    }
}
