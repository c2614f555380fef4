//! ZooKeeper's codec against bincode 2 and postcard on equivalent structs.
//!
//! Group `zk`: a getData reply (header, 100 bytes of data, `Stat`: 188 bytes), a create request
//! (path, 100 bytes, one ACL entry), a getChildren2 reply of 100 children. Functions are named
//! `<operation>/<codec>`; throughput is the message's size in ZooKeeper's format for every codec,
//! so throughput ratios are time ratios. bincode 2 runs with fixed-width integers (`bincode2`, its
//! fastest configuration) and, for the getData reply whose `Stat` is ten wide integers, also with
//! its default `config::standard()` (`bincode2_standard`, variable-length integers). Decoded
//! values go to `black_box` by reference.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sinew_benches::{
    BINCODE, BINCODE_STANDARD, Children2Wire, CreateRequestWire, GetDataReplyWire,
    limit_zk_data_encode, zk_children2_bytes, zk_children2_wire, zk_create_request, zk_create_wire,
    zk_get_data_reply, zk_get_data_wire,
};
use sinew_proto::zk::{OpCode, Reply, ReplyBody, Request};

fn get_data(c: &mut Criterion) {
    let reply = zk_get_data_reply();
    let wire = zk_get_data_wire();
    let mut group = c.benchmark_group("zk");
    group.throughput(Throughput::Bytes(reply.encoded_len() as u64));

    let mut buf = [0u8; 512];
    group.bench_function("get_data_reply_encode/sinew", |b| {
        b.iter(|| {
            black_box(
                black_box(&reply)
                    .encode(black_box(&mut buf[..]))
                    .unwrap_or(0),
            )
        })
    });
    group.bench_function("get_data_reply_encode/limit", |b| {
        b.iter(|| {
            black_box(limit_zk_data_encode(
                black_box(&wire),
                black_box(&mut buf[..]),
            ))
        })
    });
    group.bench_function("get_data_reply_encode/bincode2", |b| {
        b.iter(|| {
            black_box(
                bincode::encode_into_slice(black_box(&wire), black_box(&mut buf[..]), BINCODE)
                    .unwrap_or(0),
            )
        })
    });
    group.bench_function("get_data_reply_encode/bincode2_standard", |b| {
        b.iter(|| {
            black_box(
                bincode::encode_into_slice(
                    black_box(&wire),
                    black_box(&mut buf[..]),
                    BINCODE_STANDARD,
                )
                .unwrap_or(0),
            )
        })
    });
    group.bench_function("get_data_reply_encode/postcard", |b| {
        b.iter(|| {
            black_box(
                postcard::to_slice(black_box(&wire), black_box(&mut buf[..]))
                    .map_or(0, |s| s.len()),
            )
        })
    });

    let (sinew, bincode_bytes, postcard_bytes) = encodings(
        |buf| reply.encode(buf).unwrap(),
        |buf| bincode::encode_into_slice(wire, buf, BINCODE).unwrap(),
        |buf| postcard::to_slice(&wire, buf).unwrap().len(),
    );
    group.bench_function("get_data_reply_decode/sinew", |b| {
        b.iter(|| {
            let reply = Reply::parse(OpCode::GetData, black_box(&sinew));
            black_box(&reply);
        })
    });
    group.bench_function("get_data_reply_decode/bincode2", |b| {
        b.iter(|| {
            let wire = bincode::borrow_decode_from_slice::<GetDataReplyWire<'_>, _>(
                black_box(&bincode_bytes),
                BINCODE,
            );
            black_box(&wire);
        })
    });
    let mut standard_bytes = vec![0u8; 8192];
    let n = bincode::encode_into_slice(wire, &mut standard_bytes, BINCODE_STANDARD).unwrap();
    standard_bytes.truncate(n);
    group.bench_function("get_data_reply_decode/bincode2_standard", |b| {
        b.iter(|| {
            let wire = bincode::borrow_decode_from_slice::<GetDataReplyWire<'_>, _>(
                black_box(&standard_bytes),
                BINCODE_STANDARD,
            );
            black_box(&wire);
        })
    });
    group.bench_function("get_data_reply_decode/postcard", |b| {
        b.iter(|| {
            let wire = postcard::from_bytes::<GetDataReplyWire<'_>>(black_box(&postcard_bytes));
            black_box(&wire);
        })
    });
    group.finish();
}

