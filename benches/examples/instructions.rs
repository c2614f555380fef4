//! Runs one sinew codec operation N times, for instruction counts that do not wobble:
//!
//! ```sh
//! cargo build --release -p sinew-benches --example instructions
//! valgrind --tool=callgrind --toggle-collect='sinew_benches::sinew_health_encode' \
//!     target/release/examples/instructions health_encode 1000
//! ```
//!
//! Instructions per operation = the `Collected` total / N. Operations: `health_encode`,
//! `health_decode_view`, `health_decode`, `table_encode`, `table_encode_encoded`, `table_parse`, `table_walk`, `table_decode` (sinew,
//! functions `sinew_benches::sinew_<op>`), and `{bincode,postcard}_{health,table}_{encode,decode}`
//! (functions of the same name); and the ZooKeeper getData reply: `zk_data_encode`,
//! `zk_data_decode` (sinew) and `{bincode,postcard}_zk_data_{encode,decode}`. Calls made inside
//! the function, such as a `Vec` decode's allocation, are counted.
//!
//! The ZooKeeper create request and the DHT put are counted through functions of this example
//! (`instructions::<op>`): `zk_create_encode`, `bincode_zk_create_encode`, `dht_put_encode`,
//! `dht_put_decode`, `bincode_dht_put_encode`, `bincode_dht_put_decode`.

use std::hint::black_box;

use sinew_benches::*;
use sinew_proto::dht::Message;
use sinew_proto::zk::Request;

/// Encodes the create request with sinew.
#[inline(never)]
fn zk_create_encode(request: &Request<'_>, buf: &mut [u8]) -> usize {
    request.encode(buf).unwrap_or(0)
}

/// Encodes the create request with bincode 2.
#[inline(never)]
fn bincode_zk_create_encode(wire: &CreateRequestWire<'_>, buf: &mut [u8]) -> usize {
    bincode::encode_into_slice(wire, buf, BINCODE).unwrap_or(0)
}

/// Encodes the DHT put with sinew.
#[inline(never)]
fn dht_put_encode(message: &Message<'_>, buf: &mut [u8]) -> usize {
    message.encode(buf).unwrap_or(0)
}

/// Parses the DHT put with sinew, borrowing key and value.
#[inline(never)]
fn dht_put_decode(bytes: &[u8]) -> Option<Message<'_>> {
    Message::parse(bytes).ok()
}

/// Encodes the DHT put with bincode 2.
#[inline(never)]
fn bincode_dht_put_encode(wire: &PutWire<'_>, buf: &mut [u8]) -> usize {
    bincode::encode_into_slice(wire, buf, BINCODE).unwrap_or(0)
}

