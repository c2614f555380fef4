//! What a harness run observed: every client operation's invocation and completion, in the
//! order the harness saw them (Jepsen's history model, which Maelstrom's checkers read).
//!
//! An operation is two [`Op`]s with the same `process`: an [`OpType::Invoke`] when the client
//! sent the request, then one completion: [`OpType::Ok`] (the node said it happened),
//! [`OpType::Fail`] (a *definite* error: it did not happen) or [`OpType::Info`] (timeout or an
//! *indefinite* error: it may or may not have happened). A process has at most one operation
//! in flight; after an `Info` the harness gives the client a fresh process number, as Jepsen
//! does, since the old one may still be running.
//!
//! `value` carries the workload's own payload as JSON, with these shapes (Maelstrom's):
//!
//! | workload | `f` | invoke `value` | ok `value` |
//! | --- | --- | --- | --- |
//! | echo | `echo` | the string sent | the string echoed |
//! | unique-ids | `generate` | `null` | the id (any JSON) |
//! | broadcast | `broadcast` | the integer | the same |
//! | broadcast | `read` | `null` | array of integers |
//! | g-counter | `add` | the delta | the same |
//! | g-counter | `read` | `null` | the integer |
//! | kafka | `send` | `[key, msg]` | `[key, msg, offset]` |
//! | kafka | `poll` | `{key: offset}` asked | `{key: [[offset, msg], …]}` |
//! | kafka | `commit_offsets` | `{key: offset}` | the same |
//! | kafka | `list_committed_offsets` | `[key, …]` | `{key: offset}` |
//! | txn-rw-register | `txn` | `[["r", k, null], ["w", k, v], …]` | the same with reads filled |
//! | lin-kv | `read` | `[key, null]` | `[key, value]` (`null` if absent) |
//! | lin-kv | `write` | `[key, value]` | the same |
//! | lin-kv | `cas` | `[key, [from, to]]` | the same |
//!
//! A history is written as JSON lines, one `Op` per line ([`write_jsonl`], [`read_jsonl`]).

use std::io::{self, BufRead, Write};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A workload, by Maelstrom's name for it (`-w`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum WorkloadName {
    /// `echo`.
    Echo,
    /// `unique-ids`.
    UniqueIds,
    /// `broadcast`.
    Broadcast,
    /// `g-counter`.
    GCounter,
    /// `kafka`.
    Kafka,
    /// `txn-rw-register`.
    TxnRwRegister,
    /// `lin-kv`.
    LinKv,
}

impl WorkloadName {
    /// Every workload, in Maelstrom's order.
    pub const ALL: [WorkloadName; 7] = [
        WorkloadName::Echo,
        WorkloadName::UniqueIds,
        WorkloadName::Broadcast,
        WorkloadName::GCounter,
        WorkloadName::Kafka,
        WorkloadName::TxnRwRegister,
        WorkloadName::LinKv,
    ];

    /// Maelstrom's name (`txn-rw-register`).
    pub const fn as_str(self) -> &'static str {
        match self {
            WorkloadName::Echo => "echo",
            WorkloadName::UniqueIds => "unique-ids",
            WorkloadName::Broadcast => "broadcast",
            WorkloadName::GCounter => "g-counter",
            WorkloadName::Kafka => "kafka",
            WorkloadName::TxnRwRegister => "txn-rw-register",
            WorkloadName::LinKv => "lin-kv",
        }
    }
}

impl std::fmt::Display for WorkloadName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for WorkloadName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        WorkloadName::ALL
            .into_iter()
            .find(|w| w.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = WorkloadName::ALL.iter().map(|w| w.as_str()).collect();
                format!("unknown workload {s:?}; one of {}", names.join(", "))
            })
    }
}

/// The kind of a history entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpType {
    /// A client sent a request.
    Invoke,
    /// The request happened (the node answered with its `_ok` reply).
    Ok,
    /// The request definitely did not happen (a definite error code).
    Fail,
    /// Unknown whether it happened: timeout, crash, or an indefinite error code.
    Info,
}

/// One history entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Op {
    /// Position in the history, from 0, gapless.
    pub index: u64,
    /// Nanoseconds since the run started (the harness's clock, virtual or real).
    pub time: u64,
    /// The client process: an invocation and its completion share it.
    pub process: u64,
    /// Invocation or completion.
    #[serde(rename = "type")]
    pub kind: OpType,
    /// The operation (`read`, `broadcast`, `send`, `txn`, …), see the module's table.
    pub f: String,
    /// The payload, see the module's table.
    pub value: Value,
    /// The node the client talked to (`n0`, …).
    pub node: String,
    /// For `Fail` and `Info` from an error reply: Maelstrom's error code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<u32>,
    /// For `Fail` and `Info`: the error's text, or `"timeout"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Op {
    /// Whether this entry ends an operation (`Ok`, `Fail` or `Info`).
    pub fn is_completion(&self) -> bool {
        self.kind != OpType::Invoke
    }
}

