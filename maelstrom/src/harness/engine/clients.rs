//! The clients: invoking operations at the rate, completing them from replies, timeouts and
//! crashes, and recording both in the history.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::super::generator::{self, Invocation};
use super::super::later;
use super::{Engine, NodeState, Pending};
use crate::history::{Op, OpType};
use crate::{ErrorCode, Message};

impl Engine {
    /// Invokes operations whose time has come, on free clients (Jepsen's `stagger`: the gap
    /// between operations is uniform in `[0, 2 / rate]`).
    pub(super) fn generate(&mut self, now: Instant) {
        if self.options.rate <= 0.0 {
            return;
        }
        let mean = Duration::try_from_secs_f64(1.0 / self.options.rate).unwrap_or(Duration::MAX);
        while self.next_op_at <= now {
            let Some(c) = self.free_client() else {
                return;
            };
            let inv = self.generator.next(c);
            self.invoke(c, inv, now);
            let gap = self.generator.gap(mean);
            self.next_op_at = later(self.next_op_at, gap);
        }
    }

    /// The next free client in turn (round robin over all clients, so that every node gets
    /// its share of the operations).
    pub(super) fn free_client(&mut self) -> Option<usize> {
        let n = self.clients.len();
        let found = (0..n)
            .map(|k| (self.next_client + k) % n)
            .find(|&c| self.clients[c].pending.is_none())?;
        self.next_client = (found + 1) % n;
        Some(found)
    }

    pub(super) fn time(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    pub(super) fn record(
        &mut self,
        now: Instant,
        c: usize,
        kind: OpType,
        f: &str,
        value: Value,
    ) -> &mut Op {
        let client = &self.clients[c];
        let op = Op {
            index: self.history.len() as u64,
            time: self.time(now),
            process: client.process,
            kind,
            f: f.to_owned(),
            value,
            node: self.nodes[client.node].id.clone(),
            error_code: None,
            error: None,
        };
        self.history.push(op);
        let last = self.history.len() - 1;
        &mut self.history[last]
    }

    pub(super) fn invoke(&mut self, c: usize, inv: Invocation, now: Instant) {
        self.record(now, c, OpType::Invoke, inv.f, inv.value.clone());
        let (kind, fields) = generator::request(self.options.workload, &inv);
        let client = &mut self.clients[c];
        let msg_id = client.next_msg_id;
        client.next_msg_id += 1;
        let node = client.node;
        let line = Message {
            src: client.name.clone(),
            dest: self.nodes[node].id.clone(),
            kind,
            msg_id: Some(msg_id),
            in_reply_to: None,
            fields,
        }
        .to_line();
        client.pending = Some(Pending {
            msg_id,
            inv,
            deadline: later(now, self.options.timeout),
        });
        let slot = &self.nodes[node];
        match (&slot.process, slot.state) {
            (Some(p), NodeState::Up | NodeState::Starting { .. }) => {
                p.send(line);
                self.net.count_client(true);
            }
            _ => {
                self.net.count_client(false);
                self.net.stats.dropped_node_down += 1;
            }
        }
    }

    /// Ends client `c`'s operation.
    pub(super) fn complete(
        &mut self,
        c: usize,
        now: Instant,
        kind: OpType,
        value: Value,
        error: Option<(Option<u64>, String)>,
    ) {
        let Some(pending) = self.clients[c].pending.take() else {
            return;
        };
        let f = pending.inv.f;
        let op = self.record(now, c, kind, f, value.clone());
        if let Some((code, text)) = error {
            op.error_code = code.and_then(|c| u32::try_from(c).ok());
            op.error = Some(text);
        }
        match kind {
            OpType::Info => {
                self.clients[c].process += self.clients.len() as u64;
            }
            OpType::Ok => self.generator.completed(c, f, &value),
            _ => {}
        }
    }

    /// A timeout or an indefinite error: `Info`, but `Fail` for a read (nothing to undo).
    pub(super) fn indefinite(&mut self, c: usize, now: Instant, code: Option<u64>, text: String) {
        let Some(pending) = &self.clients[c].pending else {
            return;
        };
        let kind = if generator::is_idempotent(pending.inv.f) {
            OpType::Fail
        } else {
            OpType::Info
        };
        let value = pending.inv.value.clone();
        self.complete(c, now, kind, value, Some((code, text)));
    }

    pub(super) fn expire_clients(&mut self, now: Instant) {
        for c in 0..self.clients.len() {
            if self.clients[c]
                .pending
                .as_ref()
                .is_some_and(|p| p.deadline <= now)
            {
                self.indefinite(c, now, None, "timeout".into());
            }
        }
    }

    pub(super) fn on_client_reply(&mut self, c: usize, reply: &Message, now: Instant) {
        let Some(pending) = &self.clients[c].pending else {
            self.net.stats.unexpected_replies += 1;
            return;
        };
        if reply.in_reply_to != Some(pending.msg_id) {
            self.net.stats.unexpected_replies += 1;
            return;
        }
        let inv = pending.inv.clone();
        if reply.kind == "error" {
            let code = reply.get("code").and_then(Value::as_u64);
            let text = reply
                .get("text")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let definite = code.is_some_and(|c| ErrorCode::from_code(c).is_definite());
            if definite {
                self.complete(c, now, OpType::Fail, inv.value, Some((code, text)));
            } else {
                self.indefinite(c, now, code, text);
            }
        } else if reply.kind == format!("{}_ok", inv.f) {
            match generator::ok_value(self.options.workload, &inv, &reply.fields) {
                Ok(value) => self.complete(c, now, OpType::Ok, value, None),
                Err(text) => self.indefinite(c, now, None, text),
            }
        } else {
            let text = format!("unexpected reply type {:?}", reply.kind);
            self.indefinite(c, now, None, text);
        }
    }
}
