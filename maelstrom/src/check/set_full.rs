//! broadcast: Jepsen's set-full checker, with `broadcast` as its `add`.
//!
//! An element becomes *known* when its broadcast is acknowledged or when a read first shows
//! it, whichever is earlier. Every read invoked after that should show it. "After" is the
//! history's order, which is the order the harness observed (times may tie on virtual time). Per element, over
//! the reads invoked after it was known:
//! - **lost**: the latest such read lacks it (it was there, or acknowledged, and then was gone
//!   for good) — invalid;
//! - **stale**: some read lacks it but later ones show it again; counted, and invalid only with
//!   [`CheckOptions::set_full_linearizable`] (Maelstrom leaves it off);
//! - **stable**: otherwise; its *stable latency* is from known to the last read that lacked it.
//! - **never-read**: no read was invoked after it was known (counted, not invalid).
//!
//! A read showing a value nobody broadcast is **unexpected**, one showing a value twice is
//! **duplicated**; both invalid. With acknowledged broadcasts and no read at all, the
//! verdict is `Unknown`.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Value, json};

use super::{
    Anomaly, CheckOptions, CheckerResult, Validity, oks, quantiles_ms, sample, sample_text,
};
use crate::history::{OpType, Pair};

/// A read that completed: where in the history it was invoked (the order that decides what
/// precedes what: times may tie), when it completed, and what it showed.
struct Read {
    index: u64,
    completed: u64,
    values: HashSet<i64>,
}

/// Per element: where in the history and when it became known, and its broadcasts' outcomes.
#[derive(Default)]
struct Element {
    known: Option<(u64, u64)>,
    acknowledged: bool,
    attempted: bool,
}

/// The earlier of two (history index, time) points.
fn earliest(a: Option<(u64, u64)>, b: (u64, u64)) -> Option<(u64, u64)> {
    Some(a.map_or(b, |a| a.min(b)))
}

