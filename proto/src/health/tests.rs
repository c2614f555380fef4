//! Byte-level tests of the health codec and virtual-time tests of the health node.

use super::node::{Disposition, DropReason};
use super::*;
use crate::time::Instant;
use core::convert::Infallible;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use core::time::Duration;
use proptest::prelude::*;
use std::vec::Vec;

// ---------------------------------------------------------------------------------------------
// Vectors
// ---------------------------------------------------------------------------------------------

static REQUEST: [u8; 17] = [
    0x01, // type: version 0 (bits 7..5), kind 1 = health request
    0x6b, 0x1f, 0x28, 0x3a, 0x90, 0x4c, 0x11, 0xee, // nonce bytes 0..8
    0x9f, 0x5d, 0x02, 0x42, 0xac, 0x12, 0x00, 0x02, // nonce bytes 8..16
];

static RESPONSE: [u8; 17] = [
    0x02, // type: version 0, kind 2 = health response
    0x6b, 0x1f, 0x28, 0x3a, 0x90, 0x4c, 0x11, 0xee, // nonce echoed, bytes 0..8
    0x9f, 0x5d, 0x02, 0x42, 0xac, 0x12, 0x00, 0x02, // nonce echoed, bytes 8..16
];

/// A peer-table request with the minimum padding (answerable with an empty page only).
static TABLE_REQUEST_MIN: [u8; 22] = [
    0x03, // type: version 0, kind 3 = peer-table request
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, // nonce
    0x00, 0x05, // start: entry 5
    0x00, 0x00, 0x00, // padding: zero
];

/// A page of two entries (of a five-entry table), starting at entry 3.
static TABLE_RESPONSE: [u8; 60] = [
    0x04, // type: version 0, kind 4 = peer-table response
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, // nonce echoed
    0x00, 0x03, // start: entry 3
    0x00, 0x05, // total: 5 entries
    0x02, // count: 2 entries in this page
    // entry 0: 127.0.0.1 as IPv4-mapped IPv6
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1, //
    0x1f, 0x90, // port 8080
    0x03, // lives 3: healthy
    // entry 1: 2001:db8::1
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, //
    0x00, 0x35, // port 53
    0x01, // lives 1: at risk
];

fn nonce_of(bytes: &[u8]) -> Nonce {
    Nonce::from_bytes(bytes[1..17].try_into().unwrap())
}

// ---------------------------------------------------------------------------------------------
// Health request / response
// ---------------------------------------------------------------------------------------------

#[test]
fn test_parse_health_request() {
    let packet = HealthPacket::new_checked(&REQUEST[..]).unwrap();
    assert_eq!(packet.kind(), HealthKind::Request);
    assert_eq!(packet.nonce_bytes(), &REQUEST[1..17]);
    assert_eq!(
        Message::parse(&REQUEST).unwrap(),
        Message::HealthRequest(nonce_of(&REQUEST))
    );
    assert_eq!(
        HealthCheck::parse(&RESPONSE).unwrap(),
        HealthCheck {
            kind: HealthKind::Response,
            nonce: nonce_of(&REQUEST)
        }
    );
}

#[test]
fn test_emit_health() {
    let check = HealthCheck {
        kind: HealthKind::Request,
        nonce: nonce_of(&REQUEST),
    };
    let mut buf = [0xa5; 18];
    assert_eq!(check.encode(&mut buf), Ok(17));
    assert_eq!(&buf[..17], &REQUEST);
    assert_eq!(buf[17], 0xa5, "encode wrote past its length");
    check.response().encode(&mut buf).unwrap();
    assert_eq!(&buf[..17], &RESPONSE);
    assert_eq!(check.encode(&mut buf[..16]), Err(Error::BufferTooSmall));
}

#[test]
fn test_health_truncated() {
    for len in 0..17 {
        assert_eq!(
            Message::parse(&REQUEST[..len]),
            Err(Error::Truncated),
            "len {len}"
        );
        assert_eq!(
            HealthCheck::parse(&RESPONSE[..len]),
            Err(Error::Truncated),
            "len {len}"
        );
    }
}

#[test]
fn test_health_padded() {
    let mut padded = [0u8; 18];
    padded[..17].copy_from_slice(&REQUEST);
    assert_eq!(Message::parse(&padded), Err(Error::TrailingBytes));
    assert_eq!(HealthCheck::parse(&padded), Err(Error::TrailingBytes));
    assert_eq!(
        HealthPacket::new_checked(&padded[..]),
        Err(Error::TrailingBytes)
    );
}

#[test]
fn test_bad_version_and_type() {
    let mut bytes = REQUEST;
    bytes[0] = 0x21; // version 1, kind 1
    assert_eq!(Message::parse(&bytes), Err(Error::UnsupportedVersion(1)));
    assert_eq!(
        HealthCheck::parse(&bytes),
        Err(Error::UnsupportedVersion(1))
    );
    for kind in [0u8, 5, 0x1f] {
        bytes[0] = kind;
        assert_eq!(Message::parse(&bytes), Err(Error::UnknownType(kind)));
        assert_eq!(HealthCheck::parse(&bytes), Err(Error::UnknownType(kind)));
    }
    // A well-formed message of another kind is not a health packet.
    assert_eq!(
        HealthCheck::parse(&TABLE_REQUEST_MIN),
        Err(Error::UnexpectedType(0x03))
    );
    assert_eq!(
        PeerTableRequest::parse(&REQUEST),
        Err(Error::UnexpectedType(0x01))
    );
    assert_eq!(
        PeerTableResponse::parse(&REQUEST),
        Err(Error::UnexpectedType(0x01))
    );
}

#[test]
fn test_too_large() {
    let mut big = [0u8; MAX_DATAGRAM_LEN + 1];
    big[..22].copy_from_slice(&TABLE_REQUEST_MIN);
    assert_eq!(Message::parse(&big), Err(Error::TooLarge));
    assert!(Message::parse(&big[..MAX_DATAGRAM_LEN]).is_ok());
}

