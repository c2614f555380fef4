//! Quotas as zkCli 3.8 keeps them: under `/zookeeper/quota/<path>`, a `zookeeper_limits` node
//! (`count=N,bytes=B=;byteHardLimit=…;countHardLimit=…`, the format zkCli 3.8 writes and older
//! readers still parse) and a `zookeeper_stats` node whose usage the server keeps up to date.
//! The server only logs a soft limit exceeded; it refuses writes beyond a hard limit with
//! QuotaExceeded when it runs with `zookeeper.enforceQuota=true`.

use sinew_proto::zk::{Acl, CreateMode, CreateRequest, ErrorCode, List, RequestBody, ZkStr};
use sinew_transport_std::Error;

use super::args::QuotaLimits;
use super::output::Output;
use super::{Zk, is_refusal};
use crate::error::Failure;
use crate::json::Json;

const QUOTA_ROOT: &str = "/zookeeper/quota";
const LIMITS: &str = "zookeeper_limits";
const STATS: &str = "zookeeper_stats";
/// The keys of a limits node, in the order they are written.
const KEYS: [&str; 4] = ["count", "bytes", "countHardLimit", "byteHardLimit"];

/// The quota node of `path`.
fn quota_path(path: &str) -> String {
    if path == "/" {
        QUOTA_ROOT.to_string()
    } else {
        format!("{QUOTA_ROOT}{path}")
    }
}

/// Limits or usage: `count`, `bytes`, `countHardLimit`, `byteHardLimit` (-1: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Track([i64; 4]);

impl Track {
    const NONE: Track = Track([-1; 4]);

    /// Parses both the old `count=N,bytes=B` and 3.7+'s `…=;key=value;…` forms; keys it
    /// does not know are ignored.
    fn parse(text: &str) -> Track {
        let mut track = Track::NONE;
        for piece in text.split([',', ';']) {
            let Some((key, value)) = piece.split_once('=') else {
                continue;
            };
            let value = value.trim_end_matches('=');
            if let (Some(i), Ok(v)) = (KEYS.iter().position(|k| *k == key), value.parse()) {
                track.0[i] = v;
            }
        }
        track
    }

    /// The limits node's text, as zkCli 3.8 writes it.
    fn limits_text(self) -> String {
        let [count, bytes, count_hard, bytes_hard] = self.0;
        format!(
            "count={count},bytes={bytes}=;byteHardLimit={bytes_hard};countHardLimit={count_hard}"
        )
    }

    fn json(self, usage: bool) -> Json {
        let keys: &[&str] = if usage { &KEYS[..2] } else { &KEYS };
        Json::object(keys.iter().zip(self.0).map(|(k, v)| (*k, Json::Int(v))))
    }
}

/// The node's data as text, `None` if it does not exist.
fn read(zk: &mut Zk<'_>, path: &str) -> Result<Option<String>, Failure> {
    match zk.client.get_data(path, None) {
        Ok((data, _)) => Ok(Some(String::from_utf8_lossy(&data).into_owned())),
        Err(Error::Zk(ErrorCode::NoNode)) => Ok(None),
        Err(e) => Err(zk.failure(e, path)),
    }
}

fn exists(zk: &mut Zk<'_>, path: &str) -> Result<bool, Failure> {
    zk.client
        .exists(path, None)
        .map(|s| s.is_some())
        .map_err(|e| zk.failure(e, path))
}

/// Creates a node with null data unless it exists.
fn ensure(zk: &mut Zk<'_>, path: &str, data: Option<&[u8]>) -> Result<(), Failure> {
    let body = RequestBody::Create(CreateRequest {
        path: ZkStr::new(path),
        data,
        acl: List::from_slice(Acl::OPEN_ACL_UNSAFE),
        mode: CreateMode::Persistent,
    });
    match zk.call(body, path) {
        Ok(_) => Ok(()),
        Err(f) if is_refusal(&f) && f.message.starts_with("Node already exists") => Ok(()),
        Err(f) => Err(f),
    }
}

