//! The kafka-style log workload: `send {key, msg}` → `send_ok {offset}`, `poll {offsets}` →
//! `poll_ok {msgs}`, `commit_offsets {offsets}`, `list_committed_offsets {keys}`, over
//! Maelstrom's linearizable `lin-kv` service.
//!
//! Each log is a run of chunks in the store, each the list of up to [`Config::chunk_len`]
//! messages (`log-<key>-<n>` holds offsets `n × chunk_len` onwards). A send appends to the last
//! chunk with a `cas` from the chunk as last seen to the chunk plus the message, or creates the
//! next chunk when that one is full; the message's offset is its place in the run, so offsets are
//! dense, in send order, and never reused. A refused `cas` reads the chunk again and retries (a
//! full chunk sends it on to the next); a `cas` that times out is sent again unchanged, and a
//! refusal after it is checked against the chunk (the message at the offset it would have had
//! means the first one was applied). A poll reads one chunk per key, the one holding the offset
//! asked for, and answers from there to the chunk's end: an append moves at most one chunk
//! across the network and a poll answers at most `chunk_len` messages per key, however long the
//! log grows. Committed offsets are `committed-<key>` values that only grow (read, then `cas` to
//! the larger offset). Every reply waits for the store, so a killed node loses nothing it
//! acknowledged.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Map, Value, json};
use sinew_proto::time::Instant;

use crate::echo::not_supported;
use crate::{Ctx, ErrorCode, Message, Reject, Workload};

/// How a kafka node uses its store.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// The key-value service (`"lin-kv"`).
    pub service: String,
    /// How long a request to the service waits for its answer before it is sent again.
    pub retry_after: Duration,
    /// Messages per chunk of a log: what one append moves and one poll answers, at most, per
    /// key (at least 1).
    pub chunk_len: usize,
}

impl Config {
    /// `lin-kv`, retries after 500 ms, chunks of 64 messages.
    pub fn new() -> Config {
        Config {
            service: "lin-kv".into(),
            retry_after: Duration::from_millis(500),
            chunk_len: 64,
        }
    }
}

impl Default for Config {
    fn default() -> Config {
        Config::new()
    }
}

#[derive(Clone, Debug)]
enum Step {
    /// Read chunk `chunk` of the log before appending `msg`.
    SendRead { key: String, msg: Value, chunk: u64 },
    /// Append `msg` at `offset` (in chunk `offset / chunk_len`).
    SendCas {
        key: String,
        msg: Value,
        offset: u64,
    },
    /// Read the chunk holding offset `from` for a poll.
    PollRead { key: String, from: u64 },
    /// Read a committed offset before raising it to `want`.
    CommitRead { key: String, want: u64 },
    /// Raise a committed offset to `want`.
    CommitCas { key: String, want: u64 },
    /// Read a committed offset for a list.
    ListRead { key: String },
}

#[derive(Clone, Debug)]
struct Outstanding {
    sent: Instant,
    kind: &'static str,
    fields: Map<String, Value>,
    job: u64,
    step: Step,
}

#[derive(Debug)]
struct Job {
    request: Message,
    remaining: usize,
    result: Map<String, Value>,
}

/// The kafka node.
#[derive(Debug, Default)]
pub struct Kafka {
    config: Config,
    /// Each log's last chunk as last read or written: its number and its messages.
    cache: HashMap<String, (u64, Vec<Value>)>,
    jobs: HashMap<u64, Job>,
    next_job: u64,
    outstanding: HashMap<u64, Outstanding>,
}

fn fields<const N: usize>(pairs: [(&str, Value); N]) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn chunk_key(key: &str, chunk: u64) -> String {
    format!("log-{key}-{chunk}")
}

fn committed_key(key: &str) -> String {
    format!("committed-{key}")
}

