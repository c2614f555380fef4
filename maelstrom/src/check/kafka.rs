//! kafka: the log's offsets, checked as Jepsen's queue checker (which Maelstrom's kafka
//! workload uses) names its anomalies.
//!
//! Every `Ok` send (`[key, msg, offset]`) and every entry of an `Ok` poll tells that `msg` sits
//! at `offset` of `key`'s log. From them:
//! - **inconsistent-offsets**: one offset holding two different messages;
//! - **duplicate**: one message at two offsets (Maelstrom sends each message once);
//! - **int-nonmonotonic-poll**: a poll's entries for a key not strictly increasing;
//! - **int-poll-skip**: a poll jumping over an offset known to hold a message;
//! - **nonmonotonic-poll**: a poll answering entries before the offset it asked for;
//! - **poll-skip**: a poll whose first entry is past an offset it asked for that is known to
//!   hold a message;
//! - **lost-write**: an acknowledged send that no poll ever showed although polls read past its
//!   offset;
//! - **nonmonotonic-committed-offsets** (sinew's name; Jepsen does not check commits): a listed
//!   committed offset below one committed or listed before the listing was invoked.
//!
//! Acknowledged sends that no poll reached are counted as `unseen`, which is not invalid.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Map, Value, json};

use super::{Anomaly, CheckerResult, oks, sample, sample_text};
use crate::history::Pair;

/// A key as text: a JSON string's contents, anything else its JSON.
fn key_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Per key: which messages sit at which offsets.
#[derive(Default)]
struct Log {
    at: BTreeMap<u64, BTreeSet<String>>,
    offsets_of: HashMap<String, BTreeSet<u64>>,
    polled: BTreeSet<String>,
    max_polled: Option<u64>,
}

impl Log {
    fn record(&mut self, offset: u64, msg: &Value) {
        let msg = msg.to_string();
        self.at.entry(offset).or_default().insert(msg.clone());
        self.offsets_of.entry(msg).or_default().insert(offset);
    }

    /// Whether an offset strictly between `lo` and `hi` is known to hold a message.
    fn known_between(&self, lo: u64, hi: u64) -> Option<u64> {
        let start = lo.checked_add(1)?;
        (start < hi).then(|| self.at.range(start..hi).next().map(|(o, _)| *o))?
    }
}

/// A poll's entries for one key: `[[offset, msg], …]`.
fn entries(list: &Value) -> Option<Vec<(u64, &Value)>> {
    list.as_array()?
        .iter()
        .map(|e| {
            let pair = e.as_array()?;
            Some((pair.first()?.as_u64()?, pair.get(1)?))
        })
        .collect()
}

fn offsets_map(v: &Value) -> Option<Vec<(String, u64)>> {
    v.as_object()?
        .iter()
        .map(|(k, o)| Some((k.clone(), o.as_u64()?)))
        .collect()
}

/// An `Ok` poll: its index, the offsets asked, the entries answered.
type Poll<'h> = (u64, &'h Map<String, Value>, &'h Map<String, Value>);

