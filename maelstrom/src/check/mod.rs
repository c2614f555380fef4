//! Checkers: is a [`history`] valid for its workload, and if not, which
//! anomalies does it show. Pure functions of the history; the harness prints the [`Report`].
//!
//! | workload | checker | anomalies |
//! | --- | --- | --- |
//! | echo | [`echo`] | `echo-mismatch` |
//! | unique-ids | [`unique_ids`] | `duplicated` |
//! | broadcast | [`set_full`] (Jepsen's set-full) | `lost`, `unexpected`, `duplicated`, `stale` (only when asked) |
//! | g-counter | [`g_counter`] | `bad-read`, `bad-final-read`, `stale-read` (only when asked) |
//! | kafka | [`kafka`] | `lost-write`, `inconsistent-offsets`, `duplicate`, `int-nonmonotonic-poll`, `int-poll-skip`, `nonmonotonic-poll`, `poll-skip`, `nonmonotonic-committed-offsets` |
//! | txn-rw-register | [`rw_register`] (Elle's, on unique writes) | `G0`, `G1a`, `G1b`, `G1c`, `internal` |
//! | lin-kv | [`linearizable`] (porcupine-rs) | `nonlinearizable` |
//!
//! With [`CheckOptions::total_availability`], [`availability`] also asks every operation to
//! succeed (`unavailable`). A history whose completions cannot be paired with invocations is
//! `Unknown` (checker `history`, anomaly `malformed-history`).

use serde::Serialize;
use serde_json::{Value, json};

use crate::history::{self, Op, OpType, Pair, WorkloadName};

pub mod availability;
pub mod echo;
pub mod g_counter;
pub mod kafka;
pub mod linearizable;
pub mod rw_register;
pub mod set_full;
pub mod unique_ids;

/// A verdict, as Maelstrom's `:valid?` (`true`, `false`, `:unknown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Validity {
    /// Nothing wrong was found.
    Valid,
    /// An anomaly was found.
    Invalid,
    /// The checker could not decide (too little history, or it gave up).
    Unknown,
}

impl Validity {
    /// The worse of two verdicts (`Invalid` over `Unknown` over `Valid`).
    pub fn and(self, other: Validity) -> Validity {
        use Validity::*;
        match (self, other) {
            (Invalid, _) | (_, Invalid) => Invalid,
            (Unknown, _) | (_, Unknown) => Unknown,
            _ => Valid,
        }
    }
}

/// One anomaly: its name (`lost`, `stale`, `duplicated-id`, `G1c`, `nonlinearizable`, …) and
/// what shows it (operation indices, values).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Anomaly {
    /// The anomaly's name, as Maelstrom's checkers name it where they do.
    pub name: String,
    /// The evidence, for a human.
    pub detail: String,
}

/// What one checker found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckerResult {
    /// The checker (`set-full`, `unique-ids`, `g-counter`, `kafka`, `elle-rw-register`,
    /// `linearizable`, `availability`, …).
    pub name: String,
    /// Its verdict.
    pub valid: Validity,
    /// What it found wrong (empty when valid).
    pub anomalies: Vec<Anomaly>,
    /// Its figures (counts, latencies), printed in the summary.
    pub details: Value,
}

/// Every checker's result for one history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The conjunction of the checkers' verdicts.
    pub valid: Validity,
    /// Per checker.
    pub checkers: Vec<CheckerResult>,
}

impl Anomaly {
    /// An anomaly named `name`, shown by `detail`.
    pub fn new(name: impl Into<String>, detail: impl Into<String>) -> Anomaly {
        Anomaly {
            name: name.into(),
            detail: detail.into(),
        }
    }
}

impl CheckerResult {
    /// A result named `name`: `Invalid` when there are anomalies, else `Valid`.
    pub fn from_anomalies(name: &str, anomalies: Vec<Anomaly>, details: Value) -> CheckerResult {
        CheckerResult {
            name: name.into(),
            valid: if anomalies.is_empty() {
                Validity::Valid
            } else {
                Validity::Invalid
            },
            anomalies,
            details,
        }
    }

    /// Whether one of the anomalies is named `name`.
    pub fn has_anomaly(&self, name: &str) -> bool {
        self.anomalies.iter().any(|a| a.name == name)
    }
}