/// An operation: its invocation and, if the run saw one, its completion.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pair<'h> {
    /// The `Invoke` entry.
    pub invoke: &'h Op,
    /// The completion, `None` if the run ended first (treat as `Info`).
    pub completion: Option<&'h Op>,
}

impl Pair<'_> {
    /// The completion's kind, `Info` when there is none.
    pub fn outcome(&self) -> OpType {
        self.completion.map_or(OpType::Info, |c| c.kind)
    }

    /// Nanoseconds from invocation to completion, if it completed.
    pub fn latency_ns(&self) -> Option<u64> {
        self.completion
            .map(|c| c.time.saturating_sub(self.invoke.time))
    }
}

/// Matches every invocation with its completion (the next entry of the same process), in
/// invocation order. A completion without an invocation is malformed and returned in `Err`.
pub fn pairs(history: &[Op]) -> Result<Vec<Pair<'_>>, &Op> {
    use std::collections::HashMap;
    let mut open: HashMap<u64, usize> = HashMap::new();
    let mut out: Vec<Pair<'_>> = Vec::new();
    for op in history {
        if op.kind == OpType::Invoke {
            open.insert(op.process, out.len());
            out.push(Pair {
                invoke: op,
                completion: None,
            });
        } else {
            match open.remove(&op.process) {
                Some(i) => out[i].completion = Some(op),
                None => return Err(op),
            }
        }
    }
    Ok(out)
}

/// Writes a history as JSON lines.
pub fn write_jsonl(history: &[Op], out: &mut impl Write) -> io::Result<()> {
    for op in history {
        serde_json::to_writer(&mut *out, op)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// Reads a history written by [`write_jsonl`]; a bad line is an `InvalidData` error naming it.
pub fn read_jsonl(input: impl BufRead) -> io::Result<Vec<Op>> {
    let mut history = Vec::new();
    for (n, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let op = serde_json::from_str(&line).map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidData, format!("line {}: {e}", n + 1))
        })?;
        history.push(op);
    }
    Ok(history)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(index: u64, process: u64, kind: OpType, value: Value) -> Op {
        Op {
            index,
            time: index * 1000,
            process,
            kind,
            f: "read".into(),
            value,
            node: "n0".into(),
            error_code: None,
            error: None,
        }
    }

    #[test]
    fn test_workload_names() {
        for w in WorkloadName::ALL {
            assert_eq!(w.as_str().parse::<WorkloadName>(), Ok(w));
        }
        assert!("kv".parse::<WorkloadName>().unwrap_err().contains("lin-kv"));
    }

    #[test]
    fn test_pairs_match_by_process() {
        let h = vec![
            op(0, 0, OpType::Invoke, Value::Null),
            op(1, 1, OpType::Invoke, Value::Null),
            op(2, 1, OpType::Ok, json!([1])),
            op(3, 0, OpType::Fail, Value::Null),
            op(4, 2, OpType::Invoke, Value::Null),
        ];
        let p = pairs(&h).unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].completion.unwrap().index, 3);
        assert_eq!(p[0].outcome(), OpType::Fail);
        assert_eq!(p[1].latency_ns(), Some(1000));
        assert_eq!(p[2].outcome(), OpType::Info);
        assert_eq!(p[2].latency_ns(), None);
    }

    #[test]
    fn test_completion_without_invoke_is_refused() {
        let h = vec![op(0, 5, OpType::Ok, Value::Null)];
        assert_eq!(pairs(&h).unwrap_err().index, 0);
    }

    #[test]
    fn test_jsonl_round_trip() {
        let mut a = op(0, 3, OpType::Info, json!(["k", null]));
        a.error_code = Some(0);
        a.error = Some("timeout".into());
        let h = vec![a, op(1, 4, OpType::Invoke, json!({"k": 1}))];
        let mut buf = Vec::new();
        write_jsonl(&h, &mut buf).unwrap();
        let text = String::from_utf8(buf.clone()).unwrap();
        assert!(text.starts_with(r#"{"index":0,"time":0,"process":3,"type":"info""#));
        assert_eq!(read_jsonl(&buf[..]).unwrap(), h);
        let err = read_jsonl(&b"{}\n"[..]).unwrap_err();
        assert!(err.to_string().starts_with("line 1:"), "{err}");
    }
}