/// Decodes the DHT put with bincode 2, borrowing key and value.
#[inline(never)]
fn bincode_dht_put_decode(bytes: &[u8]) -> Option<PutWire<'_>> {
    bincode::borrow_decode_from_slice(bytes, BINCODE)
        .ok()
        .map(|(w, _)| w)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let op = args.next().unwrap_or_else(|| "health_encode".into());
    let n: usize = args.next().map_or(1000, |n| n.parse().expect("N"));

    let check = health_check();
    let entries = peer_entries();
    let mut health = [0u8; 64];
    let health_len = sinew_health_encode(&check, &mut health);
    let mut table = [0u8; 508];
    let table_len = sinew_table_encode(&entries, &mut table);
    let encoded: Vec<_> = entries
        .iter()
        .map(|e| sinew_proto::health::EncodedEntry::new(e).expect("valid entry"))
        .collect();
    let mut buf = [0u8; 1024];
    let wire = health_wire();
    let table_wire = peer_table_wire();
    let mut health_b = [0u8; 64];
    let health_b_len = bincode_health_encode(&wire, &mut health_b);
    let mut health_p = [0u8; 64];
    let health_p_len = postcard_health_encode(&wire, &mut health_p);
    let mut table_b = [0u8; 1024];
    let table_b_len = bincode_table_encode(&table_wire, &mut table_b);
    let mut table_p = [0u8; 1024];
    let table_p_len = postcard_table_encode(&table_wire, &mut table_p);

    let reply = zk_get_data_reply();
    let reply_wire = zk_get_data_wire();
    let mut zk = [0u8; 512];
    let zk_len = sinew_zk_data_encode(&reply, &mut zk);
    let mut zk_b = [0u8; 512];
    let zk_b_len = bincode_zk_data_encode(&reply_wire, &mut zk_b);
    let mut zk_s = [0u8; 512];
    let zk_s_len = bincode_standard_zk_data_encode(&reply_wire, &mut zk_s);
    let mut zk_p = [0u8; 512];
    let zk_p_len = postcard_zk_data_encode(&reply_wire, &mut zk_p);

    let create = zk_create_request();
    let create_wire = zk_create_wire();
    let put = dht_put();
    let put_wire = dht_put_wire();
    let mut dht = [0u8; 512];
    let dht_len = dht_put_encode(&put, &mut dht);
    let mut dht_b = [0u8; 512];
    let dht_b_len = bincode_dht_put_encode(&put_wire, &mut dht_b);

    let mut sink = 0usize;
    for _ in 0..n {
        sink += match op.as_str() {
            "health_encode" => sinew_health_encode(black_box(&check), black_box(&mut buf)),
            "health_decode_view" => {
                sinew_health_decode_view(black_box(&health[..health_len])).map_or(0, usize::from)
            }
            "health_decode" => sinew_health_decode(black_box(&health[..health_len]))
                .map_or(0, |c| usize::from(c.nonce.as_bytes()[15])),
            "table_encode" => sinew_table_encode(black_box(&entries), black_box(&mut buf)),
            "table_encode_encoded" => {
                sinew_table_encode_encoded(black_box(&encoded), black_box(&mut buf))
            }
            "table_parse" => {
                usize::from(sinew_table_parse(black_box(&table[..table_len])).unwrap_or(0))
            }
            "table_walk" => sinew_table_walk(black_box(&table[..table_len])) as usize,
            "table_decode" => sinew_table_decode(black_box(&table[..table_len])) as usize,
            "bincode_health_encode" => bincode_health_encode(black_box(&wire), black_box(&mut buf)),
            "bincode_health_decode" => bincode_health_decode(black_box(&health_b[..health_b_len]))
                .map_or(0, |w| usize::from(w.nonce[15])),
            "postcard_health_encode" => {
                postcard_health_encode(black_box(&wire), black_box(&mut buf))
            }
            "postcard_health_decode" => {
                postcard_health_decode(black_box(&health_p[..health_p_len]))
                    .map_or(0, |w| usize::from(w.nonce[15]))
            }
            "bincode_table_encode" => {
                bincode_table_encode(black_box(&table_wire), black_box(&mut buf))
            }
            "bincode_table_decode" => bincode_table_decode(black_box(&table_b[..table_b_len]))
                .map_or(0, |t| t.peers.iter().map(|p| usize::from(p.port)).sum()),
            "postcard_table_encode" => {
                postcard_table_encode(black_box(&table_wire), black_box(&mut buf))
            }
            "postcard_table_decode" => postcard_table_decode(black_box(&table_p[..table_p_len]))
                .map_or(0, |t| t.peers.iter().map(|p| usize::from(p.port)).sum()),
            "zk_data_encode" => sinew_zk_data_encode(black_box(&reply), black_box(&mut buf)),
            "zk_data_decode" => {
                sinew_zk_data_decode(black_box(&zk[..zk_len])).map_or(0, |r| r.header.xid as usize)
            }
            "bincode_zk_data_encode" => {
                bincode_zk_data_encode(black_box(&reply_wire), black_box(&mut buf))
            }
            "bincode_zk_data_decode" => {
                bincode_zk_data_decode(black_box(&zk_b[..zk_b_len])).map_or(0, |w| w.data.len())
            }
            "limit_zk_data_encode" => {
                limit_zk_data_encode(black_box(&reply_wire), black_box(&mut buf))
            }
            "bincode_standard_zk_data_encode" => {
                bincode_standard_zk_data_encode(black_box(&reply_wire), black_box(&mut buf))
            }
            "bincode_standard_zk_data_decode" => {
                bincode_standard_zk_data_decode(black_box(&zk_s[..zk_s_len]))
                    .map_or(0, |w| w.data.len())
            }
            "postcard_zk_data_encode" => {
                postcard_zk_data_encode(black_box(&reply_wire), black_box(&mut buf))
            }
            "postcard_zk_data_decode" => {
                postcard_zk_data_decode(black_box(&zk_p[..zk_p_len])).map_or(0, |w| w.data.len())
            }
            "zk_create_encode" => zk_create_encode(black_box(&create), black_box(&mut buf)),
            "bincode_zk_create_encode" => {
                bincode_zk_create_encode(black_box(&create_wire), black_box(&mut buf))
            }
            "dht_put_encode" => dht_put_encode(black_box(&put), black_box(&mut buf)),
            "dht_put_decode" => dht_put_decode(black_box(&dht[..dht_len]))
                .map_or(0, |m| m.header.message_id as usize),
            "bincode_dht_put_encode" => {
                bincode_dht_put_encode(black_box(&put_wire), black_box(&mut buf))
            }
            "bincode_dht_put_decode" => {
                bincode_dht_put_decode(black_box(&dht_b[..dht_b_len])).map_or(0, |w| w.value.len())
            }
            other => panic!("unknown operation {other}"),
        };
    }
    println!("{op}: {n} runs ({})", black_box(sink));
}
