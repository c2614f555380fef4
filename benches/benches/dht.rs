//! The DHT codec against bincode 2 and postcard on an equivalent struct.
//!
//! Group `dht`: a put of a 16-byte key and a 100-byte value (162 bytes in sinew's format, header
//! included). Throughput is that size for every codec, so throughput ratios are time ratios.
//! Beside it, the same put as a relay forwards it (`relayed_put_*`: a Relayed, 199 bytes, its
//! own throughput).
//! Every codec borrows key and value when decoding; decoded values go to `black_box` by
//! reference.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sinew_benches::{BINCODE, PutWire, dht_put, dht_put_wire, dht_relayed_put};
use sinew_proto::dht::Message;

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

criterion_group!(benches, put);
criterion_main!(benches);
