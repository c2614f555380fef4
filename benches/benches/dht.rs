//! The DHT codec against bincode 2 and postcard on an equivalent struct.
//!
//! Group `dht`: a put of a 16-byte key and a 100-byte value (162 bytes in sinew's format, header
//! included). Throughput is that size for every codec, so throughput ratios are time ratios.
//! Beside it, the same put as a relay forwards it (`relayed_put_*`: a Relayed, 199 bytes, its
//! own throughput).
//! Every codec borrows key and value when decoding; decoded values go to `black_box` by
//! reference.
//!
//! Group `dht_view`: the View a one-hop client receives (6 nodes a side, 453 bytes in sinew's
//! format); decoding reads every node (the sum of their ports), for every codec. Group
//! `dht_short`: the two short messages of one-hop clients and challenges, a ViewRequest (43
//! bytes: a header) and a Withheld (51 bytes: a header and a cookie), each row at its own
//! sinew size.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sinew_benches::{
    BINCODE, PutWire, ShortWire, ViewWire, dht_put, dht_put_wire, dht_relayed_put, dht_view,
    dht_view_nodes, dht_view_request, dht_view_request_wire, dht_view_wire, dht_withheld,
    dht_withheld_wire, sinew_view_walk,
};
use sinew_proto::dht::{Body, Message};

fn put(c: &mut Criterion) {
    let message = dht_put();
    let wire = dht_put_wire();
    let mut group = c.benchmark_group("dht");
    group.throughput(Throughput::Bytes(message.encoded_len() as u64));

    let mut buf = [0u8; 512];
    group.bench_function("put_encode/sinew", |b| {
        b.iter(|| {
            black_box(
                black_box(&message)
                    .encode(black_box(&mut buf[..]))
                    .unwrap_or(0),
            )
        })
    });
    group.bench_function("put_encode/bincode2", |b| {
        b.iter(|| {
            black_box(
                bincode::encode_into_slice(black_box(&wire), black_box(&mut buf[..]), BINCODE)
                    .unwrap_or(0),
            )
        })
    });
    group.bench_function("put_encode/postcard", |b| {
        b.iter(|| {
            black_box(
                postcard::to_slice(black_box(&wire), black_box(&mut buf[..]))
                    .map_or(0, |s| s.len()),
            )
        })
    });

    let mut sinew = [0u8; 512];
    let n = message.encode(&mut sinew).unwrap();
    let sinew = &sinew[..n];
    let mut bincode_bytes = [0u8; 512];
    let n = bincode::encode_into_slice(wire, &mut bincode_bytes, BINCODE).unwrap();
    let bincode_bytes = &bincode_bytes[..n];
    let mut postcard_bytes = [0u8; 512];
    let n = postcard::to_slice(&wire, &mut postcard_bytes)
        .unwrap()
        .len();
    let postcard_bytes = &postcard_bytes[..n];

    group.bench_function("put_decode/sinew", |b| {
        b.iter(|| {
            let message = Message::parse(black_box(sinew));
            black_box(&message);
        })
    });
    group.bench_function("put_decode/bincode2", |b| {
        b.iter(|| {
            let wire = bincode::borrow_decode_from_slice::<PutWire<'_>, _>(
                black_box(bincode_bytes),
                BINCODE,
            );
            black_box(&wire);
        })
    });
    group.bench_function("put_decode/postcard", |b| {
        b.iter(|| {
            let wire = postcard::from_bytes::<PutWire<'_>>(black_box(postcard_bytes));
            black_box(&wire);
        })
    });

    let relayed = dht_relayed_put();
    group.throughput(Throughput::Bytes(relayed.encoded_len() as u64));
    group.bench_function("relayed_put_encode/sinew", |b| {
        b.iter(|| {
            black_box(
                black_box(&relayed)
                    .encode(black_box(&mut buf[..]))
                    .unwrap_or(0),
            )
        })
    });
    let mut relayed_bytes = [0u8; 512];
    let n = relayed.encode(&mut relayed_bytes).unwrap();
    let relayed_bytes = &relayed_bytes[..n];
    group.bench_function("relayed_put_decode/sinew", |b| {
        b.iter(|| {
            let message = Message::parse(black_box(relayed_bytes));
            black_box(&message);
        })
    });
    group.finish();
}

