//! `parse_maelstrom`: [`Envelope::parse`] on arbitrary bytes (one line).
//!
//! Checked, beyond "nothing panics": whatever parses re-encodes into exactly `encoded_len()`
//! bytes (0xa5-filled buffer, nothing after them touched, one byte short refused untouched)
//! that parse back to the same envelope; its strings unescape and compare equal to their
//! unescaped form; every key of the body that `raw_field` finds parses back as a body of its
//! own; a reply and an error reply to it parse, addressed back, with `in_reply_to` = its
//! `msg_id`; and a line that is not UTF-8 is refused as such.

use sinew_proto::maelstrom::{
    Envelope, EnvelopeError, ErrorBody, ErrorCode, JsonStr, MessageWriter,
};

use crate::parse_health::FILL;

/// Runs every check on one input.
pub fn check(data: &[u8]) {
    let envelope = match Envelope::parse(data) {
        Ok(envelope) => envelope,
        Err(error) => {
            if core::str::from_utf8(data).is_err() {
                assert_eq!(error, EnvelopeError::NotUtf8);
            }
            return;
        }
    };
    let len = envelope.encoded_len();
    let mut buf = vec![FILL; len + 16];
    assert_eq!(envelope.encode(&mut buf), Ok(len));
    assert!(
        buf[len..].iter().all(|&b| b == FILL),
        "wrote past encoded_len"
    );
    let mut short = vec![FILL; len - 1];
    assert_eq!(
        envelope.encode(&mut short),
        Err(EnvelopeError::BufferTooSmall)
    );
    assert!(short.iter().all(|&b| b == FILL), "short buffer touched");
    assert_eq!(Envelope::parse(&buf[..len]), Ok(envelope));

    for s in [envelope.src, envelope.dest, envelope.body.kind] {
        check_str(s);
    }

    // The reserved fields, found again by name in the raw body.
    for (name, value) in [
        ("msg_id", envelope.body.msg_id),
        ("in_reply_to", envelope.body.in_reply_to),
    ] {
        if let Some(id) = value {
            let raw = envelope.body.raw_field(name).expect("the body parsed once");
            assert_eq!(
                raw.map(|r| r.trim().parse::<u64>().ok()),
                Some(Some(id)),
                "{name}"
            );
        }
    }
    let _ = ErrorBody::parse(&envelope.body);

    // A reply and an error reply.
    let mut out = vec![0u8; len + 128];
    let n = MessageWriter::reply(&mut out, &envelope, "x_ok")
        .and_then(|mut w| {
            w.msg_id(1)?;
            w.finish()
        })
        .expect("a reply fits");
    let reply = Envelope::parse(&out[..n]).expect("a reply parses");
    assert_eq!((reply.src, reply.dest), (envelope.dest, envelope.src));
    assert_eq!(reply.body.in_reply_to, envelope.body.msg_id);
    assert!(reply.body.is("x_ok"));
    let n = MessageWriter::error_reply(&mut out, &envelope, ErrorCode::Crash, "it\nbroke")
        .expect("an error reply fits");
    let reply = Envelope::parse(&out[..n]).expect("an error reply parses");
    let error = ErrorBody::parse(&reply.body).expect("an error body parses");
    assert_eq!(error.code, ErrorCode::Crash);
    assert_eq!(error.in_reply_to, envelope.body.msg_id);
    assert!(error.text.expect("text").eq_str("it\nbroke"));
}

/// A parsed string's escapes are valid: it unescapes (never longer than written), and
/// compares equal to what it unescapes to.
fn check_str(s: JsonStr<'_>) {
    let mut buf = vec![0u8; s.raw().len()];
    let plain = s.unescape_into(&mut buf).expect("parsed strings unescape");
    assert!(s.eq_str(plain));
    if let Some(p) = s.as_plain() {
        assert_eq!(p, plain);
    }
    let mut longer = plain.to_owned();
    longer.push('x');
    assert!(!s.eq_str(&longer));
}
