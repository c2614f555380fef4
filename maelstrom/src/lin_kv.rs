//! The lin-kv workload: a linearizable key-value store for clients — `read {key}` →
//! `read_ok {value}`, `write {key, value}` → `write_ok`, `cas {key, from, to,
//! create_if_not_exists?}` → `cas_ok` — with key-does-not-exist (20) and
//! precondition-failed (22) as Maelstrom defines them.
//!
//! The node keeps nothing: each request is forwarded to Maelstrom's `lin-kv` service and the
//! service's answer (or error) goes back to the client, so every answer is the service's and
//! the node adds no staleness. A request is sent to the service once: resending a `write` or a
//! `cas` whose answer was lost could apply it twice, and a client that hears nothing records
//! the operation as indeterminate, which the checker allows for. Requests whose answer never
//! comes are forgotten after [`Config::forget_after`].

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Map, Value};
use sinew_proto::time::Instant;

use crate::echo::not_supported;
use crate::{Ctx, ErrorCode, Message, Reject, Workload};

/// How a lin-kv node uses its store.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// The key-value service (`"lin-kv"`).
    pub service: String,
    /// How long a forwarded request waits for the service before it is forgotten.
    pub forget_after: Duration,
}

impl Config {
    /// `lin-kv`, forgets unanswered requests after 60 s.
    pub fn new() -> Config {
        Config {
            service: "lin-kv".into(),
            forget_after: Duration::from_secs(60),
        }
    }
}

impl Default for Config {
    fn default() -> Config {
        Config::new()
    }
}

/// A forwarded request: the client's message, and when it went to the service.
#[derive(Clone, Debug)]
struct Forwarded {
    request: Message,
    sent: Instant,
}

/// The lin-kv node.
#[derive(Debug, Default)]
pub struct LinKv {
    config: Config,
    forwarded: HashMap<u64, Forwarded>,
}

/// The fields a request of `kind` must carry, and those it may.
fn request_fields(kind: &str) -> Option<(&'static [&'static str], &'static [&'static str])> {
    match kind {
        "read" => Some((&["key"], &[])),
        "write" => Some((&["key", "value"], &[])),
        "cas" => Some((&["key", "from", "to"], &["create_if_not_exists"])),
        _ => None,
    }
}

/// The body to send to the service for a client's `read`, `write` or `cas`.
pub(crate) fn service_request(message: &Message) -> Result<Map<String, Value>, Reject> {
    let Some((required, optional)) = request_fields(&message.kind) else {
        return Err(not_supported(message));
    };
    let mut fields = Map::new();
    for name in required {
        let v = message
            .get(name)
            .ok_or_else(|| Reject::malformed(format!("{}: missing `{name}`", message.kind)))?;
        fields.insert((*name).into(), v.clone());
    }
    for name in optional {
        if let Some(v) = message.get(name) {
            if !v.is_boolean() {
                return Err(Reject::malformed(format!(
                    "{}: `{name}` must be a boolean",
                    message.kind
                )));
            }
            fields.insert((*name).into(), v.clone());
        }
    }
    Ok(fields)
}

/// Sends the service's answer `answer` back to the client that asked `request`.
pub(crate) fn relay(ctx: &mut Ctx<'_>, request: &Message, answer: &Message) {
    if answer.kind == "error" {
        let code = answer.get("code").and_then(Value::as_u64).unwrap_or(13);
        let text = answer.get("text").and_then(Value::as_str).unwrap_or("");
        ctx.reject(request, &Reject::new(ErrorCode::from_code(code), text));
        return;
    }
    let mut fields = Map::new();
    if answer.kind == "read_ok" {
        fields.insert(
            "value".into(),
            answer.get("value").cloned().unwrap_or(Value::Null),
        );
    }
    ctx.reply(request, &answer.kind, fields);
}

impl LinKv {
    /// A node that uses the store as `config` says.
    pub fn new(config: Config) -> LinKv {
        LinKv {
            config,
            forwarded: HashMap::new(),
        }
    }

    /// How many requests await the service's answer.
    pub fn in_flight(&self) -> usize {
        self.forwarded.len()
    }

    fn forget_old(&mut self, now: Instant) {
        let limit = self.config.forget_after;
        self.forwarded
            .retain(|_, f| now.saturating_duration_since(f.sent) < limit);
    }
}

