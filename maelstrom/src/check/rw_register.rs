//! txn-rw-register: Elle's rw-register checker on unique writes, for read committed.
//!
//! Maelstrom writes each value once per key, so a read names the transaction that wrote it.
//! From the `Ok` transactions (reads filled in) and every transaction's writes:
//! - **G1a** (aborted read): a read of a value written only by a transaction that failed;
//! - **G1b** (intermediate read): a read of a value its writer overwrote in the same
//!   transaction;
//! - **internal**: a read after the transaction's own write of the key, not returning it;
//! - **garbage-read**: a read of a value nobody wrote;
//! - **G0** (write cycle): a cycle of write-write dependencies;
//! - **G1c** (circular information flow): a cycle of write-write and write-read dependencies
//!   with at least one write-read.
//!
//! Read committed forbids all of them. Under [`TxnConsistency::ReadUncommitted`] only `G0`
//! and the non-Adya checks (`internal`, `garbage-read`) make the history invalid; the G1
//! anomalies are still counted in the details.
//!
//! Dependencies: `T1 -wr-> T2` when `T2` reads a value `T1` wrote; `T1 -ww-> T2` when `T2`
//! read `T1`'s value of a key and then wrote that key (a register's writes follow the reads of
//! the same transaction, Maelstrom's `wfr-keys?`). Anti-dependencies (rw, for G-single and G2)
//! are not needed for read committed and are not inferred.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde_json::{Value, json};

use super::{Anomaly, CheckOptions, CheckerResult, sample, sample_text};
use crate::history::{OpType, Pair};

/// The consistency model a txn-rw-register history is checked against (Maelstrom's
/// `--consistency-models`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TxnConsistency {
    /// `read-uncommitted`: no G0.
    ReadUncommitted,
    /// `read-committed`: no G0, G1a, G1b, G1c.
    #[default]
    ReadCommitted,
}

impl TxnConsistency {
    /// Maelstrom's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            TxnConsistency::ReadUncommitted => "read-uncommitted",
            TxnConsistency::ReadCommitted => "read-committed",
        }
    }

    /// The anomalies this model allows.
    fn allows(self) -> &'static [&'static str] {
        match self {
            TxnConsistency::ReadUncommitted => &["G1a", "G1b", "G1c"],
            TxnConsistency::ReadCommitted => &[],
        }
    }
}

impl std::str::FromStr for TxnConsistency {
    type Err = String;