fn create(c: &mut Criterion) {
    let request = zk_create_request();
    let wire = zk_create_wire();
    let mut group = c.benchmark_group("zk");
    group.throughput(Throughput::Bytes(request.encoded_len() as u64));

    let mut buf = [0u8; 512];
    group.bench_function("create_request_encode/sinew", |b| {
        b.iter(|| {
            black_box(
                black_box(&request)
                    .encode(black_box(&mut buf[..]))
                    .unwrap_or(0),
            )
        })
    });
    group.bench_function("create_request_encode/bincode2", |b| {
        b.iter(|| {
            black_box(
                bincode::encode_into_slice(black_box(&wire), black_box(&mut buf[..]), BINCODE)
                    .unwrap_or(0),
            )
        })
    });
    group.bench_function("create_request_encode/postcard", |b| {
        b.iter(|| {
            black_box(
                postcard::to_slice(black_box(&wire), black_box(&mut buf[..]))
                    .map_or(0, |s| s.len()),
            )
        })
    });

    let (sinew, bincode_bytes, postcard_bytes) = encodings(
        |buf| request.encode(buf).unwrap(),
        |buf| bincode::encode_into_slice(&wire, buf, BINCODE).unwrap(),
        |buf| postcard::to_slice(&wire, buf).unwrap().len(),
    );
    group.bench_function("create_request_decode/sinew", |b| {
        b.iter(|| {
            let request = Request::parse(black_box(&sinew));
            black_box(&request);
        })
    });
    group.bench_function("create_request_decode/bincode2", |b| {
        b.iter(|| {
            let wire = bincode::borrow_decode_from_slice::<CreateRequestWire<'_>, _>(
                black_box(&bincode_bytes),
                BINCODE,
            );
            black_box(&wire);
        })
    });
    group.bench_function("create_request_decode/postcard", |b| {
        b.iter(|| {
            let wire = postcard::from_bytes::<CreateRequestWire<'_>>(black_box(&postcard_bytes));
            black_box(&wire);
        })
    });
    group.finish();
}

fn children2(c: &mut Criterion) {
    let sinew = zk_children2_bytes();
    let wire = zk_children2_wire();
    let mut group = c.benchmark_group("zk");
    group.throughput(Throughput::Bytes(sinew.len() as u64));

    let (_, bincode_bytes, postcard_bytes) = encodings(
        |buf| {
            buf[..sinew.len()].copy_from_slice(&sinew);
            sinew.len()
        },
        |buf| bincode::encode_into_slice(&wire, buf, BINCODE).unwrap(),
        |buf| postcard::to_slice(&wire, buf).unwrap().len(),
    );
    // Parsing validates every child's length; the names are then walked as borrowed UTF-8
    // (`as_str`), the equivalent of the peers' owned `String`s.
    group.bench_function("get_children2_reply_decode/sinew", |b| {
        b.iter(|| {
            let reply = Reply::parse(OpCode::GetChildren2, black_box(&sinew));
            let len: usize = match &reply {
                Ok(Reply {
                    body: ReplyBody::Children2(r),
                    ..
                }) => r
                    .children
                    .iter()
                    .map(|c| c.as_str().map_or(0, str::len))
                    .sum(),
                _ => 0,
            };
            black_box(&reply);
            black_box(len)
        })
    });
    group.bench_function("get_children2_reply_decode/bincode2", |b| {
        b.iter(|| {
            let wire =
                bincode::decode_from_slice::<Children2Wire, _>(black_box(&bincode_bytes), BINCODE);
            black_box(&wire);
        })
    });
    group.bench_function("get_children2_reply_decode/postcard", |b| {
        b.iter(|| {
            let wire = postcard::from_bytes::<Children2Wire>(black_box(&postcard_bytes));
            black_box(&wire);
        })
    });
    group.finish();
}

/// The same message in each codec's format.
fn encodings(
    sinew: impl Fn(&mut [u8]) -> usize,
    bincode: impl Fn(&mut [u8]) -> usize,
    postcard: impl Fn(&mut [u8]) -> usize,
) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let run = |encode: &dyn Fn(&mut [u8]) -> usize| {
        let mut buf = vec![0u8; 8192];
        let n = encode(&mut buf);
        buf.truncate(n);
        buf
    };
    (run(&sinew), run(&bincode), run(&postcard))
}

criterion_group!(benches, get_data, create, children2);
criterion_main!(benches);
