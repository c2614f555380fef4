use super::*;

/// Maelstrom's `init`, as its network writes it (with the top-level `id` it adds).
const INIT: &[u8] = br#"{"id":0,"src":"c0","dest":"n1","body":{"type":"init","node_id":"n1","node_ids":["n1","n2","n3"],"msg_id":1}}"#;
/// An echo request, spaced as a person would write it, body first.
const ECHO: &[u8] =
    b"{ \"body\" : { \"type\" : \"echo\", \"msg_id\" : 7, \"echo\" : \"Please echo 35\" } ,\n \"src\": \"c1\", \"dest\": \"n1\" }\n";
/// A reply between nodes: `in_reply_to` and no `msg_id`.
const READ_OK: &[u8] = br#"{"src":"n2","dest":"n1","body":{"type":"read_ok","in_reply_to":12,"messages":[1,8,72,25]}}"#;

#[test]
fn test_parse_init() {
    let e = Envelope::parse(INIT).unwrap();
    assert_eq!(e.src.raw(), "c0");
    assert_eq!(e.dest.as_plain(), Some("n1"));
    assert!(e.body.is("init"));
    assert_eq!(e.body.msg_id, Some(1));
    assert_eq!(e.body.in_reply_to, None);
    assert_eq!(
        e.body.raw,
        r#"{"type":"init","node_id":"n1","node_ids":["n1","n2","n3"],"msg_id":1}"#
    );
    assert_eq!(e.body.raw_field("node_id").unwrap(), Some(r#""n1""#));
    assert_eq!(
        e.body.raw_field("node_ids").unwrap(),
        Some(r#"["n1","n2","n3"]"#)
    );
    assert_eq!(e.body.raw_field("msg_id").unwrap(), Some("1"));
    assert_eq!(e.body.raw_field("nope").unwrap(), None);

    #[derive(serde::Deserialize)]
    struct Init<'a> {
        node_id: &'a str,
        node_ids: [&'a str; 3],
    }
    let init: Init<'_> = e.body.fields().unwrap();
    assert_eq!(init.node_id, "n1");
    assert_eq!(init.node_ids, ["n1", "n2", "n3"]);
}

#[test]
fn test_parse_spaced_body_first() {
    let e = Envelope::parse(ECHO).unwrap();
    assert_eq!((e.src.raw(), e.dest.raw()), ("c1", "n1"));
    assert!(e.body.is("echo"));
    assert_eq!(e.body.msg_id, Some(7));
    assert_eq!(
        e.body.raw,
        r#"{ "type" : "echo", "msg_id" : 7, "echo" : "Please echo 35" }"#
    );
    assert_eq!(
        e.body.raw_field("echo").unwrap(),
        Some(r#""Please echo 35""#)
    );
    // The last field of a spaced object.
    assert_eq!(e.body.raw_field("msg_id").unwrap(), Some("7"));
}

#[test]
fn test_parse_reply() {
    let e = Envelope::parse(READ_OK).unwrap();
    assert_eq!(e.body.in_reply_to, Some(12));
    assert_eq!(e.body.msg_id, None);
    assert_eq!(e.body.raw_field("messages").unwrap(), Some("[1,8,72,25]"));
}

#[test]
fn test_line_ends() {
    let mut crlf = INIT.to_vec();
    crlf.extend_from_slice(b"\r\n");
    assert_eq!(Envelope::parse(&crlf), Envelope::parse(INIT));
    let mut lf = INIT.to_vec();
    lf.push(b'\n');
    assert_eq!(Envelope::parse(&lf), Envelope::parse(INIT));
}

#[test]
fn test_null_ids_are_absent() {
    let e = Envelope::parse(
        br#"{"src":"c1","dest":"n1","body":{"type":"x","msg_id":null,"in_reply_to":null}}"#,
    )
    .unwrap();
    assert_eq!((e.body.msg_id, e.body.in_reply_to), (None, None));
    let e = Envelope::parse(
        br#"{"src":"c1","dest":"n1","body":{"type":"x","msg_id":18446744073709551615}}"#,
    )
    .unwrap();
    assert_eq!(e.body.msg_id, Some(u64::MAX));
}

#[test]
fn test_escaped_strings() {
    // `type` and `src` with escapes: kept as written, compared unescaped.
    let line = br#"{"src":"c\"1\"","dest":"n\u0031","body":{"type":"ech\u006f","msg_id":1,"echo":"a\nb"}}"#;
    let e = Envelope::parse(line).unwrap();
    assert_eq!(e.src.raw(), r#"c\"1\""#);
    assert_eq!(e.src.as_plain(), None);
    assert!(e.src.eq_str("c\"1\""));
    assert!(e.dest.eq_str("n1"));
    assert!(!e.dest.eq_str("n"));
    assert!(!e.dest.eq_str("n12"));
    assert!(e.body.is("echo"));
    let mut buf = [0xa5; 8];
    assert_eq!(e.src.unescape_into(&mut buf).unwrap(), "c\"1\"");
    assert_eq!(
        e.src.unescape_into(&mut [0; 3]),
        Err(EnvelopeError::BufferTooSmall)
    );
    // Non-ASCII written as UTF-8 is plain.
    let e =
        Envelope::parse("{\"src\":\"c1\",\"dest\":\"nœud\",\"body\":{\"type\":\"x\"}}".as_bytes())
            .unwrap();
    assert_eq!(e.dest.as_plain(), Some("nœud"));
    // A reply copies escaped addresses as written, and they parse back the same.
    let request = Envelope::parse(line).unwrap();
    let mut out = [0u8; 256];
    let len = MessageWriter::reply(&mut out, &request, "echo_ok")
        .unwrap()
        .finish()
        .unwrap();
    let reply = Envelope::parse(&out[..len]).unwrap();
    assert_eq!((reply.src, reply.dest), (request.dest, request.src));
}

#[test]
fn test_bad_escapes() {
    for line in [
        // Not an escape.
        &br#"{"src":"c\q","dest":"n1","body":{"type":"x"}}"#[..],
        // A surrogate pair (an emoji): valid JSON, but serde-json-core decodes no pairs.
        br#"{"src":"c1","dest":"n1","body":{"type":"\ud83d\ude00"}}"#,
        // Short \u.
        br#"{"src":"c1","dest":"\u12","body":{"type":"x"}}"#,
        // A raw control character in a string.
        b"{\"src\":\"c\x011\",\"dest\":\"n1\",\"body\":{\"type\":\"x\"}}",
    ] {
        assert_eq!(
            Envelope::parse(line),
            Err(EnvelopeError::InvalidEscape),
            "{}",
            String::from_utf8_lossy(line)
        );
    }
    // The body's own fields are the workload's: not checked here.
    let e = Envelope::parse(br#"{"src":"c1","dest":"n1","body":{"type":"x","v":"\ud83d\ude00"}}"#)
        .unwrap();
    assert_eq!(e.body.raw_field("v").unwrap(), Some(r#""\ud83d\ude00""#));
}

extern crate std;
use std::string::String;
use std::vec::Vec;

#[test]
fn test_malformed() {
    use EnvelopeError as E;
    let cases: &[(&[u8], EnvelopeError)] = &[
        (b"", E::Truncated),
        (b"\n", E::Truncated),
        (b"hello", E::WrongType),
        (b"[]", E::WrongType),
        (b"{}", E::MissingField(Field::Src)),
        (br#"{"src":"c1"}"#, E::MissingField(Field::Dest)),
        (br#"{"src":"c1","dest":"n1"}"#, E::MissingField(Field::Body)),
        (
            br#"{"src":"c1","dest":"n1","body":{}}"#,
            E::MissingField(Field::Type),
        ),
        (br#"{"src":"c1","dest":"n1","body":[]}"#, E::WrongType),
        (br#"{"src":"c1","dest":"n1","body":"echo"}"#, E::WrongType),
        (
            br#"{"src":1,"dest":"n1","body":{"type":"x"}}"#,
            E::WrongType,
        ),
        (
            br#"{"src":"c1","dest":"n1","body":{"type":5}}"#,
            E::WrongType,
        ),
        (
            br#"{"src":"c1","dest":"n1","body":{"type":"x","msg_id":"1"}}"#,
            E::WrongType,
        ),
        (
            br#"{"src":"c1","dest":"n1","body":{"type":"x","msg_id":-1}}"#,
            E::WrongType,
        ),
        // serde-json-core reads `1` as the integer and stops at the `.`.
        (
            br#"{"src":"c1","dest":"n1","body":{"type":"x","msg_id":1.5}}"#,
            E::Syntax,
        ),
        (
            br#"{"src":"c1","dest":"n1","body":{"type":"x","msg_id":18446744073709551616}}"#,
            E::WrongType,
        ),
        (
            br#"{"src":"c1","src":"c2","dest":"n1","body":{"type":"x"}}"#,
            E::DuplicateKey,
        ),
        (
            br#"{"src":"c1","dest":"n1","body":{"type":"x"},"body":{"type":"y"}}"#,
            E::DuplicateKey,
        ),
        (
            br#"{"src":"c1","dest":"n1","body":{"type":"x","type":"y"}}"#,
            E::DuplicateKey,
        ),
        (
            br#"{"src":"c1","dest":"n1","body":{"type":"x","msg_id":1,"msg_id":2}}"#,
            E::DuplicateKey,
        ),
        (
            br#"{"src":"c1","dest":"n1","body":{"type":"x"}} {}"#,
            E::TrailingCharacters,
        ),
        (
            br#"{"src":"c1","dest":"n1","body":{"type":"x"},}"#,
            E::Syntax,
        ),
        (
            b"{\"src\":\"c\xff\",\"dest\":\"n1\",\"body\":{\"type\":\"x\"}}",
            E::NotUtf8,
        ),
        // A quote glued to a bare word: not JSON, refused before serde-json-core skips it.
        (
            br#"{"src":"c1","dest":"n1","body":{"type":"x","v":a"[[["}}"#,
            E::Syntax,
        ),
    ];
    let wrong: Vec<_> = cases
        .iter()
        .filter(|(line, error)| Envelope::parse(line) != Err(*error))
        .map(|(line, _)| (String::from_utf8_lossy(line), Envelope::parse(line)))
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn test_unchecked_ignored_scalars() {
    // serde-json-core skips an unknown key's scalar without checking it (documented in
    // PROTOCOL-maelstrom.md); the body is still passed on as written.
    let e = Envelope::parse(br#"{"id":tru,"src":"c1","dest":"n1","body":{"type":"x","v":1x}}"#)
        .unwrap();
    assert_eq!(e.body.raw, r#"{"type":"x","v":1x}"#);
}

#[test]
fn test_every_prefix_refused() {
    for line in [INIT, ECHO, READ_OK] {
        let end = line.iter().rposition(|&b| b == b'}').unwrap();
        for len in 0..=end {
            assert!(
                Envelope::parse(&line[..len]).is_err(),
                "prefix {len} of {}",
                String::from_utf8_lossy(line)
            );
        }
    }
}

#[test]
fn test_too_deep() {
    let mut line = Vec::from(&br#"{"src":"c1","dest":"n1","body":{"type":"x","v":"#[..]);
    let depth = MAX_DEPTH - 2;
    line.extend(core::iter::repeat_n(b'[', depth));
    line.extend(core::iter::repeat_n(b']', depth));
    line.extend_from_slice(b"}}");
    assert!(Envelope::parse(&line).is_ok());
    let mut deeper = Vec::from(&br#"{"src":"c1","dest":"n1","body":{"type":"x","v":"#[..]);
    deeper.extend(core::iter::repeat_n(b'[', 100_000));
    assert_eq!(Envelope::parse(&deeper), Err(EnvelopeError::TooDeep));
    // Brackets inside strings do not count.
    let mut in_string = Vec::from(&br#"{"src":"c1","dest":"n1","body":{"type":"x","v":""#[..]);
    in_string.extend(core::iter::repeat_n(b'[', 100));
    in_string.extend_from_slice(br#"\"["}}"#);
    assert!(Envelope::parse(&in_string).is_ok());
}

#[test]
fn test_encode() {
    for line in [INIT, ECHO, READ_OK] {
        let e = Envelope::parse(line).unwrap();
        let mut buf = [0xa5u8; 256];
        let len = e.encode(&mut buf).unwrap();
        assert_eq!(len, e.encoded_len());
        assert!(buf[len..].iter().all(|&b| b == 0xa5));
        assert_eq!(Envelope::parse(&buf[..len]), Ok(e));
        let mut short = [0xa5u8; 256];
        assert_eq!(
            e.encode(&mut short[..len - 1]),
            Err(EnvelopeError::BufferTooSmall)
        );
        assert!(short.iter().all(|&b| b == 0xa5));
    }
    let e = Envelope::parse(INIT).unwrap();
    let mut buf = [0u8; 256];
    let len = e.encode(&mut buf).unwrap();
    assert_eq!(
        &buf[..len],
        &br#"{"src":"c0","dest":"n1","body":{"type":"init","node_id":"n1","node_ids":["n1","n2","n3"],"msg_id":1}}"#[..]
    );
}

#[test]
fn test_writer() {
    let mut buf = [0xa5u8; 256];
    let mut w = MessageWriter::new(&mut buf, "n1", "n2", "gossip").unwrap();
    w.msg_id(3)
        .unwrap()
        .field("messages", &[1u64, 2, 3][..])
        .unwrap()
        .field("note", "tab\there \"quoted\"")
        .unwrap()
        .field("none", &Option::<u64>::None)
        .unwrap();
    let len = w.finish().unwrap();
    let text = core::str::from_utf8(&buf[..len]).unwrap();
    assert_eq!(
        text,
        r#"{"src":"n1","dest":"n2","body":{"type":"gossip","msg_id":3,"messages":[1,2,3],"note":"tab\there \"quoted\"","none":null}}"#
    );
    let e = Envelope::parse(&buf[..len]).unwrap();
    assert_eq!(e.body.msg_id, Some(3));
    assert_eq!(e.body.raw_field("none").unwrap(), Some("null"));
    for short in 0..len {
        let mut small = std::vec![0u8; short];
        let result = MessageWriter::new(&mut small, "n1", "n2", "gossip").and_then(|mut w| {
            w.msg_id(3)?
                .field("messages", &[1u64, 2, 3][..])?
                .field("note", "tab\there \"quoted\"")?
                .field("none", &Option::<u64>::None)?;
            w.finish()
        });
        assert_eq!(result, Err(EnvelopeError::BufferTooSmall), "{short}");
    }
}

#[test]
fn test_error_reply() {
    let request = Envelope::parse(ECHO).unwrap();
    let mut buf = [0u8; 256];
    let len = MessageWriter::error_reply(
        &mut buf,
        &request,
        ErrorCode::NotSupported,
        "no \"echo\" here",
    )
    .unwrap();
    assert_eq!(
        &buf[..len],
        &br#"{"src":"n1","dest":"c1","body":{"type":"error","in_reply_to":7,"code":10,"text":"no \"echo\" here"}}"#[..]
    );
    let reply = Envelope::parse(&buf[..len]).unwrap();
    let error = ErrorBody::parse(&reply.body).unwrap();
    assert_eq!(error.in_reply_to, Some(7));
    assert_eq!(error.code, ErrorCode::NotSupported);
    assert!(error.text.unwrap().eq_str("no \"echo\" here"));
}

#[test]
fn test_parse_error_body() {
    // As Maelstrom's lin-kv service sends it.
    let line = br#"{"src":"lin-kv","dest":"n1","body":{"type":"error","in_reply_to":4,"code":20,"text":"key does not exist"}}"#;
    let e = Envelope::parse(line).unwrap();
    let error = ErrorBody::parse(&e.body).unwrap();
    assert_eq!(error.code, ErrorCode::KeyDoesNotExist);
    assert!(error.code.is_definite());
    // `text` is optional; a custom code.
    let e = Envelope::parse(br#"{"src":"n2","dest":"n1","body":{"type":"error","code":1001}}"#)
        .unwrap();
    let error = ErrorBody::parse(&e.body).unwrap();
    assert_eq!(
        (error.code, error.text, error.in_reply_to),
        (ErrorCode::Custom(1001), None, None)
    );
    // No code, a code of the wrong type, not an error.
    let e =
        Envelope::parse(br#"{"src":"n2","dest":"n1","body":{"type":"error","text":"x"}}"#).unwrap();
    assert_eq!(
        ErrorBody::parse(&e.body),
        Err(EnvelopeError::MissingField(Field::Code))
    );
    let e = Envelope::parse(br#"{"src":"n2","dest":"n1","body":{"type":"error","code":"11"}}"#)
        .unwrap();
    assert_eq!(ErrorBody::parse(&e.body), Err(EnvelopeError::WrongType));
    let e = Envelope::parse(READ_OK).unwrap();
    assert_eq!(
        ErrorBody::parse(&e.body),
        Err(EnvelopeError::UnexpectedType)
    );
}

#[test]
fn test_error_codes() {
    let definite = [1, 10, 11, 12, 14, 20, 21, 22, 30];
    let indefinite = [0, 13];
    let named = [0, 1, 10, 11, 12, 13, 14, 20, 21, 22, 30];
    for code in 0..1100u64 {
        let e = ErrorCode::from_code(code);
        assert_eq!(e.code(), code);
        assert_eq!(e.is_definite(), definite.contains(&code), "{code}");
        if indefinite.contains(&code) {
            assert!(!e.is_definite());
        }
        let expected = if named.contains(&code) {
            e.name()
        } else if code >= 1000 {
            "custom"
        } else {
            "unknown"
        };
        assert_eq!(e.name(), expected);
        if !named.contains(&code) {
            assert!(!e.is_definite(), "{code}: unnamed codes are indefinite");
        }
    }
    assert_eq!(ErrorCode::from_code(u64::MAX), ErrorCode::Custom(u64::MAX));
    assert_eq!(ErrorCode::from_code(22).name(), "precondition-failed");
    assert_eq!(
        std::format!("{}", ErrorCode::TxnConflict),
        "txn-conflict (30)"
    );
}

#[test]
fn test_fields_unescaped() {
    let e = Envelope::parse(
        br#"{"src":"c1","dest":"n1","body":{"type":"echo","echo":"a\"b","c":"\u0041"}}"#,
    )
    .unwrap();
    #[derive(serde::Deserialize)]
    struct Echo<'a> {
        echo: &'a str,
    }
    let raw: Echo<'_> = e.body.fields().unwrap();
    assert_eq!(raw.echo, r#"a\"b"#);
    #[derive(serde::Deserialize)]
    struct Unescaped {
        c: char,
    }
    let unescaped: Unescaped = e.body.fields_unescaped(&mut [0; 8]).unwrap();
    assert_eq!(unescaped.c, 'A');
    assert_eq!(
        e.body.fields_unescaped::<Unescaped>(&mut []).err(),
        Some(EnvelopeError::BufferTooSmall)
    );
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Missing {
        key: u64,
    }
    assert_eq!(
        e.body.fields::<Missing>().err(),
        Some(EnvelopeError::Fields)
    );
}