// ---------------------------------------------------------------------------------------------
// Peer tables
// ---------------------------------------------------------------------------------------------

#[test]
fn test_parse_table_request() {
    let request = PeerTableRequest::parse(&TABLE_REQUEST_MIN).unwrap();
    assert_eq!(request.start, 5);
    assert_eq!(request.len, 22);
    assert_eq!(request.entry_budget(), 0);
    let mut full = [0u8; MAX_DATAGRAM_LEN];
    full[..22].copy_from_slice(&TABLE_REQUEST_MIN);
    let request = PeerTableRequest::parse(&full).unwrap();
    assert_eq!(request.entry_budget(), MAX_ENTRIES_PER_PAGE);
    assert_eq!(MAX_ENTRIES_PER_PAGE, 25);
}

#[test]
fn test_emit_table_request() {
    let request = PeerTableRequest {
        nonce: nonce_of(&TABLE_REQUEST_MIN),
        start: 5,
        len: 22,
    };
    let mut buf = [0xa5; 30];
    assert_eq!(request.encode(&mut buf), Ok(22));
    assert_eq!(&buf[..22], &TABLE_REQUEST_MIN);
    assert_eq!(buf[22], 0xa5);
    assert_eq!(request.encode(&mut buf[..21]), Err(Error::BufferTooSmall));
    let full = PeerTableRequest::full_page(request.nonce, 0);
    let mut big = [0xa5; 600];
    assert_eq!(full.encode(&mut big), Ok(MAX_DATAGRAM_LEN));
    assert!(big[19..508].iter().all(|&b| b == 0), "padding must be zero");
}

#[test]
fn test_table_request_truncated_and_padding() {
    for len in 0..22 {
        assert_eq!(
            Message::parse(&TABLE_REQUEST_MIN[..len]),
            Err(Error::Truncated),
            "len {len}"
        );
    }
    let mut bad = TABLE_REQUEST_MIN;
    bad[21] = 1;
    assert_eq!(Message::parse(&bad), Err(Error::NonZeroPadding));
}

#[test]
fn test_parse_table_response() {
    let page = PeerTableResponse::parse(&TABLE_RESPONSE).unwrap();
    assert_eq!(page.nonce(), nonce_of(&TABLE_RESPONSE));
    assert_eq!((page.start(), page.total(), page.count()), (3, 5, 2));
    assert_eq!(page.next_start(), None, "3 + 2 = 5: last page");
    let entries: Vec<PeerEntry> = page.entries().collect::<Result<_, _>>().unwrap();
    assert_eq!(
        entries,
        [
            PeerEntry {
                addr: "127.0.0.1:8080".parse().unwrap(),
                health: Health::HEALTHY
            },
            PeerEntry {
                addr: "[2001:db8::1]:53".parse().unwrap(),
                health: Health::from_lives(1).unwrap()
            },
        ]
    );
    assert_eq!(entries[1].health.status(), Status::AtRisk);
}

#[test]
fn test_emit_table_response() {
    let page = PeerTableResponse::parse(&TABLE_RESPONSE).unwrap();
    let mut buf = [0xa5; 100];
    let mut writer = PeerTableWriter::new(&mut buf, page.nonce(), 3, 5).unwrap();
    for entry in page.entries() {
        writer.push(&entry.unwrap()).unwrap();
    }
    assert_eq!(writer.len(), 2);
    let len = writer.finish();
    assert_eq!(len, 60);
    assert_eq!(&buf[..60], &TABLE_RESPONSE);
    assert_eq!(buf[60], 0xa5);
}

#[test]
fn test_table_writer_capacity() {
    let entry = PeerEntry {
        addr: "10.0.0.1:1".parse().unwrap(),
        health: Health::HEALTHY,
    };
    // Room for the header and exactly one entry.
    let mut buf = [0u8; 22 + 19 + 18];
    let mut writer = PeerTableWriter::new(&mut buf, Nonce::default(), 0, 9).unwrap();
    assert_eq!(writer.push(&entry), Ok(()));
    assert!(writer.is_full());
    assert_eq!(writer.push(&entry), Err(Error::BufferTooSmall));
    assert_eq!(writer.finish(), 41);
    let mut tiny = [0u8; 21];
    assert_eq!(
        PeerTableWriter::new(&mut tiny, Nonce::default(), 0, 0).err(),
        Some(Error::BufferTooSmall)
    );
    // A huge buffer is still capped at one safe datagram.
    let mut huge = [0u8; 4096];
    let mut writer = PeerTableWriter::new(&mut huge, Nonce::default(), 0, 100).unwrap();
    while writer.push(&entry).is_ok() {}
    assert_eq!(writer.len(), MAX_ENTRIES_PER_PAGE);
    assert!(writer.finish() <= MAX_DATAGRAM_LEN);
    // Entries the receiver would refuse are refused here.
    let mut buf = [0u8; 100];
    let mut writer = PeerTableWriter::new(&mut buf, Nonce::default(), 0, 1).unwrap();
    let zero_port = PeerEntry {
        addr: "10.0.0.1:0".parse().unwrap(),
        health: Health::HEALTHY,
    };
    assert_eq!(writer.push(&zero_port), Err(Error::BadAddress));
}

