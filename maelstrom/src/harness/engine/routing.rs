//! Lines from nodes to where they go: another node or a service through the network, a
//! client's reply to its operation, the setup client's `init_ok` and `topology_ok`.

use std::time::Instant;

use serde_json::Value;

use super::{Engine, NodeState, SETUP_CLIENT};
use crate::Message;

impl Engine {
    /// Hands a due message to its node, or to a service (whose reply goes back through the
    /// network).
    pub(super) fn deliver(&mut self, to: usize, line: String, now: Instant) {
        let n = self.nodes.len();
        if to < n {
            let slot = &self.nodes[to];
            match (&slot.process, slot.state) {
                (Some(p), NodeState::Up | NodeState::Starting { .. }) => p.send(line),
                _ => self.net.stats.dropped_node_down += 1,
            }
            return;
        }
        let Some(service) = self.services.get_mut(to - n) else {
            return;
        };
        let Some(request) = serde_json::from_str::<Value>(&line)
            .ok()
            .and_then(|v| to_message(&v))
        else {
            return;
        };
        let reply = service.handle(&request);
        match node_index(&reply.dest, n) {
            Some(dest) => self.net.send(now, None, dest, reply.to_line()),
            None => self.net.stats.unknown_destination += 1,
        }
    }

    /// Routes one line a node wrote.
    pub(super) fn on_line(&mut self, from: usize, line: &str, now: Instant) {
        let parsed = serde_json::from_str::<Value>(line)
            .ok()
            .and_then(|v| to_message(&v));
        let Some(message) = parsed else {
            self.net.stats.malformed[from] += 1;
            return;
        };
        let n = self.nodes.len();
        let client = client_index(&message.dest, self.clients.len());
        let node = node_index(&message.dest, n);
        let service = self.services.iter().position(|s| s.name() == message.dest);
        if message.dest != SETUP_CLIENT && client.is_none() && node.is_none() && service.is_none() {
            self.net.stats.unknown_destination += 1;
            return;
        }
        // The harness knows who wrote the line: a node that signs as another is not believed.
        if message.src != self.nodes[from].id {
            self.net.stats.forged_src += 1;
            return;
        }
        if message.dest == SETUP_CLIENT {
            self.on_setup_reply(from, &message);
        } else if let Some(c) = client {
            self.net.count_client(true);
            if self.clients[c].node != from {
                self.net.stats.wrong_node_replies += 1;
                return;
            }
            self.on_client_reply(c, &message, now);
        } else if let Some(to) = node {
            self.net.send(now, Some(from), to, line.to_owned());
        } else if let Some(s) = service {
            self.net.send(now, Some(from), n + s, line.to_owned());
        }
    }

    pub(super) fn on_setup_reply(&mut self, from: usize, message: &Message) {
        let slot = &mut self.nodes[from];
        match (message.kind.as_str(), slot.state) {
            ("init_ok", NodeState::Starting { msg_id, .. })
                if message.in_reply_to == Some(msg_id) =>
            {
                slot.state = NodeState::Up;
                if slot.incarnation > 1 {
                    self.nemesis_stats.restarts += 1;
                }
            }
            ("topology_ok", _) if message.in_reply_to == self.topology_waiting[from] => {
                self.topology_waiting[from] = None;
            }
            _ => self.net.stats.unexpected_replies += 1,
        }
    }
}

/// `n3` → 3, when below `n`.
fn node_index(name: &str, n: usize) -> Option<usize> {
    indexed(name, 'n').filter(|i| *i < n)
}

/// `c3` → client 2 (clients are `c1`…), when there is one.
fn client_index(name: &str, clients: usize) -> Option<usize> {
    indexed(name, 'c')
        .and_then(|i| i.checked_sub(1))
        .filter(|i| *i < clients)
}

fn indexed(name: &str, prefix: char) -> Option<usize> {
    let digits = name.strip_prefix(prefix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if digits.len() > 1 && digits.starts_with('0') {
        return None;
    }
    digits.parse().ok()
}

/// A JSON message as a [`Message`]: `src`, `dest` strings, a body object with a string
/// `type`; `None` for anything else.
fn to_message(v: &Value) -> Option<Message> {
    let body = v.get("body")?.as_object()?;
    let mut fields = body.clone();
    fields.remove("type");
    fields.remove("msg_id");
    fields.remove("in_reply_to");
    Some(Message {
        src: v.get("src")?.as_str()?.to_owned(),
        dest: v.get("dest")?.as_str()?.to_owned(),
        kind: body.get("type")?.as_str()?.to_owned(),
        msg_id: body.get("msg_id").and_then(Value::as_u64),
        in_reply_to: body.get("in_reply_to").and_then(Value::as_u64),
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    pub(super) fn test_names_map_to_indices() {
        assert_eq!(node_index("n0", 3), Some(0));
        assert_eq!(node_index("n3", 3), None);
        assert_eq!(node_index("n01", 30), None);
        assert_eq!(node_index("lin-kv", 3), None);
        assert_eq!(client_index("c1", 2), Some(0));
        assert_eq!(client_index("c0", 2), None);
        assert_eq!(client_index("c3", 2), None);
        assert!(to_message(&json!({"src": "n0", "dest": "c1", "body": {}})).is_none());
        let m = to_message(
            &json!({"src": "n0", "dest": "c1", "body": {"type": "x", "in_reply_to": 4, "k": 1}}),
        )
        .unwrap();
        assert_eq!(
            (m.in_reply_to, m.msg_id, m.get("k")),
            (Some(4), None, Some(&json!(1)))
        );
    }
}
