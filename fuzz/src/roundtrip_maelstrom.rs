//! `roundtrip_maelstrom`: arbitrary messages → [`MessageWriter`] → [`Envelope::parse`] → the
//! same addresses, type, ids and fields.
//!
//! Strings are arbitrary Rust strings (quotes, backslashes, control characters, non-ASCII);
//! the writer escapes them and parsing must give them back unescaped. Each extra field must be
//! found again by `raw_field` as the JSON text serde-json-core writes for its value, and read
//! back by `fields`. A buffer too small must be refused with `BufferTooSmall`, never cut short.

use arbitrary::{Arbitrary, Result, Unstructured};
use serde::Serialize;
use sinew_proto::maelstrom::{Envelope, EnvelopeError, JsonStr, MessageWriter};

/// What one input exercised, for choosing seeds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Messages round-tripped.
    pub messages: u32,
    /// Messages refused for a short buffer.
    pub too_small: u32,
    /// Extra fields round-tripped.
    pub fields: u32,
}

/// A field value of one of the shapes workloads use.
#[derive(Arbitrary, Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
#[serde(untagged)]
enum Value {
    Int(i64),
    Bool(bool),
    Text(String),
    List(Vec<u64>),
    Null(()),
}

/// Runs the round trips decoded from one input.
pub fn check(data: &[u8]) -> Summary {
    let mut u = Unstructured::new(data);
    let mut summary = Summary::default();
    // Stops quietly when the input runs out.
    let _ = run(&mut u, &mut summary);
    summary
}

fn run(u: &mut Unstructured<'_>, summary: &mut Summary) -> Result<()> {
    while !u.is_empty() {
        let src: &str = u.arbitrary()?;
        let dest: &str = u.arbitrary()?;
        let kind: &str = u.arbitrary()?;
        let msg_id: Option<u64> = u.arbitrary()?;
        let in_reply_to: Option<u64> = u.arbitrary()?;
        let mut fields: Vec<(String, Value)> = Vec::new();
        for _ in 0..u.int_in_range(0..=4)? {
            let name: String = u.arbitrary()?;
            let reserved = ["type", "msg_id", "in_reply_to"].contains(&name.as_str());
            if !reserved && !fields.iter().any(|(n, _)| *n == name) {
                fields.push((name, u.arbitrary()?));
            }
        }
        let cap = u.int_in_range(0..=512)?;
        let write = |buf: &mut [u8]| -> core::result::Result<usize, EnvelopeError> {
            let mut w = MessageWriter::new(buf, src, dest, kind)?;
            if let Some(id) = msg_id {
                w.msg_id(id)?;
            }
            if let Some(id) = in_reply_to {
                w.in_reply_to(id)?;
            }
            for (name, value) in &fields {
                w.field(name, value)?;
            }
            w.finish()
        };
        let mut buf = vec![0u8; cap];
        let len = match write(&mut buf) {
            Ok(len) => len,
            Err(e) => {
                assert_eq!(e, EnvelopeError::BufferTooSmall);
                summary.too_small += 1;
                // Large enough for anything this input makes.
                buf = vec![0u8; 1 << 16];
                write(&mut buf).expect("fits a large buffer")
            }
        };
        let line = &buf[..len];
        assert!(!line.contains(&b'\n'), "a message spans lines");
        let e = Envelope::parse(line).expect("what the writer writes parses");
        assert_same(e.src, src);
        assert_same(e.dest, dest);
        assert_same(e.body.kind, kind);
        assert_eq!((e.body.msg_id, e.body.in_reply_to), (msg_id, in_reply_to));
        for (name, value) in &fields {
            let raw = e
                .body
                .raw_field(name)
                .expect("body parses")
                .expect("field present");
            // Room for the same text and more: a longer serialization shows as a mismatch.
            let mut expected = vec![0u8; raw.len() * 2 + 64];
            let n = serde_json_core::to_slice(value, &mut expected).expect("serializes");
            assert_eq!(raw.as_bytes(), &expected[..n], "field {name:?}");
            let (back, _): (Value, usize) = serde_json::from_str(raw)
                .map(|v| (v, raw.len()))
                .expect("a field is JSON");
            assert_eq!(&back, value);
            summary.fields += 1;
        }
        summary.messages += 1;
    }
    Ok(())
}

fn assert_same(parsed: JsonStr<'_>, written: &str) {
    assert!(parsed.eq_str(written), "{parsed:?} is not {written:?}");
    let mut buf = vec![0u8; parsed.raw().len()];
    assert_eq!(parsed.unescape_into(&mut buf), Ok(written));
}