#[test]
fn test_encoded_entry_bytes_and_checks() {
    // The two entries of TABLE_RESPONSE, laid out beforehand, are its bytes 22..60.
    let v4 = EncodedEntry::new(&PeerEntry {
        addr: "127.0.0.1:8080".parse().unwrap(),
        health: Health::HEALTHY,
    })
    .unwrap();
    let mut v6 = EncodedEntry::try_from(&PeerEntry {
        addr: "[2001:db8::1]:53".parse().unwrap(),
        health: Health::HEALTHY,
    })
    .unwrap();
    assert_eq!(v4.as_bytes()[..], TABLE_RESPONSE[22..41]);
    assert_ne!(v6.as_bytes()[..], TABLE_RESPONSE[41..60]); // lives 3, not 1
    v6.set_health(Health::from_lives(1).unwrap());
    assert_eq!(v6.as_bytes()[..], TABLE_RESPONSE[41..60]);
    assert_eq!(v6.health().lives(), 1);
    assert_eq!(v6.view().port(), 53);
    // Decoding gives back what went in, IPv4 as IPv4.
    let back = PeerEntry::from(v4);
    assert_eq!(back.addr, "127.0.0.1:8080".parse::<SocketAddr>().unwrap());
    assert_eq!(back.health, Health::HEALTHY);
    assert_eq!(v4.view().to_entry(), Ok(back));
    // What no receiver accepts cannot be made.
    for bad in [
        "10.0.0.1:0",
        "0.0.0.0:1",
        "[::]:1",
        "[::ffff:0.0.0.0]:1",
        "[2001:db8::1]:0",
    ] {
        let entry = PeerEntry {
            addr: bad.parse().unwrap(),
            health: Health::HEALTHY,
        };
        assert_eq!(EncodedEntry::new(&entry), Err(Error::BadAddress), "{bad}");
    }
}

#[test]
fn test_table_writer_encoded_entries() {
    let entries = [
        EncodedEntry::new(&PeerEntry {
            addr: "127.0.0.1:8080".parse().unwrap(),
            health: Health::HEALTHY,
        })
        .unwrap(),
        EncodedEntry::new(&PeerEntry {
            addr: "[2001:db8::1]:53".parse().unwrap(),
            health: Health::from_lives(1).unwrap(),
        })
        .unwrap(),
    ];
    // push_encoded and extend_encoded both write TABLE_RESPONSE byte for byte.
    let nonce = nonce_of(&TABLE_RESPONSE);
    let mut buf = [0xaa; 100];
    let mut writer = PeerTableWriter::new(&mut buf, nonce, 3, 5).unwrap();
    writer.push_encoded(&entries[0]).unwrap();
    writer.push_encoded(&entries[1]).unwrap();
    assert_eq!(writer.finish(), 60);
    assert_eq!(buf[..60], TABLE_RESPONSE);
    let mut buf = [0xaa; 100];
    let mut writer = PeerTableWriter::new(&mut buf, nonce, 3, 5).unwrap();
    assert_eq!(writer.extend_encoded(&entries), 2);
    assert_eq!(writer.finish(), 60);
    assert_eq!(buf[..60], TABLE_RESPONSE);
    // The table's total bounds both: entry 4 is the last of 5.
    let mut buf = [0xaa; 100];
    let mut writer = PeerTableWriter::new(&mut buf, nonce, 4, 5).unwrap();
    assert_eq!(writer.extend_encoded(&entries), 1);
    assert_eq!(writer.push_encoded(&entries[1]), Err(Error::BadLength));
    assert_eq!(writer.extend_encoded(&entries), 0);
    assert_eq!(writer.finish(), 41);
    assert_eq!(buf[41], 0xaa, "nothing written past the page");
    // And so does the buffer.
    let mut buf = [0xaa; 22 + 19 + 18];
    let mut writer = PeerTableWriter::new(&mut buf, nonce, 0, 9).unwrap();
    assert_eq!(writer.extend_encoded(&entries), 1);
    assert_eq!(writer.push_encoded(&entries[1]), Err(Error::BufferTooSmall));
    assert_eq!(writer.finish(), 41);
    assert!(buf[41..].iter().all(|&b| b == 0xaa));
}

#[test]
fn test_extend_encoded_pages_a_large_table() {
    // 60 hosts: 25 + 25 + 10 over three full-size pages, each parsing back to its slice.
    let table: Vec<EncodedEntry> = (1..=60u16)
        .map(|port| PeerEntry {
            addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), port),
            health: Health::from_lives((port % 4) as u8).unwrap(),
        })
        .map(|entry| EncodedEntry::new(&entry).unwrap())
        .collect();
    let mut start = 0;
    let mut sizes = Vec::new();
    while start < table.len() {
        let mut buf = [0u8; 1024];
        let mut writer =
            PeerTableWriter::new(&mut buf, Nonce::default(), start as u16, 60).unwrap();
        let n = writer.extend_encoded(&table[start..]);
        let len = writer.finish();
        assert!(len <= MAX_DATAGRAM_LEN);
        let page = PeerTableResponse::parse(&buf[..len]).unwrap();
        assert_eq!(usize::from(page.start()), start);
        let got: Vec<PeerEntry> = page.entries().map(Result::unwrap).collect();
        let want: Vec<PeerEntry> = table[start..start + n].iter().map(|e| e.entry()).collect();
        assert_eq!(got, want);
        sizes.push(n);
        start += n;
    }
    assert_eq!(sizes, [25, 25, 10]);
}

#[test]
fn test_table_response_every_prefix_truncated() {
    for len in 0..TABLE_RESPONSE.len() {
        assert_eq!(
            Message::parse(&TABLE_RESPONSE[..len]),
            Err(Error::Truncated),
            "prefix of {len} bytes"
        );
    }
}

#[test]
fn test_table_entries_are_checked_as_they_are_walked() {
    let mut bad = TABLE_RESPONSE;
    bad[22 + 19 + 18] = 7; // the second entry's lives: 7
    let page = PeerTableResponse::parse(&bad).expect("the structure is sound");
    let walked: Vec<Result<PeerEntry>> = page.entries().collect();
    assert!(walked[0].is_ok());
    assert_eq!(walked[1], Err(Error::BadStatus(7)));
    assert_eq!(page.validate(), Err(Error::BadStatus(7)));
    let ports: Vec<u16> = page.views().map(|v| v.port()).collect();
    assert_eq!(ports, [8080, 53]);
    assert_eq!(
        page.views().next().unwrap().addr(),
        "127.0.0.1:8080".parse().unwrap()
    );
    // The strict entry point refuses the whole page.
    assert_eq!(Message::parse(&bad), Err(Error::BadStatus(7)));
}