impl Report {
    /// Whether one of the checkers found an anomaly named `name`.
    pub fn has_anomaly(&self, name: &str) -> bool {
        self.checkers.iter().any(|c| c.has_anomaly(name))
    }

    /// The checker named `name`.
    pub fn checker(&self, name: &str) -> Option<&CheckerResult> {
        self.checkers.iter().find(|c| c.name == name)
    }
}

/// Options a run gives the checkers.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CheckOptions {
    /// `--availability total`: every operation must succeed (`Fail`/`Info` make it invalid).
    pub total_availability: bool,
    /// Broadcast: stale reads make the history invalid (Jepsen's set-full
    /// `linearizable?`; Maelstrom leaves it off, so stale reads are only counted).
    pub set_full_linearizable: bool,
    /// g-counter: a read below the sum of the adds completed before it was invoked makes the
    /// history invalid (`stale-read`); off, as in Maelstrom, such reads are only counted.
    pub g_counter_fresh_reads: bool,
    /// txn-rw-register: the consistency model (read committed unless told).
    pub txn_consistency: rw_register::TxnConsistency,
    /// lin-kv: how long the linearizability search of one key may run; a key whose search
    /// runs out of it is `Unknown` (the search is exponential in the worst case).
    pub linearizable_timeout: std::time::Duration,
}

impl Default for CheckOptions {
    fn default() -> CheckOptions {
        CheckOptions {
            total_availability: false,
            set_full_linearizable: false,
            g_counter_fresh_reads: false,
            txn_consistency: rw_register::TxnConsistency::ReadCommitted,
            linearizable_timeout: std::time::Duration::from_secs(30),
        }
    }
}

/// Checks `history` as `workload`'s checkers do.
pub fn check(workload: WorkloadName, history: &[Op], options: &CheckOptions) -> Report {
    let pairs = match history::pairs(history) {
        Ok(pairs) => pairs,
        Err(op) => {
            let result = CheckerResult {
                name: "history".into(),
                valid: Validity::Unknown,
                anomalies: vec![Anomaly::new(
                    "malformed-history",
                    format!(
                        "op {}: a completion of process {} with no invocation",
                        op.index, op.process
                    ),
                )],
                details: Value::Null,
            };
            return Report {
                valid: result.valid,
                checkers: vec![result],
            };
        }
    };
    let mut checkers = vec![match workload {
        WorkloadName::Echo => echo::check(&pairs),
        WorkloadName::UniqueIds => unique_ids::check(&pairs),
        WorkloadName::Broadcast => set_full::check(&pairs, options),
        WorkloadName::GCounter => g_counter::check(&pairs, options),
        WorkloadName::Kafka => kafka::check(&pairs),
        WorkloadName::TxnRwRegister => rw_register::check(&pairs, options),
        WorkloadName::LinKv => linearizable::check(&pairs, options),
    }];
    if options.total_availability {
        checkers.push(availability::check(&pairs));
    }
    let valid = checkers.iter().fold(Validity::Valid, |v, c| v.and(c.valid));
    Report { valid, checkers }
}

/// The operations that completed `Ok`, with their completion.
fn oks<'p, 'h>(pairs: &'p [Pair<'h>]) -> impl Iterator<Item = (&'p Pair<'h>, &'h Op)> {
    pairs.iter().filter_map(|p| match p.completion {
        Some(c) if c.kind == OpType::Ok => Some((p, c)),
        _ => None,
    })
}

/// Latency quantiles (0, 0.5, 0.95, 0.99, 1) in milliseconds, `null` when there are none.
fn quantiles_ms(mut nanos: Vec<u64>) -> Value {
    if nanos.is_empty() {
        return Value::Null;
    }
    nanos.sort_unstable();
    let at = |q: f64| {
        let last = nanos.len() - 1;
        // Nearest rank; `q` is in [0, 1], so the index is within the vector.
        let i = ((last as f64) * q).round() as usize;
        nanos[i.min(last)] as f64 / 1e6
    };
    json!({"0": at(0.0), "0.5": at(0.5), "0.95": at(0.95), "0.99": at(0.99), "1": at(1.0)})
}

/// At most `n` lines of text, joined with `; `, for an anomaly's detail.
fn sample_text(items: &[String], n: usize) -> String {
    let shown = items.iter().take(n).cloned().collect::<Vec<_>>().join("; ");
    if items.len() <= n {
        shown
    } else {
        format!("{shown}; and {} more", items.len() - n)
    }
}

