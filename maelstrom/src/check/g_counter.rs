//! g-counter: every read is a sum the adds could have made.
//!
//! - Each `Ok` read must be a sum some of the adds invoked before it completed (and not
//!   `Fail`ed) could make: anomaly `bad-read` (a value no history of adds explains).
//! - A *fresh* read also lies within `[lower, upper]`: `lower` counts the adds that definitely
//!   happened before it was invoked (completed `Ok` by then), `upper` every add that may have
//!   happened before it completed. A read below is *stale*: counted, and an anomaly
//!   (`stale-read`) only with [`CheckOptions::g_counter_fresh_reads`], since Maelstrom's
//!   g-counter runs on `seq-kv` and lets reads lag until the end.
//! - A *final* read (invoked after every add completed, or was invoked when it never
//!   completed) must equal the sum of the `Ok` adds
//!   plus the deltas of some subset of the adds whose outcome is unknown (`Info`): Maelstrom's
//!   g-counter checker. Anomaly `bad-final-read`.
//!
//! Deltas may be negative (a pn-counter), so each bound takes each uncertain delta's worse side.

use std::collections::BTreeSet;

use serde_json::json;

use super::{Anomaly, CheckOptions, CheckerResult, Validity, oks, sample, sample_text};
use crate::history::{OpType, Pair};

/// How many distinct final sums are enumerated before falling back to the enclosing range.
const MAX_ACCEPTABLE_SUMS: usize = 1 << 16;

/// An add: where in the history it was invoked and completed `Ok` (if it did), its delta.
/// History order, not times, decides what precedes what (times may tie).
struct Add {
    invoked: u64,
    ok_at: Option<u64>,
    delta: i64,
}

/// The final sums that are acceptable: exact while small, else the enclosing range.
enum Acceptable {
    Exact(BTreeSet<i64>),
    Range(i64, i64),
}

impl Acceptable {
    fn contains(&self, v: i64) -> bool {
        match self {
            Acceptable::Exact(set) => set.contains(&v),
            Acceptable::Range(lo, hi) => (*lo..=*hi).contains(&v),
        }
    }

    fn to_json(&self) -> serde_json::Value {
        match self {
            Acceptable::Exact(set) => {
                // As closed ranges of consecutive sums, like Maelstrom's.
                let mut ranges: Vec<[i64; 2]> = Vec::new();
                for &v in set {
                    match ranges.last_mut() {
                        Some(r) if r[1].checked_add(1) == Some(v) => r[1] = v,
                        _ => ranges.push([v, v]),
                    }
                }
                json!(ranges)
            }
            Acceptable::Range(lo, hi) => json!([[lo, hi]]),
        }
    }
}

