//! The health protocol's codec against bincode 2 and postcard on the same messages.
//!
//! Group `health`: a 17-byte health packet (type byte + 16-byte nonce). Group `peer_table`: a
//! page of 20 entries (16-byte address, u16 port, u8 status) with sinew's header fields. Each
//! function is named after the operation, then the codec, so that every run shows the ratios.
//! Throughput is the message's size in sinew's format for every codec, so that throughput
//! ratios are time ratios.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sinew_benches::{
    BINCODE, HealthWire, PeerTableWire, health_check, health_wire, peer_entries, peer_table_wire,
};
use sinew_proto::health::{
    EncodedEntry, HEALTH_LEN, HealthCheck, HealthPacket, MAX_DATAGRAM_LEN, PeerTableResponse,
    PeerTableWriter, peer_table_len,
};
use sinew_proto::nonce::Nonce;

fn health(c: &mut Criterion) {
    let mut group = c.benchmark_group("health");
    group.throughput(Throughput::Bytes(HEALTH_LEN as u64));

    let check = health_check();
    let wire = health_wire();
    let mut buf = [0u8; 64];
    group.bench_function("encode/sinew", |b| {
        b.iter(|| {
            black_box(
                black_box(&check)
                    .encode(black_box(&mut buf[..]))
                    .unwrap_or(0),
            )
        })
    });
    group.bench_function("encode/bincode2", |b| {
        b.iter(|| {
            black_box(
                bincode::encode_into_slice(black_box(&wire), black_box(&mut buf[..]), BINCODE)
                    .unwrap_or(0),
            )
        })
    });
    group.bench_function("encode/postcard", |b| {
        b.iter(|| {
            black_box(
                postcard::to_slice(black_box(&wire), black_box(&mut buf[..]))
                    .map_or(0, |s| s.len()),
            )
        })
    });

    let mut bytes = [0u8; HEALTH_LEN];
    check.encode(&mut bytes).unwrap();
    group.bench_function("decode_view/sinew", |b| {
        b.iter(|| {
            let packet = HealthPacket::new_checked(black_box(&bytes[..]));
            black_box(packet.map_or(std::ptr::null(), |p| p.nonce_bytes().as_ptr()))
        })
    });
    group.bench_function("decode/sinew", |b| {
        b.iter(|| {
            let check = HealthCheck::parse(black_box(&bytes[..]));
            black_box(&check);
        })
    });
    group.bench_function("decode/bincode2", |b| {
        b.iter(|| {
            let wire = bincode::decode_from_slice::<HealthWire, _>(black_box(&bytes[..]), BINCODE);
            black_box(&wire);
        })
    });
    group.bench_function("decode/postcard", |b| {
        b.iter(|| {
            let wire = postcard::from_bytes::<HealthWire>(black_box(&bytes[..]));
            black_box(&wire);
        })
    });
    group.finish();
}

fn peer_table(c: &mut Criterion) {
    let entries = peer_entries();
    let table = peer_table_wire();
    let len = peer_table_len(entries.len());
    let mut group = c.benchmark_group("peer_table");
    group.throughput(Throughput::Bytes(len as u64));

    let mut buf = [0u8; 1024];
    group.bench_function("encode/sinew", |b| {
        b.iter(|| {
            let buf = black_box(&mut buf[..MAX_DATAGRAM_LEN]);
            let entries = black_box(&entries[..]);
            let mut writer =
                PeerTableWriter::new(buf, Nonce::from_bytes(*black_box(&table.nonce)), 0, 20)
                    .unwrap();
            for entry in entries {
                writer.push(entry).unwrap();
            }
            black_box(writer.finish())
        })
    });
    let encoded: Vec<EncodedEntry> = entries
        .iter()
        .map(|e| EncodedEntry::new(e).unwrap())
        .collect();
    group.bench_function("encode/sinew_encoded", |b| {
        b.iter(|| {
            let buf = black_box(&mut buf[..MAX_DATAGRAM_LEN]);
            let entries = black_box(&encoded[..]);
            let mut writer =
                PeerTableWriter::new(buf, Nonce::from_bytes(*black_box(&table.nonce)), 0, 20)
                    .unwrap();
            assert_eq!(writer.extend_encoded(entries), 20);
            black_box(writer.finish())
        })
    });
    group.bench_function("encode/bincode2", |b| {
        b.iter(|| {
            black_box(
                bincode::encode_into_slice(black_box(&table), black_box(&mut buf[..]), BINCODE)
                    .unwrap_or(0),
            )
        })
    });
    group.bench_function("encode/postcard", |b| {
        b.iter(|| {
            black_box(
                postcard::to_slice(black_box(&table), black_box(&mut buf[..]))
                    .map_or(0, |s| s.len()),
            )
        })
    });

    let mut bytes = [0u8; MAX_DATAGRAM_LEN];
    let sinew_len = sinew_benches::sinew_table_encode(&entries, &mut bytes);
    assert_eq!(sinew_len, len);
    let bytes = &bytes[..len];
    let mut bincode_bytes = [0u8; 1024];
    let n = bincode::encode_into_slice(&table, &mut bincode_bytes, BINCODE).unwrap();
    let bincode_bytes = &bincode_bytes[..n];
    let mut postcard_bytes = [0u8; 1024];
    let n = postcard::to_slice(&table, &mut postcard_bytes)
        .unwrap()
        .len();
    let postcard_bytes = &postcard_bytes[..n];

    group.bench_function("parse/sinew", |b| {
        b.iter(|| black_box(PeerTableResponse::parse(black_box(bytes))))
    });
    group.bench_function("walk/sinew", |b| {
        b.iter(|| {
            let page = PeerTableResponse::parse(black_box(bytes)).unwrap();
            let ports: u32 = page.views().map(|e| u32::from(e.port())).sum();
            black_box(ports)
        })
    });
    group.bench_function("validate/sinew", |b| {
        b.iter(|| {
            let page = PeerTableResponse::parse(black_box(bytes)).unwrap();
            black_box(page.validate())
        })
    });
    group.bench_function("decode/sinew", |b| {
        b.iter(|| {
            let page = PeerTableResponse::parse(black_box(bytes)).unwrap();
            let ports: u32 = page
                .entries()
                .map(|e| e.map_or(0, |e| u32::from(e.addr.port())))
                .sum();
            black_box(ports)
        })
    });
    group.bench_function("decode/bincode2", |b| {
        b.iter(|| {
            black_box(bincode::decode_from_slice::<PeerTableWire, _>(
                black_box(bincode_bytes),
                BINCODE,
            ))
        })
    });
    group.bench_function("decode/postcard", |b| {
        b.iter(|| {
            black_box(postcard::from_bytes::<PeerTableWire>(black_box(
                postcard_bytes,
            )))
        })
    });
    group.finish();
}

criterion_group!(benches, health, peer_table);
criterion_main!(benches);