/// Checks a broadcast history.
pub fn check(pairs: &[Pair<'_>], options: &CheckOptions) -> CheckerResult {
    let mut elements: BTreeMap<i64, Element> = BTreeMap::new();
    let mut anomalies = Vec::new();
    let mut unexpected = Vec::new();
    let mut duplicated = Vec::new();
    for pair in pairs {
        if pair.invoke.f == "broadcast"
            && let Some(v) = pair.invoke.value.as_i64()
        {
            let e = elements.entry(v).or_default();
            e.attempted = true;
            if let Some(c) = pair.completion
                && c.kind == OpType::Ok
            {
                e.acknowledged = true;
                e.known = earliest(e.known, (c.index, c.time));
            }
        }
    }
    let mut reads = Vec::new();
    for (pair, completion) in oks(pairs) {
        if pair.invoke.f != "read" {
            continue;
        }
        let list = completion
            .value
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let mut values = HashSet::new();
        for v in list {
            let Some(v) = v.as_i64() else {
                unexpected.push((pair.invoke.index, v.clone()));
                continue;
            };
            if !values.insert(v) {
                duplicated.push((pair.invoke.index, v));
            }
            match elements.get_mut(&v) {
                Some(e) if e.attempted => {
                    e.known = earliest(e.known, (completion.index, completion.time));
                }
                _ => unexpected.push((pair.invoke.index, Value::from(v))),
            }
        }
        reads.push(Read {
            index: pair.invoke.index,
            completed: completion.time,
            values,
        });
    }

    let mut lost = Vec::new();
    let mut stale = Vec::new();
    let mut never_read = Vec::new();
    let mut stable_latencies = Vec::new();
    let mut lost_latencies = Vec::new();
    for (&v, e) in &elements {
        let Some((known, known_time)) = e.known else {
            continue;
        };
        let mut last_present: Option<&Read> = None;
        let mut last_absent: Option<&Read> = None;
        for r in reads.iter().filter(|r| r.index > known) {
            let slot = if r.values.contains(&v) {
                &mut last_present
            } else {
                &mut last_absent
            };
            if slot.is_none_or(|s| r.index >= s.index) {
                *slot = Some(r);
            }
        }
        match (last_present, last_absent) {
            (None, None) => never_read.push(v),
            (present, Some(absent)) if present.is_none_or(|p| absent.index > p.index) => {
                lost.push((v, absent.index));
                lost_latencies.push(absent.completed.saturating_sub(known_time));
            }
            (_, absent) => {
                if absent.is_some() {
                    stale.push(v);
                }
                let stable_since = absent.map_or(known_time, |a| a.completed.max(known_time));
                stable_latencies.push(stable_since.saturating_sub(known_time));
            }
        }
    }

    if !lost.is_empty() {
        let shown: Vec<String> = lost
            .iter()
            .map(|(v, read)| format!("{v} (absent from read op {read})"))
            .collect();
        anomalies.push(Anomaly::new(
            "lost",
            format!(
                "{} acknowledged or seen elements lost: {}",
                lost.len(),
                sample_text(&shown, 8)
            ),
        ));
    }
    if !unexpected.is_empty() {
        anomalies.push(Anomaly::new(
            "unexpected",
            format!(
                "read values never broadcast (read op, value): {}",
                sample(&unexpected, 8)
            ),
        ));
    }
    if !duplicated.is_empty() {
        anomalies.push(Anomaly::new(
            "duplicated",
            format!(
                "values shown twice by one read (read op, value): {}",
                sample(&duplicated, 8)
            ),
        ));
    }
    if options.set_full_linearizable && !stale.is_empty() {
        anomalies.push(Anomaly::new(
            "stale",
            format!(
                "{} elements missing from a read after they were known: {}",
                stale.len(),
                sample(&stale, 8)
            ),
        ));
    }
    let acknowledged = elements.values().filter(|e| e.acknowledged).count();
    let details = json!({
        "attempt-count": elements.values().filter(|e| e.attempted).count(),
        "acknowledged-count": acknowledged,
        "read-count": reads.len(),
        "stable-count": stable_latencies.len(),
        "lost-count": lost.len(),
        "lost": lost.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
        "stale-count": stale.len(),
        "stale": stale,
        "never-read-count": never_read.len(),
        "never-read": never_read,
        "unexpected-count": unexpected.len(),
        "duplicated-count": duplicated.len(),
        "stable-latencies": quantiles_ms(stable_latencies),
        "lost-latencies": quantiles_ms(lost_latencies),
    });
    let mut result = CheckerResult::from_anomalies("set-full", anomalies, details);
    if result.valid == Validity::Valid && acknowledged > 0 && reads.is_empty() {
        result.valid = Validity::Unknown;
    }
    result
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::check::test_history::H;
    use crate::check::{CheckOptions, Validity, check};
    use crate::history::WorkloadName;

    fn run(h: &H) -> crate::check::Report {
        check(WorkloadName::Broadcast, &h.ops, &CheckOptions::default())
    }

    #[test]
    fn test_valid() {
        let mut h = H::new();
        h.op(0, "broadcast", json!(1), json!(1));
        h.op(1, "broadcast", json!(2), json!(2));
        // A read concurrent with a broadcast may miss it.
        h.invoke(0, "read", Value::Null);
        h.op(1, "broadcast", json!(3), json!(3));
        h.ok(0, "read", json!([2, 1]));
        h.op(0, "read", Value::Null, json!([1, 2, 3]));
        h.op(1, "read", Value::Null, json!([3, 2, 1]));
        let r = run(&h);
        assert_eq!(r.valid, Validity::Valid, "{r:?}");
        let d = &r.checkers[0].details;
        assert_eq!(d["stable-count"], 3);
        assert_eq!(d["lost-count"], 0);
        assert_eq!(d["stable-latencies"]["1"], 0.0);
    }

    #[test]
    fn test_lost() {
        let mut h = H::new();
        h.op(0, "broadcast", json!(1), json!(1));
        h.op(1, "broadcast", json!(2), json!(2));
        h.op(0, "read", Value::Null, json!([1]));
        h.op(1, "read", Value::Null, json!([1]));
        let r = run(&h);
        assert_eq!(r.valid, Validity::Invalid);
        assert!(r.has_anomaly("lost"), "{r:?}");
        assert_eq!(r.checkers[0].details["lost"], json!([2]));
    }

    #[test]
    fn test_lost_with_tied_times() {
        // On virtual time with zero-latency clients every entry may carry the same time: the
        // history's order still says the reads came after the acknowledgement.
        let mut h = H::new();
        h.op(0, "broadcast", json!(1), json!(1));
        h.op(1, "read", Value::Null, json!([1]));
        h.op(1, "read", Value::Null, json!([]));
        for op in &mut h.ops {
            op.time = 5;
        }
        assert!(run(&h).has_anomaly("lost"));
    }

    #[test]
    fn test_seen_then_gone_is_lost() {
        // Never acknowledged (timed out), but a read showed it: it happened, and must stay.
        let mut h = H::new();
        h.invoke(0, "broadcast", json!(7))
            .info(0, "broadcast", json!(7));
        h.op(1, "read", Value::Null, json!([7]));
        h.op(1, "read", Value::Null, json!([]));
        assert!(run(&h).has_anomaly("lost"));
    }

    #[test]
    fn test_unacknowledged_and_unseen_is_not_lost() {
        let mut h = H::new();
        h.invoke(0, "broadcast", json!(7))
            .info(0, "broadcast", json!(7));
        h.op(1, "read", Value::Null, json!([]));
        assert_eq!(run(&h).valid, Validity::Valid);
    }

    #[test]
    fn test_stale() {
        let mut h = H::new();
        h.op(0, "broadcast", json!(1), json!(1));
        h.op(1, "read", Value::Null, json!([1]));
        h.op(2, "read", Value::Null, json!([]));
        h.op(1, "read", Value::Null, json!([1]));
        let r = run(&h);
        assert_eq!(
            r.valid,
            Validity::Valid,
            "stale reads alone are counted: {r:?}"
        );
        assert_eq!(r.checkers[0].details["stale"], json!([1]));
        let options = CheckOptions {
            set_full_linearizable: true,
            ..CheckOptions::default()
        };
        let r = check(WorkloadName::Broadcast, &h.ops, &options);
        assert_eq!(r.valid, Validity::Invalid);
        assert!(r.has_anomaly("stale"), "{r:?}");
    }

    #[test]
    fn test_stable_latency() {
        // Known at 1 ms; the read invoked at 2 ms lacks it and completes at 3 ms.
        let mut h = H::new();
        h.op(0, "broadcast", json!(1), json!(1));
        h.op(1, "read", Value::Null, json!([]));
        h.op(1, "read", Value::Null, json!([1]));
        let r = run(&h);
        assert_eq!(r.checkers[0].details["stable-latencies"]["0.5"], 2.0);
    }

    #[test]
    fn test_unexpected_and_duplicated() {
        let mut h = H::new();
        h.op(0, "broadcast", json!(1), json!(1));
        h.op(1, "read", Value::Null, json!([1, 1, 9]));
        let r = run(&h);
        assert_eq!(r.valid, Validity::Invalid);
        assert!(r.has_anomaly("unexpected"), "{r:?}");
        assert!(r.has_anomaly("duplicated"), "{r:?}");
    }

    #[test]
    fn test_never_read_and_no_reads() {
        let mut h = H::new();
        h.op(0, "broadcast", json!(1), json!(1));
        let r = run(&h);
        assert_eq!(r.valid, Validity::Unknown, "{r:?}");
        assert_eq!(r.checkers[0].details["never-read"], json!([1]));
    }
}