/// A `{key: offset}` map from a request.
fn offsets(message: &Message) -> Result<Vec<(String, u64)>, Reject> {
    message
        .get("offsets")
        .and_then(Value::as_object)
        .and_then(|o| {
            o.iter()
                .map(|(k, v)| Some((k.clone(), v.as_u64()?)))
                .collect::<Option<Vec<_>>>()
        })
        .ok_or_else(|| Reject::malformed("`offsets` must map keys to offsets"))
}

impl Kafka {
    /// A node that uses the store as `config` says.
    pub fn new(config: Config) -> Kafka {
        Kafka {
            config,
            ..Kafka::default()
        }
    }

    fn request(
        &mut self,
        ctx: &mut Ctx<'_>,
        kind: &'static str,
        fields: Map<String, Value>,
        job: u64,
        step: Step,
    ) {
        let id = ctx.send(&self.config.service, kind, fields.clone());
        self.outstanding.insert(
            id,
            Outstanding {
                sent: ctx.now,
                kind,
                fields,
                job,
                step,
            },
        );
    }

    fn read(&mut self, ctx: &mut Ctx<'_>, store_key: String, job: u64, step: Step) {
        self.request(ctx, "read", fields([("key", store_key.into())]), job, step);
    }

    fn chunk_len(&self) -> u64 {
        self.config.chunk_len.max(1) as u64
    }

    /// Remembers chunk `chunk` of `key`'s log as read or written, unless a later one is known.
    fn remember(&mut self, key: &str, chunk: u64, list: Vec<Value>) {
        match self.cache.get_mut(key) {
            Some(known) if known.0 > chunk => {}
            Some(known) => *known = (chunk, list),
            None => {
                self.cache.insert(key.to_owned(), (chunk, list));
            }
        }
    }

    /// Appends `msg` to the last chunk known, or starts the next one when that one is full.
    fn append(&mut self, ctx: &mut Ctx<'_>, job: u64, key: String, msg: Value) {
        let len = self.chunk_len();
        let (mut chunk, mut from) = self.cache.get(&key).cloned().unwrap_or_default();
        if from.len() as u64 >= len {
            chunk += 1;
            from = Vec::new();
        }
        let offset = chunk * len + from.len() as u64;
        let mut to = from.clone();
        to.push(msg.clone());
        let cas = fields([
            ("key", chunk_key(&key, chunk).into()),
            ("create_if_not_exists", from.is_empty().into()),
            ("from", Value::Array(from)),
            ("to", Value::Array(to)),
        ]);
        self.request(ctx, "cas", cas, job, Step::SendCas { key, msg, offset });
    }

    fn new_job(&mut self, message: &Message, remaining: usize) -> u64 {
        let id = self.next_job;
        self.next_job += 1;
        self.jobs.insert(
            id,
            Job {
                request: message.clone(),
                remaining,
                result: Map::new(),
            },
        );
        id
    }

    /// One part of job `job` done; the reply when it was the last.
    fn part_done(
        &mut self,
        ctx: &mut Ctx<'_>,
        job: u64,
        reply_kind: &str,
        result_field: Option<&str>,
    ) {
        let Some(j) = self.jobs.get_mut(&job) else {
            return;
        };
        j.remaining = j.remaining.saturating_sub(1);
        if j.remaining == 0
            && let Some(j) = self.jobs.remove(&job)
        {
            let mut out = Map::new();
            if let Some(name) = result_field {
                out.insert(name.into(), Value::Object(j.result));
            }
            ctx.reply(&j.request, reply_kind, out);
        }
    }