#[test]
fn test_table_response_bad_entries() {
    let mut bad = TABLE_RESPONSE;
    bad[22 + 18] = 4; // lives 4 > MAX_LIVES
    assert_eq!(Message::parse(&bad), Err(Error::BadStatus(4)));
    let mut bad = TABLE_RESPONSE;
    bad[22 + 16..22 + 18].copy_from_slice(&[0, 0]); // port 0
    assert_eq!(Message::parse(&bad), Err(Error::BadAddress));
    let mut bad = TABLE_RESPONSE;
    bad[22 + 19..22 + 35].fill(0); // address ::
    assert_eq!(Message::parse(&bad), Err(Error::BadAddress));
    let mut bad = TABLE_RESPONSE;
    bad[20] = 4; // total 4 < start 3 + count 2
    assert_eq!(Message::parse(&bad), Err(Error::BadLength));
    let mut bad = [0u8; 61];
    bad[..60].copy_from_slice(&TABLE_RESPONSE);
    assert_eq!(Message::parse(&bad), Err(Error::TrailingBytes));
    let mut bad = TABLE_RESPONSE;
    bad[21] = 3; // count says 3, only 2 present
    assert_eq!(Message::parse(&bad), Err(Error::Truncated));
}

#[test]
fn test_health_lives() {
    let mut h = Health::HEALTHY;
    assert_eq!(h.status(), Status::Healthy);
    h = h.lose();
    assert_eq!((h.lives(), h.status()), (2, Status::AtRisk));
    h = h.lose().lose().lose();
    assert_eq!((h.lives(), h.status()), (0, Status::Unhealthy));
    h = h.gain();
    assert_eq!(h.status(), Status::AtRisk);
    assert_eq!(h.gain().gain().gain(), Health::HEALTHY);
    assert_eq!(Health::from_lives(4), None);
    assert_eq!(std::format!("{}", Health::HEALTHY), "Healthy (3/3 lives)");
}

fn arb_nonce() -> impl Strategy<Value = Nonce> {
    any::<[u8; 16]>().prop_map(Nonce::from_bytes)
}

fn arb_entry() -> impl Strategy<Value = PeerEntry> {
    let ip = prop_oneof![
        any::<u32>().prop_map(|v| IpAddr::V4(Ipv4Addr::from(v.max(1)))),
        any::<u128>()
            .prop_filter("not IPv4-mapped", |v| Ipv6Addr::from(*v)
                .to_ipv4_mapped()
                .is_none())
            .prop_map(|v| IpAddr::V6(Ipv6Addr::from(v.max(1)))),
    ];
    (ip, 1..=u16::MAX, 0..=MAX_LIVES).prop_map(|(ip, port, lives)| PeerEntry {
        addr: SocketAddr::new(ip, port),
        health: Health::from_lives(lives).unwrap(),
    })
}

proptest! {
    #[test]
    fn roundtrip_health(nonce in arb_nonce(), response: bool) {
        let kind = if response { HealthKind::Response } else { HealthKind::Request };
        let check = HealthCheck { kind, nonce };
        let mut buf = [0xa5u8; 64];
        let len = check.encode(&mut buf).unwrap();
        prop_assert_eq!(len, check.encoded_len());
        prop_assert_eq!(HealthCheck::parse(&buf[..len]).unwrap(), check);
    }

    #[test]
    fn roundtrip_table_request(nonce in arb_nonce(), start: u16, len in 22u16..=508) {
        let request = PeerTableRequest { nonce, start, len };
        let mut buf = [0xa5u8; 600];
        let n = request.encode(&mut buf).unwrap();
        prop_assert_eq!(n, request.encoded_len());
        prop_assert_eq!(PeerTableRequest::parse(&buf[..n]).unwrap(), request);
    }

    #[test]
    fn roundtrip_table(
        nonce in arb_nonce(),
        start in 0u16..1000,
        extra in 0u16..1000,
        entries in proptest::collection::vec(arb_entry(), 0..=MAX_ENTRIES_PER_PAGE),
    ) {
        let total = start + entries.len() as u16 + extra;
        let mut buf = [0xa5u8; MAX_DATAGRAM_LEN];
        let mut writer = PeerTableWriter::new(&mut buf, nonce, start, total).unwrap();
        for e in &entries {
            writer.push(e).unwrap();
        }
        let len = writer.finish();
        prop_assert_eq!(len, peer_table_len(entries.len()));
        let page = PeerTableResponse::parse(&buf[..len]).unwrap();
        prop_assert_eq!((page.nonce(), page.start(), page.total()), (nonce, start, total));
        prop_assert_eq!(page.entries().collect::<Result<Vec<_>, _>>().unwrap(), entries);
    }

    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Message::parse(&bytes);
        let _ = PeerTableResponse::parse(&bytes).map(|p| p.entries().count());
    }
}

// ---------------------------------------------------------------------------------------------
// The node, on virtual time
// ---------------------------------------------------------------------------------------------

/// A deterministic generator for tests only (splitmix64): not secure, but reproducible.
pub(crate) struct TestRng(u64);

impl rand_core::TryRng for TestRng {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        self.try_next_u64().map(|v| v as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Ok(z ^ (z >> 31))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for chunk in dst.chunks_mut(8) {
            let v = self.try_next_u64()?.to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        Ok(())
    }
}
impl rand_core::TryCryptoRng for TestRng {}

type Node = HealthNode<TestRng, 8, 16, 8>;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn config(local: SocketAddr) -> Config {
    Config {
        check_interval: Duration::from_millis(100),
        response_timeout: Duration::from_millis(50),
        table_interval: Duration::from_millis(300),
        learn_from_requests: true,
        local_addr: Some(local),
    }
}

/// Drains a node's transmits into (from, to, bytes) triples.
fn drain(
    node: &mut Node,
    from: SocketAddr,
    now: Instant,
) -> Vec<(SocketAddr, SocketAddr, Vec<u8>)> {
    let mut out = Vec::new();
    let mut buf = [0u8; MAX_DATAGRAM_LEN];
    while let Some(t) = node.poll_transmit(now, &mut buf) {
        assert!(t.len <= MAX_DATAGRAM_LEN);
        out.push((from, t.destination, buf[..t.len].to_vec()));
    }
    out
}

/// A lossless network of nodes on virtual time with 1 ms delivery; `down` nodes drop everything.
struct Sim {
    nodes: Vec<(SocketAddr, Node, bool)>,
    now: Instant,
}

impl Sim {
    fn new(ports: &[u16]) -> Sim {
        let nodes = ports
            .iter()
            .enumerate()
            .map(|(i, &p)| {
                (
                    addr(p),
                    Node::new(config(addr(p)), TestRng(i as u64 + 1)),
                    true,
                )
            })
            .collect();
        Sim {
            nodes,
            now: Instant::ZERO,
        }
    }