/// Checks a kafka history.
pub fn check(pairs: &[Pair<'_>]) -> CheckerResult {
    let mut logs: BTreeMap<String, Log> = BTreeMap::new();
    let mut malformed = Vec::new();
    let mut sends = Vec::new();
    let mut polls: Vec<Poll<'_>> = Vec::new();
    // (invoked, completed, key, offset, op) for commits and listings, in history order.
    let mut commits = Vec::new();
    let mut listings = Vec::new();
    for (pair, completion) in oks(pairs) {
        let index = pair.invoke.index;
        match pair.invoke.f.as_str() {
            "send" => {
                let v = completion.value.as_array();
                match v.and_then(|v| Some((v.first()?, v.get(1)?, v.get(2)?.as_u64()?))) {
                    Some((key, msg, offset)) => {
                        let key = key_text(key);
                        logs.entry(key.clone()).or_default().record(offset, msg);
                        sends.push((index, key, msg.to_string(), offset));
                    }
                    None => malformed.push(index),
                }
            }
            "poll" => {
                let (Some(asked), Some(got)) =
                    (pair.invoke.value.as_object(), completion.value.as_object())
                else {
                    malformed.push(index);
                    continue;
                };
                for (key, list) in got {
                    let Some(list) = entries(list) else {
                        malformed.push(index);
                        continue;
                    };
                    let log = logs.entry(key.clone()).or_default();
                    for (offset, msg) in list {
                        log.record(offset, msg);
                        log.polled.insert(msg.to_string());
                        log.max_polled = log.max_polled.max(Some(offset));
                    }
                }
                polls.push((index, asked, got));
            }
            "commit_offsets" | "list_committed_offsets" => {
                let Some(offsets) = offsets_map(&completion.value) else {
                    malformed.push(index);
                    continue;
                };
                let into = if pair.invoke.f == "commit_offsets" {
                    &mut commits
                } else {
                    &mut listings
                };
                for (key, offset) in offsets {
                    into.push((pair.invoke.index, completion.index, key, offset, index));
                }
            }
            _ => {}
        }
    }

    let mut found: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    let mut note = |name: &'static str, what: String| found.entry(name).or_default().push(what);
    for (key, log) in &logs {
        for (offset, msgs) in &log.at {
            if msgs.len() > 1 {
                note(
                    "inconsistent-offsets",
                    format!("key {key} offset {offset}: {msgs:?}"),
                );
            }
        }
        for (msg, offsets) in &log.offsets_of {
            if offsets.len() > 1 {
                note(
                    "duplicate",
                    format!("key {key} message {msg} at offsets {offsets:?}"),
                );
            }
        }
    }
    for (index, asked, got) in &polls {
        for (key, list) in got.iter() {
            let (Some(list), Some(log)) = (entries(list), logs.get(key)) else {
                continue;
            };
            if let (Some(&(first, _)), Some(from)) =
                (list.first(), asked.get(key).and_then(Value::as_u64))
            {
                if first < from {
                    note(
                        "nonmonotonic-poll",
                        format!("op {index} key {key}: asked from {from}, got {first}"),
                    );
                } else if let Some(skipped) = log.at.range(from..first).next().map(|(o, _)| *o) {
                    note(
                        "poll-skip",
                        format!(
                            "op {index} key {key}: asked from {from}, got {first}, skipping {skipped}"
                        ),
                    );
                }
            }
            for w in list.windows(2) {
                let (a, b) = (w[0].0, w[1].0);
                if b <= a {
                    note(
                        "int-nonmonotonic-poll",
                        format!("op {index} key {key}: offset {b} after {a}"),
                    );
                } else if let Some(skipped) = log.known_between(a, b) {
                    note(
                        "int-poll-skip",
                        format!("op {index} key {key}: {a} then {b}, skipping {skipped}"),
                    );
                }
            }
        }
    }
    let mut unseen = 0usize;
    for (index, key, msg, offset) in &sends {
        let Some(log) = logs.get(key) else { continue };
        if log.polled.contains(msg) {
            continue;
        }
        if log.max_polled.is_some_and(|m| m > *offset) {
            note(
                "lost-write",
                format!(
                    "send op {index}: key {key} message {msg} at offset {offset}, polls read up to {:?}",
                    log.max_polled
                ),
            );
        } else {
            unseen += 1;
        }
    }
    for (invoked, _, key, listed, index) in &listings {
        let before = commits
            .iter()
            .chain(listings.iter())
            .filter(|(_, done, k, _, _)| k == key && done < invoked)
            .max_by_key(|(_, _, _, offset, _)| *offset);
        if let Some((_, _, _, earlier, by)) = before
            && listed < earlier
        {
            note(
                "nonmonotonic-committed-offsets",
                format!("op {index} listed key {key} at {listed}, below {earlier} of op {by}"),
            );
        }
    }
    if !malformed.is_empty() {
        note("malformed-value", format!("ops {}", sample(&malformed, 8)));
    }

    let counts: Map<String, Value> = found
        .iter()
        .map(|(k, v)| (k.to_string(), v.len().into()))
        .collect();
    let anomalies = found
        .into_iter()
        .map(|(name, list)| Anomaly::new(name, sample_text(&list, 5)))
        .collect();
    let details = json!({
        "send-count": sends.len(),
        "poll-count": polls.len(),
        "unseen-count": unseen,
        "anomaly-counts": counts,
    });
    CheckerResult::from_anomalies("kafka", anomalies, details)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::check::test_history::H;
    use crate::check::{CheckOptions, Report, Validity, check};
    use crate::history::WorkloadName;

    fn run(h: &H) -> Report {
        check(WorkloadName::Kafka, &h.ops, &CheckOptions::default())
    }

    /// Sends 10, 11, 12 to `k1` at offsets 0, 1, 2.
    fn sent() -> H {
        let mut h = H::new();
        for (i, m) in [10, 11, 12].into_iter().enumerate() {
            h.op(0, "send", json!(["k1", m]), json!(["k1", m, i]));
        }
        h
    }

    fn only(r: &Report, name: &str) {
        assert_eq!(r.valid, Validity::Invalid, "{r:?}");
        let names: Vec<&str> = r.checkers[0]
            .anomalies
            .iter()
            .map(|a| a.name.as_str())
            .collect();
        assert_eq!(names, [name], "{r:?}");
    }

    #[test]
    fn test_valid() {
        let mut h = sent();
        h.op(
            1,
            "poll",
            json!({"k1": 0}),
            json!({"k1": [[0, 10], [1, 11], [2, 12]]}),
        );
        h.op(1, "commit_offsets", json!({"k1": 2}), json!({"k1": 2}));
        h.op(2, "list_committed_offsets", json!(["k1"]), json!({"k1": 2}));
        h.op(2, "poll", json!({"k1": 2}), json!({"k1": [[2, 12]]}));
        h.op(0, "send", json!(["k2", 1]), json!(["k2", 1, 0]));
        let r = run(&h);
        assert_eq!(r.valid, Validity::Valid, "{r:?}");
        assert_eq!(r.checkers[0].details["unseen-count"], 1);
    }

    #[test]
    fn test_lost_write() {
        let mut h = sent();
        h.op(1, "poll", json!({"k1": 0}), json!({"k1": [[0, 10]]}));
        h.op(1, "poll", json!({"k1": 2}), json!({"k1": [[2, 12]]}));
        only(&run(&h), "lost-write");
    }

    #[test]
    fn test_int_poll_skip() {
        let mut h = sent();
        h.op(
            1,
            "poll",
            json!({"k1": 0}),
            json!({"k1": [[0, 10], [2, 12]]}),
        );
        h.op(1, "poll", json!({"k1": 1}), json!({"k1": [[1, 11]]}));
        only(&run(&h), "int-poll-skip");
    }

    #[test]
    fn test_int_nonmonotonic_poll() {
        let mut h = sent();
        h.op(
            1,
            "poll",
            json!({"k1": 0}),
            json!({"k1": [[0, 10], [2, 12], [1, 11]]}),
        );
        let r = run(&h);
        // 0 then 2 also skips 1.
        assert!(r.has_anomaly("int-nonmonotonic-poll"), "{r:?}");
        let mut h = sent();
        h.op(
            1,
            "poll",
            json!({"k1": 0}),
            json!({"k1": [[0, 10], [1, 11], [1, 11], [2, 12]]}),
        );
        only(&run(&h), "int-nonmonotonic-poll");
    }

    #[test]
    fn test_poll_skip_and_nonmonotonic_poll() {
        let mut h = sent();
        h.op(
            1,
            "poll",
            json!({"k1": 0}),
            json!({"k1": [[1, 11], [2, 12]]}),
        );
        h.op(2, "poll", json!({"k1": 0}), json!({"k1": [[0, 10]]}));
        only(&run(&h), "poll-skip");
        let mut h = sent();
        h.op(
            1,
            "poll",
            json!({"k1": 1}),
            json!({"k1": [[0, 10], [1, 11], [2, 12]]}),
        );
        only(&run(&h), "nonmonotonic-poll");
    }

    #[test]
    fn test_inconsistent_offsets_and_duplicate() {
        let mut h = sent();
        h.op(
            1,
            "poll",
            json!({"k1": 0}),
            json!({"k1": [[0, 10], [1, 99], [2, 12]]}),
        );
        let r = run(&h);
        assert!(r.has_anomaly("inconsistent-offsets"), "{r:?}");
        let mut h = sent();
        h.op(0, "send", json!(["k1", 10]), json!(["k1", 10, 3]));
        h.op(
            1,
            "poll",
            json!({"k1": 0}),
            json!({"k1": [[0, 10], [1, 11], [2, 12], [3, 10]]}),
        );
        only(&run(&h), "duplicate");
    }

    #[test]
    fn test_nonmonotonic_committed_offsets() {
        let mut h = sent();
        h.op(
            1,
            "poll",
            json!({"k1": 0}),
            json!({"k1": [[0, 10], [1, 11], [2, 12]]}),
        );
        h.op(1, "commit_offsets", json!({"k1": 2}), json!({"k1": 2}));
        h.op(2, "list_committed_offsets", json!(["k1"]), json!({"k1": 1}));
        only(&run(&h), "nonmonotonic-committed-offsets");
    }
}
