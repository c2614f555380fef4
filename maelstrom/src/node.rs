//! What every workload node shares: `init`, message ids, replies and error replies.

use serde_json::{Map, Value};
use sinew_proto::maelstrom::{Envelope, ErrorCode, MessageWriter};
use sinew_proto::time::Instant;

/// One message, owned: the envelope's addresses and the body's fields.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// Who sent it.
    pub src: String,
    /// Who it is for.
    pub dest: String,
    /// `type`.
    pub kind: String,
    /// `msg_id`, when the sender expects an answer.
    pub msg_id: Option<u64>,
    /// `in_reply_to`, when this answers a request.
    pub in_reply_to: Option<u64>,
    /// The body's other fields.
    pub fields: Map<String, Value>,
}

impl Message {
    /// A field of the body.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields.get(name)
    }

    /// The message as one JSON line (without the `\n`).
    pub fn to_line(&self) -> String {
        // Written by hand around serde_json's values so that the reserved fields come first,
        // in a fixed order, whatever the map's order.
        let json = |v: &Value| v.to_string();
        let string = |s: &str| json(&Value::String(s.to_owned()));
        let mut line = format!(
            r#"{{"src":{},"dest":{},"body":{{"type":{}"#,
            string(&self.src),
            string(&self.dest),
            string(&self.kind)
        );
        if let Some(id) = self.in_reply_to {
            line.push_str(&format!(r#","in_reply_to":{id}"#));
        }
        if let Some(id) = self.msg_id {
            line.push_str(&format!(r#","msg_id":{id}"#));
        }
        for (k, v) in &self.fields {
            if !matches!(k.as_str(), "type" | "msg_id" | "in_reply_to") {
                line.push_str(&format!(",{}:{}", string(k), json(v)));
            }
        }
        line.push_str("}}");
        line
    }
}

/// Why a request is refused: the error reply's code and text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reject {
    /// The error code.
    pub code: ErrorCode,
    /// The error text.
    pub text: String,
}

impl Reject {
    /// A refusal with `code`.
    pub fn new(code: ErrorCode, text: impl Into<String>) -> Reject {
        Reject {
            code,
            text: text.into(),
        }
    }

    /// `malformed-request`: a field is missing or of the wrong type.
    pub fn malformed(text: impl Into<String>) -> Reject {
        Reject::new(ErrorCode::MalformedRequest, text)
    }
}

/// What a workload sees while it handles a message or a timeout: its identity, the time, and
/// where to put what it sends.
#[derive(Debug)]
pub struct Ctx<'a> {
    /// This node's id (`"n1"`), from `init`.
    pub node_id: &'a str,
    /// Every node's id, this one's included, in `init`'s order.
    pub node_ids: &'a [String],
    /// The time of the event being handled.
    pub now: Instant,
    out: &'a mut Vec<Message>,
    next_msg_id: &'a mut u64,
}

impl Ctx<'_> {
    /// Sends a request (a message with a fresh `msg_id`); returns the `msg_id`.
    pub fn send(&mut self, dest: &str, kind: &str, fields: Map<String, Value>) -> u64 {
        let id = *self.next_msg_id;
        *self.next_msg_id += 1;
        self.out.push(Message {
            src: self.node_id.to_owned(),
            dest: dest.to_owned(),
            kind: kind.to_owned(),
            msg_id: Some(id),
            in_reply_to: None,
            fields,
        });
        id
    }

    /// Replies to `request` (with `in_reply_to` its `msg_id`, and a `msg_id` of this node's).
    pub fn reply(&mut self, request: &Message, kind: &str, fields: Map<String, Value>) {
        let id = *self.next_msg_id;
        *self.next_msg_id += 1;
        self.out.push(Message {
            src: self.node_id.to_owned(),
            dest: request.src.clone(),
            kind: kind.to_owned(),
            msg_id: Some(id),
            in_reply_to: request.msg_id,
            fields,
        });
    }

    /// Replies to `request` with an error.
    pub fn reject(&mut self, request: &Message, reject: &Reject) {
        let mut fields = Map::new();
        fields.insert("code".into(), reject.code.code().into());
        fields.insert("text".into(), reject.text.clone().into());
        self.reply(request, "error", fields);
    }
}

/// A Maelstrom workload's logic; [`Node`] handles `init`, ids and errors around it.
pub trait Workload {
    /// After `init` (node id and ids known); may send messages (a restarted node reads its
    /// state back here).
    fn on_init(&mut self, ctx: &mut Ctx<'_>) {
        let _ = ctx;
    }