    fn node(&mut self, port: u16) -> &mut Node {
        &mut self.nodes.iter_mut().find(|n| n.0 == addr(port)).unwrap().1
    }

    fn set_up(&mut self, port: u16, up: bool) {
        self.nodes.iter_mut().find(|n| n.0 == addr(port)).unwrap().2 = up;
    }

    /// Runs for `ms` milliseconds of virtual time in 1 ms steps.
    fn run(&mut self, ms: u64) {
        for _ in 0..ms {
            self.now = self.now + Duration::from_millis(1);
            let now = self.now;
            let mut wire = Vec::new();
            for (a, node, up) in &mut self.nodes {
                node.handle_timeout(now);
                let out = drain(node, *a, now);
                if *up {
                    wire.extend(out);
                }
            }
            for (from, to, bytes) in wire {
                if let Some((_, node, true)) = self.nodes.iter_mut().find(|n| n.0 == to) {
                    let d = node.handle_datagram(now, from, &bytes);
                    assert!(!matches!(d, Disposition::Malformed(_)), "{d:?}");
                }
            }
        }
    }

    fn status_of(&self, at: u16, of: u16) -> Option<Status> {
        let node = &self.nodes.iter().find(|n| n.0 == addr(at)).unwrap().1;
        node.host(addr(of)).map(|h| h.health.status())
    }
}

#[test]
fn two_nodes_check_each_other() {
    let mut sim = Sim::new(&[1, 2]);
    sim.node(2).add_seed(addr(1)).unwrap();
    sim.run(200);
    assert_eq!(sim.status_of(2, 1), Some(Status::Healthy));
    assert_eq!(
        sim.status_of(1, 2),
        Some(Status::Healthy),
        "the seed learns from requests"
    );
    let stats = *sim.node(1).stats();
    assert!(stats.requests_answered > 0 && stats.responses_accepted > 0);
    assert_eq!(
        stats.malformed + stats.unmatched + stats.wrong_source + stats.late,
        0
    );
}

#[test]
fn five_nodes_converge_from_one_seed_and_heal() {
    let ports = [10, 11, 12, 13, 14];
    let mut sim = Sim::new(&ports);
    for &p in &ports[1..] {
        sim.node(p).add_seed(addr(10)).unwrap();
    }
    sim.run(1500);
    for &a in &ports {
        for &b in &ports {
            let expect = if a == b { None } else { Some(Status::Healthy) };
            assert_eq!(sim.status_of(a, b), expect, "{a} sees {b}");
        }
    }
    // Node 12 goes silent: the others see it lose its lives one check at a time.
    sim.set_up(12, false);
    sim.run(160);
    assert_eq!(sim.status_of(10, 12), Some(Status::AtRisk));
    sim.run(400);
    for &a in &[10, 11, 13, 14] {
        assert_eq!(sim.status_of(a, 12), Some(Status::Unhealthy), "{a} sees 12");
    }
    // It comes back: three answered checks restore it.
    sim.set_up(12, true);
    sim.run(500);
    for &a in &[10, 11, 13, 14] {
        assert_eq!(sim.status_of(a, 12), Some(Status::Healthy), "{a} sees 12");
    }
    let mut events = Vec::new();
    while let Some(e) = sim.node(10).poll_event() {
        events.push(e);
    }
    let to_12: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::HealthChanged { addr: a, to, .. } if *a == addr(12) => Some(to.lives()),
            _ => None,
        })
        .collect();
    assert_eq!(to_12, [2, 1, 0, 1, 2, 3]);
}

fn request_from(node: &mut Node, now: Instant) -> (SocketAddr, Vec<u8>) {
    let (_, to, bytes) = drain(node, addr(0), now).pop().expect("a request");
    (to, bytes)
}

fn response_to(request: &[u8]) -> [u8; 17] {
    let mut response = [0u8; 17];
    response.copy_from_slice(request);
    response[0] = 0x02;
    response
}

#[test]
fn response_must_match_nonce_source_and_deadline() {
    let mut node = Node::new(config(addr(1)), TestRng(7));
    node.add_seed(addr(2)).unwrap();
    let t0 = Instant::from_millis(1);
    node.handle_timeout(t0);
    let (to, request) = request_from(&mut node, t0);
    assert_eq!(to, addr(2));
    let good = response_to(&request);

    // Right nonce, wrong source: dropped, and the request stays outstanding.
    assert_eq!(
        node.handle_datagram(t0, addr(3), &good),
        Disposition::Dropped(DropReason::WrongSource)
    );
    // Right source, wrong nonce.
    let mut wrong = good;
    wrong[16] ^= 1;
    assert_eq!(
        node.handle_datagram(t0, addr(2), &wrong),
        Disposition::Dropped(DropReason::Unmatched)
    );
    // A health response must not answer a table request and vice versa: not tried here, see below.
    assert_eq!(node.hosts().len(), 0);
    // Right source and nonce, after the deadline.
    let late = t0 + Duration::from_millis(50);
    assert_eq!(
        node.handle_datagram(late, addr(2), &good),
        Disposition::Dropped(DropReason::Late)
    );
    assert_eq!(node.hosts().len(), 0);
    // The same response again: its request is gone.
    assert_eq!(
        node.handle_datagram(late, addr(2), &good),
        Disposition::Dropped(DropReason::Unmatched)
    );
    let stats = node.stats();
    assert_eq!((stats.wrong_source, stats.unmatched, stats.late), (1, 2, 1));

    // A fresh probe answered properly from the right address in time is accepted.
    let t1 = t0 + Duration::from_millis(100);
    node.handle_timeout(t1);
    let (_, request) = request_from(&mut node, t1);
    assert_eq!(
        node.handle_datagram(t1, addr(2), &response_to(&request)),
        Disposition::Accepted
    );
    assert_eq!(node.host(addr(2)).unwrap().health, Health::HEALTHY);
}

