//! The run's summary in the shape of Maelstrom's results (EDN): `:valid?`, each checker's
//! result, `:stats`, `:latency` quantiles of `Ok` operations and `:net` with msgs-per-op.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;

use super::{OpCounts, Outcome};
use crate::check::Validity;
use crate::history::{self, Op, OpType};

/// Latency quantiles, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Quantiles {
    /// The median.
    pub p50: f64,
    /// The 95th percentile.
    pub p95: f64,
    /// The 99th percentile.
    pub p99: f64,
    /// The slowest.
    pub max: f64,
}

impl Quantiles {
    /// The quantiles of `samples` (any order), `None` when there are none.
    pub fn of(samples: &mut [f64]) -> Option<Quantiles> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_by(f64::total_cmp);
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        Some(Quantiles {
            p50: at(0.5),
            p95: at(0.95),
            p99: at(0.99),
            max: at(1.0),
        })
    }
}

/// Operations by outcome, and the latencies of the `Ok` ones.
pub(crate) fn op_stats(history: &[Op]) -> (OpCounts, Option<Quantiles>) {
    let mut counts = OpCounts::default();
    let mut latencies = Vec::new();
    let Ok(pairs) = history::pairs(history) else {
        return (counts, None);
    };
    for pair in pairs {
        counts.count += 1;
        match pair.outcome() {
            OpType::Ok => {
                counts.ok += 1;
                latencies.extend(pair.latency_ns().map(|ns| ns as f64 / 1e6));
            }
            OpType::Fail => counts.fail += 1,
            _ => counts.info += 1,
        }
    }
    (counts, Quantiles::of(&mut latencies))
}

/// `20261204T215300.123Z`: a directory name for a run started at `t` (UTC).
pub(crate) fn timestamp(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_millis()
    )
}

fn validity(v: Validity) -> &'static str {
    match v {
        Validity::Valid => "true",
        Validity::Invalid => "false",
        Validity::Unknown => ":unknown",
    }
}

/// JSON as EDN: objects become maps with keyword keys, arrays vectors, null nil.
fn edn(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("nil"),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                edn(x, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                let plain = !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_?!".contains(c))
                    && !k.starts_with(|c: char| c.is_ascii_digit());
                if plain {
                    let _ = write!(out, ":{k} ");
                } else {
                    let _ = write!(out, "{} ", Value::String(k.clone()));
                }
                edn(x, out);
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn counts(c: &super::Counts, ops: u64, with_per_op: bool) -> String {
    let mut s = format!(
        "{{:send-count {}, :recv-count {}, :msg-count {}",
        c.send_count, c.recv_count, c.send_count
    );
    if with_per_op {
        let per = if ops == 0 {
            0.0
        } else {
            c.send_count as f64 / ops as f64
        };
        let _ = write!(s, ", :msgs-per-op {per:.4}");
    }
    s.push('}');
    s
}

impl Outcome {
    /// The summary, in the shape of Maelstrom's `results.edn` (also written there, in the log
    /// directory).
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let ops = self.ops.count;
        let _ = writeln!(s, "{{:workload \"{}\"", self.workload);
        let _ = writeln!(
            s,
            " :stats {{:count {}, :ok-count {}, :fail-count {}, :info-count {}}}",
            ops, self.ops.ok, self.ops.fail, self.ops.info
        );
        if let Some(q) = self.latency {
            let _ = writeln!(
                s,
                " :latency {{0.5 {:.1}, 0.95 {:.1}, 0.99 {:.1}, 1 {:.1}}}",
                q.p50, q.p95, q.p99, q.max
            );
        }
        let net = &self.net;
        let _ = writeln!(s, " :net {{:all {},", counts(&net.all, ops, true));
        let _ = writeln!(s, "       :clients {},", counts(&net.clients, ops, false));
        let _ = writeln!(s, "       :servers {},", counts(&net.servers, ops, true));
        let _ = writeln!(
            s,
            "       :dropped-by-partition {}, :dropped-by-loss {}, :dropped-node-down {}, :unknown-destination {}, :malformed-lines {}, :unexpected-replies {}, :forged-src {}, :wrong-node-replies {},",
            net.dropped_by_partition,
            net.dropped_by_loss,
            net.dropped_node_down,
            net.unknown_destination,
            net.malformed_total(),
            net.unexpected_replies,
            net.forged_src,
            net.wrong_node_replies
        );
        let _ = writeln!(s, "       :valid? true}}");
        let n = &self.nemesis;
        let _ = writeln!(
            s,
            " :nemesis {{:partitions {}, :kills {}, :restarts {}, :pauses {}}}",
            n.partitions, n.kills, n.restarts, n.pauses
        );
        let _ = writeln!(s, " :workload-checkers");
        for (i, c) in self.report.checkers.iter().enumerate() {
            let _ = write!(
                s,
                "  {}{{:name {:?}, :valid? {}",
                if i == 0 { "[" } else { " " },
                c.name,
                validity(c.valid)
            );
            if !c.anomalies.is_empty() {
                s.push_str(", :anomalies [");
                for a in &c.anomalies {
                    let _ = write!(s, "{{:name {:?}, :detail {:?}}} ", a.name, a.detail);
                }
                s.push(']');
            }
            if !c.details.is_null() {
                s.push_str(", :details ");
                edn(&c.details, &mut s);
            }
            s.push('}');
            if i + 1 == self.report.checkers.len() {
                s.push(']');
            }
            s.push('\n');
        }
        let _ = writeln!(s, " :history \"{}\"", self.history_path().display());
        let _ = writeln!(s, " :valid? {}}}", validity(self.valid()));
        s.push_str(match self.valid() {
            Validity::Valid => "\nNo anomalies found: the history is valid.\n",
            Validity::Invalid => "\nThe history is INVALID: see the anomalies above.\n",
            Validity::Unknown => "\nValidity unknown: a checker could not decide.\n",
        });
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    #[test]
    fn test_timestamp_is_utc_civil_time() {
        let t = UNIX_EPOCH + Duration::from_millis(1_796_421_180_123);
        assert_eq!(timestamp(t), "20261204T215300.123Z");
        assert_eq!(timestamp(UNIX_EPOCH), "19700101T000000.000Z");
    }

    #[test]
    fn test_quantiles_and_edn() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        let q = Quantiles::of(&mut v).unwrap();
        assert_eq!((q.p50, q.p95, q.p99, q.max), (51.0, 95.0, 99.0, 100.0));
        assert!(Quantiles::of(&mut []).is_none());
        let mut s = String::new();
        edn(&json!({"lost": [1, 2], "0.5": null, "ok?": true}), &mut s);
        assert_eq!(s, r#"{"0.5" nil, :lost [1 2], :ok? true}"#);
    }
}