impl Workload for LinKv {
    fn on_message(&mut self, ctx: &mut Ctx<'_>, message: &Message) -> Result<(), Reject> {
        self.forget_old(ctx.now);
        if message.src == self.config.service {
            if let Some(f) = message
                .in_reply_to
                .and_then(|id| self.forwarded.remove(&id))
            {
                relay(ctx, &f.request, message);
            }
            return Ok(());
        }
        let fields = service_request(message)?;
        let id = ctx.send(&self.config.service, &message.kind, fields);
        self.forwarded.insert(
            id,
            Forwarded {
                request: message.clone(),
                sent: ctx.now,
            },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::{Config, LinKv};
    use crate::services::{LinKv as LinKvService, Service};
    use crate::{Instant, Message, Node};

    fn line(v: Value) -> String {
        v.to_string()
    }

    /// Sends `body` from client `c1` to the node, lets the service answer everything the node
    /// sends it, and returns what reaches the client.
    fn ask(node: &mut Node<LinKv>, store: &mut LinKvService, body: Value) -> Vec<Value> {
        let now = Instant::ZERO;
        let mut pending = node.handle_line(
            now,
            line(json!({"src": "c1", "dest": "n1", "body": body})).as_bytes(),
        );
        let mut to_client = Vec::new();
        while let Some(out) = pending.pop() {
            let v: Value = serde_json::from_str(&out).unwrap();
            if v["dest"] == "lin-kv" {
                let m = Message {
                    src: v["src"].as_str().unwrap().into(),
                    dest: "lin-kv".into(),
                    kind: v["body"]["type"].as_str().unwrap().into(),
                    msg_id: v["body"]["msg_id"].as_u64(),
                    in_reply_to: None,
                    fields: v["body"].as_object().unwrap().clone(),
                };
                let reply = store.handle(&m);
                pending.extend(node.handle_line(now, reply.to_line().as_bytes()));
            } else {
                to_client.push(v["body"].clone());
            }
        }
        to_client
    }

    fn started() -> Node<LinKv> {
        let mut node = Node::new(LinKv::new(Config::new()));
        let init = json!({"src": "c0", "dest": "n1", "body": {"type": "init", "msg_id": 1, "node_id": "n1", "node_ids": ["n1"]}});
        node.handle_line(Instant::ZERO, line(init).as_bytes());
        node
    }

    #[test]
    fn test_read_write_cas() {
        let mut node = started();
        let mut store = LinKvService::new();
        let r = ask(
            &mut node,
            &mut store,
            json!({"type": "read", "msg_id": 2, "key": 1}),
        );
        assert_eq!(r[0]["type"], "error");
        assert_eq!(r[0]["code"], 20);
        assert_eq!(r[0]["in_reply_to"], 2);
        let r = ask(
            &mut node,
            &mut store,
            json!({"type": "write", "msg_id": 3, "key": 1, "value": 4}),
        );
        assert_eq!(r[0]["type"], "write_ok");
        assert_eq!(r[0]["in_reply_to"], 3);
        let r = ask(
            &mut node,
            &mut store,
            json!({"type": "cas", "msg_id": 4, "key": 1, "from": 3, "to": 5}),
        );
        assert_eq!(
            (r[0]["type"].as_str(), r[0]["code"].as_u64()),
            (Some("error"), Some(22))
        );
        let r = ask(
            &mut node,
            &mut store,
            json!({"type": "cas", "msg_id": 5, "key": 1, "from": 4, "to": 5}),
        );
        assert_eq!(r[0]["type"], "cas_ok");
        let r = ask(
            &mut node,
            &mut store,
            json!({"type": "read", "msg_id": 6, "key": 1}),
        );
        assert_eq!(r[0]["type"], "read_ok");
        assert_eq!(r[0]["value"], 5);
        let r = ask(
            &mut node,
            &mut store,
            json!({"type": "cas", "msg_id": 7, "key": 2, "from": 0, "to": 1, "create_if_not_exists": true}),
        );
        assert_eq!(r[0]["type"], "cas_ok");
        assert_eq!(node.workload().in_flight(), 0);
    }

    #[test]
    fn test_malformed_requests() {
        let mut node = started();
        let mut store = LinKvService::new();
        let r = ask(
            &mut node,
            &mut store,
            json!({"type": "write", "msg_id": 2, "key": 1}),
        );
        assert_eq!(r[0]["code"], 12, "{r:?}");
        let r = ask(
            &mut node,
            &mut store,
            json!({"type": "cas", "msg_id": 3, "key": 1, "from": 1, "to": 2, "create_if_not_exists": "yes"}),
        );
        assert_eq!(r[0]["code"], 12, "{r:?}");
        let r = ask(
            &mut node,
            &mut store,
            json!({"type": "delete", "msg_id": 4, "key": 1}),
        );
        assert_eq!(r[0]["code"], 10, "{r:?}");
        assert_eq!(node.workload().in_flight(), 0);
    }

    #[test]
    fn test_unanswered_requests_are_forgotten() {
        let mut node = started();
        let body =
            json!({"src": "c1", "dest": "n1", "body": {"type": "read", "msg_id": 2, "key": 1}});
        let out = node.handle_line(Instant::ZERO, line(body).as_bytes());
        assert_eq!(out.len(), 1, "forwarded to the service");
        assert_eq!(node.workload().in_flight(), 1);
        let later = Instant::ZERO + std::time::Duration::from_secs(61);
        let body =
            json!({"src": "c1", "dest": "n1", "body": {"type": "read", "msg_id": 3, "key": 1}});
        node.handle_line(later, line(body).as_bytes());
        assert_eq!(node.workload().in_flight(), 1, "the first one forgotten");
    }
}