    /// A message other than `init`. `Err` becomes an error reply when the message has a
    /// `msg_id` (and is dropped and counted otherwise): `not-supported` for a type the
    /// workload does not know, `malformed-request` for a missing or mistyped field.
    fn on_message(&mut self, ctx: &mut Ctx<'_>, message: &Message) -> Result<(), Reject>;

    /// Called when the time [`Workload::next_deadline`] returned has come.
    fn on_timeout(&mut self, ctx: &mut Ctx<'_>) {
        let _ = ctx;
    }

    /// When the workload wants [`Workload::on_timeout`] called, if at all.
    fn next_deadline(&self) -> Option<Instant> {
        None
    }
}

/// What a node has counted, for its log line on stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Lines received.
    pub lines: u64,
    /// Lines refused and answered with an error (they had a sender and a `msg_id`).
    pub answered_malformed: u64,
    /// Lines refused and dropped (nothing to address a reply to).
    pub dropped: u64,
    /// Error replies sent for well-formed requests (`not-supported`, `malformed-request`, …).
    pub rejected: u64,
}

/// A [`Ctx`] over a node's fields, borrowing them apart from its workload.
macro_rules! ctx {
    ($node:ident, $now:expr, $out:expr) => {
        Ctx {
            node_id: $node.node_id.as_deref().unwrap_or(""),
            node_ids: &$node.node_ids,
            now: $now,
            out: $out,
            next_msg_id: &mut $node.next_msg_id,
        }
    };
}

/// A Maelstrom node: `init`, message ids and error replies, around a [`Workload`].
#[derive(Debug)]
pub struct Node<W> {
    workload: W,
    node_id: Option<String>,
    node_ids: Vec<String>,
    next_msg_id: u64,
    stats: Stats,
}

impl<W: Workload> Node<W> {
    /// A node that has not been initialised yet.
    pub fn new(workload: W) -> Node<W> {
        Node {
            workload,
            node_id: None,
            node_ids: Vec::new(),
            next_msg_id: 1,
            stats: Stats::default(),
        }
    }

    /// The workload.
    pub fn workload(&self) -> &W {
        &self.workload
    }

    /// This node's id, once initialised.
    pub fn node_id(&self) -> Option<&str> {
        self.node_id.as_deref()
    }

    /// What the node has counted.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Handles one input line; returns the lines to send, in order.
    pub fn handle_line(&mut self, now: Instant, line: &[u8]) -> Vec<String> {
        self.stats.lines += 1;
        let mut out = Vec::new();
        let envelope = match Envelope::parse(line) {
            Ok(envelope) => envelope,
            Err(e) => {
                match salvage_error_reply(line, self.node_id.as_deref(), &e.to_string()) {
                    Some(reply) => {
                        self.stats.answered_malformed += 1;
                        out.push(reply);
                    }
                    None => self.stats.dropped += 1,
                }
                return out;
            }
        };
        let message = match to_message(&envelope) {
            Ok(message) => message,
            Err(text) => {
                self.answer_malformed(&envelope, &text, &mut out);
                return out;
            }
        };
        self.handle(now, message, &mut out);
        out
    }

    fn answer_malformed(&mut self, envelope: &Envelope<'_>, text: &str, out: &mut Vec<String>) {
        if envelope.body.msg_id.is_none() {
            self.stats.dropped += 1;
            return;
        }
        let mut buf = vec![0u8; envelope.encoded_len() + text.len() * 6 + 128];
        match MessageWriter::error_reply(&mut buf, envelope, ErrorCode::MalformedRequest, text) {
            Ok(n) => {
                buf.truncate(n);
                self.stats.answered_malformed += 1;
                out.push(String::from_utf8(buf).unwrap_or_default());
            }
            Err(_) => self.stats.dropped += 1,
        }
    }

    /// Handles one message; returns the messages to send, in order.
    pub fn handle_message(&mut self, now: Instant, message: Message) -> Vec<String> {
        let mut out = Vec::new();
        self.handle(now, message, &mut out);
        out
    }

