//! Sealing and opening (sinew's framing around AES-256-GCM) against the bare AEAD calls of the
//! `aes-gcm` crate on the same bytes, and against the AEAD sinew used before, ChaCha20-Poly1305.
//!
//! Group `seal`: `seal_open/<message>/sinew` is `Keyring::seal` then `Keyring::open` of a
//! 17-byte health packet and of a 20-entry peer-table page (402 bytes), in place;
//! `seal_open/<message>/aes-gcm` is `encrypt_inout_detached` then `decrypt_inout_detached` of
//! the same bytes with the same 14-byte associated data and nonce: the ratio is the cost of the
//! framing (header, key id lookup, length checks). `seal_open/<message>/chacha20poly1305` is
//! the same two calls with RustCrypto's `chacha20poly1305`, whose runtime-detected AVX2
//! Poly1305 costs microseconds per short message on x86-64 (why the seal is AES-256-GCM, see
//! `proto/PROTOCOL.md`). Throughput is the inner datagram's size.

use std::hint::black_box;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInOut, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sinew_benches::{health_check, peer_entries};
use sinew_proto::health::{MAX_DATAGRAM_LEN, PeerTableWriter};
use sinew_proto::nonce::Nonce;
use sinew_proto::seal::{HEADER_LEN, Key, Keyring, TAG_LEN};

const KEY: [u8; 32] = [0x42; 32];

fn inner_health() -> Vec<u8> {
    let mut buf = [0u8; 17];
    let len = health_check().encode(&mut buf).unwrap();
    buf[..len].to_vec()
}

fn inner_table() -> Vec<u8> {
    let mut buf = [0u8; MAX_DATAGRAM_LEN];
    let entries = peer_entries();
    let mut writer = PeerTableWriter::new(
        &mut buf,
        Nonce::from_bytes([7; 16]),
        0,
        entries.len() as u16,
    )
    .unwrap();
    for entry in &entries {
        writer.push(entry).unwrap();
    }
    let len = writer.finish();
    buf[..len].to_vec()
}

fn seal(c: &mut Criterion) {
    let mut group = c.benchmark_group("seal");
    let ring: Keyring = Keyring::with_key(Key::from_bytes(KEY));
    let aes = Aes256Gcm::new(&KEY.into());
    let chacha = ChaCha20Poly1305::new(&KEY.into());
    for (name, inner) in [("health", inner_health()), ("peer_table_20", inner_table())] {
        group.throughput(Throughput::Bytes(inner.len() as u64));
        let n = inner.len();
        let mut buf = [0u8; MAX_DATAGRAM_LEN];
        let mut counter = 0u32;
        group.bench_function(format!("seal_open/{name}/sinew"), |b| {
            b.iter(|| {
                buf[HEADER_LEN..HEADER_LEN + n].copy_from_slice(black_box(&inner));
                counter = counter.wrapping_add(1);
                let len = ring
                    .seal(0x0102_0304_0506_0708, counter, &mut buf, n)
                    .unwrap_or(0);
                let opened = ring.open(black_box(&mut buf[..len]));
                black_box(opened.map(|o| o.plaintext.len()).unwrap_or(0))
            })
        });
        bare(
            &mut group,
            &format!("seal_open/{name}/aes-gcm"),
            &aes,
            &inner,
        );
        bare(
            &mut group,
            &format!("seal_open/{name}/chacha20poly1305"),
            &chacha,
            &inner,
        );
    }
    group.finish();
}

/// `encrypt_inout_detached` then `decrypt_inout_detached` of `inner` with `cipher`, with a
/// 14-byte associated data and a counter nonce, as the seal does.
fn bare<C: AeadInOut>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    id: &str,
    cipher: &C,
    inner: &[u8],
) {
    let n = inner.len();
    let mut buf = [0u8; MAX_DATAGRAM_LEN];
    let aad = [0x20u8; HEADER_LEN];
    let mut counter = 0u32;
    group.bench_function(id, |b| {
        b.iter(|| {
            buf[..n].copy_from_slice(black_box(inner));
            counter = counter.wrapping_add(1);
            let mut nonce = aes_gcm::aead::Nonce::<C>::default();
            nonce[8..].copy_from_slice(&counter.to_be_bytes());
            let tag = cipher
                .encrypt_inout_detached(&nonce, &aad, (&mut buf[..n]).into())
                .unwrap();
            let mut tag_bytes = [0u8; TAG_LEN];
            tag_bytes.copy_from_slice(&tag);
            let tag = aes_gcm::aead::Tag::<C>::try_from(&tag_bytes[..]).unwrap();
            let ok =
                cipher.decrypt_inout_detached(&nonce, &aad, black_box(&mut buf[..n]).into(), &tag);
            black_box(ok.is_ok())
        })
    });
}

criterion_group!(benches, seal);
criterion_main!(benches);
