//! The Maelstrom envelope (JSON lines, serde-json-core underneath) against serde_json.
//!
//! Group `maelstrom`: a `read_ok` reply carrying 20 broadcast values, as Maelstrom's network
//! delivers it (with its top-level `id`; 175 bytes). Throughput is that size for every codec.
//!
//! * parse — sinew: `Envelope::parse` (addresses and `type` borrowed, `msg_id` and
//!   `in_reply_to` parsed, the body kept as a raw slice); serde_json typed: the same fields into
//!   a struct of borrowed `&str`s and `Option<u64>`s, the rest skipped; serde_json value: the
//!   whole line into an owned `serde_json::Value`.
//! * serialize — the same message written into a 512-byte slice: sinew's `MessageWriter`
//!   (`reply` then `messages`), serde_json from a typed struct, and from a `Value` built
//!   beforehand.

use std::hint::black_box;
use std::io::Write as _;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde::{Deserialize, Serialize};
use sinew_proto::maelstrom::{Envelope, MessageWriter};

const LINE: &[u8] = br#"{"id":12,"src":"n3","dest":"n1","body":{"type":"read_ok","msg_id":31,"in_reply_to":4,"messages":[1,8,72,25,3,99,1024,7,65536,12,0,5,77,31,40,18,2,6,900,11]}}"#;

const MESSAGES: [u64; 20] = [
    1, 8, 72, 25, 3, 99, 1024, 7, 65536, 12, 0, 5, 77, 31, 40, 18, 2, 6, 900, 11,
];

/// What serde_json parses into, typed: the envelope and the body's reserved fields.
#[derive(Deserialize)]
struct TypedIn<'a> {
    #[serde(borrow)]
    src: &'a str,
    dest: &'a str,
    #[serde(borrow)]
    body: TypedBodyIn<'a>,
}

#[derive(Deserialize)]
struct TypedBodyIn<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    msg_id: Option<u64>,
    in_reply_to: Option<u64>,
}

/// What serde_json writes, typed.
#[derive(Serialize)]
struct TypedOut<'a> {
    src: &'a str,
    dest: &'a str,
    body: TypedBodyOut<'a>,
}

#[derive(Serialize)]
struct TypedBodyOut<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    in_reply_to: u64,
    msg_id: u64,
    messages: &'a [u64],
}

fn maelstrom(c: &mut Criterion) {
    let mut group = c.benchmark_group("maelstrom");
    group.throughput(Throughput::Bytes(LINE.len() as u64));

    group.bench_function("parse/sinew", |b| {
        b.iter(|| {
            let e = Envelope::parse(black_box(LINE));
            black_box(&e);
        })
    });
    group.bench_function("parse/serde_json_typed", |b| {
        b.iter(|| {
            let e = serde_json::from_slice::<TypedIn<'_>>(black_box(LINE));
            black_box(&e.as_ref().map(|e| {
                (
                    e.src,
                    e.dest,
                    e.body.kind,
                    e.body.msg_id,
                    e.body.in_reply_to,
                )
            }));
        })
    });
    group.bench_function("parse/serde_json_value", |b| {
        b.iter(|| {
            let e = serde_json::from_slice::<serde_json::Value>(black_box(LINE));
            black_box(&e);
        })
    });

    let request =
        Envelope::parse(br#"{"src":"c1","dest":"n1","body":{"type":"read","msg_id":4}}"#).unwrap();
    let mut buf = [0u8; 512];
    let expected = {
        let mut w = MessageWriter::reply(&mut buf, &request, "read_ok").unwrap();
        w.msg_id(31)
            .unwrap()
            .field("messages", &MESSAGES[..])
            .unwrap();
        let n = w.finish().unwrap();
        buf[..n].to_vec()
    };
    let typed = TypedOut {
        src: "n1",
        dest: "c1",
        body: TypedBodyOut {
            kind: "read_ok",
            in_reply_to: 4,
            msg_id: 31,
            messages: &MESSAGES,
        },
    };
    assert_eq!(serde_json::to_vec(&typed).unwrap(), expected);
    let value: serde_json::Value = serde_json::from_slice(&expected).unwrap();

    group.bench_function("serialize/sinew", |b| {
        b.iter(|| {
            let n = MessageWriter::reply(black_box(&mut buf[..]), black_box(&request), "read_ok")
                .and_then(|mut w| {
                    w.msg_id(31)?.field("messages", black_box(&MESSAGES[..]))?;
                    w.finish()
                });
            black_box(n.unwrap_or(0))
        })
    });
    group.bench_function("serialize/serde_json_typed", |b| {
        b.iter(|| {
            let mut out = black_box(&mut buf[..]);
            let ok = serde_json::to_writer(&mut out, black_box(&typed)).is_ok();
            black_box((ok, out.len()))
        })
    });
    group.bench_function("serialize/serde_json_value", |b| {
        b.iter(|| {
            let mut out = black_box(&mut buf[..]);
            let ok = serde_json::to_writer(&mut out, black_box(&value)).is_ok();
            let _ = out.flush();
            black_box((ok, out.len()))
        })
    });
    group.finish();
}

criterion_group!(benches, maelstrom);
criterion_main!(benches);