/// At most `n` items of a list, for an anomaly's detail.
fn sample<T: std::fmt::Debug>(items: &[T], n: usize) -> String {
    if items.len() <= n {
        format!("{items:?}")
    } else {
        format!("{:?} and {} more", &items[..n], items.len() - n)
    }
}

#[cfg(test)]
pub(crate) mod test_history {
    //! Hand-made histories for the checkers' tests.
    use serde_json::Value;

    use crate::history::{Op, OpType};

    /// Builds a history: each call appends one entry, times 1 ms apart.
    #[derive(Default)]
    pub struct H {
        pub ops: Vec<Op>,
    }

    impl H {
        pub fn new() -> H {
            H::default()
        }

        fn push(&mut self, process: u64, kind: OpType, f: &str, value: Value) -> &mut H {
            let index = self.ops.len() as u64;
            self.ops.push(Op {
                index,
                time: index * 1_000_000,
                process,
                kind,
                f: f.into(),
                value,
                node: "n0".into(),
                error_code: None,
                error: None,
            });
            self
        }

        pub fn invoke(&mut self, process: u64, f: &str, value: Value) -> &mut H {
            self.push(process, OpType::Invoke, f, value)
        }

        pub fn ok(&mut self, process: u64, f: &str, value: Value) -> &mut H {
            self.push(process, OpType::Ok, f, value)
        }

        pub fn fail(&mut self, process: u64, f: &str, value: Value) -> &mut H {
            self.push(process, OpType::Fail, f, value)
        }

        pub fn info(&mut self, process: u64, f: &str, value: Value) -> &mut H {
            self.push(process, OpType::Info, f, value)
        }

        /// An operation invoked and completed `Ok` at once.
        pub fn op(&mut self, process: u64, f: &str, invoke: Value, ok: Value) -> &mut H {
            self.invoke(process, f, invoke).ok(process, f, ok)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::test_history::H;
    use super::{CheckOptions, Validity, check};
    use crate::history::WorkloadName;

    /// Values of every shape, right and wrong, for every workload's fields.
    fn odd_values() -> Vec<Value> {
        vec![
            Value::Null,
            json!(-1),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(1.5),
            json!("x"),
            json!([]),
            json!([1]),
            json!([1, 1]),
            json!([[1]]),
            json!(["k", 1, 2]),
            json!(["k", 1, u64::MAX]),
            json!({}),
            json!({"k": 1}),
            json!({"k": [[0, 1], [0, 2], [u64::MAX, 3]]}),
            json!({"k": [["x"], [1]]}),
            json!([["r", 1, 2], ["w", 1, 2], ["w", 1, 3]]),
            json!([["r", 1], ["q", 1, 1]]),
            json!([1, [2, 3]]),
            json!([1, [2]]),
        ]
    }

    #[test]
    fn test_checkers_never_panic_on_odd_histories() {
        let fs = [
            "echo",
            "generate",
            "broadcast",
            "read",
            "add",
            "send",
            "poll",
            "commit_offsets",
            "list_committed_offsets",
            "txn",
            "write",
            "cas",
            "bogus",
        ];
        let values = odd_values();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let options = CheckOptions {
            total_availability: true,
            ..CheckOptions::default()
        };
        for _ in 0..200 {
            let mut h = H::new();
            for p in 0..12u64 {
                let f = fs[next(fs.len())];
                h.invoke(p % 4, f, values[next(values.len())].clone());
                let v = values[next(values.len())].clone();
                match next(4) {
                    0 => h.ok(p % 4, f, v),
                    1 => h.fail(p % 4, f, v),
                    2 => h.info(p % 4, f, v),
                    _ => &mut h,
                };
            }
            for w in WorkloadName::ALL {
                let r = check(w, &h.ops, &options);
                assert!(r.checkers.len() >= 2, "{w}: {r:?}");
            }
        }
    }

    #[test]
    fn test_unpaired_completion_is_unknown() {
        let mut h = H::new();
        h.ok(3, "echo", json!("x"));
        let r = check(WorkloadName::Echo, &h.ops, &CheckOptions::default());
        assert_eq!(r.valid, Validity::Unknown);
        assert!(r.has_anomaly("malformed-history"), "{r:?}");
    }
}