#[test]
fn malformed_datagrams_are_counted_never_answered() {
    let mut node = Node::new(config(addr(1)), TestRng(1));
    let now = Instant::from_millis(1);
    let mut padded = [0u8; 18];
    padded[..17].copy_from_slice(&REQUEST);
    assert_eq!(
        node.handle_datagram(now, addr(2), &REQUEST[..16]),
        Disposition::Malformed(Error::Truncated)
    );
    assert_eq!(
        node.handle_datagram(now, addr(2), &padded),
        Disposition::Malformed(Error::TrailingBytes)
    );
    assert!(
        drain(&mut node, addr(1), now).is_empty(),
        "nothing may be sent back"
    );
    assert_eq!(node.stats().malformed, 2);
    assert_eq!(
        node.handle_datagram(now, addr(2), &REQUEST),
        Disposition::Answered
    );
    let out = drain(&mut node, addr(1), now);
    assert_eq!(out[0].1, addr(2));
    assert_eq!(out[0].2, RESPONSE, "the response echoes the nonce");
}

#[test]
fn responses_are_never_larger_than_requests() {
    let mut sim = Sim::new(&[1, 2, 3, 4, 5, 6]);
    for p in 2..=6 {
        sim.node(p).add_seed(addr(1)).unwrap();
    }
    sim.run(1000);
    assert_eq!(sim.node(1).hosts().len(), 5);
    let now = sim.now;
    let node = sim.node(1);
    // A minimal table request (22 bytes) can only be answered with an empty page.
    let mut request = [0u8; 22];
    request[0] = 0x03;
    assert_eq!(
        node.handle_datagram(now, addr(9), &request),
        Disposition::Answered
    );
    let out = drain(node, addr(1), now);
    let (_, _, reply) = out
        .iter()
        .find(|(_, to, b)| *to == addr(9) && b[0] == 0x04)
        .unwrap();
    assert_eq!(reply.len(), 22);
    let page = PeerTableResponse::parse(reply).unwrap();
    assert_eq!((page.count(), page.total()), (0, 5));
    // 22 + 2 × 19 = 60 bytes of request buys two entries, and the page says where to go on.
    let mut request = [0u8; 60];
    request[0] = 0x03;
    assert_eq!(
        node.handle_datagram(now, addr(9), &request),
        Disposition::Answered
    );
    let out = drain(node, addr(1), now);
    let (_, _, reply) = out
        .iter()
        .find(|(_, to, b)| *to == addr(9) && b[0] == 0x04)
        .unwrap();
    assert_eq!(reply.len(), 60);
    let page = PeerTableResponse::parse(reply).unwrap();
    assert_eq!((page.count(), page.next_start()), (2, Some(2)));
}

#[test]
fn table_pages_are_followed() {
    // 30 hosts do not fit one page (25); a node with room for them all pages through.
    type Big = HealthNode<TestRng, 40, 64, 8>;
    let mut server = Big::new(config(addr(1)), TestRng(1));
    let mut client = Big::new(config(addr(2)), TestRng(2));
    let mut now = Instant::from_millis(1);
    // Fill the server's table: 30 hosts send it a request, and answer the probe it sends back.
    for p in 100..130u16 {
        let mut req = REQUEST;
        req[16] = p as u8;
        assert_eq!(
            server.handle_datagram(now, addr(p), &req),
            Disposition::Answered
        );
        let mut buf = [0u8; 508];
        while let Some(t) = server.poll_transmit(now, &mut buf) {
            if buf[0] == 0x01 {
                let resp = response_to(&buf[..17]);
                assert_eq!(
                    server.handle_datagram(now, t.destination, &resp),
                    Disposition::Accepted
                );
            }
        }
    }
    assert_eq!(server.hosts().len(), 30);
    // The client asks the server, which answers; pages follow until the whole table is known.
    client.add_seed(addr(1)).unwrap();
    for _ in 0..10 {
        now = now + Duration::from_millis(1);
        client.handle_timeout(now);
        let mut buf = [0u8; 508];
        let mut to_server = Vec::new();
        while let Some(t) = client.poll_transmit(now, &mut buf) {
            if t.destination == addr(1) {
                to_server.push(buf[..t.len].to_vec());
            }
        }
        for d in to_server {
            server.handle_datagram(now, addr(2), &d);
        }
        while let Some(t) = server.poll_transmit(now, &mut buf) {
            if t.destination == addr(2) {
                client.handle_datagram(now, addr(1), &buf[..t.len]);
            }
        }
    }
    assert!(client.stats().tables_received >= 2, "{:?}", client.stats());
}

#[test]
fn node_does_not_add_itself() {
    // A node whose own address reaches it through a peer table (and that does not know its
    // address) recognises its own probe when it comes back as a request.
    let mut cfg = config(addr(1));
    cfg.local_addr = None;
    let mut node = Node::new(cfg, TestRng(3));
    node.add_seed(addr(1)).unwrap();
    let now = Instant::from_millis(1);
    node.handle_timeout(now);
    let (to, request) = request_from(&mut node, now);
    assert_eq!(to, addr(1));
    assert_eq!(
        node.handle_datagram(now, addr(1), &request),
        Disposition::Dropped(DropReason::SelfTalk)
    );
    assert_eq!(node.stats().self_detected, 1);
    node.handle_timeout(now + Duration::from_secs(5));
    assert!(
        drain(&mut node, addr(1), now)
            .iter()
            .all(|(_, to, _)| *to != addr(1))
    );
}