    fn on_store_reply(&mut self, ctx: &mut Ctx<'_>, message: &Message, o: Outstanding) {
        let code = (message.kind == "error").then(|| {
            ErrorCode::from_code(message.get("code").and_then(Value::as_u64).unwrap_or(13))
        });
        let missing = code == Some(ErrorCode::KeyDoesNotExist);
        let job = o.job;
        match o.step {
            Step::SendRead { key, msg, chunk } => {
                match (code, message.get("value").and_then(Value::as_array)) {
                    (None, Some(list)) => self.remember(&key, chunk, list.clone()),
                    _ if missing => self.remember(&key, chunk, Vec::new()),
                    _ => {
                        let store_key = chunk_key(&key, chunk);
                        return self.read(ctx, store_key, job, Step::SendRead { key, msg, chunk });
                    }
                }
                // A re-read after a refused append: was an earlier try applied after all?
                if !self.check_applied(ctx, job, &key) {
                    self.append(ctx, job, key, msg);
                }
            }
            Step::SendCas { key, msg, offset } => match code {
                None => {
                    if let Some(Value::Array(to)) = o.fields.get("to") {
                        self.remember(&key, offset / self.chunk_len(), to.clone());
                    }
                    if let Some(j) = self.jobs.remove(&job) {
                        ctx.reply(&j.request, "send_ok", fields([("offset", offset.into())]));
                    }
                }
                Some(ErrorCode::PreconditionFailed | ErrorCode::KeyDoesNotExist) => {
                    // Read the chunk again; the read tells whether an earlier try got in.
                    let chunk = offset / self.chunk_len();
                    if let Some(j) = self.jobs.get_mut(&job) {
                        j.result.insert("check_offset".into(), offset.into());
                        j.result.insert("check_msg".into(), msg.clone());
                    }
                    self.read(
                        ctx,
                        chunk_key(&key, chunk),
                        job,
                        Step::SendRead { key, msg, chunk },
                    );
                }
                _ => self.request(
                    ctx,
                    o.kind,
                    o.fields,
                    job,
                    Step::SendCas { key, msg, offset },
                ),
            },
            Step::PollRead { key, from } => {
                let len = self.chunk_len();
                let chunk = from / len;
                let list = match (code, message.get("value").and_then(Value::as_array)) {
                    (None, Some(list)) => list.clone(),
                    _ if missing => Vec::new(),
                    _ => {
                        let store_key = chunk_key(&key, chunk);
                        return self.read(ctx, store_key, job, Step::PollRead { key, from });
                    }
                };
                let first = chunk * len;
                let entries: Vec<Value> = (first..)
                    .zip(&list)
                    .skip_while(|(offset, _)| *offset < from)
                    .map(|(offset, m)| json!([offset, m]))
                    .collect();
                self.remember(&key, chunk, list);
                if let Some(j) = self.jobs.get_mut(&job) {
                    j.result.insert(key, Value::Array(entries));
                }
                self.part_done(ctx, job, "poll_ok", Some("msgs"));
            }
            Step::CommitRead { key, want } => {
                let now = match (code, message.get("value").and_then(Value::as_u64)) {
                    (None, Some(v)) => Some(v),
                    _ if missing => None,
                    _ => {
                        return self.read(
                            ctx,
                            committed_key(&key),
                            job,
                            Step::CommitRead { key, want },
                        );
                    }
                };
                if now.is_some_and(|v| v >= want) {
                    self.part_done(ctx, job, "commit_offsets_ok", None);
                } else {
                    let cas = fields([
                        ("key", committed_key(&key).into()),
                        ("from", now.map_or(Value::Null, Value::from)),
                        ("to", want.into()),
                        ("create_if_not_exists", now.is_none().into()),
                    ]);
                    self.request(ctx, "cas", cas, job, Step::CommitCas { key, want });
                }
            }
            Step::CommitCas { key, want } => match code {
                None => self.part_done(ctx, job, "commit_offsets_ok", None),
                Some(ErrorCode::PreconditionFailed | ErrorCode::KeyDoesNotExist) => {
                    self.read(
                        ctx,
                        committed_key(&key),
                        job,
                        Step::CommitRead { key, want },
                    );
                }
                _ => self.request(ctx, o.kind, o.fields, job, Step::CommitCas { key, want }),
            },
            Step::ListRead { key } => {
                match (code, message.get("value").and_then(Value::as_u64)) {
                    (None, Some(v)) => {
                        if let Some(j) = self.jobs.get_mut(&job) {
                            j.result.insert(key, v.into());
                        }
                    }
                    _ if missing => {}
                    _ => return self.read(ctx, committed_key(&key), job, Step::ListRead { key }),
                }
                self.part_done(ctx, job, "list_committed_offsets_ok", Some("offsets"));
            }
        }
    }

