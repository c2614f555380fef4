//! availability (`--availability total`): every operation must complete `Ok`.

use serde_json::json;

use super::{Anomaly, CheckerResult, sample};
use crate::history::{OpType, Pair};

/// Checks that every operation succeeded: anomaly `unavailable` naming those that did not.
pub fn check(pairs: &[Pair<'_>]) -> CheckerResult {
    let not_ok: Vec<u64> = pairs
        .iter()
        .filter(|p| p.outcome() != OpType::Ok)
        .map(|p| p.invoke.index)
        .collect();
    let total = pairs.len();
    let ok = total - not_ok.len();
    let fraction = if total == 0 {
        1.0
    } else {
        ok as f64 / total as f64
    };
    let mut anomalies = Vec::new();
    if !not_ok.is_empty() {
        anomalies.push(Anomaly::new(
            "unavailable",
            format!(
                "{} of {total} operations did not succeed: ops {}",
                not_ok.len(),
                sample(&not_ok, 10)
            ),
        ));
    }
    let details = json!({"ok-fraction": fraction, "ok-count": ok, "count": total});
    CheckerResult::from_anomalies("availability", anomalies, details)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::check::test_history::H;
    use crate::check::{CheckOptions, Validity, check};
    use crate::history::WorkloadName;

    #[test]
    fn test_total_availability() {
        let mut h = H::new();
        h.op(0, "echo", json!("a"), json!("a"));
        h.invoke(1, "echo", json!("b")).fail(1, "echo", json!("b"));
        let mut options = CheckOptions::default();
        let r = check(WorkloadName::Echo, &h.ops, &options);
        assert_eq!(r.valid, Validity::Valid, "a failure alone is fine: {r:?}");
        assert!(r.checker("availability").is_none());
        options.total_availability = true;
        let r = check(WorkloadName::Echo, &h.ops, &options);
        assert_eq!(r.valid, Validity::Invalid);
        let a = r.checker("availability").unwrap();
        assert!(a.has_anomaly("unavailable"), "{a:?}");
        assert_eq!(a.details["ok-fraction"], 0.5);
        assert!(a.anomalies[0].detail.ends_with("ops [2]"), "{a:?}");
    }
}