#[test]
fn ping_reports_rtt_and_timeouts() {
    let mut node = Node::new(config(addr(1)), TestRng(4));
    let t0 = Instant::from_millis(10);
    let nonce = node.ping(t0, addr(2)).unwrap();
    let (to, request) = request_from(&mut node, t0);
    assert_eq!((to, nonce_of(&request)), (addr(2), nonce));
    let t1 = t0 + Duration::from_micros(1234);
    assert_eq!(
        node.handle_datagram(t1, addr(2), &response_to(&request)),
        Disposition::Accepted
    );
    assert_eq!(
        node.poll_event(),
        Some(Event::Pong {
            addr: addr(2),
            nonce,
            rtt: Duration::from_micros(1234)
        })
    );
    assert_eq!(node.hosts().len(), 0, "a ping does not add a host");
    let nonce = node.ping(t1, addr(3)).unwrap();
    node.handle_timeout(t1 + Duration::from_millis(50));
    assert_eq!(
        node.poll_event(),
        Some(Event::PingTimeout {
            addr: addr(3),
            nonce
        })
    );
}

#[test]
fn full_table_evicts_only_unhealthy_hosts() {
    type Tiny = HealthNode<TestRng, 2, 8, 8>;
    let mut node = Tiny::new(config(addr(1)), TestRng(5));
    let mut now = Instant::from_millis(1);
    let answer_all = |node: &mut Tiny, now: Instant, alive: &[u16]| {
        let mut buf = [0u8; 508];
        while let Some(t) = node.poll_transmit(now, &mut buf) {
            if buf[0] == 0x01 && alive.contains(&t.destination.port()) {
                let resp = response_to(&buf[..17]);
                node.handle_datagram(now, t.destination, &resp);
            }
        }
    };
    for p in [2, 3, 4] {
        node.add_seed(addr(p)).unwrap();
    }
    node.handle_timeout(now);
    answer_all(&mut node, now, &[2, 3, 4]);
    assert_eq!(node.hosts().len(), 2);
    // Seed 4 is retried a check interval later, answers, but finds no room: nobody is unhealthy.
    now = now + Duration::from_millis(100);
    node.handle_timeout(now);
    answer_all(&mut node, now, &[2, 3, 4]);
    assert_eq!(node.stats().table_full, 1, "no room and nobody unhealthy");
    assert!(node.host(addr(4)).is_none());
    // Host 2 dies; once unhealthy it makes room for 4.
    for _ in 0..12 {
        now = now + Duration::from_millis(60);
        node.handle_timeout(now);
        answer_all(&mut node, now, &[3, 4]);
    }
    assert!(node.host(addr(2)).is_none());
    assert!(node.host(addr(4)).is_some());
    let mut evicted = false;
    while let Some(e) = node.poll_event() {
        evicted |= e == Event::HostEvicted { addr: addr(2) };
    }
    assert!(evicted);
}

#[test]
fn poll_timeout_tracks_the_next_deadline() {
    let mut node = Node::new(config(addr(1)), TestRng(6));
    assert_eq!(
        node.poll_timeout(),
        None,
        "an idle node sleeps until a datagram"
    );
    node.add_seed(addr(2)).unwrap();
    let now = Instant::from_millis(5);
    node.handle_timeout(now);
    let _ = request_from(&mut node, now);
    assert_eq!(node.poll_timeout(), Some(now + Duration::from_millis(50)));
}

#[test]
fn request_floods_cannot_crowd_out_checks() {
    // PENDING = 16: probes of unknown sources may hold at most 8 of them.
    let mut node = Node::new(config(addr(1)), TestRng(8));
    let now = Instant::from_millis(1);
    node.add_seed(addr(2)).unwrap();
    node.handle_timeout(now);
    let (_, request) = request_from(&mut node, now);
    node.handle_datagram(now, addr(2), &response_to(&request));
    assert!(node.host(addr(2)).is_some());
    let mut sent_probes = 0;
    for round in 0..4u16 {
        for p in 0..8u16 {
            let mut req = REQUEST;
            req[16] = (round * 8 + p) as u8;
            node.handle_datagram(now, addr(1000 + round * 8 + p), &req);
        }
        let mut buf = [0u8; 508];
        while let Some(t) = node.poll_transmit(now, &mut buf) {
            if buf[0] == 0x01 && t.destination.port() >= 1000 {
                sent_probes += 1;
            }
        }
    }
    assert_eq!(
        sent_probes, 8,
        "probes are capped at half the pending table"
    );
    // Candidates wait for probe room without a busy loop: the next wake-up is a deadline.
    assert_eq!(node.poll_timeout(), Some(now + Duration::from_millis(50)));
    // The known host is still checked when its check is due.
    let later = now + Duration::from_millis(100);
    let out = drain(&mut node, addr(1), later);
    assert!(out.iter().any(|(_, to, b)| *to == addr(2) && b[0] == 0x01));
}

#[test]
fn ping_of_own_address_is_answered() {
    let mut node = Node::new(config(addr(1)), TestRng(9));
    let now = Instant::from_millis(1);
    let nonce = node.ping(now, addr(1)).unwrap();
    let (to, request) = request_from(&mut node, now);
    assert_eq!(to, addr(1));
    assert_eq!(
        node.handle_datagram(now, addr(1), &request),
        Disposition::Answered
    );
    let (to, response) = request_from(&mut node, now);
    assert_eq!((to, response[0]), (addr(1), 0x02));
    assert_eq!(
        node.handle_datagram(now, addr(1), &response),
        Disposition::Accepted
    );
    assert_eq!(
        node.poll_event(),
        Some(Event::Pong {
            addr: addr(1),
            nonce,
            rtt: Duration::ZERO
        })
    );
    assert_eq!(node.hosts().len(), 0);
}

#[test]
fn stats_add_up() {
    let mut a = Stats {
        received: 2,
        late: 1,
        ..Stats::default()
    };
    a += &Stats {
        received: 3,
        events_dropped: u64::MAX,
        ..Stats::default()
    };
    a += &Stats {
        events_dropped: 1,
        ..Stats::default()
    };
    assert_eq!((a.received, a.late, a.events_dropped), (5, 1, u64::MAX));
}