    fn from_str(s: &str) -> Result<TxnConsistency, String> {
        [
            TxnConsistency::ReadUncommitted,
            TxnConsistency::ReadCommitted,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
        .ok_or_else(|| {
            format!("unknown consistency model {s:?}; read-uncommitted or read-committed")
        })
    }
}

/// A micro-operation: `["r" | "w", key, value]`, key and value as JSON text.
struct Mop {
    write: bool,
    key: String,
    value: Value,
}

fn mops(value: &Value) -> Option<Vec<Mop>> {
    value
        .as_array()?
        .iter()
        .map(|m| {
            let m = m.as_array()?;
            let write = match m.first()?.as_str()? {
                "r" => false,
                "w" => true,
                _ => return None,
            };
            Some(Mop {
                write,
                key: m.get(1)?.to_string(),
                value: m.get(2)?.clone(),
            })
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Edge {
    Ww,
    Wr,
}

/// Who wrote a `(key, value)`: the transaction, and whether it was its last write of the key.
struct Writer {
    txn: usize,
    last: bool,
}

/// Checks a txn-rw-register history.
pub fn check(pairs: &[Pair<'_>], options: &CheckOptions) -> CheckerResult {
    // Transactions: (op index, outcome, micro-ops).
    let mut txns = Vec::new();
    let mut malformed = Vec::new();
    for pair in pairs.iter().filter(|p| p.invoke.f == "txn") {
        let outcome = pair.outcome();
        let value = match pair.completion {
            Some(c) if outcome == OpType::Ok => &c.value,
            _ => &pair.invoke.value,
        };
        match mops(value) {
            Some(m) => txns.push((pair.invoke.index, outcome, m)),
            None => malformed.push(pair.invoke.index),
        }
    }
    let mut writers: HashMap<(String, String), Writer> = HashMap::new();
    for (t, (_, _, m)) in txns.iter().enumerate() {
        for (i, w) in m.iter().enumerate().filter(|(_, w)| w.write) {
            let last = !m[i + 1..].iter().any(|l| l.write && l.key == w.key);
            writers
                .entry((w.key.clone(), w.value.to_string()))
                .or_insert(Writer { txn: t, last });
        }
    }

    let mut found: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    let mut note = |name: &'static str, what: String| found.entry(name).or_default().push(what);
    let mut edges: Vec<BTreeMap<usize, Edge>> = vec![BTreeMap::new(); txns.len()];
    let mut add_edge = |from: usize, to: usize, kind: Edge| {
        if from != to {
            let e = edges[from].entry(to).or_insert(kind);
            // Keep ww when both hold: a G0 cycle is the stronger finding.
            if kind == Edge::Ww {
                *e = Edge::Ww;
            }
        }
    };
    for (t, (index, outcome, m)) in txns.iter().enumerate() {
        if *outcome != OpType::Ok {
            continue;
        }
        let mut own: HashMap<&str, &Value> = HashMap::new();
        let mut read_from: HashMap<&str, usize> = HashMap::new();
        for mop in m {
            if mop.write {
                if !own.contains_key(mop.key.as_str())
                    && let Some(&w) = read_from.get(mop.key.as_str())
                {
                    add_edge(w, t, Edge::Ww);
                }
                own.insert(&mop.key, &mop.value);
                continue;
            }
            if let Some(mine) = own.get(mop.key.as_str()) {
                if **mine != mop.value {
                    note(
                        "internal",
                        format!(
                            "op {index} read {} = {} after writing {}",
                            mop.key, mop.value, mine
                        ),
                    );
                }
                continue;
            }
            if mop.value.is_null() {
                continue;
            }
            let Some(w) = writers.get(&(mop.key.clone(), mop.value.to_string())) else {
                note(
                    "garbage-read",
                    format!(
                        "op {index} read {} = {}, which no transaction wrote",
                        mop.key, mop.value
                    ),
                );
                continue;
            };
            let (w_index, w_outcome, _) = &txns[w.txn];
            if w.txn == t {
                note(
                    "internal",
                    format!(
                        "op {index} read {} = {} before writing it",
                        mop.key, mop.value
                    ),
                );
            } else if *w_outcome == OpType::Fail {
                note(
                    "G1a",
                    format!(
                        "op {index} read {} = {}, written by op {w_index}, which failed",
                        mop.key, mop.value
                    ),
                );
            } else if !w.last {
                note(
                    "G1b",
                    format!(
                        "op {index} read {} = {}, an intermediate write of op {w_index}",
                        mop.key, mop.value
                    ),
                );
            } else {
                add_edge(w.txn, t, Edge::Wr);
                read_from.insert(&mop.key, w.txn);
            }
        }
    }

    let all = |_: Edge| true;
    let ww_only = |e: Edge| e == Edge::Ww;
    let describe = |cycle: &[usize]| {
        let mut s = String::new();
        for (i, &t) in cycle.iter().enumerate() {
            let next = cycle[(i + 1) % cycle.len()];
            let kind = match edges[t].get(&next) {
                Some(Edge::Ww) => "ww",
                _ => "wr",
            };
            s.push_str(&format!("op {} -{kind}-> ", txns[t].0));
        }
        if let Some(&first) = cycle.first() {
            s.push_str(&format!("op {}", txns[first].0));
        }
        s
    };
    for mut scc in components(&edges, all) {
        if scc.len() < 2 {
            continue;
        }
        scc.sort_unstable();
        let ww_cycles: Vec<Vec<usize>> = components_within(&edges, &scc, ww_only);
        if let Some(c) = ww_cycles.first() {
            note("G0", describe(&cycle_in(&edges, c, ww_only)));
        } else {
            note("G1c", describe(&cycle_in(&edges, &scc, all)));
        }
    }
    if !malformed.is_empty() {
        note("malformed-value", format!("ops {}", sample(&malformed, 8)));
    }

    let counts: serde_json::Map<String, Value> = found
        .iter()
        .map(|(k, v)| (k.to_string(), v.len().into()))
        .collect();
    let anomaly_types: Vec<&str> = found.keys().copied().collect();
    let allowed = options.txn_consistency.allows();
    let details = json!({
        "txn-count": txns.len(),
        "consistency-model": options.txn_consistency.as_str(),
        "anomaly-types": anomaly_types,
        "anomaly-counts": counts,
    });
    let anomalies = found
        .into_iter()
        .filter(|(name, _)| !allowed.contains(name))
        .map(|(name, list)| Anomaly::new(name, sample_text(&list, 5)))
        .collect();
    CheckerResult::from_anomalies("elle-rw-register", anomalies, details)
}

/// Strongly connected components of the graph restricted to edges `keep` accepts (Tarjan's,
/// iterative so that long chains do not exhaust the stack).
fn components(edges: &[BTreeMap<usize, Edge>], keep: impl Fn(Edge) -> bool) -> Vec<Vec<usize>> {
    let n = edges.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0usize; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut out = Vec::new();
    let mut next = 0usize;
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        // (node, its successors still to visit)
        let mut work: Vec<(usize, Vec<usize>)> = Vec::new();
        let succ = |v: usize| -> Vec<usize> {
            edges[v]
                .iter()
                .filter(|(_, e)| keep(**e))
                .map(|(w, _)| *w)
                .collect()
        };
        index[root] = next;
        low[root] = next;
        next += 1;
        stack.push(root);
        on_stack[root] = true;
        work.push((root, succ(root)));
        while let Some((v, todo)) = work.last_mut() {
            let v = *v;
            if let Some(w) = todo.pop() {
                if index[w] == usize::MAX {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    work.push((w, succ(w)));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some((parent, _)) = work.last() {
                low[*parent] = low[*parent].min(low[v]);
            }
            if low[v] == index[v] {
                let mut scc = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    scc.push(w);
                    if w == v {
                        break;
                    }
                }
                out.push(scc);
            }
        }
    }
    out
}

/// The components of size > 1 of the subgraph on `nodes` with edges `keep` accepts.
fn components_within(
    edges: &[BTreeMap<usize, Edge>],
    nodes: &[usize],
    keep: impl Fn(Edge) -> bool + Copy,
) -> Vec<Vec<usize>> {
    let inside: HashMap<usize, usize> = nodes.iter().enumerate().map(|(i, &t)| (t, i)).collect();
    let sub: Vec<BTreeMap<usize, Edge>> = nodes
        .iter()
        .map(|&t| {
            edges[t]
                .iter()
                .filter_map(|(w, e)| Some((*inside.get(w)?, *e)))
                .collect()
        })
        .collect();
    components(&sub, keep)
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|c| {
            let mut c: Vec<usize> = c.into_iter().map(|i| nodes[i]).collect();
            c.sort_unstable();
            c
        })
        .collect()
}

/// A cycle through the first node of the strongly connected `scc` (breadth-first, shortest).
fn cycle_in(
    edges: &[BTreeMap<usize, Edge>],
    scc: &[usize],
    keep: impl Fn(Edge) -> bool,
) -> Vec<usize> {
    let Some(&start) = scc.first() else {
        return Vec::new();
    };
    let inside: std::collections::HashSet<usize> = scc.iter().copied().collect();
    let mut parent: HashMap<usize, usize> = HashMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for (&w, &e) in &edges[v] {
            if !keep(e) || !inside.contains(&w) {
                continue;
            }
            if w == start {
                let mut path = vec![v];
                let mut at = v;
                while let Some(&p) = parent.get(&at) {
                    path.push(p);
                    at = p;
                }
                path.reverse();
                return path;
            }
            if w != start && !parent.contains_key(&w) {
                parent.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    scc.to_vec()
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::check::test_history::H;
    use crate::check::{CheckOptions, Report, Validity, check};
    use crate::history::WorkloadName;

    fn run(h: &H) -> Report {
        check(
            WorkloadName::TxnRwRegister,
            &h.ops,
            &CheckOptions::default(),
        )
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

    fn txn(h: &mut H, p: u64, invoke: Value, ok: Value) {
        h.op(p, "txn", invoke, ok);
    }

    #[test]
    fn test_valid() {
        let mut h = H::new();
        txn(
            &mut h,
            0,
            json!([["r", 1, null], ["w", 1, 1], ["w", 2, 1]]),
            json!([["r", 1, null], ["w", 1, 1], ["w", 2, 1]]),
        );
        txn(
            &mut h,
            1,
            json!([["r", 1, null], ["w", 1, 2], ["r", 1, null]]),
            json!([["r", 1, 1], ["w", 1, 2], ["r", 1, 2]]),
        );
        txn(
            &mut h,
            0,
            json!([["r", 1, null], ["r", 2, null]]),
            json!([["r", 1, 2], ["r", 2, 1]]),
        );
        // A failed transaction's writes never show.
        h.invoke(2, "txn", json!([["w", 3, 1]]))
            .fail(2, "txn", json!([["w", 3, 1]]));
        txn(&mut h, 0, json!([["r", 3, null]]), json!([["r", 3, null]]));
        let r = run(&h);
        assert_eq!(r.valid, Validity::Valid, "{r:?}");
        assert_eq!(r.checkers[0].name, "elle-rw-register");
    }

    #[test]
    fn test_read_uncommitted_allows_g1_not_g0() {
        use crate::check::rw_register::TxnConsistency;
        let options = CheckOptions {
            txn_consistency: "read-uncommitted".parse().unwrap(),
            ..CheckOptions::default()
        };
        assert_eq!(options.txn_consistency, TxnConsistency::ReadUncommitted);
        let mut h = H::new();
        h.invoke(2, "txn", json!([["w", 3, 1]]))
            .fail(2, "txn", json!([["w", 3, 1]]));
        txn(&mut h, 0, json!([["r", 3, null]]), json!([["r", 3, 1]]));
        let r = check(WorkloadName::TxnRwRegister, &h.ops, &options);
        assert_eq!(r.valid, Validity::Valid, "{r:?}");
        assert_eq!(r.checkers[0].details["anomaly-counts"]["G1a"], 1);
        let mut h = H::new();
        h.invoke(
            0,
            "txn",
            json!([["r", 1, null], ["w", 1, 1], ["r", 2, null], ["w", 2, 1]]),
        );
        h.invoke(
            1,
            "txn",
            json!([["r", 1, null], ["w", 1, 2], ["r", 2, null], ["w", 2, 2]]),
        );
        h.ok(
            0,
            "txn",
            json!([["r", 1, 2], ["w", 1, 1], ["r", 2, null], ["w", 2, 1]]),
        );
        h.ok(
            1,
            "txn",
            json!([["r", 1, null], ["w", 1, 2], ["r", 2, 1], ["w", 2, 2]]),
        );
        let r = check(WorkloadName::TxnRwRegister, &h.ops, &options);
        assert!(r.has_anomaly("G0"), "{r:?}");
        assert!("serializable".parse::<TxnConsistency>().is_err());
    }

    #[test]
    fn test_g1a() {
        let mut h = H::new();
        h.invoke(2, "txn", json!([["w", 3, 1]]))
            .fail(2, "txn", json!([["w", 3, 1]]));
        txn(&mut h, 0, json!([["r", 3, null]]), json!([["r", 3, 1]]));
        only(&run(&h), "G1a");
    }

    #[test]
    fn test_g1b() {
        let mut h = H::new();
        h.invoke(0, "txn", json!([["w", 1, 1], ["w", 1, 2]]));
        txn(&mut h, 1, json!([["r", 1, null]]), json!([["r", 1, 1]]));
        h.ok(0, "txn", json!([["w", 1, 1], ["w", 1, 2]]));
        only(&run(&h), "G1b");
    }

    #[test]
    fn test_internal_and_garbage() {
        let mut h = H::new();
        txn(
            &mut h,
            0,
            json!([["w", 1, 1], ["r", 1, null]]),
            json!([["w", 1, 1], ["r", 1, 7]]),
        );
        let r = run(&h);
        assert!(r.has_anomaly("internal"), "{r:?}");
        let mut h = H::new();
        txn(&mut h, 0, json!([["r", 1, null]]), json!([["r", 1, 7]]));
        only(&run(&h), "garbage-read");
    }

    #[test]
    fn test_g0() {
        // T1 and T2 each read the other's write of one key and then overwrote it.
        let mut h = H::new();
        h.invoke(
            0,
            "txn",
            json!([["r", 1, null], ["w", 1, 1], ["r", 2, null], ["w", 2, 1]]),
        );
        h.invoke(
            1,
            "txn",
            json!([["r", 1, null], ["w", 1, 2], ["r", 2, null], ["w", 2, 2]]),
        );
        h.ok(
            0,
            "txn",
            json!([["r", 1, 2], ["w", 1, 1], ["r", 2, null], ["w", 2, 1]]),
        );
        h.ok(
            1,
            "txn",
            json!([["r", 1, null], ["w", 1, 2], ["r", 2, 1], ["w", 2, 2]]),
        );
        let r = run(&h);
        only(&r, "G0");
        assert!(r.checkers[0].anomalies[0].detail.contains("-ww->"), "{r:?}");
    }

    #[test]
    fn test_g1c() {
        // Each transaction read what the other wrote.
        let mut h = H::new();
        h.invoke(0, "txn", json!([["w", 1, 1], ["r", 2, null]]));
        h.invoke(1, "txn", json!([["w", 2, 1], ["r", 1, null]]));
        h.ok(0, "txn", json!([["w", 1, 1], ["r", 2, 1]]));
        h.ok(1, "txn", json!([["w", 2, 1], ["r", 1, 1]]));
        let r = run(&h);
        only(&r, "G1c");
        assert_eq!(
            r.checkers[0].anomalies[0].detail,
            "op 0 -wr-> op 1 -wr-> op 0"
        );
    }

    #[test]
    fn test_info_writes_may_be_read() {
        let mut h = H::new();
        h.invoke(0, "txn", json!([["w", 1, 5]]))
            .info(0, "txn", json!([["w", 1, 5]]));
        txn(&mut h, 1, json!([["r", 1, null]]), json!([["r", 1, 5]]));
        assert_eq!(run(&h).valid, Validity::Valid);
    }
}
