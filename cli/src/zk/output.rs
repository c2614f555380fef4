//! How `sinew zk` shows what it got: zkCli's text, or with `--json` one JSON document per
//! result (one per line for events).

use std::fmt::Write as _;
use std::io::{self, Write};

use sinew_proto::zk::Stat;
use sinew_transport_std::zk::AclEntry;

use crate::json::Json;

/// Where results go, and in which form.
pub struct Output<'a> {
    /// The writer (stdout).
    pub out: &'a mut dyn Write,
    /// `--json`: one JSON document per result.
    pub json: bool,
}

impl Output<'_> {
    /// Writes one JSON document and a newline.
    pub fn json(&mut self, value: &Json) -> io::Result<()> {
        writeln!(self.out, "{value}")?;
        self.out.flush()
    }

    /// Writes one line of text.
    pub fn line(&mut self, text: impl std::fmt::Display) -> io::Result<()> {
        writeln!(self.out, "{text}")
    }
}

/// Data as text that tells every byte string apart: UTF-8 text as it is (newlines and tabs
/// included), a backslash doubled, and every other byte — control characters, bytes that
/// are not UTF-8 — as `\xNN`; null data as `null`, as zkCli prints it.
pub fn render_data(data: Option<&[u8]>) -> String {
    let Some(mut rest) = data else {
        return "null".to_string();
    };
    let mut text = String::with_capacity(rest.len());
    while !rest.is_empty() {
        let (valid, bad) = match std::str::from_utf8(rest) {
            Ok(s) => (s, 0),
            Err(e) => {
                let (good, _) = rest.split_at(e.valid_up_to());
                // Checked by from_utf8 just now.
                let good = std::str::from_utf8(good).unwrap_or_default();
                (good, e.error_len().unwrap_or(rest.len() - e.valid_up_to()))
            }
        };
        for c in valid.chars() {
            match c {
                '\\' => text.push_str("\\\\"),
                '\n' | '\t' => text.push(c),
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        let _ = write!(text, "\\x{b:02x}");
                    }
                }
                c => text.push(c),
            }
        }
        let after = valid.len();
        for b in rest.get(after..after + bad).unwrap_or_default() {
            let _ = write!(text, "\\x{b:02x}");
        }
        rest = rest.get(after + bad..).unwrap_or_default();
    }
    text
}

/// Data for `--json`: `data` is the text when the bytes are UTF-8 (else null), `data_hex`
/// every byte in hex; both null for null data.
pub fn data_fields(data: Option<&[u8]>) -> [(String, Json); 2] {
    let text = data
        .and_then(|d| std::str::from_utf8(d).ok())
        .map(str::to_string);
    [
        ("data".to_string(), Json::from(text)),
        ("data_hex".to_string(), Json::from(data.map(hex::encode))),
    ]
}

/// A time in milliseconds since the epoch as an RFC 3339 UTC timestamp.
pub fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
/// A `Stat` as zkCli prints it.
pub fn write_stat(stat: &Stat, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "cZxid = {:#x}", stat.czxid)?;
    writeln!(out, "ctime = {}", utc(stat.ctime))?;
    writeln!(out, "mZxid = {:#x}", stat.mzxid)?;
    writeln!(out, "mtime = {}", utc(stat.mtime))?;
    writeln!(out, "pZxid = {:#x}", stat.pzxid)?;
    writeln!(out, "cversion = {}", stat.cversion)?;
    writeln!(out, "dataVersion = {}", stat.version)?;
    writeln!(out, "aclVersion = {}", stat.aversion)?;
    writeln!(out, "ephemeralOwner = {:#x}", stat.ephemeral_owner)?;
    writeln!(out, "dataLength = {}", stat.data_length)?;
    writeln!(out, "numChildren = {}", stat.num_children)
}

/// A `Stat` as a JSON object, zkCli's names for the fields, times in milliseconds.
pub fn stat_json(stat: &Stat) -> Json {
    Json::object([
        ("czxid", Json::Int(stat.czxid)),
        ("ctime", Json::Int(stat.ctime)),
        ("mzxid", Json::Int(stat.mzxid)),
        ("mtime", Json::Int(stat.mtime)),
        ("pzxid", Json::Int(stat.pzxid)),
        ("cversion", stat.cversion.into()),
        ("dataVersion", stat.version.into()),
        ("aclVersion", stat.aversion.into()),
        ("ephemeralOwner", Json::Int(stat.ephemeral_owner)),
        ("dataLength", stat.data_length.into()),
        ("numChildren", stat.num_children.into()),
    ])
}

/// An ACL as zkCli's getAcl prints it: `'scheme,'id` then `: perms` per entry.
pub fn write_acl(acl: &[AclEntry], out: &mut dyn Write) -> io::Result<()> {
    for entry in acl {
        writeln!(out, "'{},'{}", entry.scheme, entry.id)?;
        writeln!(out, ": {}", entry.perms)?;
    }
    Ok(())
}

/// An ACL as a JSON array of `{scheme, id, perms}` (perms as zkCli's letters).
pub fn acl_json(acl: &[AclEntry]) -> Json {
    Json::Array(
        acl.iter()
            .map(|e| {
                Json::object([
                    ("scheme", Json::str(&e.scheme)),
                    ("id", Json::str(&e.id)),
                    ("perms", Json::str(e.perms.to_string())),
                ])
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_utc() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn test_render_data_tells_bytes_from_text() {
        assert_eq!(render_data(None), "null");
        assert_eq!(render_data(Some(b"")), "");
        assert_eq!(render_data(Some(b"0xff00fe")), "0xff00fe");
        assert_eq!(render_data(Some(&[0xff, 0x00, 0xfe])), "\\xff\\x00\\xfe");
        // The text of an escape is not the escape.
        assert_eq!(render_data(Some(b"\\xff")), "\\\\xff");
        assert_eq!(render_data(Some("a\tb\néü".as_bytes())), "a\tb\néü");
        assert_eq!(render_data(Some(b"ok\xc3")), "ok\\xc3");
        assert_eq!(render_data(Some(b"\x1b[0m")), "\\x1b[0m");
    }

    #[test]
    fn test_data_fields() {
        let [text, hex] = data_fields(Some(&[0xff, 0x00]));
        assert_eq!((text.1, hex.1), (Json::Null, Json::str("ff00")));
        let [text, hex] = data_fields(None);
        assert_eq!((text.1, hex.1), (Json::Null, Json::Null));
        let [text, _] = data_fields(Some(b"hi"));
        assert_eq!(text.1, Json::str("hi"));
    }
}