#[test]
fn test_mapped_unspecified_entry_is_refused() {
    let mut bad = TABLE_RESPONSE;
    bad[22 + 12..22 + 16].fill(0); // ::ffff:0.0.0.0
    assert_eq!(Message::parse(&bad), Err(Error::BadAddress));
    let entry = PeerEntry {
        addr: "[::ffff:0.0.0.0]:80".parse().unwrap(),
        health: Health::HEALTHY,
    };
    assert!(!entry.is_valid());
    let mut buf = [0u8; 100];
    let mut writer = PeerTableWriter::new(&mut buf, Nonce::default(), 0, 1).unwrap();
    assert_eq!(writer.push(&entry), Err(Error::BadAddress));
}

#[test]
fn test_writer_never_writes_what_parse_refuses() {
    let entry = PeerEntry {
        addr: "10.0.0.1:1".parse().unwrap(),
        health: Health::HEALTHY,
    };
    let mut buf = [0u8; 508];
    assert_eq!(
        PeerTableWriter::new(&mut buf, Nonce::default(), 3, 2).err(),
        Some(Error::BadLength)
    );
    let mut writer = PeerTableWriter::new(&mut buf, Nonce::default(), 1, 2).unwrap();
    assert_eq!(writer.push(&entry), Ok(()));
    assert_eq!(
        writer.push(&entry),
        Err(Error::BadLength),
        "start 1 + 2 entries > total 2"
    );
    let len = writer.finish();
    assert!(PeerTableResponse::parse(&buf[..len]).is_ok());
}

#[test]
fn table_request_past_the_end_gets_an_empty_last_page() {
    let mut node = Node::new(config(addr(1)), TestRng(10));
    let now = Instant::from_millis(1);
    let request = PeerTableRequest {
        nonce: Nonce::from_bytes([9; 16]),
        start: 500,
        len: 508,
    };
    let mut buf = [0u8; 508];
    let len = request.encode(&mut buf).unwrap();
    assert_eq!(
        node.handle_datagram(now, addr(2), &buf[..len]),
        Disposition::Answered
    );
    let out = drain(&mut node, addr(1), now);
    let (_, _, reply) = out.iter().find(|(_, _, b)| b[0] == 0x04).unwrap();
    let page = PeerTableResponse::parse(reply).unwrap();
    assert_eq!((page.start(), page.total(), page.count()), (0, 0, 0));
}

#[test]
fn configured_local_addr_is_never_forgotten() {
    let mut node = Node::new(config(addr(1)), TestRng(11));
    let now = Instant::from_millis(1);
    // Five other addresses of ours are found by talking to ourselves (more than are remembered).
    for p in 50..55 {
        node.add_seed(addr(p)).unwrap();
    }
    node.handle_timeout(now);
    let mut buf = [0u8; 508];
    let mut probes = Vec::new();
    while let Some(t) = node.poll_transmit(now, &mut buf) {
        probes.push((t.destination, buf[..t.len].to_vec()));
    }
    for (to, bytes) in probes {
        assert_eq!(
            node.handle_datagram(now, to, &bytes),
            Disposition::Dropped(DropReason::SelfTalk)
        );
    }
    assert_eq!(node.stats().self_detected, 5);
    // The configured address is still known as ours: a table naming it adds no probe of it.
    let mut req = REQUEST;
    req[16] = 0x77;
    node.handle_datagram(now, addr(1), &req);
    assert!(
        drain(&mut node, addr(1), now)
            .iter()
            .all(|(_, to, b)| !(*to == addr(1) && b[0] == 0x01))
    );
}

#[test]
fn loopback_entries_from_a_remote_peer_are_ignored() {
    let mut node = Node::new(config(SocketAddr::from(([10, 0, 2, 15], 1))), TestRng(12));
    let peer = SocketAddr::from(([10, 0, 2, 2], 7));
    let now = Instant::from_millis(1);
    node.add_seed(peer).unwrap();
    node.handle_timeout(now);
    let mut buf = [0u8; 508];
    let mut others = Vec::new();
    // Answer the probe, then the table request it triggers, with a page naming a loopback host
    // and a routable one.
    for _ in 0..2 {
        while let Some(t) = node.poll_transmit(now, &mut buf) {
            if t.destination != peer {
                others.push(t.destination);
                continue;
            }
            let request = buf[..t.len].to_vec();
            let mut reply = [0u8; 508];
            let len = if request[0] == 0x01 {
                reply[..17].copy_from_slice(&response_to(&request));
                17
            } else {
                let mut w = PeerTableWriter::new(&mut reply, nonce_of(&request), 0, 2).unwrap();
                for a in ["127.0.0.1:9", "10.0.2.3:9"] {
                    w.push(&PeerEntry {
                        addr: a.parse().unwrap(),
                        health: Health::HEALTHY,
                    })
                    .unwrap();
                }
                w.finish()
            };
            assert_eq!(
                node.handle_datagram(now, peer, &reply[..len]),
                Disposition::Accepted
            );
        }
    }
    others.extend(
        drain(&mut node, addr(0), now)
            .into_iter()
            .map(|(_, to, _)| to),
    );
    assert_eq!(others, [SocketAddr::from(([10, 0, 2, 3], 9))]);
}

#[test]
fn short_buffers_ask_for_smaller_pages() {
    let mut node = Node::new(config(addr(1)), TestRng(13));
    let now = Instant::from_millis(1);
    node.add_seed(addr(2)).unwrap();
    node.handle_timeout(now);
    let (_, request) = request_from(&mut node, now);
    node.handle_datagram(now, addr(2), &response_to(&request));
    let mut small = [0u8; 60];
    let t = node.poll_transmit(now, &mut small).unwrap();
    let request = PeerTableRequest::parse(&small[..t.len]).unwrap();
    assert_eq!((request.len, request.entry_budget()), (60, 2));
    let mut tiny = [0u8; 21];
    assert_eq!(
        node.poll_transmit(now + Duration::from_secs(1), &mut tiny),
        None
    );
}
