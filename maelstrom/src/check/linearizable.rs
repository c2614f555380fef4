//! lin-kv: linearizability of each key's register (`read`, `write`, `cas`), decided by
//! [porcupine-rs](https://docs.rs/porcupine-rs) (porcupine's algorithm: Wing & Gong's search
//! with Lowe's cache of visited states) against a compare-and-set register. Keys are
//! independent (Jepsen's `independent` checker), so each key's operations are searched alone.
//!
//! - `Ok` operations happened, between their invocation and completion;
//! - `Fail` operations (definite errors) changed nothing, but two still tell what the register
//!   held at some instant between invocation and completion: key-does-not-exist (20) that it
//!   was absent, and a `cas` refused with precondition-failed (22) that it held something other
//!   than `from`; those are kept as observations, other failures are left out;
//! - `Info` writes and `cas`es may have happened at any time after their invocation: they are
//!   given to the search as never completing, so that it may place them anywhere after their
//!   invocation, or at the very end, where they change nothing anyone saw; `Info` reads
//!   change nothing and are left out.
//!
//! Times are positions in the history (the order the harness observed), so ties cannot occur.
//! The search is exponential in the worst case: each key gets
//! [`CheckOptions::linearizable_timeout`], and a key whose search runs out of it makes the
//! verdict `Unknown`.

use std::collections::BTreeMap;

use porcupine_rs::{CheckResult, Model, Operation};
use serde_json::{Value, json};

use super::{Anomaly, CheckOptions, CheckerResult, Validity, sample};
use crate::history::{Op, OpType, Pair};

/// A compare-and-set register whose value may be absent (a key never written); values are
/// JSON text.
#[derive(Clone, Copy, Debug, Default)]
pub struct CasRegister;

/// An operation on a [`CasRegister`] with what it returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegisterOp {
    /// A read that returned this value (`null` when absent).
    Read(String),
    /// A write that happened.
    Write(String),
    /// A compare-and-set `from` → `to` that matched.
    Cas(String, String),
    /// A write whose outcome is unknown.
    MaybeWrite(String),
    /// A compare-and-set whose outcome is unknown (it matched, or it did not).
    MaybeCas(String, String),
    /// A request refused with key-does-not-exist: the register was absent.
    Absent,
    /// A compare-and-set refused with precondition-failed: the register held a value other
    /// than this one.
    NotEqual(String),
}

impl Model for CasRegister {
    type State = Option<String>;
    type Op = RegisterOp;
    type Metadata = u64;

    fn init() -> Option<String> {
        None
    }

    fn step(state: &Option<String>, op: &RegisterOp) -> (bool, Option<String>) {
        match op {
            RegisterOp::Read(v) => {
                let current = state.as_deref().unwrap_or("null");
                (current == v, state.clone())
            }
            RegisterOp::Write(v) | RegisterOp::MaybeWrite(v) => (true, Some(v.clone())),
            RegisterOp::Cas(from, to) => {
                if state.as_ref() == Some(from) {
                    (true, Some(to.clone()))
                } else {
                    (false, state.clone())
                }
            }
            RegisterOp::Absent => (state.is_none(), state.clone()),
            RegisterOp::NotEqual(from) => {
                (state.as_ref().is_some_and(|v| v != from), state.clone())
            }
            RegisterOp::MaybeCas(from, to) => {
                if state.as_ref() == Some(from) {
                    (true, Some(to.clone()))
                } else {
                    // It took effect here as a refused cas: nothing changed.
                    (true, state.clone())
                }
            }
        }
    }
}

/// The key of an invocation (`[key, …]`) as JSON text, and its argument.
fn key_and_arg(op: &Op) -> Option<(String, &Value)> {
    let v = op.value.as_array()?;
    Some((v.first()?.to_string(), v.get(1)?))
}

/// The register operation of a pair, given whether it happened (`Ok`) or may have (`Info`).
fn register_op(pair: &Pair<'_>) -> Option<(String, RegisterOp)> {
    let (key, arg) = key_and_arg(pair.invoke)?;
    let ok = pair.outcome() == OpType::Ok;
    if pair.outcome() == OpType::Fail {
        let code = pair.completion.and_then(|c| c.error_code);
        let op = match (pair.invoke.f.as_str(), code) {
            ("read" | "write" | "cas", Some(20)) => RegisterOp::Absent,
            ("cas", Some(22)) => RegisterOp::NotEqual(arg.as_array()?.first()?.to_string()),
            _ => return None,
        };
        return Some((key, op));
    }
    let op = match pair.invoke.f.as_str() {
        "read" => {
            let read = pair.completion?.value.as_array()?.get(1)?;
            RegisterOp::Read(read.to_string())
        }
        "write" if ok => RegisterOp::Write(arg.to_string()),
        "write" => RegisterOp::MaybeWrite(arg.to_string()),
        "cas" => {
            let ft = arg.as_array()?;
            let (from, to) = (ft.first()?.to_string(), ft.get(1)?.to_string());
            if ok {
                RegisterOp::Cas(from, to)
            } else {
                RegisterOp::MaybeCas(from, to)
            }
        }
        _ => return None,
    };
    Some((key, op))
}