/// Checks a g-counter history.
pub fn check(pairs: &[Pair<'_>], options: &CheckOptions) -> CheckerResult {
    let mut adds = Vec::new();
    let mut malformed = Vec::new();
    for pair in pairs.iter().filter(|p| p.invoke.f == "add") {
        let outcome = pair.outcome();
        if outcome == OpType::Fail {
            continue;
        }
        let Some(delta) = pair.invoke.value.as_i64() else {
            malformed.push(pair.invoke.index);
            continue;
        };
        adds.push(Add {
            invoked: pair.invoke.index,
            ok_at: (outcome == OpType::Ok).then(|| pair.completion.map_or(0, |c| c.index)),
            delta,
        });
    }
    let last_add_done = pairs
        .iter()
        .filter(|p| p.invoke.f == "add")
        .map(|p| p.completion.map_or(p.invoke.index, |c| c.index))
        .max();

    let definite: i64 = adds
        .iter()
        .filter(|a| a.ok_at.is_some())
        .fold(0i64, |s, a| s.saturating_add(a.delta));
    let acceptable = acceptable_finals(
        definite,
        adds.iter().filter(|a| a.ok_at.is_none()).map(|a| a.delta),
    );

    let mut anomalies = Vec::new();
    let mut bad_reads = Vec::new();
    let mut stale_reads = Vec::new();
    let mut bad_finals = Vec::new();
    let mut final_reads = Vec::new();
    for (pair, completion) in oks(pairs).filter(|(p, _)| p.invoke.f == "read") {
        let Some(v) = completion.value.as_i64() else {
            malformed.push(pair.invoke.index);
            continue;
        };
        let (invoked, completed) = (pair.invoke.index, completion.index);
        let (mut lower, mut upper) = (0i64, 0i64);
        let (mut least, mut most) = (0i64, 0i64);
        for a in &adds {
            let done = a.ok_at.is_some_and(|t| t < invoked);
            let maybe = a.invoked < completed;
            if maybe {
                if a.delta < 0 {
                    least = least.saturating_add(a.delta);
                } else {
                    most = most.saturating_add(a.delta);
                }
            }
            if done {
                lower = lower.saturating_add(a.delta);
                upper = upper.saturating_add(a.delta);
            } else if maybe {
                if a.delta < 0 {
                    lower = lower.saturating_add(a.delta);
                } else {
                    upper = upper.saturating_add(a.delta);
                }
            }
        }
        if !(least..=most).contains(&v) {
            bad_reads.push(format!(
                "op {} read {v}, not in [{least}, {most}]",
                pair.invoke.index
            ));
        } else if !(lower..=upper).contains(&v) {
            stale_reads.push(format!(
                "op {} read {v}, not in [{lower}, {upper}]",
                pair.invoke.index
            ));
        }
        if last_add_done.is_none_or(|t| t < invoked) {
            final_reads.push(v);
            if !acceptable.contains(v) {
                bad_finals.push(format!("op {} read {v}", pair.invoke.index));
            }
        }
    }
    if !bad_reads.is_empty() {
        anomalies.push(Anomaly::new("bad-read", sample_text(&bad_reads, 8)));
    }
    if options.g_counter_fresh_reads && !stale_reads.is_empty() {
        anomalies.push(Anomaly::new("stale-read", sample_text(&stale_reads, 8)));
    }
    if !bad_finals.is_empty() {
        anomalies.push(Anomaly::new(
            "bad-final-read",
            format!(
                "{}; acceptable: {}",
                sample_text(&bad_finals, 8),
                acceptable.to_json()
            ),
        ));
    }
    if !malformed.is_empty() {
        anomalies.push(Anomaly::new(
            "malformed-value",
            format!("not integers: ops {}", sample(&malformed, 8)),
        ));
    }
    let details = json!({
        "final-reads": final_reads,
        "acceptable": acceptable.to_json(),
        "bad-read-count": bad_reads.len(),
        "stale-read-count": stale_reads.len(),
    });
    let mut result = CheckerResult::from_anomalies("g-counter", anomalies, details);
    if result.valid == Validity::Valid && final_reads.is_empty() && !adds.is_empty() {
        // Nothing read after the adds ended: the final value was never checked.
        result.valid = Validity::Unknown;
    }
    result
}

/// `definite` plus every subset sum of `maybe` (exact up to [`MAX_ACCEPTABLE_SUMS`]).
fn acceptable_finals(definite: i64, maybe: impl Iterator<Item = i64>) -> Acceptable {
    let mut sums = BTreeSet::from([definite]);
    let (mut lo, mut hi) = (definite, definite);
    let mut exact = true;
    for delta in maybe {
        if delta < 0 {
            lo = lo.saturating_add(delta);
        } else {
            hi = hi.saturating_add(delta);
        }
        if exact {
            let shifted: Vec<i64> = sums.iter().map(|s| s.saturating_add(delta)).collect();
            sums.extend(shifted);
            exact = sums.len() <= MAX_ACCEPTABLE_SUMS;
        }
    }
    if exact {
        Acceptable::Exact(sums)
    } else {
        Acceptable::Range(lo, hi)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::check::test_history::H;
    use crate::check::{CheckOptions, Validity, check};
    use crate::history::WorkloadName;

    fn run(h: &H) -> crate::check::Report {
        check(WorkloadName::GCounter, &h.ops, &CheckOptions::default())
    }

    #[test]
    fn test_valid() {
        let mut h = H::new();
        h.op(0, "add", json!(3), json!(3));
        // Concurrent with the add of 4: 3 or 7 are both fine.
        h.invoke(1, "add", json!(4));
        h.op(0, "read", Value::Null, json!(3));
        h.ok(1, "add", json!(4));
        // An add that timed out may or may not count.
        h.invoke(2, "add", json!(10)).info(2, "add", json!(10));
        h.invoke(3, "add", json!(100)).fail(3, "add", json!(100));
        h.op(0, "read", Value::Null, json!(17));
        h.op(1, "read", Value::Null, json!(7));
        let r = run(&h);
        assert_eq!(r.valid, Validity::Valid, "{r:?}");
        assert_eq!(r.checkers[0].details["final-reads"], json!([17, 7]));
        assert_eq!(
            r.checkers[0].details["acceptable"],
            json!([[7, 7], [17, 17]])
        );
    }

    #[test]
    fn test_bad_read_too_high() {
        let mut h = H::new();
        h.op(0, "add", json!(3), json!(3));
        h.op(1, "read", Value::Null, json!(6));
        h.invoke(0, "add", json!(3));
        let r = run(&h);
        assert_eq!(r.valid, Validity::Invalid);
        assert!(r.has_anomaly("bad-read"), "{r:?}");
    }

    #[test]
    fn test_bad_read_impossible_sum() {
        let mut h = H::new();
        h.op(0, "add", json!(3), json!(3));
        h.op(1, "read", Value::Null, json!(-1));
        let r = run(&h);
        assert!(r.has_anomaly("bad-read"), "{r:?}");
    }

    #[test]
    fn test_stale_read() {
        let mut h = H::new();
        h.op(0, "add", json!(3), json!(3));
        h.op(0, "add", json!(2), json!(2));
        h.op(1, "read", Value::Null, json!(3));
        h.invoke(0, "add", json!(1));
        let r = run(&h);
        assert!(
            !r.has_anomaly("bad-read"),
            "3 is a sum the adds make: {r:?}"
        );
        assert_eq!(r.checkers[0].details["stale-read-count"], 1);
        let options = CheckOptions {
            g_counter_fresh_reads: true,
            ..CheckOptions::default()
        };
        let r = check(WorkloadName::GCounter, &h.ops, &options);
        assert!(r.has_anomaly("stale-read"), "{r:?}");
        assert!(
            r.checkers[0].anomalies[0].detail.contains("not in [5, 5]"),
            "{r:?}"
        );
    }

    #[test]
    fn test_bad_final_read_double_count() {
        let mut h = H::new();
        h.op(0, "add", json!(1), json!(1));
        h.invoke(1, "add", json!(2)).info(1, "add", json!(2));
        // 1 + 2 + 2: the unknown add counted twice.
        h.op(2, "read", Value::Null, json!(5));
        let r = run(&h);
        assert_eq!(r.valid, Validity::Invalid);
        assert!(r.has_anomaly("bad-final-read"), "{r:?}");
    }

    #[test]
    fn test_no_final_read_is_unknown() {
        let mut h = H::new();
        h.invoke(0, "read", Value::Null);
        h.op(1, "add", json!(1), json!(1));
        h.ok(0, "read", json!(0));
        assert_eq!(run(&h).valid, Validity::Unknown);
    }
}
