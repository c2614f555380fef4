//! echo: every `Ok` echo carries exactly the string its request sent (Maelstrom's echo checker).

use serde_json::json;

use super::{Anomaly, CheckerResult, oks};
use crate::history::Pair;

/// Checks an echo history: anomaly `echo-mismatch` for each reply that differs.
pub fn check(pairs: &[Pair<'_>]) -> CheckerResult {
    let mut anomalies = Vec::new();
    let mut ok = 0u64;
    for (pair, completion) in oks(pairs) {
        ok += 1;
        if completion.value != pair.invoke.value {
            anomalies.push(Anomaly::new(
                "echo-mismatch",
                format!(
                    "op {}: sent {} but received {}",
                    pair.invoke.index, pair.invoke.value, completion.value
                ),
            ));
        }
    }
    let details = json!({"ok-count": ok, "error-count": anomalies.len()});
    CheckerResult::from_anomalies("echo", anomalies, details)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::check::test_history::H;
    use crate::check::{CheckOptions, Validity, check};
    use crate::history::WorkloadName;

    #[test]
    fn test_valid() {
        let mut h = H::new();
        h.op(0, "echo", json!("hi 1"), json!("hi 1"));
        h.invoke(1, "echo", json!("hi 2"))
            .info(1, "echo", json!("hi 2"));
        let r = check(WorkloadName::Echo, &h.ops, &CheckOptions::default());
        assert_eq!(r.valid, Validity::Valid, "{r:?}");
        assert_eq!(r.checkers[0].details["ok-count"], 1);
    }

    #[test]
    fn test_echo_mismatch() {
        let mut h = H::new();
        h.op(0, "echo", json!("hi 1"), json!("hi 1"));
        h.op(0, "echo", json!("hi 2"), json!("hi 1"));
        let r = check(WorkloadName::Echo, &h.ops, &CheckOptions::default());
        assert_eq!(r.valid, Validity::Invalid);
        assert!(r.has_anomaly("echo-mismatch"), "{r:?}");
        assert!(
            r.checkers[0].anomalies[0].detail.starts_with("op 2:"),
            "{r:?}"
        );
    }
}