/// `setquota -n|-b|-N|-B VALUE path`.
pub(super) fn set(
    zk: &mut Zk<'_>,
    out: &mut Output<'_>,
    limits: &QuotaLimits,
    path: &str,
) -> Result<(), Failure> {
    if !exists(zk, path)? {
        return Err(Failure::failed(format!("{path} does not exist.")));
    }
    // One quota per branch: none above, none below.
    let mut ancestor = path;
    while let Some((parent, _)) = ancestor.rsplit_once('/') {
        if parent.is_empty() {
            break;
        }
        if exists(zk, &format!("{}/{LIMITS}", quota_path(parent)))? {
            return Err(Failure::failed(format!(
                "{path} has a parent {parent} which has a quota"
            )));
        }
        ancestor = parent;
    }
    let own = quota_path(path);
    if exists(zk, &own)? {
        let mut stack = vec![own.clone()];
        while let Some(node) = stack.pop() {
            let children = zk
                .client
                .get_children(&node, None)
                .map_err(|e| zk.failure(e, &node))?;
            for child in children {
                let full = format!("{node}/{child}");
                if child == LIMITS && node != own {
                    let below = node.strip_prefix(QUOTA_ROOT).unwrap_or(&node);
                    return Err(Failure::failed(format!(
                        "{path} has a child {below} which has a quota"
                    )));
                }
                if child != LIMITS && child != STATS {
                    stack.push(full);
                }
            }
        }
    }
    // The quota nodes down to the path's own.
    let mut at = QUOTA_ROOT.to_string();
    for name in path.split('/').filter(|n| !n.is_empty()) {
        at.push('/');
        at.push_str(name);
        ensure(zk, &at, None)?;
    }
    let limits_path = format!("{own}/{LIMITS}");
    let mut track = match read(zk, &limits_path)? {
        Some(text) => Track::parse(&text),
        None => Track::NONE,
    };
    for (i, value) in [
        limits.count,
        limits.bytes,
        limits.count_hard,
        limits.bytes_hard,
    ]
    .into_iter()
    .enumerate()
    {
        if let Some(v) = value {
            track.0[i] = v;
        }
    }
    let text = track.limits_text();
    if exists(zk, &limits_path)? {
        zk.client
            .set_data(&limits_path, text.as_bytes(), -1)
            .map_err(|e| zk.failure(e, &limits_path))?;
    } else {
        ensure(zk, &limits_path, Some(text.as_bytes()))?;
        // The server counts the usage into it.
        ensure(zk, &format!("{own}/{STATS}"), Some(b"count=0,bytes=0"))?;
    }
    if out.json {
        out.json(&Json::object([
            ("path", Json::str(path)),
            ("quota", track.json(false)),
        ]))?;
    }
    Ok(())
}

/// `listquota path`.
pub(super) fn list(zk: &mut Zk<'_>, out: &mut Output<'_>, path: &str) -> Result<(), Failure> {
    let own = quota_path(path);
    let Some(limits) = read(zk, &format!("{own}/{LIMITS}"))? else {
        return Err(Failure::failed(format!("quota for {path} does not exist.")));
    };
    let usage = read(zk, &format!("{own}/{STATS}"))?.unwrap_or_default();
    if out.json {
        out.json(&Json::object([
            ("path", Json::str(path)),
            ("quota", Track::parse(&limits).json(false)),
            ("usage", Track::parse(&usage).json(true)),
        ]))?;
    } else {
        out.line(format_args!("Output quota for {path} {limits}"))?;
        out.line(format_args!("Output stat for {path} {usage}"))?;
    }
    Ok(())
}

/// `delquota [-n|-b|-N|-B] path`: `which` says which limits to lift (none: the whole quota).
pub(super) fn delete(
    zk: &mut Zk<'_>,
    out: &mut Output<'_>,
    which: [bool; 4],
    path: &str,
) -> Result<(), Failure> {
    let own = quota_path(path);
    let limits_path = format!("{own}/{LIMITS}");
    let Some(text) = read(zk, &limits_path)? else {
        return Err(Failure::failed(format!("Quota does not exist for {path}")));
    };
    if which.iter().any(|&b| b) {
        let mut track = Track::parse(&text);
        for (i, lift) in which.into_iter().enumerate() {
            if lift {
                track.0[i] = -1;
            }
        }
        zk.client
            .set_data(&limits_path, track.limits_text().as_bytes(), -1)
            .map_err(|e| zk.failure(e, &limits_path))?;
    } else {
        for node in [limits_path, format!("{own}/{STATS}")] {
            match zk.client.delete(&node, -1) {
                Ok(()) | Err(Error::Zk(ErrorCode::NoNode)) => {}
                Err(e) => return Err(zk.failure(e, &node)),
            }
        }
        // Quota nodes left empty go too, up to the quota root.
        let mut at = own;
        while at != QUOTA_ROOT {
            match zk.client.delete(&at, -1) {
                Ok(()) | Err(Error::Zk(ErrorCode::NoNode)) => {}
                Err(Error::Zk(ErrorCode::NotEmpty)) => break,
                Err(e) => return Err(zk.failure(e, &at)),
            }
            match at.rsplit_once('/') {
                Some((parent, _)) => at = parent.to_string(),
                None => break,
            }
        }
    }
    if out.json {
        out.json(&Json::object([("path", Json::str(path))]))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_track_reads_both_forms_and_writes_zkclis() {
        // As zkCli 3.8.0 wrote it on the test server.
        let t = Track::parse("count=5,bytes=-1=;byteHardLimit=100;countHardLimit=-1");
        assert_eq!(t, Track([5, -1, -1, 100]));
        assert_eq!(
            t.limits_text(),
            "count=5,bytes=-1=;byteHardLimit=100;countHardLimit=-1"
        );
        assert_eq!(Track::parse("count=1,bytes=2"), Track([1, 2, -1, -1]));
        assert_eq!(Track::parse(""), Track::NONE);
        assert_eq!(quota_path("/a/b"), "/zookeeper/quota/a/b");
    }
}