    /// After a refused or retried append, whether the log already holds the message where the
    /// earlier try put it; then the send is done.
    fn check_applied(&mut self, ctx: &mut Ctx<'_>, job: u64, key: &str) -> bool {
        let Some(j) = self.jobs.get(&job) else {
            return false;
        };
        let (Some(offset), Some(msg)) = (
            j.result.get("check_offset").and_then(Value::as_u64),
            j.result.get("check_msg"),
        ) else {
            return false;
        };
        let len = self.chunk_len();
        let applied = self
            .cache
            .get(key)
            .filter(|(chunk, _)| *chunk == offset / len)
            .and_then(|(_, l)| l.get(usize::try_from(offset % len).ok()?))
            .is_some_and(|m| m == msg);
        if applied && let Some(j) = self.jobs.remove(&job) {
            ctx.reply(&j.request, "send_ok", fields([("offset", offset.into())]));
        }
        applied
    }
}

impl Workload for Kafka {
    fn on_message(&mut self, ctx: &mut Ctx<'_>, message: &Message) -> Result<(), Reject> {
        if message.src == self.config.service {
            if let Some(o) = message
                .in_reply_to
                .and_then(|id| self.outstanding.remove(&id))
            {
                self.on_store_reply(ctx, message, o);
            }
            return Ok(());
        }
        match message.kind.as_str() {
            "send" => {
                let key = message
                    .get("key")
                    .and_then(Value::as_str)
                    .ok_or_else(|| Reject::malformed("send: `key` must be a string"))?
                    .to_owned();
                let msg = message
                    .get("msg")
                    .ok_or_else(|| Reject::malformed("send: missing field `msg`"))?
                    .clone();
                let job = self.new_job(message, 1);
                if self.cache.contains_key(&key) {
                    self.append(ctx, job, key, msg);
                } else {
                    let store_key = chunk_key(&key, 0);
                    self.read(ctx, store_key, job, Step::SendRead { key, msg, chunk: 0 });
                }
            }
            "poll" => {
                let wanted = offsets(message)?;
                if wanted.is_empty() {
                    ctx.reply(message, "poll_ok", fields([("msgs", json!({}))]));
                    return Ok(());
                }
                let job = self.new_job(message, wanted.len());
                let len = self.chunk_len();
                for (key, from) in wanted {
                    let store_key = chunk_key(&key, from / len);
                    self.read(ctx, store_key, job, Step::PollRead { key, from });
                }
            }
            "commit_offsets" => {
                let wanted = offsets(message)?;
                if wanted.is_empty() {
                    ctx.reply(message, "commit_offsets_ok", Map::new());
                    return Ok(());
                }
                let job = self.new_job(message, wanted.len());
                for (key, want) in wanted {
                    self.read(
                        ctx,
                        committed_key(&key),
                        job,
                        Step::CommitRead { key, want },
                    );
                }
            }
            "list_committed_offsets" => {
                let keys = message
                    .get("keys")
                    .and_then(Value::as_array)
                    .and_then(|k| {
                        k.iter()
                            .map(|k| k.as_str().map(str::to_owned))
                            .collect::<Option<Vec<_>>>()
                    })
                    .ok_or_else(|| {
                        Reject::malformed("list_committed_offsets: `keys` must be strings")
                    })?;
                if keys.is_empty() {
                    ctx.reply(
                        message,
                        "list_committed_offsets_ok",
                        fields([("offsets", json!({}))]),
                    );
                    return Ok(());
                }
                let job = self.new_job(message, keys.len());
                for key in keys {
                    self.read(ctx, committed_key(&key), job, Step::ListRead { key });
                }
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
                self.request(ctx, o.kind, o.fields, o.job, o.step);
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