/// Encode and decode of one message by sinew, bincode 2 and postcard, in `group`, as
/// `<name>_encode/<codec>` and `<name>_decode/<codec>`.
fn three_ways<W, D>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    message: &Message<'_>,
    wire: &W,
    decode_sinew: D,
    read: fn(&W) -> u32,
) where
    W: bincode::Encode + bincode::Decode<()> + serde::Serialize + serde::de::DeserializeOwned,
    D: Fn(&[u8]) -> u32,
{
    group.throughput(Throughput::Bytes(message.encoded_len() as u64));
    let mut buf = [0u8; 512];
    group.bench_function(format!("{name}_encode/sinew"), |b| {
        b.iter(|| {
            black_box(
                black_box(message)
                    .encode(black_box(&mut buf[..]))
                    .unwrap_or(0),
            )
        })
    });
    group.bench_function(format!("{name}_encode/bincode2"), |b| {
        b.iter(|| {
            black_box(
                bincode::encode_into_slice(black_box(wire), black_box(&mut buf[..]), BINCODE)
                    .unwrap_or(0),
            )
        })
    });
    group.bench_function(format!("{name}_encode/postcard"), |b| {
        b.iter(|| {
            black_box(
                postcard::to_slice(black_box(wire), black_box(&mut buf[..])).map_or(0, |s| s.len()),
            )
        })
    });
    let mut sinew = [0u8; 512];
    let n = message.encode(&mut sinew).unwrap();
    let sinew = &sinew[..n];
    let mut bincode_bytes = [0u8; 512];
    let n = bincode::encode_into_slice(wire, &mut bincode_bytes, BINCODE).unwrap();
    let bincode_bytes = &bincode_bytes[..n];
    let mut postcard_bytes = [0u8; 512];
    let n = postcard::to_slice(wire, &mut postcard_bytes).unwrap().len();
    let postcard_bytes = &postcard_bytes[..n];
    group.bench_function(format!("{name}_decode/sinew"), |b| {
        b.iter(|| black_box(decode_sinew(black_box(sinew))))
    });
    group.bench_function(format!("{name}_decode/bincode2"), |b| {
        b.iter(|| {
            black_box(
                bincode::decode_from_slice::<W, _>(black_box(bincode_bytes), BINCODE)
                    .map_or(0, |(w, _)| read(&w)),
            )
        })
    });
    group.bench_function(format!("{name}_decode/postcard"), |b| {
        b.iter(|| {
            black_box(postcard::from_bytes::<W>(black_box(postcard_bytes)).map_or(0, |w| read(&w)))
        })
    });
}

fn one_hop(c: &mut Criterion) {
    let nodes = dht_view_nodes();
    let mut group = c.benchmark_group("dht_view");
    three_ways(
        &mut group,
        "view",
        &dht_view(&nodes),
        &dht_view_wire(&nodes),
        sinew_view_walk,
        ViewWire::ports,
    );
    group.finish();

    // The short messages: decoding reads the message id (and a Withheld's cookie).
    let mut group = c.benchmark_group("dht_short");
    let short = |bytes: &[u8]| match Message::parse(bytes) {
        Ok(Message {
            header,
            body: Body::Withheld { cookie },
        }) => (header.message_id ^ cookie) as u32,
        Ok(m) => m.header.message_id as u32,
        Err(_) => 0,
    };
    let read = |w: &ShortWire| (w.message_id ^ w.cookie) as u32;
    three_ways(
        &mut group,
        "view_request",
        &dht_view_request(),
        &dht_view_request_wire(),
        short,
        read,
    );
    three_ways(
        &mut group,
        "withheld",
        &dht_withheld(),
        &dht_withheld_wire(),
        short,
        read,
    );
    group.finish();
}

criterion_group!(benches, put, one_hop);
criterion_main!(benches);