    fn handle(&mut self, now: Instant, message: Message, out: &mut Vec<String>) {
        let mut sent = Vec::new();
        if message.kind == "init" {
            match init_fields(&message) {
                Ok((id, ids)) => {
                    self.node_id = Some(id);
                    self.node_ids = ids;
                    let mut ctx = ctx!(self, now, &mut sent);
                    ctx.reply(&message, "init_ok", Map::new());
                    // Maelstrom's own init_ok carries no msg_id; neither does ours.
                    if let Some(reply) = sent.last_mut() {
                        reply.msg_id = None;
                        self.next_msg_id -= 1;
                    }
                    let mut ctx = ctx!(self, now, &mut sent);
                    self.workload.on_init(&mut ctx);
                }
                Err(reject) => self.reject(now, &message, &reject, &mut sent),
            }
        } else if self.node_id.is_none() {
            let reject = Reject::new(ErrorCode::TemporarilyUnavailable, "not initialised yet");
            self.reject(now, &message, &reject, &mut sent);
        } else {
            let mut ctx = ctx!(self, now, &mut sent);
            if let Err(reject) = self.workload.on_message(&mut ctx, &message) {
                self.reject(now, &message, &reject, &mut sent);
            }
        }
        out.extend(sent.iter().map(Message::to_line));
    }

    fn reject(
        &mut self,
        now: Instant,
        message: &Message,
        reject: &Reject,
        sent: &mut Vec<Message>,
    ) {
        if message.msg_id.is_none() {
            self.stats.dropped += 1;
            return;
        }
        self.stats.rejected += 1;
        let node_id = self.node_id.clone().unwrap_or_else(|| message.dest.clone());
        let mut ctx = Ctx {
            node_id: &node_id,
            node_ids: &self.node_ids,
            now,
            out: sent,
            next_msg_id: &mut self.next_msg_id,
        };
        ctx.reject(message, reject);
    }

    /// When the node wants [`Node::handle_timeout`] called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.node_id.as_ref()?;
        self.workload.next_deadline()
    }

    /// Runs the workload's timers due at `now`; returns the lines to send.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<String> {
        let mut sent = Vec::new();
        if self.node_id.is_some() && self.workload.next_deadline().is_some_and(|d| d <= now) {
            let mut ctx = ctx!(self, now, &mut sent);
            self.workload.on_timeout(&mut ctx);
        }
        sent.iter().map(Message::to_line).collect()
    }
}

fn init_fields(message: &Message) -> Result<(String, Vec<String>), Reject> {
    let id = message
        .get("node_id")
        .and_then(Value::as_str)
        .ok_or_else(|| Reject::malformed("init: node_id must be a string"))?;
    let ids = message
        .get("node_ids")
        .and_then(Value::as_array)
        .and_then(|ids| {
            ids.iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
        })
        .ok_or_else(|| Reject::malformed("init: node_ids must be an array of strings"))?;
    Ok((id.to_owned(), ids))
}

/// The owned message for a parsed envelope: addresses and type unescaped, the body's fields
/// read by serde_json. `Err` is the text of a malformed-request reply.
fn to_message(envelope: &Envelope<'_>) -> Result<Message, String> {
    let unescape = |s: sinew_proto::maelstrom::JsonStr<'_>| -> Result<String, String> {
        s.chars()
            .collect::<Result<String, _>>()
            .map_err(|e| e.to_string())
    };
    let fields: Map<String, Value> = serde_json::from_str(envelope.body.raw)
        .map_err(|e| format!("body is not a JSON object: {e}"))?;
    Ok(Message {
        src: unescape(envelope.src)?,
        dest: unescape(envelope.dest)?,
        kind: unescape(envelope.body.kind)?,
        msg_id: envelope.body.msg_id,
        in_reply_to: envelope.body.in_reply_to,
        fields,
    })
}

/// An error reply to a line that did not parse as a message, when it is JSON enough to say who
/// sent it and which request it was (`src` a string, `body.msg_id` an integer).
fn salvage_error_reply(line: &[u8], node_id: Option<&str>, why: &str) -> Option<String> {
    let value: Value = serde_json::from_slice(line).ok()?;
    let src = value.get("src")?.as_str()?;
    let msg_id = value.get("body")?.get("msg_id")?.as_u64()?;
    let me = node_id
        .map(str::to_owned)
        .or_else(|| value.get("dest")?.as_str().map(str::to_owned))?;
    let mut fields = Map::new();
    fields.insert("code".into(), ErrorCode::MalformedRequest.code().into());
    fields.insert("text".into(), format!("malformed message: {why}").into());
    Some(
        Message {
            src: me,
            dest: src.to_owned(),
            kind: "error".into(),
            msg_id: None,
            in_reply_to: Some(msg_id),
            fields,
        }
        .to_line(),
    )
}