/// Checks a lin-kv history.
pub fn check(pairs: &[Pair<'_>], options: &CheckOptions) -> CheckerResult {
    let mut per_key: BTreeMap<String, Vec<Operation<CasRegister>>> = BTreeMap::new();
    let mut malformed = Vec::new();
    for pair in pairs {
        let outcome = pair.outcome();
        if outcome == OpType::Info && pair.invoke.f == "read" {
            continue;
        }
        let Some((key, op)) = register_op(pair) else {
            // A failure that tells nothing is left out; anything else should have parsed.
            if outcome != OpType::Fail {
                malformed.push(pair.invoke.index);
            }
            continue;
        };
        let at = |i: u64| i64::try_from(i).unwrap_or(i64::MAX);
        let return_time = match pair.completion {
            Some(c) if outcome != OpType::Info => at(c.index),
            _ => i64::MAX,
        };
        per_key.entry(key).or_default().push(Operation {
            client_id: u32::try_from(pair.invoke.process).ok(),
            call_time: at(pair.invoke.index),
            return_time,
            op,
            metadata: Some(pair.invoke.index),
        });
    }

    let mut anomalies = Vec::new();
    let mut unknown = Vec::new();
    let mut valid_keys = 0usize;
    for (key, ops) in &per_key {
        match porcupine_rs::check_operations_timeout(ops, options.linearizable_timeout) {
            CheckResult::Ok => valid_keys += 1,
            CheckResult::Unknown => unknown.push(key.clone()),
            CheckResult::Illegal => {
                let shown: Vec<String> = ops
                    .iter()
                    .map(|o| format!("op {}: {:?}", o.metadata.unwrap_or(0), o.op))
                    .collect();
                anomalies.push(Anomaly::new(
                    "nonlinearizable",
                    format!(
                        "key {key}: no order of its {} operations respecting real time is a register's history: {}",
                        ops.len(),
                        sample(&shown, 12)
                    ),
                ));
            }
        }
    }
    if !malformed.is_empty() {
        anomalies.push(Anomaly::new(
            "malformed-value",
            format!("ops {}", sample(&malformed, 8)),
        ));
    }
    let details = json!({
        "key-count": per_key.len(),
        "linearizable-key-count": valid_keys,
        "unknown-keys": unknown,
    });
    let mut result = CheckerResult::from_anomalies("linearizable", anomalies, details);
    if result.valid == Validity::Valid && !unknown.is_empty() {
        result.valid = Validity::Unknown;
    }
    result
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::check::test_history::H;
    use crate::check::{CheckOptions, Report, Validity, check};
    use crate::history::WorkloadName;

    fn run(h: &H) -> Report {
        check(WorkloadName::LinKv, &h.ops, &CheckOptions::default())
    }

    #[test]
    fn test_valid() {
        let mut h = H::new();
        h.op(0, "read", json!([1, null]), json!([1, null]));
        h.op(0, "write", json!([1, 3]), json!([1, 3]));
        // Concurrent: the read may see either value.
        h.invoke(1, "cas", json!([1, [3, 4]]));
        h.op(2, "read", json!([1, null]), json!([1, 3]));
        h.ok(1, "cas", json!([1, [3, 4]]));
        // A refused cas did not happen.
        h.invoke(2, "cas", json!([1, [9, 5]]))
            .fail(2, "cas", json!([1, [9, 5]]));
        h.op(0, "read", json!([1, null]), json!([1, 4]));
        // Another key, independent.
        h.op(0, "write", json!([2, 1]), json!([2, 1]));
        h.op(0, "read", json!([2, null]), json!([2, 1]));
        let r = run(&h);
        assert_eq!(r.valid, Validity::Valid, "{r:?}");
        assert_eq!(r.checkers[0].details["linearizable-key-count"], 2);
    }

    #[test]
    fn test_stale_read_is_nonlinearizable() {
        let mut h = H::new();
        h.op(0, "write", json!([1, 3]), json!([1, 3]));
        h.op(0, "write", json!([1, 4]), json!([1, 4]));
        h.op(1, "read", json!([1, null]), json!([1, 3]));
        let r = run(&h);
        assert_eq!(r.valid, Validity::Invalid, "{r:?}");
        assert!(r.has_anomaly("nonlinearizable"), "{r:?}");
        assert!(
            r.checkers[0].anomalies[0].detail.starts_with("key 1:"),
            "{r:?}"
        );
    }

    #[test]
    fn test_cas_from_wrong_value_is_nonlinearizable() {
        let mut h = H::new();
        h.op(0, "write", json!([1, 3]), json!([1, 3]));
        h.op(0, "cas", json!([1, [2, 5]]), json!([1, [2, 5]]));
        assert!(run(&h).has_anomaly("nonlinearizable"));
    }

    #[test]
    fn test_info_write_may_have_happened() {
        let mut h = H::new();
        h.op(0, "write", json!([1, 3]), json!([1, 3]));
        h.invoke(1, "write", json!([1, 7]))
            .info(1, "write", json!([1, 7]));
        h.op(2, "read", json!([1, null]), json!([1, 3]));
        h.op(2, "read", json!([1, null]), json!([1, 7]));
        assert_eq!(run(&h).valid, Validity::Valid);
        // But it cannot happen before it was invoked, nor be undone.
        h.op(2, "read", json!([1, null]), json!([1, 3]));
        assert!(run(&h).has_anomaly("nonlinearizable"));
    }

    #[test]
    fn test_definite_errors_are_observations() {
        let fail = |h: &mut H, p: u64, f: &str, v: Value, code: u32| {
            h.invoke(p, f, v.clone()).fail(p, f, v);
            h.ops.last_mut().unwrap().error_code = Some(code);
        };
        let mut h = H::new();
        fail(&mut h, 0, "read", json!([1, null]), 20);
        h.op(0, "write", json!([1, 3]), json!([1, 3]));
        fail(&mut h, 0, "cas", json!([1, [2, 5]]), 22);
        // A refusal for another reason (here: a timeout-like code) says nothing.
        fail(&mut h, 0, "cas", json!([1, [3, 5]]), 11);
        assert_eq!(run(&h).valid, Validity::Valid);
        // Not found after the write completed: stale.
        let mut stale = h.ops.clone();
        let mut h2 = H {
            ops: std::mem::take(&mut stale),
        };
        fail(&mut h2, 1, "read", json!([1, null]), 20);
        assert!(run(&h2).has_anomaly("nonlinearizable"));
        // Refused although the register held `from`.
        fail(&mut h, 1, "cas", json!([1, [3, 4]]), 22);
        assert!(run(&h).has_anomaly("nonlinearizable"));
    }

    #[test]
    fn test_info_cas_may_not_have_happened() {
        let mut h = H::new();
        h.op(0, "write", json!([1, 3]), json!([1, 3]));
        h.invoke(1, "cas", json!([1, [3, 4]]))
            .info(1, "cas", json!([1, [3, 4]]));
        h.op(0, "read", json!([1, null]), json!([1, 3]));
        h.op(0, "write", json!([1, 5]), json!([1, 5]));
        h.op(0, "read", json!([1, null]), json!([1, 5]));
        assert_eq!(run(&h).valid, Validity::Valid);
    }

    /// A history of `clients` concurrent clients on one register, each operation taking
    /// effect at some instant between its invocation and completion (so linearizable), some
    /// timing out; pseudo-random from `seed`.
    fn concurrent_history(clients: u64, ops: usize, seed: u64) -> H {
        let mut rng = seed;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let mut h = H::new();
        let mut register: Option<i64> = None;
        // Per client: its process, and its operation (f, invoke value, result once applied).
        let mut process: Vec<u64> = (0..clients).collect();
        let mut next_process = clients;
        let mut state: Vec<Option<(&str, Value, Option<Value>)>> = vec![None; clients as usize];
        let mut done = 0;
        let mut value = 0i64;
        while done < ops {
            let c = next(clients) as usize;
            let p = process[c];
            match state[c].take() {
                None => {
                    value += 1;
                    let (f, v) = match next(3) {
                        0 => ("read", json!([1, null])),
                        1 => ("write", json!([1, value])),
                        _ => ("cas", json!([1, [next(4) as i64 + value - 3, value]])),
                    };
                    h.invoke(p, f, v.clone());
                    state[c] = Some((f, v, None));
                }
                Some((f, v, None)) => {
                    let result = match f {
                        "read" => json!([1, register]),
                        "write" => {
                            register = v[1].as_i64();
                            v.clone()
                        }
                        _ if register == v[1][0].as_i64() => {
                            register = v[1][1].as_i64();
                            v.clone()
                        }
                        _ => Value::Null,
                    };
                    state[c] = Some((f, v, Some(result)));
                }
                Some((f, v, Some(result))) => {
                    done += 1;
                    if next(25) == 0 {
                        h.info(p, f, v);
                        process[c] = next_process;
                        next_process += 1;
                    } else if result.is_null() {
                        h.fail(p, f, v);
                    } else {
                        h.ok(p, f, result);
                    }
                }
            }
        }
        h
    }

    #[test]
    fn test_concurrent_valid_histories() {
        for seed in 1..=20 {
            let h = concurrent_history(5, 150, seed);
            let r = run(&h);
            assert_eq!(r.valid, Validity::Valid, "seed {seed}: {r:?}");
        }
    }

    #[test]
    fn test_concurrent_history_with_one_read_changed() {
        // The same histories with the last successful read answering a value never written
        // there: every one is caught.
        for seed in 1..=20 {
            let mut h = concurrent_history(5, 150, seed);
            let Some(read) = h
                .ops
                .iter_mut()
                .rev()
                .find(|o| o.kind == crate::history::OpType::Ok && o.f == "read")
            else {
                continue;
            };
            read.value = json!([1, -1]);
            assert!(run(&h).has_anomaly("nonlinearizable"), "seed {seed}");
        }
    }
}
