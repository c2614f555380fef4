//! Seeds for the Maelstrom targets (see `seeds.rs`): real lines as Maelstrom writes them, and
//! each defect the parser names, one per seed.

use crate::seeds::Seed;

fn seed(target: &'static str, name: &'static str, what: &str, bytes: &[u8]) -> Seed {
    Seed {
        target,
        name,
        what: what.to_owned(),
        bytes: bytes.to_vec(),
    }
}

/// Every seed of the Maelstrom targets.
pub fn all() -> Vec<Seed> {
    let p = "parse_maelstrom";
    let mut seeds = vec![
        seed(p, "init", "init from Maelstrom, with its top-level `id`", br#"{"id":0,"src":"c0","dest":"n1","body":{"type":"init","node_id":"n1","node_ids":["n1","n2","n3"],"msg_id":1}}"#),
        seed(p, "echo-spaced", "echo request, spaced, body first, trailing newline", b"{ \"body\" : { \"type\" : \"echo\", \"msg_id\" : 7, \"echo\" : \"Please echo 35\" } ,\n \"src\": \"c1\", \"dest\": \"n1\" }\n"),
        seed(p, "read-ok", "read_ok reply between nodes (in_reply_to, no msg_id)", br#"{"src":"n2","dest":"n1","body":{"type":"read_ok","in_reply_to":12,"messages":[1,8,72,25]}}"#),
        seed(p, "error", "error reply from lin-kv (code 20, text)", br#"{"src":"lin-kv","dest":"n1","body":{"type":"error","in_reply_to":4,"code":20,"text":"key does not exist"}}"#),
        seed(p, "txn", "txn-rw-register request (nested arrays, null)", br#"{"src":"c4","dest":"n2","body":{"type":"txn","msg_id":3,"txn":[["r",1,null],["w",1,6],["w",2,9]]}}"#),
        seed(p, "escapes", "escaped src, dest and type (\\\", \\u0031, \\u006f)", br#"{"src":"c\"1\"","dest":"n\u0031","body":{"type":"ech\u006f","msg_id":1,"echo":"a\nb"}}"#),
        seed(p, "missing-type", "body without type: MissingField(Type)", br#"{"src":"c1","dest":"n1","body":{"msg_id":1}}"#),
        seed(p, "msg-id-string", "msg_id as a string: WrongType", br#"{"src":"c1","dest":"n1","body":{"type":"x","msg_id":"1"}}"#),
        seed(p, "duplicate", "type twice: DuplicateKey", br#"{"src":"c1","dest":"n1","body":{"type":"x","type":"y"}}"#),
        seed(p, "surrogates", "type as a surrogate pair: InvalidEscape", br#"{"src":"c1","dest":"n1","body":{"type":"\ud83d\ude00"}}"#),
        seed(p, "truncated", "init cut inside the body: Truncated", br#"{"src":"c0","dest":"n1","body":{"type":"init","node_id":"n"#),
        seed(p, "glued-quote", "a quote glued to a bare word in an ignored value: Syntax", br#"{"src":"c1","dest":"n1","body":{"type":"x","v":a"[[["}}"#),
        seed(p, "not-utf8", "an 0xff byte inside src: NotUtf8", b"{\"src\":\"c\xff\",\"dest\":\"n1\",\"body\":{\"type\":\"x\"}}"),
    ];
    let mut deep = br#"{"src":"c1","dest":"n1","body":{"type":"x","v":"#.to_vec();
    deep.extend(std::iter::repeat_n(b'[', 40));
    deep.extend(std::iter::repeat_n(b']', 40));
    deep.extend_from_slice(b"}}");
    seeds.push(Seed {
        target: p,
        name: "too-deep",
        what: "40 nested arrays in a body field: TooDeep".to_owned(),
        bytes: deep,
    });
    let r = "roundtrip_maelstrom";
    seeds.push(seed(r, "ascii", "short ASCII strings, ids and a few fields", b"n1\x00c1\x00echo\x00\x01\x07\x00\x00\x00\x00\x00\x00\x00\x00\x03echo\x00\x02hi\x00\x00\x00\x40"));
    seeds.push(seed(r, "escapes", "strings with quotes, backslashes and control bytes", b"\"\\\x01\x00\x0a\x7f\x00type\"\x00\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x02\x02\x02\x02\x02\x02\x02\x02\x04k\\\x00\x03\x05\x01\x02\x03\x04\x05\xff\xff"));
    seeds
}
