//! unique-ids: no id is returned twice, across all nodes and all `Ok` operations (Jepsen's
//! unique-ids checker).

use std::collections::HashMap;

use serde_json::json;

use super::{Anomaly, CheckerResult, oks, sample_text};
use crate::history::Pair;

/// Checks a unique-ids history: anomaly `duplicated` when an id was returned more than once.
pub fn check(pairs: &[Pair<'_>]) -> CheckerResult {
    // Ids are compared as JSON text: `1` and `"1"` are different ids.
    let mut seen: HashMap<String, Vec<u64>> = HashMap::new();
    let mut acknowledged = 0u64;
    for (pair, completion) in oks(pairs) {
        acknowledged += 1;
        seen.entry(completion.value.to_string())
            .or_default()
            .push(pair.invoke.index);
    }
    let mut duplicated: Vec<(&String, &Vec<u64>)> =
        seen.iter().filter(|(_, ops)| ops.len() > 1).collect();
    duplicated.sort();
    let mut anomalies = Vec::new();
    if !duplicated.is_empty() {
        let shown: Vec<String> = duplicated
            .iter()
            .map(|(id, ops)| format!("{id} by ops {ops:?}"))
            .collect();
        anomalies.push(Anomaly::new(
            "duplicated",
            format!(
                "{} ids returned more than once: {}",
                duplicated.len(),
                sample_text(&shown, 5)
            ),
        ));
    }
    let details = json!({
        "attempted-count": pairs.len(),
        "acknowledged-count": acknowledged,
        "duplicated-count": duplicated.len(),
    });
    CheckerResult::from_anomalies("unique-ids", anomalies, details)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::check::test_history::H;
    use crate::check::{CheckOptions, Validity, check};
    use crate::history::WorkloadName;

    #[test]
    fn test_valid() {
        let mut h = H::new();
        h.op(0, "generate", Value::Null, json!("n0-1"));
        h.op(1, "generate", Value::Null, json!("n1-1"));
        // `1` and `"1"` are different ids.
        h.op(0, "generate", Value::Null, json!(1));
        h.op(1, "generate", Value::Null, json!("1"));
        let r = check(WorkloadName::UniqueIds, &h.ops, &CheckOptions::default());
        assert_eq!(r.valid, Validity::Valid, "{r:?}");
        assert_eq!(r.checkers[0].details["acknowledged-count"], 4);
    }

    #[test]
    fn test_duplicated() {
        let mut h = H::new();
        h.op(0, "generate", Value::Null, json!("n0-1"));
        h.op(1, "generate", Value::Null, json!("n0-2"));
        h.op(2, "generate", Value::Null, json!("n0-1"));
        let r = check(WorkloadName::UniqueIds, &h.ops, &CheckOptions::default());
        assert_eq!(r.valid, Validity::Invalid);
        assert!(r.has_anomaly("duplicated"), "{r:?}");
        assert_eq!(r.checkers[0].details["duplicated-count"], 1);
        assert!(
            r.checkers[0].anomalies[0]
                .detail
                .contains(r#""n0-1" by ops [0, 4]"#),
            "{r:?}"
        );
    }
}
